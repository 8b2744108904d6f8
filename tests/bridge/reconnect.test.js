// The bridge survives a dropped connection and a page reload without losing or repeating
// messages: a persistent session, a QoS 1 inbox and an automatic re-login.
//
//   CHAT_PLUGIN=$PWD/build/mosquitto_chat.so node --test tests/bridge/reconnect.test.js

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker } from '../lib/broker.js';
import { uniqueId } from '../lib/client.js';
import { openSocket, loggedInSocket, closeAll, startProxy, MemoryStorage, Probe } from './helpers.js';
import { io } from '../../bridge/index.js';

let broker;
const open = [];
const proxies = [];

before(async () => {
  broker = await startBroker({ websockets: true });
});

after(async () => {
  await closeAll(...open);
  await Promise.all(proxies.map((p) => p.close()));
  await broker.stop();
  broker.cleanup();
});

async function proxy() {
  const p = await startProxy(broker.wsPort);
  proxies.push(p);
  return p;
}

async function user(url, prefix, opts) {
  const p = await loggedInSocket(url, uniqueId(prefix), opts);
  open.push(p);
  return p;
}

/**
 * Waits until `probe` has received exactly `texts` as messages, in that order, and nothing
 * else: a marker message sent after them by `marker` must be the next one (the room is FIFO,
 * so a duplicate would come before it).
 */
async function expectExactly(probe, texts, markerFrom) {
  const got = [];
  for (let i = 0; i < texts.length; i++) {
    got.push((await probe.next('message', () => true, 8000)).message);
  }
  assert.deepEqual(got, texts, 'messages sent while away arrive in order');
  markerFrom.socket.emit('message', { receiver: probe.userid, message: 'marker' });
  const next = await probe.next('message');
  assert.equal(next.message, 'marker', `a duplicate arrived: ${JSON.stringify(next)}`);
}

for (const protocolVersion of [5, 4]) {
  test(`a dropped connection (MQTT ${protocolVersion === 5 ? '5' : '3.1.1'}): messages sent meanwhile arrive once, in order`, async () => {
    const net = await proxy();
    const alice = await user(net.url, 'alice', { protocolVersion });
    const bob = await user(broker.wsUrl, 'bob');
    bob.socket.emit('message', { receiver: alice.userid, message: 'before' });
    await alice.message('before');

    net.cut();
    assert.equal(await alice.next('disconnect'), 'transport close');
    assert.equal(alice.socket.connected, false);
    // The broker has noticed once the directory shows alice offline (she is not logged out).
    await bob.next('user', (u) => u.userid === alice.userid && u.online === false);

    const texts = Array.from({ length: 10 }, (_, i) => `while away ${i}`);
    for (const text of texts) bob.socket.emit('message', { receiver: alice.userid, message: text });
    // Alice writes while disconnected: buffered, sent after the reconnect and re-login.
    alice.socket.emit('message', { receiver: bob.userid, message: 'written offline' });

    net.restore();
    await alice.next('connect', () => true, 8000);
    assert.equal(await alice.next('io:reconnect') > 0, true);
    await expectExactly(alice, texts, bob);
    await bob.message('written offline');
    await bob.next('user', (u) => u.userid === alice.userid && u.online === true);

    // The automatic re-login kept the same user and the page did not hear of it.
    assert.equal(alice.socket.userid, alice.userid);
    assert.deepEqual(alice.take('login-response'), []);
    assert.deepEqual(alice.take('error'), []);
  });
}

test('a reload: a new socket in the same tab resumes the session, nothing lost or repeated', async () => {
  const net = await proxy();
  const tab = new MemoryStorage();
  const alice = await user(net.url, 'alice', { storage: tab });
  const bob = await user(broker.wsUrl, 'bob');
  bob.socket.emit('message', { receiver: alice.userid, message: 'first' });
  await alice.message('first');

  // The page goes away without a DISCONNECT packet, as a closing tab does.
  net.cut();
  await alice.next('disconnect');
  alice.socket.disconnect();
  await bob.next('user', (u) => u.userid === alice.userid && u.online === false);
  const texts = ['during reload 1', 'during reload 2', 'during reload 3'];
  for (const text of texts) bob.socket.emit('message', { receiver: alice.userid, message: text });
  net.restore();

  // The reloaded page: same storage, so the same client id; it logs in again as the seed's
  // page would.
  const socket = io(net.url, { storage: tab, reconnectionDelay: 200 });
  const again = new Probe(socket, 'alice again');
  open.push(again);
  assert.equal(socket.id, alice.socket.id, 'the client id is kept in the tab\'s storage');
  socket.emit('login', { username: alice.username });
  const res = await again.next('login-response');
  assert.deepEqual([res.result, res.userid], ['success', alice.userid], JSON.stringify(res));
  again.userid = alice.userid;
  await expectExactly(again, texts, bob);
});

test('emits made before the connection is up are sent in order once it is', async () => {
  const bob = await user(broker.wsUrl, 'bob');
  const username = uniqueId('early');
  const socket = io(broker.wsUrl, { reconnectionDelay: 200 });
  const early = new Probe(socket, username);
  open.push(early);
  socket.emit('login', { username });
  socket.emit('message', { receiver: bob.userid, message: 'early 1' });
  socket.emit('message', { receiver: bob.userid, message: 'early 2' });
  const res = await early.next('login-response');
  assert.equal(res.result, 'success', JSON.stringify(res));
  assert.equal((await bob.next('message')).message, 'early 1');
  assert.equal((await bob.next('message')).message, 'early 2');
});

test('after logout and a dropped connection the bridge does not log in by itself', async () => {
  const net = await proxy();
  const alice = await user(net.url, 'alice');
  const watcher = await openSocket(broker.wsUrl, {}, 'watcher');
  open.push(watcher);
  alice.socket.emit('logout');
  await watcher.next('user', (u) => u.userid === alice.userid && u.removed === true);
  net.cut();
  await alice.next('disconnect');
  net.restore();
  await alice.next('connect', () => true, 8000);
  alice.socket.emit('login', { username: alice.username });
  const res = await alice.next('login-response');
  assert.equal(res.result, 'success', JSON.stringify(res));
  assert.notEqual(res.userid, alice.userid, 'a logged-out user comes back as a new user');
});
