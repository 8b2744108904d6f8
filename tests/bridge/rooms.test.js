// The bridge on room topics (DESIGN.md section 11): it subscribes chat/room/<gid> for every group
// of its user, takes group messages from there (its own come back as 'sent'), merges them with
// inbox deliveries by id, and drops the subscription when the user leaves.
//
//   CHAT_PLUGIN=$PWD/build/mosquitto_chat.so node --test tests/bridge/rooms.test.js

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker } from '../lib/broker.js';
import { uniqueId } from '../lib/client.js';
import { openSocket, loggedInSocket, closeAll } from './helpers.js';

let broker;
const open = [];

before(async () => {
  broker = await startBroker({ websockets: true });
});

after(async () => {
  await closeAll(...open);
  await broker.stop();
  broker.cleanup();
});

async function user(prefix) {
  const p = await loggedInSocket(broker.wsUrl, uniqueId(prefix));
  open.push(p);
  // Which topic each chat message came on.
  p.topics = [];
  p.socket.mqtt.on('message', (topic, payload) => {
    if (/^chat\/(room\/|inbox\/[^/]+\/message$)/.test(topic)) {
      p.topics.push([topic, JSON.parse(payload.toString()).message]);
    }
  });
  return p;
}

async function until(cond, what) {
  const deadline = Date.now() + 4000;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`expected ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function holdsRoom(p, gid, wanted) {
  return until(() => p.socket.followedTopics.includes(`chat/room/${gid}`) === wanted,
    () => `${p.name} ${wanted ? 'holds' : 'no longer holds'} chat/room/${gid} (granted by the broker); `
      + `it holds ${JSON.stringify(p.socket.followedTopics)}`);
}

test('group messages come on chat/room/<gid>; the sender\'s own copy is its \'sent\'; leaving drops the topic', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  alice.socket.emit('create_group', { member: { [bob.userid]: bob.username } });
  const gid = (await alice.next('new_group')).groupid;
  await bob.next('new_group', (g) => g.groupid === gid);
  await holdsRoom(alice, gid, true);
  await holdsRoom(bob, gid, true);

  alice.socket.emit('message', { receiver: gid, message: 'over the room' });
  const m = await bob.message('over the room');
  assert.deepEqual(bob.topics.filter(([, t]) => t === 'over the room'), [[`chat/room/${gid}`, 'over the room']],
    'bob got the message once, on the room topic');
  const sent = await alice.next('sent', (s) => s.cid === m.cid);
  assert.equal(sent.id, m.id);
  assert.deepEqual(alice.take('message'), [], 'alice\'s own copy is not a message event');

  bob.socket.emit('leave_group', gid);
  await holdsRoom(bob, gid, false);
  alice.socket.emit('message', { receiver: gid, message: 'after bob left' });
  await alice.next('sent', () => true);
  assert.deepEqual(bob.take('message'), []);
});

test('switching between room topic and inbox mid-stream loses and doubles nothing', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  alice.socket.emit('create_group', { member: { [bob.userid]: bob.username } });
  const gid = (await alice.next('new_group')).groupid;
  await holdsRoom(bob, gid, true);
  const texts = Array.from({ length: 40 }, (_, i) => `stream ${i}`);
  const client = bob.socket.mqtt;
  for (const [i, text] of texts.entries()) {
    alice.socket.emit('message', { receiver: gid, message: text });
    if (i === 10) client.unsubscribe(`chat/room/${gid}`);
    if (i === 25) client.subscribe(`chat/room/${gid}`, { qos: 1 });
  }
  const got = [];
  for (let i = 0; i < texts.length; i++) got.push((await bob.next('message')).message);
  assert.deepEqual(got, texts, 'every message once, in order');
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(bob.take('message'), [], 'no message twice');

  // Where the copies come from depends on how the stream and the (un)subscribes interleaved;
  // once the broker has acknowledged each switch it is certain.
  const topicOf = async (text) => {
    await bob.message(text);
    const hit = bob.topics.find(([, m]) => m === text);
    return hit ? hit[0] : null;
  };
  await new Promise((resolve) => client.unsubscribe(`chat/room/${gid}`, resolve));
  alice.socket.emit('message', { receiver: gid, message: 'while unsubscribed' });
  assert.match(await topicOf('while unsubscribed') ?? '', /^chat\/inbox\//,
    'without the room subscription the message comes on the inbox');
  await new Promise((resolve) => client.subscribe(`chat/room/${gid}`, { qos: 1 }, resolve));
  alice.socket.emit('message', { receiver: gid, message: 'subscribed again' });
  assert.equal(await topicOf('subscribed again'), `chat/room/${gid}`,
    'with it again, on the room topic');
});

test('a second session of a user follows the groups the user is already in', async () => {
  const alice = await user('alice');
  const username = uniqueId('bob');
  const bob = await openSocket(broker.wsUrl, {}, username);
  open.push(bob);
  bob.socket.emit('login', { username });
  const first = await bob.next('login-response');
  alice.socket.emit('create_group', { member: { [first.userid]: username } });
  const gid = (await alice.next('new_group')).groupid;
  await bob.next('new_group', (g) => g.groupid === gid);

  // Another session of bob's (anonymous mode: with the token) learns the group from chat/contacts.
  const again = await openSocket(broker.wsUrl, {}, `${username} (second session)`);
  open.push(again);
  again.socket.emit('login', { username, token: first.token });
  assert.equal((await again.next('login-response')).result, 'success');
  await holdsRoom(again, gid, true);
  alice.socket.emit('message', { receiver: gid, message: 'to both sessions' });
  await again.message('to both sessions');
  await bob.message('to both sessions');

  // Logging out of one session drops its room topic; the user stays in the group.
  again.socket.emit('logout');
  await holdsRoom(again, gid, false);
  await holdsRoom(bob, gid, true);
});
