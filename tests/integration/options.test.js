// Plugin options (decisions.md): max_message_bytes takes effect; every option is validated at
// start-up, and a bad or unknown one makes mosquitto refuse to start with a log line naming it;
// the start-up line reports every option's effective value (DESIGN §8).

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker } from '../lib/broker.js';
import { connect, loggedIn, uniqueId, quietFor } from '../lib/client.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

test('plugin_opt_max_message_bytes 100: 100 bytes accepted, 101 refused (message_too_large), counted in UTF-8 bytes', async () => {
  const b = await startBroker({ options: { max_message_bytes: 100 } });
  const cs = [];
  try {
    const a = await loggedIn(b, uniqueId('a')); cs.push(a);
    const r = await loggedIn(b, uniqueId('r'), { protocolVersion: 5 }); cs.push(r);
    const ok = [
      'x'.repeat(100),
      'é'.repeat(50), // 100 bytes
      `${'y'.repeat(97)}€`, // 100 bytes
    ];
    const tooLarge = [
      'x'.repeat(101),
      'é'.repeat(51), // 102 bytes, 51 characters
      `${'y'.repeat(98)}€`, // 101 bytes
    ];
    for (const text of ok) {
      await a.send(r.userid, text);
      const m = await r.next(r.inbox('message'), (x) => x.json?.message === text);
      assert.equal(m.json.sender, a.userid, `${Buffer.byteLength(text)} bytes must be delivered`);
    }
    for (const text of tooLarge) {
      await a.send(r.userid, text);
      await a.expectError('message', 'message_too_large');
    }
    await quietFor(300);
    const leaked = r.drain().filter((m) => tooLarge.includes(m.json?.message));
    assert.deepEqual(leaked.map((m) => m.text), [], 'oversized messages must not be delivered');
  } finally {
    await Promise.all(cs.map((c) => c.end(true)));
    await b.stop();
    b.cleanup();
  }
});

test('valid boundary values start, and the start-up log line gives every effective value', async () => {
  const b = await startBroker({
    options: { max_message_bytes: 1048576, offline_expiry: 0, reconnect_grace: 86400, outside_chat: 'defer' },
  });
  try {
    const lines = b.log().split('\n');
    const line = lines.find((l) => ['max_message_bytes', 'offline_expiry', 'reconnect_grace', 'outside_chat'].every((k) => l.includes(k)));
    assert.ok(line, `expected one start-up line naming every option; the log:\n${b.log()}`);
    for (const v of ['1048576', '86400', 'defer']) {
      assert.ok(line.includes(v), `the start-up line should show the effective value ${v}: ${line}`);
    }
    const a = await loggedIn(b, uniqueId('ok'));
    await a.end(true);
  } finally {
    await b.stop();
    b.cleanup();
  }
  const d = await startBroker({ options: { max_message_bytes: 1, reconnect_grace: 1, offline_expiry: 315360000, outside_chat: 'allow' } });
  await d.stop();
  d.cleanup();
});

test('the defaults are reported at start-up: 8192, 86400, 60, allow', async () => {
  const b = await startBroker();
  try {
    const line = b.log().split('\n').find((l) => l.includes('max_message_bytes') && l.includes('outside_chat'));
    assert.ok(line, `expected a start-up line with the options; the log:\n${b.log()}`);
    for (const [k, v] of [['max_message_bytes', '8192'], ['offline_expiry', '86400'], ['reconnect_grace', '60'], ['outside_chat', 'allow']]) {
      assert.match(line, new RegExp(`${k}\\W+${v}(?!\\d)`), `default ${k}=${v} in: ${line}`);
    }
  } finally {
    await b.stop();
    b.cleanup();
  }
});

describe('a bad option value makes mosquitto exit at start-up with a log line naming the option', () => {
  const bad = [
    ['max_message_bytes', 'abc'],
    ['max_message_bytes', '0'],
    ['max_message_bytes', '-1'],
    ['max_message_bytes', '1048577'],
    ['max_message_bytes', '12abc'],
    ['max_message_bytes', '99999999999999999999'],
    ['offline_expiry', 'soon'],
    ['offline_expiry', '-5'],
    ['offline_expiry', '315360001'],
    ['reconnect_grace', '0'],
    ['reconnect_grace', '86401'],
    ['reconnect_grace', '1.5'],
    ['outside_chat', 'maybe'],
    ['outside_chat', 'ALLOWED'],
    ['frobnicate', '1'],
  ];
  for (const [key, value] of bad) {
    test(`plugin_opt_${key} ${value}`, async () => {
      let broker;
      await assert.rejects(async () => {
        broker = await startBroker({ options: { [key]: value }, startTimeoutMs: 8000 });
      }, (err) => {
        assert.match(err.message, /exited during start-up/, `mosquitto must exit, not hang or keep running: ${err.message}`);
        const log = err.message.slice(err.message.indexOf('its log:'));
        const naming = log.split('\n').filter((l) => l.includes(key));
        assert.ok(naming.length > 0, `a log line must name ${key}; the log:\n${log}`);
        return true;
      }, `plugin_opt_${key} ${value} must be refused at start-up`);
      if (broker) { await broker.stop(); broker.cleanup(); }
    });
  }
});

describe('plugin_opt_listen_backlog', () => {
  test("raises the backlog of the broker's listening sockets once it runs", async () => {
    const broker = await startBroker({ options: { listen_backlog: 1000 } });
    try {
      const c = await connect(broker); // the broker's loop has ticked once a client is in
      await c.end();
      const { stdout } = await promisify(execFile)('ss', ['-ltnH', `sport = :${broker.port}`]);
      // For a listening socket ss shows the backlog as Send-Q: State Recv-Q Send-Q ...
      const sendQ = Number(stdout.trim().split(/\s+/)[2]);
      assert.equal(sendQ, 1000, `expected a backlog of 1000 on port ${broker.port}; ss printed: ${stdout}`);
      assert.match(broker.log(), /chat: listen backlog 1000 on \d+ listening sockets/);
    } finally {
      await broker.stop();
      broker.cleanup();
    }
  });

  test("without it mosquitto's own backlog of 100 stays", async () => {
    const broker = await startBroker();
    try {
      const c = await connect(broker);
      await c.end();
      const { stdout } = await promisify(execFile)('ss', ['-ltnH', `sport = :${broker.port}`]);
      assert.equal(Number(stdout.trim().split(/\s+/)[2]), 100, `ss printed: ${stdout}`);
    } finally {
      await broker.stop();
      broker.cleanup();
    }
  });
});
