// The web client loses nothing to a reload or a dropped connection, and shows the connection
// state while it is down. The page is served through a TCP proxy whose cable the test pulls.
//
//   CHAT_PLUGIN=$PWD/build/mosquitto_chat.so node --test tests/browser/resilience.test.js

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startChat, userPage, seesRow, openConversation, send, showsMessages, until, screenshot,
  assertNoProblems, connected, showsMessage,
} from './helpers.js';
import { loggedInSocket, closeAll } from '../bridge/helpers.js';

let chat;

before(async () => {
  chat = await startChat({ proxy: true });
});

after(async () => {
  await chat.close();
});

test('a reload mid-conversation keeps the history and receives what came meanwhile, once', async () => {
  const alice = await userPage(chat, 'alice');
  const bob = await userPage(chat, 'bob');
  await openConversation(alice, 'people', 'bob');
  await openConversation(bob, 'people', 'alice');
  await send(alice, 'one');
  await showsMessages(bob, ['one']);
  await send(bob, 'two');
  await showsMessages(alice, ['one', 'two']);
  await showsMessages(bob, ['one', 'two']);

  // A plain reload while alice keeps writing.
  const reloading = bob.reload();
  await send(alice, 'three');
  await reloading;
  await connected(bob);
  await send(alice, 'four');
  await showsMessages(bob, ['one', 'two', 'three', 'four']);
  await until(bob, 'still logged in as bob', () => document.getElementById('whoami').textContent === 'bob');

  // The tab goes away for a while (alice sees bob offline), then comes back to the chat.
  await bob.goto('about:blank');
  await seesRow(alice, 'people', 'bob', 'offline');
  for (const text of ['five', 'six', 'seven']) await send(alice, text);
  await bob.goto(chat.url);
  await connected(bob);
  await showsMessages(bob, ['one', 'two', 'three', 'four', 'five', 'six', 'seven']);
  await seesRow(alice, 'people', 'bob', 'online');
  await screenshot(bob, 'desktop-after-reload');

  // And bob can answer: his session is the same user.
  await send(bob, 'back again');
  await showsMessages(alice, ['one', 'two', 'three', 'four', 'five', 'six', 'seven', 'back again']);
  assertNoProblems([alice, bob]);
});

test('a dropped connection shows "Reconnecting…" and catches up once it is back', async () => {
  const carol = await userPage(chat, 'carol');
  const dave = await userPage(chat, 'dave');
  await openConversation(carol, 'people', 'dave');
  await openConversation(dave, 'people', 'carol');
  await send(carol, 'before the drop');
  await showsMessages(dave, ['before the drop']);

  chat.net.cut();
  await until(dave, 'the connection state "Reconnecting…"',
    () => document.getElementById('connection').textContent === 'Reconnecting…');
  // Dave writes while offline: sent once the connection is back.
  await send(dave, 'written offline');
  await until(dave, 'the message offline marked "Sending…"',
    () => document.querySelector('#messages li:last-child .delivery').textContent === 'Sending…');
  await screenshot(dave, 'desktop-reconnecting');
  chat.net.restore();
  await connected(dave);
  await showsMessages(carol, ['before the drop', 'written offline']);
  await send(carol, 'after the drop');
  await showsMessages(dave, ['before the drop', 'written offline', 'after the drop']);
  await showsMessages(carol, ['before the drop', 'written offline', 'after the drop']);
  await until(dave, 'no message left "Sending…"',
    () => [...document.querySelectorAll('#messages .delivery')].every((d) => d.textContent === ''));
  // The drop errors of the pages' own connections are expected; nothing else is.
  for (const page of [carol, dave]) {
    page.problems = page.problems.filter((p) => !/WebSocket|ERR_CONNECTION|net::/.test(p));
  }
  assertNoProblems([carol, dave]);
});

test('a duplicated tab gets its own connection instead of taking over the original\'s', async () => {
  const erin = await userPage(chat, 'erin');
  const frank = await userPage(chat, 'frank');
  // A duplicated tab starts with a copy of the original's sessionStorage (its client id and
  // its conversation).
  const copy = await erin.evaluate(() => JSON.stringify(Object.entries(sessionStorage)));
  const context = erin.context();
  const twin = await context.newPage();
  twin.label = 'erin (duplicate)';
  twin.problems = [];
  await twin.addInitScript((entries) => {
    if (sessionStorage.length === 0) for (const [k, v] of JSON.parse(entries)) sessionStorage.setItem(k, v);
  }, copy);
  await twin.goto(chat.url);
  // The duplicate continues as erin, in a session of its own: the browser holds her token.
  // (The page shows erin at once, from the copied state; the bridge's userid is set only by the
  // plugin's answer.)
  const userid = await erin.evaluate(() => window.chat.socket.userid);
  await until(twin, 'the duplicate logged in as erin',
    (uid) => window.chat?.socket.userid === uid
      && document.getElementById('whoami').textContent === 'erin', userid);
  const ids = await Promise.all([erin, twin].map((p) => p.evaluate(() => window.chat.socket.id)));
  assert.notEqual(ids[0], ids[1], 'the duplicate took a client id of its own');
  // The original keeps its connection, and both tabs get the messages.
  await openConversation(frank, 'people', 'erin');
  await send(frank, 'still there?');
  await openConversation(erin, 'people', 'frank');
  await showsMessages(erin, ['still there?']);
  await openConversation(twin, 'people', 'frank');
  await showsMessages(twin, ['still there?']);
  await connected(erin);
  assertNoProblems([erin, twin, frank]);
});

test('a message that arrives during a reload shows its sender\'s name, not "user <id>"', async () => {
  const gus = await userPage(chat, 'gus');
  const gusId = await gus.evaluate(() => window.chat.store.state.me.userid);
  // Hal writes from a socket straight to the broker, while gus's page reloads.
  const hal = await loggedInSocket(chat.broker.wsUrl, 'hal');
  await seesRow(gus, 'people', 'hal', 'online');
  await openConversation(gus, 'people', 'hal');
  const reloading = gus.reload();
  hal.socket.emit('message', { receiver: gusId, message: 'during the reload' });
  await reloading;
  await connected(gus);
  await showsMessage(gus, 'hal', 'during the reload');
  // The sender is named by the directory, as it is known when shown.
  const labels = await gus.evaluate(() => [...document.querySelectorAll('#messages .sender')].map((n) => n.textContent));
  assert.deepEqual(labels, ['hal'], `sender labels: ${JSON.stringify(labels)}`);
  await closeAll(hal);
  assertNoProblems([gus]);
});
