// Real authentication (decisions.md, plugin_opt_bind_mqtt_username): mosquitto checks passwords
// from a password_file made with mosquitto_passwd; with bind_mqtt_username true a chat login
// must use the connection's MQTT username (anonymous or another name -> username_mismatch, in
// login-response and on the error inbox); with bind false any chat name is allowed.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, chmodSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startBroker } from '../lib/broker.js';
import {
  connect, uniqueId, watchDirectory, quietFor, PROTOCOLS,
} from '../lib/client.js';

let pwDir;
let passwordFile;
const brokers = [];
const clients = [];
async function track(promise) {
  const c = await promise;
  clients.push(c);
  return c;
}
async function broker(opts) {
  const b = await startBroker(opts);
  brokers.push(b);
  return b;
}

before(() => {
  pwDir = mkdtempSync(path.join(os.tmpdir(), 'chat-auth-'));
  chmodSync(pwDir, 0o755);
  passwordFile = path.join(pwDir, 'passwd');
  execFileSync('mosquitto_passwd', ['-b', '-c', passwordFile, 'alice', 'secret'], { stdio: 'ignore' });
  execFileSync('mosquitto_passwd', ['-b', passwordFile, 'bob', 'hunter2'], { stdio: 'ignore' });
  chmodSync(passwordFile, 0o644);
});
after(async () => {
  await Promise.all(clients.map((c) => c.end(true)));
  for (const b of brokers) { await b.stop(); b.cleanup(); }
  if (pwDir) rmSync(pwDir, { recursive: true, force: true });
});

const authConfig = (anonymous) => `allow_anonymous ${anonymous}\npassword_file ${passwordFile}`;

/** Connects and subscribes the inbox. */
async function inboxClient(b, opts) {
  const c = await track(connect(b, opts));
  await c.subscribeInbox();
  return c;
}

/** Resolves with the CONNACK refusal code of a connection attempt (fails if it is accepted). */
async function refusal(b, opts) {
  try {
    const c = await connect(b, opts);
    await c.end(true);
  } catch (err) {
    return err.code;
  }
  assert.fail(`the broker accepted ${JSON.stringify({ ...opts, password: opts.password && '***' })}`);
  return undefined;
}

describe('allow_anonymous false + password_file, plugin_opt_bind_mqtt_username true', () => {
  let b;
  let dir;
  before(async () => {
    b = await broker({ extraConfig: authConfig(false), options: { bind_mqtt_username: 'true' } });
    dir = await watchDirectory(b, { username: 'bob', password: 'hunter2' });
    clients.push(dir.client);
  });

  for (const proto of PROTOCOLS) {
    test(`${proto.name}: alice may log in as "alice", not as "bob" or "Alice"`, async () => {
      const c = await inboxClient(b, { protocolVersion: proto.protocolVersion, username: 'alice', password: 'secret' });
      const mark = dir.mark();
      for (const name of ['bob', 'Alice', 'alice ', uniqueId('someone')]) {
        await c.expectLoginFailure({ username: name }, 'username_mismatch');
      }
      await quietFor(300);
      assert.deepEqual(dir.changesSince(mark), [], 'a refused login changes nothing');
      const r = await c.login('alice');
      assert.equal(r.result, 'success', `alice logs in as alice: ${JSON.stringify(r)}`);
      assert.equal(r.username, 'alice');
      await dir.until((d) => d.users[r.userid]?.username === 'alice', 'alice in the directory');
      // and, logged in, still cannot switch to another name
      await c.expectLoginFailure({ username: 'bob' }, 'username_mismatch');
      await c.publish('chat/logout', {});
      await dir.until((d) => d.users[r.userid] === null, 'alice logged out');
    });
  }

  test('bob logs in as "bob"; alice and bob chat', async () => {
    const a = await inboxClient(b, { username: 'alice', password: 'secret' });
    const bo = await inboxClient(b, { protocolVersion: 5, username: 'bob', password: 'hunter2' });
    const ra = await a.login('alice');
    const rb = await bo.login('bob');
    assert.equal(ra.result, 'success');
    assert.equal(rb.result, 'success');
    await a.send(rb.userid, 'hi bob');
    const m = await bo.next(bo.inbox('message'), (x) => x.json?.message === 'hi bob');
    assert.equal(m.json.sender, ra.userid);
    // a second connection of alice (another client id) is a second session of the same user:
    // the broker authenticated her (version 2, README "Identity and authentication")
    const a2 = await inboxClient(b, { username: 'alice', password: 'secret' });
    await a2.expectLoginFailure({ username: 'bob' }, 'username_mismatch');
    const again = await a2.login('alice');
    assert.equal(again.result, 'success', JSON.stringify(again));
    assert.equal(again.userid, ra.userid, 'the same user on both connections');
    assert.equal(again.token, undefined, 'no token when the broker authenticates names');
    for (const c of [a, bo]) await c.publish('chat/logout', {});
  });

  for (const proto of PROTOCOLS) {
    test(`${proto.name}: a wrong password, an unknown user and an anonymous client are refused at CONNACK`, async () => {
      // MQTT 3.1.1: 4 bad user name or password / 5 not authorized; MQTT 5: 0x86 / 0x87.
      const codes = proto.protocolVersion === 5 ? [0x86, 0x87] : [4, 5];
      const pv = proto.protocolVersion;
      const wrong = await refusal(b, { protocolVersion: pv, username: 'alice', password: 'wrong' });
      assert.ok(codes.includes(wrong), `wrong password: CONNACK code ${wrong}`);
      const unknown = await refusal(b, { protocolVersion: pv, username: 'mallory', password: 'secret' });
      assert.ok(codes.includes(unknown), `unknown user: CONNACK code ${unknown}`);
      const anon = await refusal(b, { protocolVersion: pv });
      assert.ok(codes.includes(anon), `anonymous: CONNACK code ${anon}`);
      assert.equal(b.exited, null, 'the broker is alive');
    });
  }
});

describe('allow_anonymous true + password_file, bind_mqtt_username true', () => {
  test('an anonymous connection cannot log in to chat under any name (username_mismatch); alice still can', async () => {
    const b = await broker({ extraConfig: authConfig(true), options: { bind_mqtt_username: 'true' } });
    const anon = await inboxClient(b, {});
    for (const name of ['alice', 'anonymous', '']) {
      // an empty name is an invalid username whatever the binding
      await anon.expectLoginFailure({ username: name }, name === '' ? 'invalid_username' : 'username_mismatch');
    }
    assert.ok((await refusal(b, { username: 'alice', password: 'nope' })) > 0, 'a wrong password is still refused');
    const a = await inboxClient(b, { username: 'alice', password: 'secret' });
    assert.equal((await a.login('alice')).result, 'success');
  });
});

describe('bind_mqtt_username false (the default)', () => {
  test('an authenticated client may use any chat name', async () => {
    const b = await broker({ extraConfig: authConfig(false) });
    const a = await inboxClient(b, { username: 'alice', password: 'secret' });
    const r = await a.login('bob');
    assert.equal(r.result, 'success', `alice logs in as "bob": ${JSON.stringify(r)}`);
    assert.equal(r.username, 'bob');
    const bo = await inboxClient(b, { username: 'bob', password: 'hunter2' });
    // the chat name bob is now taken, by alice's connection
    await bo.expectLoginFailure({ username: 'bob' }, 'username_taken');
    const r2 = await bo.login('carol');
    assert.equal(r2.result, 'success', `bob logs in as "carol": ${JSON.stringify(r2)}`);
    assert.ok((await refusal(b, { username: 'bob', password: 'secret' })) > 0, 'a wrong password is refused');
  });

  test('explicit false: anonymous clients (allowed) may use any chat name', async () => {
    const b = await broker({ extraConfig: authConfig(true), options: { bind_mqtt_username: 'false' } });
    const c = await inboxClient(b, {});
    const r = await c.login('alice');
    assert.equal(r.result, 'success', `anonymous logs in as "alice": ${JSON.stringify(r)}`);
  });
});
