// The command-line clients a user would try first (mosquitto_sub / mosquitto_pub / mosquitto_rr):
// read the directory, log in, receive a direct message queued in a persistent session, and
// find that other people's inboxes and the directory cannot be touched.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startBroker } from '../lib/broker.js';
import { loggedIn, uniqueId, watchDirectory, quietFor, retained } from '../lib/client.js';

let broker;
let dir;
const open = [];

before(async () => {
  broker = await startBroker();
  dir = await watchDirectory(broker);
});
after(async () => {
  await Promise.all(open.map((c) => c.end(true)));
  await dir?.end();
  await broker?.stop();
  broker?.cleanup();
});

/**
 * Runs a mosquitto CLI client; the promise resolves with { code, signal, stdout, stderr } (the
 * client is killed after timeoutMs). With `readyPattern`, promise.ready resolves once stdout
 * matches it.
 */
function run(cmd, args, timeoutMs = 8000, readyPattern = null) {
  let markReady;
  const ready = new Promise((resolve, reject) => { markReady = { resolve, reject }; });
  const done = new Promise((resolve) => {
    const child = spawn(cmd, ['-h', '127.0.0.1', '-p', String(broker.port), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = ''; let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      if (readyPattern && readyPattern.test(stdout)) markReady.resolve();
    });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      markReady.reject(new Error(`${cmd} exited before printing ${readyPattern}: ${stdout} ${stderr}`));
      resolve({ code, signal, stdout, stderr });
    });
  });
  ready.catch(() => {});
  done.ready = ready;
  return done;
}

test('walkthrough: read chat/contacts, log in with mosquitto_rr, get a queued direct message with mosquitto_sub', async () => {
  const erin = await loggedIn(broker, uniqueId('erin'));
  open.push(erin);
  await dir.until((d) => d.contacts?.person?.[erin.userid], 'erin in contacts');

  const contacts = await run('mosquitto_sub', ['-t', 'chat/contacts', '-C', '1', '-W', '5']);
  assert.equal(contacts.code, 0, `mosquitto_sub chat/contacts: ${contacts.stderr}`);
  assert.deepEqual(JSON.parse(contacts.stdout).person[erin.userid], { [erin.userid]: erin.username },
    `chat/contacts as printed by mosquitto_sub: ${contacts.stdout}`);

  const id = uniqueId('dave');
  const name = uniqueId('dave');
  // One connection that subscribes the response topic and then publishes the request;
  // -c makes the session persistent (MQTT 5, session expiry "never").
  const login = await run('mosquitto_rr', ['-i', id, '-c', '-q', '1', '-t', 'chat/login',
    '-e', `chat/inbox/${id}/login-response`, '-m', JSON.stringify({ username: name }), '-W', '5']);
  assert.equal(login.code, 0, `mosquitto_rr login: code ${login.code} ${login.stderr}`);
  const res = JSON.parse(login.stdout);
  assert.match(res.token ?? '', /^[0-9a-f]{32}$/, `a new user's login-response carries its token: ${login.stdout}`);
  assert.deepEqual(res, { result: 'success', userid: res.userid, username: name, token: res.token }, `login-response: ${login.stdout}`);
  await dir.until((d) => d.users[res.userid]?.online === false, `${name} offline (persistent session) after mosquitto_rr exits`);

  await erin.send(res.userid, 'hello dave');
  const inbox = await run('mosquitto_sub', ['-i', id, '-c', '-q', '1', '-V', '5', '-t', `chat/inbox/${id}/#`, '-C', '1', '-v', '-W', '5']);
  assert.equal(inbox.code, 0, `mosquitto_sub inbox: code ${inbox.code} ${inbox.stderr}`);
  const [topic, ...rest] = inbox.stdout.trim().split(' ');
  assert.equal(topic, `chat/inbox/${id}/message`, `queued delivery: ${inbox.stdout}`);
  const msg = JSON.parse(rest.join(' '));
  assert.equal(msg.message, 'hello dave');
  assert.equal(msg.sender, erin.userid);

  // A second mosquitto_rr login from the same client id resumes the same userid.
  const again = await run('mosquitto_rr', ['-i', id, '-c', '-q', '1', '-t', 'chat/login',
    '-e', `chat/inbox/${id}/login-response`, '-m', JSON.stringify({ username: name }), '-W', '5']);
  const { token, ...resumed } = res; // a resumed session is no new user: no token again
  assert.ok(token);
  assert.deepEqual(JSON.parse(again.stdout), resumed, `second login: ${again.stdout} ${again.stderr}`);
});

test("mosquitto_sub cannot subscribe someone else's inbox; a # subscriber sees no requests and no inboxes", async () => {
  const a = await loggedIn(broker, uniqueId('cla'));
  const b = await loggedIn(broker, uniqueId('clb'));
  open.push(a, b);
  const denied = await run('mosquitto_sub', ['-i', uniqueId('eve'), '-t', `chat/inbox/${a.clientId}/#`, '-W', '2', '-v']);
  assert.equal(denied.stdout, '', `nothing may be printed: ${denied.stdout}`);
  assert.match(denied.stderr, /denied/i, `mosquitto_sub should report the refused subscription: code ${denied.code} ${denied.stderr}`);

  const spyRun = run('mosquitto_sub', ['-i', uniqueId('spy'), '-t', '#', '-v', '-W', '3'], 6000,
    /^chat\/contacts /m); // resolves `ready` once the retained directory is printed: subscribed
  await spyRun.ready;
  await a.send(b.userid, 'private');
  await b.next(b.inbox('message'), (m) => m.json?.message === 'private');
  await a.publish('chat/login', { username: a.username });
  await a.next(a.inbox('login-response'));
  const spy = await spyRun;
  const topics = spy.stdout.split('\n').filter(Boolean).map((l) => l.split(' ')[0]);
  const bad = topics.filter((t) => t.startsWith('chat/') && !(t === 'chat/contacts' || /^chat\/(users|groups)\/[^/]+$/.test(t)));
  assert.deepEqual(bad, [], `a # subscriber printed requests or inboxes:\n${spy.stdout}`);
  assert.ok(topics.includes('chat/contacts'), `the directory is readable: ${spy.stdout}`);
});

test('mosquitto_pub cannot overwrite the retained chat/contacts; sensors/ topics work as usual', async () => {
  const before = (await retained(broker, 'chat/contacts')).json;
  const pub = await run('mosquitto_pub', ['-t', 'chat/contacts', '-r', '-q', '1', '-m', '{"person":{},"group":{}}']);
  assert.equal(pub.code, 0, pub.stderr);
  await quietFor(300);
  assert.deepEqual((await retained(broker, 'chat/contacts')).json, before, 'chat/contacts unchanged');
  const p2 = await run('mosquitto_pub', ['-t', 'sensors/temp', '-r', '-q', '1', '-m', '21.5']);
  assert.equal(p2.code, 0, p2.stderr);
  const s = await run('mosquitto_sub', ['-t', 'sensors/#', '-C', '1', '-v', '-W', '5']);
  assert.equal(s.stdout.trim(), 'sensors/temp 21.5');
});
