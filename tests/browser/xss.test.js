// Names and messages are text, never HTML: markup typed by one user shows literally for the
// others and runs nothing.
//
//   CHAT_PLUGIN=$PWD/build/mosquitto_chat.so node --test tests/browser/xss.test.js

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startChat, userPage, seesRow, openConversation, send, showsMessage, showsMessages, screenshot,
  assertNoProblems, until,
} from './helpers.js';

let chat;

before(async () => {
  chat = await startChat();
});

after(async () => {
  await chat.close();
});

test('markup in a message or a username shows literally and runs nothing', async () => {
  const evilName = '<img src=x onerror=alert("name")>';
  const texts = [
    '<img src=x onerror=alert(1)>',
    '<script>alert(2)</script>',
    '<b>bold?</b> &amp; "quotes" \'single\'',
    'line one\nline two',
  ];
  const alice = await userPage(chat, 'alice');
  const eve = await userPage(chat, evilName);
  await seesRow(alice, 'people', evilName, 'online');
  await openConversation(eve, 'people', 'alice');
  for (const text of texts) await send(eve, text);
  await openConversation(alice, 'people', evilName);
  for (const text of texts) await showsMessage(alice, evilName, text);
  await showsMessages(eve, texts);
  await screenshot(alice, 'desktop-xss');

  // Alice writes the same back into a group named after its members.
  await alice.click('#new-group');
  await alice.locator('#people li .item').first().click();
  await alice.click('#create-group');
  await until(alice, 'the new group open', (n) => document.getElementById('conv-title').textContent === `${n}, you`, evilName);
  await send(alice, '<img src=x onerror=alert(3)>');
  await seesRow(eve, 'groups', 'alice, you', 'member');
  await openConversation(eve, 'groups', 'alice, you');
  await showsMessage(eve, 'alice', '<img src=x onerror=alert(3)>');

  for (const page of [alice, eve]) {
    const images = await page.locator('#app img, #app script, #app b').count();
    assert.equal(images, 0, `${page.label}: markup from the network became elements`);
  }
  assertNoProblems([alice, eve]);
});
