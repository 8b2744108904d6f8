// The bridge against a real mosquitto with the chat plugin, over MQTT on WebSockets, from Node:
// every seed event in both directions, and the error events.
//
//   CHAT_PLUGIN=$PWD/build/mosquitto_chat.so node --test tests/bridge/events.test.js

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker } from '../lib/broker.js';
import { uniqueId } from '../lib/client.js';
import { io, brokerUrl } from '../../bridge/index.js';
import { openSocket, loggedInSocket, closeAll } from './helpers.js';

let broker;
const open = [];

before(async () => {
  broker = await startBroker({ websockets: true, options: { max_message_bytes: 64 } });
});

after(async () => {
  await closeAll(...open);
  await broker.stop();
  broker.cleanup();
});

function name(prefix) {
  return uniqueId(prefix);
}

async function user(prefix, opts) {
  const p = await loggedInSocket(broker.wsUrl, name(prefix), opts);
  open.push(p);
  return p;
}

function members(group) {
  return Object.keys(group || {}).sort();
}

test('connect: the socket reports connected and a stable client id', async () => {
  const p = await openSocket(broker.wsUrl, {}, 'connect');
  open.push(p);
  assert.equal(p.socket.connected, true);
  assert.equal(p.socket.disconnected, false);
  assert.match(p.socket.id, /^web-[0-9a-z]+$/);
});

test('login: login-response success with a person userid; username and userid kept', async () => {
  const username = name('alice');
  const p = await openSocket(broker.wsUrl, {}, username);
  open.push(p);
  p.socket.emit('login', { username });
  const res = await p.next('login-response');
  assert.equal(res.result, 'success', `login-response: ${JSON.stringify(res)}`);
  assert.equal(res.username, username);
  assert.match(res.userid, /^[0-9]*0$/, `a person userid ends in 0, got ${res.userid}`);
  assert.equal(p.socket.userid, res.userid);
  assert.equal(p.socket.username, username);
  // The directory follows: the retained snapshot and the per-user topic both show the user.
  await p.contact((c) => c.person && c.person[res.userid] && c.person[res.userid][res.userid] === username);
  const u = await p.next('user', (d) => d.userid === res.userid && d.online === true);
  assert.equal(u.username, username);
});

test('login as a plain string is the seed\'s shorthand for {username}', async () => {
  const username = name('shorthand');
  const p = await openSocket(broker.wsUrl, {}, username);
  open.push(p);
  p.socket.emit('login', username);
  const res = await p.next('login-response');
  assert.equal(res.result, 'success', JSON.stringify(res));
  assert.equal(res.username, username);
});

test('login with a taken username: login-response and error both say username_taken', async () => {
  const first = await user('taken');
  const p = await openSocket(broker.wsUrl, {}, 'second');
  open.push(p);
  p.socket.emit('login', { username: first.username });
  const res = await p.next('login-response');
  assert.equal(res.result, 'username_taken', JSON.stringify(res));
  const err = await p.next('error');
  assert.equal(err.action, 'login');
  assert.equal(err.error, 'username_taken');
  assert.equal(p.socket.userid, null, 'no user is bound after a failed login');
});

test('login with an invalid username: invalid_username', async () => {
  const p = await openSocket(broker.wsUrl, {}, 'invalid');
  open.push(p);
  p.socket.emit('login', { username: 'a\u0001b' });
  const res = await p.next('login-response');
  assert.equal(res.result, 'invalid_username', JSON.stringify(res));
  assert.equal((await p.next('error')).error, 'invalid_username');
});

test('message: a direct message goes both ways with sender, receiver, id and ts', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  const before = Date.now();
  alice.socket.emit('message', { receiver: bob.userid, message: 'hello bob' });
  const m = await bob.message('hello bob');
  assert.equal(m.sender, alice.userid);
  assert.equal(m.receiver, bob.userid);
  assert.equal(typeof m.id, 'string');
  assert.equal(typeof m.ts, 'number');
  assert.ok(m.ts >= before - 5000 && m.ts <= Date.now() + 5000, `ts ${m.ts} is not about now`);

  // The seed's full object is accepted too, and the reply comes back the other way.
  bob.socket.emit('message', {
    action: 'message', sender: bob.userid, receiver: alice.userid, message: 'hi alice',
  });
  const r = await alice.message('hi alice');
  assert.equal(r.sender, bob.userid);
  assert.notEqual(r.id, m.id, 'every delivery has its own id');
  // The sender does not get its own message back.
  assert.deepEqual(alice.take('message').concat(bob.take('message')), []);
});

test('message: messages into one room arrive in the order they were sent', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  const texts = Array.from({ length: 20 }, (_, i) => `ordered ${i}`);
  for (const text of texts) alice.socket.emit('message', { receiver: bob.userid, message: text });
  const got = [];
  for (let i = 0; i < texts.length; i++) got.push((await bob.next('message')).message);
  assert.deepEqual(got, texts);
});

test('socket.send() is emit(\'message\'), and an ack is called once the broker has it', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  const acked = await new Promise((resolve) => {
    alice.socket.send({ receiver: bob.userid, message: 'sent with send' }, resolve);
  });
  assert.equal(acked, null, `the ack gets null on success, got ${acked}`);
  await bob.message('sent with send');
});

test('create_group, group messages, join_group, leave_group, new_group and contact', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  const carol = await user('carol');

  alice.socket.emit('create_group', { member: { [bob.userid]: bob.username } });
  const created = await alice.next('new_group');
  assert.match(created.groupid, /^[0-9]*[1-9]$/, `a groupid ends in a non-zero digit: ${created.groupid}`);
  assert.deepEqual(members(created.member), [alice.userid, bob.userid].sort());
  assert.equal(created.member[alice.userid], alice.username);
  const gid = created.groupid;
  const bobsCopy = await bob.next('new_group', (g) => g.groupid === gid);
  assert.deepEqual(bobsCopy.member, created.member);
  assert.deepEqual(carol.take('new_group'), [], 'carol is not in the group');
  await carol.contact((c) => c.group && members(c.group[gid]).join() === members(created.member).join());

  // A group message reaches the other members, not the sender, not outsiders.
  alice.socket.emit('message', { receiver: gid, message: 'hello group' });
  const gm = await bob.message('hello group');
  assert.equal(gm.receiver, gid);
  assert.equal(gm.sender, alice.userid);

  // Carol joins: every member hears of it, carol included.
  carol.socket.emit('join_group', { groupid: gid });
  for (const p of [alice, bob, carol]) {
    const g = await p.next('new_group', (x) => x.groupid === gid && carol.userid in x.member);
    assert.deepEqual(members(g.member), [alice.userid, bob.userid, carol.userid].sort());
  }
  bob.socket.emit('message', { receiver: gid, message: 'welcome carol' });
  await alice.message('welcome carol');
  await carol.message('welcome carol');

  // Bob leaves (no success delivery; the directory changes) and no longer gets group messages.
  bob.socket.emit('leave_group', { groupid: gid });
  await alice.contact((c) => c.group && c.group[gid] && !(bob.userid in c.group[gid]));
  alice.socket.emit('message', { receiver: gid, message: 'after bob left' });
  await carol.message('after bob left');
  bob.socket.emit('message', { receiver: gid, message: 'bob is out' });
  const err = await bob.next('error');
  assert.deepEqual([err.action, err.error], ['message', 'not_a_member'], JSON.stringify(err));
  assert.deepEqual(bob.take('message').filter((m) => m.receiver === gid), [],
    'bob got a group message after leaving');

  // The shorthand of join_group / leave_group: the groupid alone.
  bob.socket.emit('join_group', gid);
  await bob.next('new_group', (x) => x.groupid === gid && bob.userid in x.member);
  bob.socket.emit('leave_group', gid);
  await alice.contact((c) => c.group && c.group[gid] && !(bob.userid in c.group[gid]));

  // The last members leave: the group is deleted.
  alice.socket.emit('leave_group', { groupid: gid });
  carol.socket.emit('leave_group', { groupid: gid });
  await bob.contact((c) => c.group && !(gid in c.group));
});

test('create_group with an unknown member: unknown_user and nothing created', async () => {
  const alice = await user('alice');
  alice.socket.emit('create_group', { member: { 999999990: 'nobody' } });
  const err = await alice.next('error');
  assert.deepEqual([err.action, err.error], ['create_group', 'unknown_user'], JSON.stringify(err));
  assert.deepEqual(alice.take('new_group'), []);
});

test('join_group and leave_group errors: unknown_room, not_a_member', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  alice.socket.emit('join_group', { groupid: '999999991' });
  let err = await alice.next('error');
  assert.deepEqual([err.action, err.error], ['join_group', 'unknown_room'], JSON.stringify(err));

  alice.socket.emit('create_group', { member: {} });
  const { groupid } = await alice.next('new_group');
  bob.socket.emit('leave_group', { groupid });
  err = await bob.next('error');
  assert.deepEqual([err.action, err.error], ['leave_group', 'not_a_member'], JSON.stringify(err));
});

test('message errors: unknown_room, invalid_message, message_too_large, not_logged_in', async () => {
  const alice = await user('alice');
  const cases = [
    [{ receiver: '999999990', message: 'to nobody' }, 'unknown_room'],
    [{ receiver: alice.userid, message: '' }, 'invalid_message'],
    [{ receiver: alice.userid, message: 42 }, 'invalid_message'],
    [{ receiver: alice.userid, message: 'x'.repeat(65) }, 'message_too_large'],
    [{ receiver: 'a/b', message: 'multi-level' }, 'unknown_room'],
  ];
  for (const [data, code] of cases) {
    alice.socket.emit('message', data);
    const err = await alice.next('error');
    assert.deepEqual([err.action, err.error], ['message', code],
      `for ${JSON.stringify(data)}: expected ${code}, got ${JSON.stringify(err)}`);
    assert.equal(typeof err.detail, 'string');
  }
  const stranger = await openSocket(broker.wsUrl, {}, 'stranger');
  open.push(stranger);
  stranger.socket.emit('message', { receiver: alice.userid, message: 'who am I' });
  const err = await stranger.next('error');
  assert.deepEqual([err.action, err.error], ['message', 'not_logged_in'], JSON.stringify(err));
});

test('sender_mismatch: a message may not claim another sender', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  alice.socket.emit('message', { sender: bob.userid, receiver: bob.userid, message: 'forged' });
  const err = await alice.next('error');
  assert.deepEqual([err.action, err.error], ['message', 'sender_mismatch'], JSON.stringify(err));
});

test('a receiver that cannot be a topic level is refused by the bridge itself', async () => {
  const alice = await user('alice');
  for (const receiver of ['a+b', '#', undefined, { id: 1 }]) {
    alice.socket.emit('message', { receiver, message: 'nowhere' });
    const err = await alice.next('error');
    assert.deepEqual([err.action, err.error], ['message', 'unknown_room'],
      `receiver ${JSON.stringify(receiver)}: ${JSON.stringify(err)}`);
  }
  alice.socket.emit('no_such_event', {});
  const err = await alice.next('error');
  assert.deepEqual([err.action, err.error], ['no_such_event', 'invalid_request'], JSON.stringify(err));
  assert.throws(() => alice.socket.emit('connect'), /reserved/);
});

test('logout: the user disappears from the others\' directory and may log in again', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  await alice.contact((c) => c.person && bob.userid in c.person);
  bob.socket.emit('logout');
  await alice.next('user', (u) => u.userid === bob.userid && u.removed === true);
  await alice.contact((c) => c.person && !(bob.userid in c.person));
  assert.equal(bob.socket.userid, null);

  bob.socket.emit('message', { receiver: alice.userid, message: 'logged out' });
  const err = await bob.next('error');
  assert.deepEqual([err.action, err.error], ['message', 'not_logged_in'], JSON.stringify(err));
  bob.socket.emit('logout');
  const again = await bob.next('error');
  assert.deepEqual([again.action, again.error], ['logout', 'not_logged_in'], JSON.stringify(again));

  bob.socket.emit('login', { username: bob.username });
  const res = await bob.next('login-response');
  assert.equal(res.result, 'success', JSON.stringify(res));
  assert.notEqual(res.userid, bob.userid, 'userids are never reused');
});

test('off() removes a listener; once() fires once', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  const seen = [];
  const listener = (m) => seen.push(`on ${m.message}`);
  bob.socket.on('message', listener);
  bob.socket.once('message', (m) => seen.push(`once ${m.message}`));
  alice.socket.emit('message', { receiver: bob.userid, message: 'one' });
  await bob.message('one');
  bob.socket.off('message', listener);
  alice.socket.emit('message', { receiver: bob.userid, message: 'two' });
  await bob.message('two');
  assert.deepEqual(seen, ['on one', 'once one']);
});

test('mqtt can be injected, and MQTT 3.1.1 works as well as MQTT 5', async () => {
  const mqtt = (await import('mqtt')).default;
  const alice = await user('alice', { mqtt, protocolVersion: 4 });
  const bob = await user('bob');
  bob.socket.emit('message', { receiver: alice.userid, message: 'over 3.1.1' });
  await alice.message('over 3.1.1');
});

test('disconnect(): the disconnect event with the client reason, and no reconnection', async () => {
  const p = await user('leaving');
  const reason = new Promise((resolve) => p.socket.once('disconnect', resolve));
  p.socket.disconnect();
  assert.equal(await reason, 'io client disconnect');
  assert.equal(p.socket.connected, false);
  // The persistent chat session stays: the user is offline, not gone.
  const watcher = await openSocket(broker.wsUrl, {}, 'watcher');
  open.push(watcher);
  await watcher.next('user', (u) => u.userid === p.userid && u.online === false);
});

test('io() without a URL outside a page says what it needs', () => {
  assert.throws(() => io(undefined, { autoConnect: false }), /broker URL/);
  const s = io('http://127.0.0.1:1', { autoConnect: false, clientId: 'x' });
  assert.equal(s.connected, false);
});

test('io(\'host:port\') and the seed\'s io(\'localhost:5000\'): a missing scheme means a host name', async () => {
  assert.equal(brokerUrl('localhost:5000', undefined), 'ws://localhost:5000/mqtt');
  assert.equal(brokerUrl('localhost:5000', { protocol: 'http:', host: 'a:1' }), 'ws://localhost:5000/mqtt');
  assert.equal(brokerUrl('chat.example:8443', { protocol: 'https:', host: 'a' }), 'wss://chat.example:8443/mqtt');
  assert.equal(brokerUrl('//h:2', { protocol: 'https:', host: 'a' }), 'wss://h:2/mqtt');
  assert.equal(brokerUrl('/', { protocol: 'http:', host: 'page:8080' }), 'ws://page:8080/mqtt');
  assert.equal(brokerUrl('http://h:1', undefined), 'ws://h:1/mqtt');
  assert.equal(brokerUrl('https://h', undefined), 'wss://h/mqtt');
  // And it really connects: the test broker's WebSockets listener by host:port alone.
  const p = await openSocket(`127.0.0.1:${broker.wsPort}`, {}, 'host:port');
  open.push(p);
  assert.equal(p.socket.connected, true);
  p.socket.emit('login', { username: name('hostport') });
  assert.equal((await p.next('login-response')).result, 'success');
});

test('update_group follows new_group on create and join; delete_group goes to the member whose leave deleted the group', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  alice.socket.emit('create_group', { member: { [bob.userid]: bob.username } });
  const created = await alice.next('new_group');
  const gid = created.groupid;
  assert.deepEqual(await alice.next('update_group', (g) => g.groupid === gid), created,
    'update_group carries the new_group payload');
  await bob.next('update_group', (g) => g.groupid === gid);
  const carol = await user('carol');
  carol.socket.emit('join_group', gid);
  for (const p of [alice, bob, carol]) {
    await p.next('update_group', (g) => g.groupid === gid && carol.userid in g.member);
  }
  // The socket follows the group's directory record (it learns of the deletion there).
  await until(() => alice.socket.followedTopics.includes(`chat/groups/${gid}`),
    () => `alice follows chat/groups/${gid}; she follows ${JSON.stringify(alice.socket.followedTopics)}`);

  // Leaves that leave members behind delete nothing.
  alice.socket.emit('leave_group', gid);
  bob.socket.emit('leave_group', gid);
  await carol.contact((c) => c.group && members(c.group[gid]).join() === carol.userid);
  // Carol is the last: her leave deletes the group, and she is told so.
  carol.socket.emit('leave_group', { groupid: gid });
  assert.deepEqual(await carol.next('delete_group', (d) => d.groupid === gid), { groupid: gid });
  await alice.contact((c) => c.group && !(gid in c.group));
  for (const p of [alice, bob]) {
    assert.deepEqual(p.take('delete_group'), [], `${p.name} left before the group was deleted`);
  }
  await until(() => !carol.socket.followedTopics.some((t) => t.endsWith(`/${gid}`)),
    () => `carol stops following group ${gid}; she follows ${JSON.stringify(carol.socket.followedTopics)}`);

  // A logout that deletes a group (its only member) says so too.
  const dan = await user('dan');
  dan.socket.emit('create_group', { member: {} });
  const solo = (await dan.next('new_group')).groupid;
  await until(() => dan.socket.followedTopics.includes(`chat/groups/${solo}`),
    () => `dan follows chat/groups/${solo}; he follows ${JSON.stringify(dan.socket.followedTopics)}`);
  dan.socket.emit('logout');
  assert.deepEqual(await dan.next('delete_group', (d) => d.groupid === solo), { groupid: solo });
});

/** Polls cond() until true (at most 4 s); fails with what(). */
async function until(cond, what) {
  const deadline = Date.now() + 4000;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`expected ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
