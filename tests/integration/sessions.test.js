// Users with several sessions (README, "Identity and authentication"; docs/protocol.md §2.6):
// a person on phone and laptop is one user; joining a held name needs proof (the token of the
// first login in anonymous mode, the broker's authentication with bind_mqtt_username); with
// bind_mqtt_username every action is checked against the connection's MQTT username; wills
// are never requests. The attacks of issue 9 are tests here with the attacker's steps.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, chmodSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startBroker } from '../lib/broker.js';
import { connect, uniqueId, quietFor, watchDirectory } from '../lib/client.js';

const brokers = [];
const clients = [];
async function track(promise) {
  const c = await promise;
  clients.push(c);
  return c;
}
async function broker(opts = {}) {
  const b = await startBroker(opts);
  brokers.push(b);
  return b;
}
after(async () => {
  await Promise.all(clients.map((c) => c.end(true)));
  for (const b of brokers) { await b.stop(); b.cleanup(); }
});

/** A connected client with its inbox subscribed; `opts` as for connect(). */
async function device(b, opts = {}) {
  const c = await track(connect(b, opts));
  await c.subscribeInbox(1);
  return c;
}

/** Logs `c` in with `payload` and returns the login-response. */
async function login(c, payload) {
  await c.publish('chat/login', payload);
  return (await c.next(c.inbox('login-response'))).json;
}

describe('anonymous mode: the token of the first login proves the user', () => {
  let b;
  before(async () => { b = await broker(); });

  test('the first login returns a 128-bit token; another client id joins the user only with it', async () => {
    const name = uniqueId('alice');
    const phone = await device(b);
    const first = await login(phone, { username: name });
    assert.equal(first.result, 'success');
    assert.match(first.token, /^[0-9a-f]{32}$/, `a token of 32 hex digits: ${JSON.stringify(first)}`);

    const mallory = await device(b);
    const guess = await login(mallory, { username: name });
    assert.equal(guess.result, 'username_taken', 'no token: username_taken');
    const wrong = await login(mallory, { username: name, token: '0'.repeat(32) });
    assert.equal(wrong.result, 'username_taken', 'a wrong token: username_taken');
    const typed = await login(mallory, { username: name, token: 5 });
    assert.equal(typed.result, 'username_taken', 'a token that is no string: username_taken');

    const laptop = await device(b);
    const second = await login(laptop, { username: name, token: first.token });
    assert.equal(second.result, 'success', JSON.stringify(second));
    assert.equal(second.userid, first.userid, 'the same user id on both devices');
    assert.equal(second.token, undefined, 'a token is given only when the user is created');
    assert.doesNotMatch(b.log(), new RegExp(first.token), 'the token is never logged');
  });

  test('both devices receive every message to the user and every message it sent from the other', async () => {
    const name = uniqueId('ann');
    const phone = await device(b);
    const { token, userid } = await login(phone, { username: name });
    const laptop = await device(b);
    assert.equal((await login(laptop, { username: name, token })).result, 'success');
    const bob = await device(b);
    const bobId = (await login(bob, { username: uniqueId('bob') })).userid;

    await bob.send(userid, 'to ann');
    for (const d of [phone, laptop]) {
      const m = await d.next(d.inbox('message'), (x) => x.json?.message === 'to ann');
      assert.equal(m.json.sender, bobId);
    }
    await phone.send(bobId, 'from the phone');
    await bob.next(bob.inbox('message'), (x) => x.json?.message === 'from the phone');
    const copy = await laptop.next(laptop.inbox('message'), (x) => x.json?.message === 'from the phone');
    assert.equal(copy.json.sender, userid, 'the laptop sees what the phone sent');
    await quietFor(200);
    assert.equal(phone.drain(phone.inbox('message')).filter((m) => m.json?.message === 'from the phone').length, 0,
      'the sending device gets no copy of its own message');

    // A group: the other device of the sender gets the message too, the sending one does not.
    await bob.publish('chat/group/create', { member: { [userid]: name } });
    const g = await phone.next(phone.inbox('new_group'));
    await laptop.next(laptop.inbox('new_group'));
    await laptop.send(g.json.groupid, 'to the group');
    await bob.next(bob.inbox('message'), (x) => x.json?.message === 'to the group');
    await phone.next(phone.inbox('message'), (x) => x.json?.message === 'to the group');
  });

  test('presence follows the devices; logout ends one session, {"all": true} every one', async () => {
    const dir = await track(watchDirectory(b));
    const name = uniqueId('pia');
    const phone = await device(b);
    const { token, userid } = await login(phone, { username: name });
    const laptop = await device(b);
    await login(laptop, { username: name, token });
    await dir.until((d) => d.users[userid]?.online === true, `${name} online`);

    await phone.end(true); // a clean session with subscriptions: that session ends
    await quietFor(300);
    assert.equal(dir.users[userid]?.online, true, 'online while the laptop is');
    await laptop.publish('chat/logout', {});
    await dir.until((d) => d.users[userid] === null, `${name} gone after its last session logs out`);

    // {"all": true} ends both sessions at once; the connections stay open.
    const name2 = uniqueId('quin');
    const a = await device(b);
    const r = await login(a, { username: name2, token: undefined });
    const c = await device(b);
    await login(c, { username: name2, token: r.token });
    await a.publish('chat/logout', { all: true });
    await dir.until((d) => d.users[r.userid] === null, `${name2} gone after logout all`);
    await c.send(r.userid, 'still here?');
    await c.expectError('message', 'not_logged_in');
    await a.publish('chat/logout', { all: 'yes' });
    await a.expectError('logout', 'not_logged_in');
  });

  test('max_sessions_per_user: the session away longest makes room; all online gives limit_exceeded', async () => {
    const b2 = await broker({ options: { max_sessions_per_user: 2 } });
    const name = uniqueId('max');
    const one = await device(b2, { clean: false });
    const { token } = await login(one, { username: name });
    const two = await device(b2);
    assert.equal((await login(two, { username: name, token })).result, 'success');
    const three = await device(b2);
    const full = await login(three, { username: name, token });
    assert.equal(full.result, 'limit_exceeded', JSON.stringify(full));
    await one.end(true); // persistent: the session is away, not ended
    await quietFor(300);
    assert.equal((await login(three, { username: name, token })).result, 'success', 'the away session made room');
    const back = await device(b2, { clientId: one.clientId, clean: false });
    await back.publish('chat/msg/10', { message: 'x' });
    await back.expectError('message', 'not_logged_in');
  });
});

describe('max_sessions_per_user 1: the new session takes the place of the away one', () => {
  test('the user stays, with its id and name; nobody can take the name meanwhile', async () => {
    const b = await broker({ options: { max_sessions_per_user: 1 } });
    const name = uniqueId('solo');
    const phone = await device(b, { clean: false });
    const first = await login(phone, { username: name });
    await phone.end(true); // persistent: away, not ended
    await quietFor(300);
    const laptop = await device(b);
    const second = await login(laptop, { username: name, token: first.token });
    assert.equal(second.result, 'success', JSON.stringify(second));
    assert.equal(second.userid, first.userid);
    const mallory = await device(b);
    const taken = await login(mallory, { username: name });
    assert.equal(taken.result, 'username_taken', `the name is still held: ${JSON.stringify(taken)}`);
  });
});

describe('wills are never requests', () => {
  test('a clean client without subscriptions whose will goes to chat/login does not stay online', async () => {
    const b = await broker({ options: { reconnect_grace: 1 } });
    const dir = await track(watchDirectory(b));
    const name = uniqueId('will');
    const c = await track(connect(b, {
      will: { topic: 'chat/login', payload: JSON.stringify({ username: name }), qos: 1, retain: false },
    }));
    await c.publish('chat/login', { username: name });
    const r = await c.next(c.inbox('login-response'));
    const { userid } = r.json;
    await dir.until((d) => d.users[userid]?.online === true, 'online');
    c.client.stream.destroy(); // the connection drops: the broker publishes the will
    await dir.until((d) => d.users[userid] === null, 'logged out after the grace period, will or not', 5000);
  });

  test('a will with retain on chat/login or chat/msg/<x> is not stored as a retained message', async () => {
    const b = await broker();
    for (const topic of ['chat/login', 'chat/msg/10']) {
      const c = await track(connect(b, {
        will: { topic, payload: '{"username":"ghost","message":"boo"}', qos: 1, retain: true },
      }));
      await c.subscribeInbox(1);
      c.client.stream.destroy();
    }
    await quietFor(500);
    const late = await track(connect(b));
    await late.subscribe('#', 1);
    const got = await late.collect('chat/login', 500);
    const all = late.drain().filter((m) => m.topic === 'chat/login' || m.topic.startsWith('chat/msg/'));
    assert.deepEqual([...got, ...all].map((m) => m.topic), [], 'nothing retained on request topics');
    assert.match(b.log(), /denied retained will of chat\/login/);
  });
});

describe('bind_mqtt_username: every action is checked against the connection\'s MQTT username', () => {
  let pwDir;
  let b;
  before(async () => {
    pwDir = mkdtempSync(path.join(os.tmpdir(), 'chat-sessions-'));
    chmodSync(pwDir, 0o755);
    const file = path.join(pwDir, 'passwd');
    execFileSync('mosquitto_passwd', ['-b', '-c', file, 'alice', 'secret'], { stdio: 'ignore' });
    execFileSync('mosquitto_passwd', ['-b', file, 'mallory', 'evil'], { stdio: 'ignore' });
    execFileSync('mosquitto_passwd', ['-b', file, 'bob', 'hunter2'], { stdio: 'ignore' });
    execFileSync('mosquitto_passwd', ['-b', file, 'Alice', 'other'], { stdio: 'ignore' });
    chmodSync(file, 0o644);
    b = await broker({
      options: { bind_mqtt_username: 'true' },
      extraConfig: `allow_anonymous false\npassword_file ${file}`,
    });
  });
  after(() => pwDir && rmSync(pwDir, { recursive: true, force: true }));

  test('mallory, authenticated, takes alice\'s client id: she posts nothing as alice, reads nothing of hers, cannot log her out', async () => {
    const aliceId = uniqueId('alice-phone');
    const alice = await device(b, { clientId: aliceId, clean: false, username: 'alice', password: 'secret' });
    const r = await login(alice, { username: 'alice' });
    assert.equal(r.result, 'success');
    assert.equal(r.token, undefined, 'no token when the broker authenticates the name');
    const bob = await device(b, { username: 'bob', password: 'hunter2' });
    const bobLogin = await login(bob, { username: 'bob' });

    // The attack: connect with alice's client id, resume her persistent session.
    const mallory = await track(connect(b, { clientId: aliceId, clean: false, username: 'mallory', password: 'evil' }));
    await quietFor(200);
    await bob.send(r.userid, 'for alice only');
    await mallory.publish(`chat/msg/${bobLogin.userid}`, { message: 'I am alice' });
    await mallory.expectError('message', 'username_mismatch');
    await mallory.publish('chat/logout', { all: true });
    await mallory.expectError('logout', 'username_mismatch');
    await mallory.subscribe(`chat/inbox/${aliceId}/#`, 1);
    await quietFor(500);
    const leaked = mallory.drain().filter((m) => m.json?.message === 'for alice only' || m.topic.endsWith('/message'));
    assert.deepEqual(leaked.map((m) => m.text), [], 'nothing of alice\'s reaches mallory');
    assert.equal(bob.drain(bob.inbox('message')).filter((m) => m.json?.message === 'I am alice').length, 0);
    await mallory.end(true);

    // alice comes back with her client id and finds what was sent while mallory held it.
    const back = await device(b, { clientId: aliceId, clean: false, username: 'alice', password: 'secret' });
    const again = await login(back, { username: 'alice' });
    assert.equal(again.userid, r.userid, 'alice was not logged out');
    await bob.send(r.userid, 'welcome back');
    await back.next(back.inbox('message'), (m) => m.json?.message === 'welcome back');
  });

  test('after alice\'s session ended, another account connecting with its client id gets nothing of what was queued', async () => {
    const b2 = await broker({
      options: { bind_mqtt_username: 'true', offline_expiry: 2 },
      extraConfig: `allow_anonymous false\npassword_file ${path.join(pwDir, 'passwd')}`,
    });
    const id = uniqueId('alice-old');
    const alice = await device(b2, { clientId: id, clean: false, username: 'alice', password: 'secret' });
    const r = await login(alice, { username: 'alice' });
    await alice.end(true);
    const bob = await device(b2, { username: 'bob', password: 'hunter2' });
    await login(bob, { username: 'bob' });
    await bob.send(r.userid, 'queued secret');
    await quietFor(3500); // alice's session ends after offline_expiry
    const mallory = await track(connect(b2, { clientId: id, clean: false, username: 'mallory', password: 'evil' }));
    await quietFor(700);
    const leaked = mallory.drain().filter((m) => m.topic.startsWith('chat/inbox/'));
    assert.deepEqual(leaked.map((m) => m.text), [], 'nothing queued for alice reaches mallory');
  });

  test('a takeover by another account that outlasts reconnect_grace does not log alice out', async () => {
    const b3 = await broker({
      options: { bind_mqtt_username: 'true', reconnect_grace: 1 },
      extraConfig: `allow_anonymous false\npassword_file ${path.join(pwDir, 'passwd')}`,
    });
    const dir = await track(watchDirectory(b3, { username: 'bob', password: 'hunter2' }));
    const id = uniqueId('alice-dev');
    const alice = await device(b3, { clientId: id, username: 'alice', password: 'secret' });
    const r = await login(alice, { username: 'alice' });
    const mallory = await track(connect(b3, { clientId: id, username: 'mallory', password: 'evil' }));
    await mallory.trySubscribe('chat/#', 0);
    await quietFor(3000);
    assert.ok(dir.users[r.userid], `alice is still a user after the grace period: ${JSON.stringify(dir.users[r.userid])}`);
    await mallory.end(true);
    const back = await device(b3, { clientId: id, username: 'alice', password: 'secret' });
    const again = await login(back, { username: 'alice' });
    assert.equal(again.userid, r.userid, 'alice comes back as herself');
  });

  test('another MQTT account whose name looks like alice\'s ("Alice") cannot join chat user alice', async () => {
    const a = await device(b, { username: 'alice', password: 'secret' });
    assert.equal((await login(a, { username: 'alice' })).result, 'success');
    const look = await device(b, { username: 'Alice', password: 'other' });
    const r = await login(look, { username: 'Alice' });
    assert.equal(r.result, 'username_taken', JSON.stringify(r));
  });

  test('alice on two devices needs no token: the broker authenticated her', async () => {
    const one = await device(b, { username: 'alice', password: 'secret' });
    const r1 = await login(one, { username: 'alice' });
    const two = await device(b, { username: 'alice', password: 'secret' });
    const r2 = await login(two, { username: 'alice' });
    assert.equal(r2.result, 'success', JSON.stringify(r2));
    assert.equal(r2.userid, r1.userid);
  });
});
