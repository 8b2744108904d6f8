// Who the web client is, in Chromium: on a broker that refuses anonymous connections
// (allow_anonymous false, a password file made with mosquitto_passwd, bind_mqtt_username true)
// the one name field gets a password field, a wrong password is an error to try again after, and
// the chat name is the MQTT username; on a broker that lets anyone in, no password is ever asked.
// Each tab has a client id of its own: random, kept over a reload, new in a duplicated tab.
//
//   CHAT_PLUGIN=$PWD/build/mosquitto_chat.so node --test tests/browser/auth.test.js

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  startChat, openPage, openTab, login, until, connected, screenshot, assertNoProblems,
} from './helpers.js';

let secured;     // allow_anonymous false, alice:secret
let open;        // the default: anyone may connect
let secrets;

before(async () => {
  secrets = mkdtempSync(path.join(os.tmpdir(), 'chat-passwords-'));
  const passwords = path.join(secrets, 'passwords');
  execFileSync('mosquitto_passwd', ['-b', '-c', passwords, 'alice', 'secret']);
  secured = await startChat({
    brokerOptions: {
      options: { bind_mqtt_username: 'true' },
      // The later allow_anonymous wins over the harness's own line.
      extraConfig: `allow_anonymous false\npassword_file ${passwords}`,
    },
  });
  open = await startChat();
});

after(async () => {
  await secured.close();
  await open.close();
  rmSync(secrets, { recursive: true, force: true });
});

function asksPassword(page) {
  return until(page, 'the login form asking for a password',
    () => document.getElementById('app').dataset.view === 'login'
      && !document.getElementById('password-row').hidden);
}

/** Types name and password into the form and submits it. */
async function submit(page, username, password) {
  await page.fill('#username', username);
  await page.fill('#password', password);
  await page.press('#password', 'Enter');
}

/** The refused connections are the point here, not page problems. */
function withoutRefusals(page) {
  page.problems = page.problems.filter((p) => !/WebSocket|net::|not authori[sz]ed/i.test(p));
  return page;
}

test('a broker that wants passwords: wrong password, an error; right password, logged in as the MQTT user', async () => {
  const page = await openPage(secured, { name: 'alice', connect: false });
  await asksPassword(page);
  assert.equal(await page.locator('#login-error').isVisible(), false,
    'asking for a password is no error');
  await screenshot(page, 'desktop-password');

  await submit(page, 'alice', 'wrong');
  await until(page, 'the error for a wrong password',
    () => /Wrong name or password/.test(document.getElementById('login-error').textContent)
      && !document.getElementById('login-error').hidden
      && !document.getElementById('login-button').disabled);
  assert.equal(await page.evaluate(() => document.getElementById('app').dataset.view), 'login');
  assert.equal(await page.inputValue('#password'), '', 'the refused password is not kept');
  assert.equal(await page.inputValue('#username'), 'alice', 'the name stays for the next try');

  await page.fill('#password', 'secret');
  await page.press('#password', 'Enter');
  await until(page, 'to be logged in as alice', () => document.getElementById('app').dataset.view === 'chat'
    && document.getElementById('whoami').textContent === 'alice');
  await connected(page);
  const mqttUser = await page.evaluate(() => window.chat.socket.mqtt.options.username);
  assert.equal(mqttUser, 'alice', 'the chat name is the MQTT username');
  const userid = await page.evaluate(() => window.chat.store.state.me.userid);

  // A reload asks for the password again (it is never stored), with the name filled in, and
  // continues as the same user.
  await page.reload();
  await asksPassword(page);
  assert.equal(await page.inputValue('#username'), 'alice');
  await page.fill('#password', 'secret');
  await page.press('#password', 'Enter');
  await until(page, 'to be logged in as alice again', () => document.getElementById('app').dataset.view === 'chat'
    && document.getElementById('whoami').textContent === 'alice');
  assert.equal(await page.evaluate(() => window.chat.store.state.me.userid), userid);

  // Logging out: whoever logs in next brings a password again.
  await page.click('#logout');
  await asksPassword(page);
  await submit(page, 'alice', 'wrong');
  await until(page, 'the error for a wrong password after logout',
    () => /Wrong name or password/.test(document.getElementById('login-error').textContent));
  assertNoProblems([withoutRefusals(page)]);
});

test('a broker that lets anyone in never asks for a password', async () => {
  const page = await openPage(open, { name: 'zed' });
  assert.equal(await page.locator('#password-row').isVisible(), false);
  await login(page, 'zed');
  assert.equal(await page.locator('#password-row').isVisible(), false);
  assert.equal(await page.evaluate(() => window.chat.socket.mqtt.options.username), undefined);
  await page.click('#logout');
  await until(page, 'the login form', () => document.getElementById('app').dataset.view === 'login');
  assert.equal(await page.locator('#password-row').isVisible(), false);
  assertNoProblems([page]);
});

test('each tab has a random client id of its own: kept over a reload, new in a duplicated tab', async () => {
  const page = await openPage(open, { name: 'tab' });
  const id = await page.evaluate(() => window.chat.socket.id);
  assert.match(id, /^web-[0-9a-f]{32}$/, '128 random bits');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('mosquitto-chat.clientId')), id,
    'the id lives in the tab\'s sessionStorage');
  await page.reload();
  await connected(page);
  assert.equal(await page.evaluate(() => window.chat.socket.id), id, 'a reload continues the session');

  // A duplicated tab starts with a copy of the original's sessionStorage.
  const copy = await page.evaluate(() => JSON.stringify(Object.entries(sessionStorage)));
  const twin = await page.context().newPage();
  await twin.addInitScript((entries) => {
    if (sessionStorage.length === 0) for (const [k, v] of JSON.parse(entries)) sessionStorage.setItem(k, v);
  }, copy);
  twin.label = 'duplicate';
  twin.problems = [];
  await twin.goto(open.url);
  await connected(twin);
  const twinId = await twin.evaluate(() => window.chat.socket.id);
  assert.match(twinId, /^web-[0-9a-f]{32}$/);
  assert.notEqual(twinId, id, 'the duplicate took a new id');
  assert.equal(await twin.evaluate(() => sessionStorage.getItem('mosquitto-chat.clientId')), twinId);
  // And the original was not disturbed.
  assert.equal(await page.evaluate(() => window.chat.socket.connected), true);
  // A second tab opened the ordinary way has its own id as well.
  const other = await openTab(open, page.context(), { name: 'other tab' });
  assert.notEqual(await other.evaluate(() => window.chat.socket.id), id);
  assertNoProblems([page, twin, other]);
});
