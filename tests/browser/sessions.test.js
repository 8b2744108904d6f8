// One user, many sessions (DESIGN §9, §12), in Chromium on an anonymous broker: the login that
// creates a user returns a token that the page keeps in localStorage, so a second tab of the
// same browser, or the chat opened again after its tab was closed, joins the same user; every
// tab shows the whole conversation; logging out ends only one tab's session.
//
//   CHAT_PLUGIN=$PWD/build/mosquitto_chat.so node --test tests/browser/sessions.test.js

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startChat, openPage, openTab, login, userPage, openConversation, send, showsMessages,
  seesRow, until, connected, screenshot, assertNoProblems,
} from './helpers.js';

let chat;

before(async () => {
  chat = await startChat();
});

after(async () => {
  await chat.close();
});

function me(page) {
  return page.evaluate(() => window.chat.store.state.me);
}

function loggedInAs(page, username) {
  return until(page, `to be logged in as ${username} by itself`,
    (name) => document.getElementById('app').dataset.view === 'chat'
      && document.getElementById('whoami').textContent === name, username);
}

test('two tabs are two sessions of one user, each showing the whole conversation', async () => {
  const first = await openPage(chat, { name: 'alice tab 1' });
  await login(first, 'alice');
  const token = await first.evaluate(() => localStorage.getItem('mosquitto-chat.token.alice'));
  assert.match(token ?? '', /^[0-9A-Za-z_-]{22,}$/,
    `the first login's token (>= 128 bits, hex or base64url) is kept in localStorage; got ${token}`);

  // A second tab of the same browser: its own client id, the same user.
  const second = await openTab(chat, first.context(), { name: 'alice tab 2' });
  await loggedInAs(second, 'alice');
  assert.deepEqual(await me(second), await me(first), 'the same userid in both tabs');
  const ids = await Promise.all([first, second].map((p) => p.evaluate(() => window.chat.socket.id)));
  assert.notEqual(ids[0], ids[1], 'two sessions, two client ids');

  const bob = await userPage(chat, 'bob');
  await seesRow(bob, 'people', 'alice', 'online');
  assert.equal(await bob.locator('#people li').count(), 1, 'bob sees one alice, not two');

  await openConversation(bob, 'people', 'alice');
  for (const tab of [first, second]) await openConversation(tab, 'people', 'bob');
  await send(bob, 'hi alice');
  await showsMessages(first, ['hi alice']);
  await showsMessages(second, ['hi alice']);
  // What one tab sends reaches bob and the user's other tab. Conversations are in the order the
  // broker accepted the messages, so the second tab writes once the first one's has arrived
  // (two tabs sending at the same instant may be accepted either way round).
  await send(first, 'from tab 1');
  await showsMessages(bob, ['hi alice', 'from tab 1']);
  await send(second, 'from tab 2');
  await showsMessages(bob, ['hi alice', 'from tab 1', 'from tab 2']);
  await showsMessages(first, ['hi alice', 'from tab 1', 'from tab 2']);
  await showsMessages(second, ['hi alice', 'from tab 1', 'from tab 2']);
  await screenshot(second, 'desktop-second-tab');

  // Logging out in one tab ends that tab's session only.
  await first.click('#logout');
  await until(first, 'the login form', () => document.getElementById('app').dataset.view === 'login');
  await send(bob, 'still there?');
  await showsMessages(second, ['hi alice', 'from tab 1', 'from tab 2', 'still there?']);
  await seesRow(bob, 'people', 'alice', 'online');
  assertNoProblems([first, second, bob]);
});

test('a closed tab opened again continues as the same user', async () => {
  const context = await chat.browser.newContext({ viewport: { width: 1100, height: 720 } });
  const tab = await openTab(chat, context, { name: 'carol' });
  await login(tab, 'carol');
  const carol = await me(tab);
  await tab.close();

  const dave = await userPage(chat, 'dave');
  // Closing the tab leaves carol's session offline, not logged out.
  await seesRow(dave, 'people', 'carol', 'offline');

  const again = await openTab(chat, context, { name: 'carol again' });
  await connected(again);
  await loggedInAs(again, 'carol');
  assert.deepEqual(await me(again), carol, 'the same user, not a new one with the same name');
  await seesRow(dave, 'people', 'carol', 'online');
  await openConversation(dave, 'people', 'carol');
  await send(dave, 'welcome back');
  await openConversation(again, 'people', 'dave');
  await showsMessages(again, ['welcome back']);
  assertNoProblems([again, dave]);
});
