// Who the bridge connects as: MQTT credentials from socket.io-client's `auth` option, a refused
// connection reported once (no reconnecting with the same bad credentials), random client ids,
// and a takeover loop between two clients with one client id recognised and stopped.
//
//   CHAT_PLUGIN=$PWD/build/mosquitto_chat.so node --test tests/bridge/identity.test.js

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startBroker } from '../lib/broker.js';
import { uniqueId } from '../lib/client.js';
import { openSocket, closeAll, startProxy, MemoryStorage, Probe } from './helpers.js';
import { io } from '../../bridge/index.js';

let open;        // a broker that lets anyone in
let closed;      // allow_anonymous false, a password file with alice:secret, names bound
let secrets;
const sockets = [];
const proxies = [];

before(async () => {
  secrets = mkdtempSync(path.join(os.tmpdir(), 'chat-passwords-'));
  const passwords = path.join(secrets, 'passwords');
  execFileSync('mosquitto_passwd', ['-b', '-c', passwords, 'alice', 'secret']);
  open = await startBroker({ websockets: true });
  closed = await startBroker({
    websockets: true,
    options: { bind_mqtt_username: 'true' },
    // The later allow_anonymous wins over the harness's own line.
    extraConfig: `allow_anonymous false\npassword_file ${passwords}`,
  });
});

after(async () => {
  await closeAll(...sockets);
  await Promise.all(proxies.map((p) => p.close()));
  for (const broker of [open, closed]) {
    await broker.stop();
    broker.cleanup();
  }
  rmSync(secrets, { recursive: true, force: true });
});

function probe(url, opts, name) {
  const p = new Probe(io(url, { reconnectionDelay: 200, ...opts }), name);
  sockets.push(p);
  return p;
}

/** Resolves after ms, failing if `probe` meanwhile emits any of `events`. */
async function quiet(p, events, ms) {
  await new Promise((resolve) => setTimeout(resolve, ms));
  const got = p.received.filter((e) => events.includes(e.event));
  assert.deepEqual(got, [], `${p.name}: expected no ${events.join('/')} for ${ms} ms`);
}

function countAttempts(p) {
  const counter = { n: 0 };
  p.socket.io.on('reconnect_attempt', () => { counter.n += 1; });
  return counter;
}

for (const protocolVersion of [5, 4]) {
  const proto = protocolVersion === 5 ? 'MQTT 5' : 'MQTT 3.1.1';

  test(`${proto}: auth {username, password} connects as that MQTT user`, async () => {
    const alice = probe(closed.wsUrl, { protocolVersion, auth: { username: 'alice', password: 'secret' } }, 'alice');
    await alice.next('connect', () => true, 8000);
    alice.socket.emit('login', { username: 'alice' });
    const res = await alice.next('login-response');
    assert.equal(res.result, 'success', `bind_mqtt_username accepts alice: ${JSON.stringify(res)}`);
    alice.socket.emit('logout');
    await closeAll(alice);
  });

  test(`${proto}: a wrong password is one connect_error 'not_authorized', then no retrying; new auth connects`, async () => {
    const p = probe(closed.wsUrl, { protocolVersion, auth: { username: 'alice', password: 'wrong' } }, 'wrong');
    const attempts = countAttempts(p);
    const err = await p.next('connect_error', () => true, 8000);
    assert.ok(err instanceof Error);
    assert.match(err.message, /not authorized/);
    assert.match(err.message, /"alice"/, 'the message names the username that was refused');
    assert.equal(err.data.code, 'not_authorized');
    assert.equal(err.data.anonymous, false);
    assert.equal(err.data.reasonCode, protocolVersion === 5 ? 0x87 : 5);
    assert.equal(p.socket.connected, false);
    // reconnectionDelay is 200 ms: a retry with the same password would show within 1.5 s.
    await quiet(p, ['connect_error', 'connect'], 1500);
    assert.equal(attempts.n, 0, 'no reconnection attempts with the refused credentials');

    p.socket.auth = { username: 'alice', password: 'secret' };
    p.socket.connect();
    await p.next('connect', () => true, 8000);
    assert.equal(p.socket.mqtt.options.username, 'alice');
    await closeAll(p);
  });

  test(`${proto}: a broker that refuses anonymous connections says so in connect_error`, async () => {
    const p = probe(closed.wsUrl, { protocolVersion }, 'anonymous');
    const err = await p.next('connect_error', () => true, 8000);
    assert.equal(err.data.code, 'not_authorized');
    assert.equal(err.data.anonymous, true);
    assert.match(err.message, /without a username/);
    await quiet(p, ['connect_error', 'connect'], 1000);
    await closeAll(p);
  });

  test(`${proto}: two bridges with one client id stop taking the session from each other`, async () => {
    const clientId = uniqueId('twin');
    const first = probe(open.wsUrl, { protocolVersion, clientId }, 'first');
    await first.next('connect', () => true, 8000);
    const second = probe(open.wsUrl, { protocolVersion, clientId }, 'second');
    const started = Date.now();
    // Each round takes about one reconnection delay (200 ms) per side.
    const [loser, err] = await Promise.any([first, second].map(
      (p) => p.next('connect_error', (e) => e.data?.code === 'session_taken_over', 10000)
        .then((e) => [p, e])));
    const winner = loser === first ? second : first;
    assert.ok(Date.now() - started < 10000);
    assert.match(err.message, /same client id/);
    assert.equal(loser.socket.connected, false);
    assert.equal(loser.socket.mqtt, null, 'the loser stopped its MQTT client');

    // The loop is over: the winner stays connected, and nobody reconnects any more.
    for (const p of [winner, loser]) {
      p.take('connect');
      p.take('disconnect');
    }
    if (!winner.socket.connected) await winner.next('connect', () => true, 4000);
    await Promise.all([
      quiet(winner, ['disconnect', 'connect_error', 'connect'], 2000),
      quiet(loser, ['connect', 'connect_error'], 2000),
    ]);
    assert.equal(winner.socket.connected, true);
    await closeAll(first, second);
  });
}

test('the connect_error of a takeover loop says another client uses the same client id', async () => {
  const clientId = uniqueId('twin');
  const a = probe(open.wsUrl, { clientId }, 'a');
  const b = probe(open.wsUrl, { clientId }, 'b');
  const err = await Promise.any([a, b].map(
    (p) => p.next('connect_error', (e) => e.data?.code === 'session_taken_over', 10000)));
  assert.match(err.message, new RegExp(`another client uses the same client id "${clientId}"`));
  assert.equal(err.data.clientId, clientId);
  await closeAll(a, b);
});

test('connections dropped by the network, young, in a row are not a takeover: the bridge keeps reconnecting', async () => {
  const net = await startProxy(open.wsPort);
  proxies.push(net);
  const p = await openSocket(net.url, {}, 'flaky');
  sockets.push(p);
  for (let i = 0; i < 4; i++) {
    net.cut();
    await p.next('disconnect', () => true, 4000);
    // An attempt fails while the cable is out: a network problem, not a second client.
    await p.next('connect_error', () => true, 4000);
    net.restore();
    await p.next('connect', () => true, 8000);
  }
  assert.deepEqual(p.take('connect_error').filter((e) => e.data?.code === 'session_taken_over'), []);
  assert.equal(p.socket.connected, true);
});

test('a client id of its own is web- and 128 random bits, kept in the storage given', () => {
  const storage = new MemoryStorage();
  const one = io('ws://127.0.0.1:1', { autoConnect: false, storage });
  const again = io('ws://127.0.0.1:1', { autoConnect: false, storage });
  const other = io('ws://127.0.0.1:1', { autoConnect: false, storage: new MemoryStorage() });
  assert.match(one.id, /^web-[0-9a-f]{32}$/);
  assert.equal(again.id, one.id, 'the same tab storage gives the same id');
  assert.notEqual(other.id, one.id);
});
