// The bridge with the plugin's store (DESIGN.md section 10): idempotent sends (`cid`, the
// 'sent' event) and history requests through emit('history', query, ack).
//
//   CHAT_PLUGIN=$PWD/build/mosquitto_chat.so node --test tests/bridge/history.test.js

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker } from '../lib/broker.js';
import { uniqueId } from '../lib/client.js';
import { loggedInSocket, closeAll, history } from './helpers.js';

let broker;
const open = [];

before(async () => {
  broker = await startBroker({ websockets: true }); // with a database in its folder
});

after(async () => {
  await closeAll(...open);
  await broker.stop();
  broker.cleanup();
});

async function user(prefix) {
  const p = await loggedInSocket(broker.wsUrl, uniqueId(prefix));
  open.push(p);
  return p;
}

/** Sends texts from `from` to `room` one after the other, each confirmed by 'sent'. */
async function sendAll(from, room, texts) {
  const ids = [];
  for (const message of texts) {
    const cid = `cid-${uniqueId('m')}`;
    from.socket.emit('message', { receiver: room, message, cid });
    ids.push((await from.next('sent', (s) => s.cid === cid)).id);
  }
  return ids;
}

function texts(reply) {
  assert.ok(Array.isArray(reply.messages), `a history reply with messages; got ${JSON.stringify(reply)}`);
  return reply.messages.map((m) => m.message);
}

test('every message carries a cid; the sender gets \'sent\' with the id the receiver sees', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  alice.socket.emit('message', { receiver: bob.userid, message: 'with a cid' });
  const m = await bob.message('with a cid');
  assert.match(m.cid ?? '', /^[0-9a-f]{24}$/, `the bridge makes a cid when the page gives none; the delivery has ${JSON.stringify(m)}`);
  const sent = await alice.next('sent', (s) => s.cid === m.cid);
  assert.deepEqual(sent, { cid: m.cid, id: m.id, ts: m.ts, receiver: bob.userid });
  assert.deepEqual(alice.take('message'), [], 'the sender does not get its own direct message');
});

test('a repeated cid is delivered once; the repeat is confirmed with the original id', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  const cid = `repeat-${uniqueId('c')}`;
  const confirmations = [];
  alice.socket.mqtt.on('message', (topic, payload) => {
    if (topic.endsWith('/sent')) confirmations.push(JSON.parse(payload.toString()));
  });
  alice.socket.emit('message', { receiver: bob.userid, message: 'once only', cid });
  alice.socket.emit('message', { receiver: bob.userid, message: 'once only', cid });
  alice.socket.emit('message', { receiver: bob.userid, message: 'after the repeat' });
  await bob.message('after the repeat');
  const first = await bob.message('once only');
  assert.deepEqual(bob.take('message'), [], 'the repeat was delivered again');
  const deadline = Date.now() + 4000;
  while (confirmations.filter((s) => s.cid === cid).length < 2 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.deepEqual(confirmations.filter((s) => s.cid === cid).map((s) => s.id), [first.id, first.id],
    `both sends of the cid are confirmed with the first's id; the plugin sent ${JSON.stringify(confirmations)}`);
  assert.equal(alice.take('sent').filter((s) => s.cid === cid).length, 1, 'the page hears \'sent\' once per cid');
});

test('history: newest, before, after, between; the ack gets the reply with its qid', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  const all = Array.from({ length: 7 }, (_, i) => `h${i}`);
  const ids = await sendAll(alice, bob.userid, all);

  const newest = await history(bob, { room: alice.userid, limit: 3 });
  assert.deepEqual(texts(newest), ['h4', 'h5', 'h6'], 'neither cursor: the newest, oldest first');
  assert.equal(newest.complete, false, 'older messages exist');
  assert.equal(newest.room, alice.userid);
  assert.match(String(newest.qid), /./, 'the reply carries the qid the bridge made');

  const older = await history(bob, { room: alice.userid, before: ids[4], limit: 3 });
  assert.deepEqual(texts(older), ['h1', 'h2', 'h3'], 'before: the newest older than the cursor');
  const oldest = await history(bob, { room: alice.userid, before: ids[1], limit: 3 });
  assert.deepEqual(texts(oldest), ['h0']);
  assert.equal(oldest.complete, true, 'nothing older than h0');

  const newer = await history(alice, { room: bob.userid, after: ids[4] });
  assert.deepEqual(texts(newer), ['h5', 'h6'], 'after: the oldest newer than the cursor');
  assert.equal(newer.complete, true);
  const between = await history(alice, { room: bob.userid, after: ids[1], before: ids[5], limit: 2 });
  assert.deepEqual(texts(between), ['h2', 'h3']);
  assert.equal(between.complete, false, 'h4 lies between the cursors too');
  for (const m of newest.messages) {
    assert.deepEqual(Object.keys(m).filter((k) => !['sender', 'receiver', 'message', 'id', 'ts', 'cid'].includes(k)), [],
      `a history message has the delivery's shape: ${JSON.stringify(m)}`);
  }
});

test('history: catch-up across rooms, and the summary of a user\'s rooms', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  const carol = await user('carol');
  const [mark] = await sendAll(bob, alice.userid, ['before the mark']);
  bob.socket.emit('create_group', { member: { [alice.userid]: alice.username } });
  const gid = (await bob.next('new_group')).groupid;
  await alice.next('new_group', (g) => g.groupid === gid);
  await sendAll(bob, gid, ['in the group']);
  await sendAll(carol, alice.userid, ['from carol']);
  await sendAll(bob, alice.userid, ['bob again']);

  const caught = await history(alice, { after: mark });
  assert.deepEqual(texts(caught), ['in the group', 'from carol', 'bob again'], 'every room, in id order');
  assert.equal(caught.room, undefined, 'a catch-up reply names no room');
  assert.equal(caught.complete, true);
  const paged = await history(alice, { after: mark, limit: 2 });
  assert.deepEqual([texts(paged), paged.complete], [['in the group', 'from carol'], false]);

  const summary = await history(alice, {});
  assert.deepEqual(summary.messages.map((m) => [m.receiver === alice.userid ? m.sender : m.receiver, m.message]),
    [[bob.userid, 'bob again'], [carol.userid, 'from carol'], [gid, 'in the group']],
    'the newest message of each room, newest first');
  const short = await history(alice, { limit: 1 });
  assert.deepEqual([texts(short), short.complete], [['bob again'], false]);
});

test('history errors reach the ack: not_a_member, unknown_room, invalid_request', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  bob.socket.emit('create_group', { member: {} });
  const gid = (await bob.next('new_group')).groupid;
  const cases = [
    [{ room: gid }, 'not_a_member'],
    [{ room: '999999990' }, 'unknown_room'],
    [{ room: bob.userid, limit: 0 }, 'invalid_request'],
    [{ room: bob.userid, before: 'not an id' }, 'invalid_request'],
  ];
  for (const [query, code] of cases) {
    const reply = await history(alice, query);
    assert.deepEqual([reply.action, reply.error], ['history', code],
      `for ${JSON.stringify(query)}: expected the error ${code}, got ${JSON.stringify(reply)}`);
    assert.equal(typeof reply.qid, 'string', 'the error carries the qid');
  }
  assert.deepEqual(alice.take('error'), [], 'an error answered through the ack is no \'error\' event');
});
