// Three people chat in real Chromium through the web client served by mosquitto's http_dir:
// they see each other, exchange direct messages, create a group, a third joins, group messages
// reach exactly the members, someone leaves, someone logs out and disappears from the lists.
//
//   CHAT_PLUGIN=$PWD/build/mosquitto_chat.so node --test tests/browser/chat.test.js

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startChat, userPage, openPage, login, seesRow, noRow, clickRow, openConversation, send,
  showsMessages, showsMessage, until, screenshot, assertNoProblems,
} from './helpers.js';

let chat;

before(async () => {
  chat = await startChat();
});

after(async () => {
  await chat.close();
});

test('log in, direct messages, a group created, joined, left, and a logout', async () => {
  const alice = await userPage(chat, 'alice');
  const bob = await userPage(chat, 'bob');
  const carol = await userPage(chat, 'carol');

  // Everyone sees the others online, and not themselves.
  for (const [page, others] of [[alice, ['bob', 'carol']], [bob, ['alice', 'carol']], [carol, ['alice', 'bob']]]) {
    for (const other of others) await seesRow(page, 'people', other, 'online');
    await noRow(page, 'people', page.label);
  }

  // Direct messages, both ways; the receiver sees an unread count until it opens the chat.
  await openConversation(alice, 'people', 'bob');
  await send(alice, 'Hi Bob!');
  await showsMessages(alice, ['Hi Bob!']);
  await seesRow(bob, 'people', 'alice', 'unread 1');
  await screenshot(bob, 'desktop-unread');
  await openConversation(bob, 'people', 'alice');
  await showsMessage(bob, 'alice', 'Hi Bob!');
  await seesRow(bob, 'people', 'alice', 'no unread');
  await send(bob, 'Hello Alice, how are you?');
  await showsMessages(alice, ['Hi Bob!', 'Hello Alice, how are you?']);
  await showsMessage(alice, 'bob', 'Hello Alice, how are you?');
  await showsMessage(alice, 'You', 'Hi Bob!');
  // Times are shown with each message.
  const time = await alice.locator('#messages li time').first().getAttribute('datetime');
  assert.ok(time && !Number.isNaN(Date.parse(time)), `a message has a machine-readable time, got ${time}`);
  await screenshot(alice, 'desktop-direct');
  assert.equal(await carol.locator('#messages li').count(), 0, 'carol sees none of it');

  // Alice creates a group with bob, picked from the people list.
  await alice.click('#new-group');
  await clickRow(alice, 'people', 'bob');
  await until(alice, 'bob picked', () => document.querySelector('#people [aria-pressed="true"] .name')?.textContent === 'bob');
  await screenshot(alice, 'desktop-picking');
  await alice.click('#create-group');
  const groupName = 'alice, bob';
  // The creator sees "you" instead of her own name; the group opens for her.
  await until(alice, 'the new group open', () => document.getElementById('conv-title').textContent === 'alice, bob'
    || document.getElementById('conv-title').textContent === 'bob, you');
  const aliceTitle = await alice.textContent('#conv-title');
  assert.equal(aliceTitle, 'bob, you', `the creator's group title, got ${aliceTitle}`);
  await seesRow(bob, 'groups', 'alice, you', 'member');
  await seesRow(carol, 'groups', groupName, 'not member');

  await send(alice, 'Welcome to our group');
  await seesRow(bob, 'groups', 'alice, you', 'unread 1');
  await openConversation(bob, 'groups', 'alice, you');
  await showsMessage(bob, 'alice', 'Welcome to our group');

  // Carol joins from the sidebar; the group opens for her and she can write.
  await carol.locator(`#groups li`).filter({ hasText: groupName }).locator('.join').click();
  await until(carol, 'the joined group open', () => document.getElementById('conv-title').textContent === 'alice, bob, you'
    && !document.getElementById('composer').hidden);
  await seesRow(alice, 'groups', 'bob, carol, you', 'member');
  await send(carol, 'Thanks for having me');
  await openConversation(alice, 'groups', 'bob, carol, you');
  await showsMessage(alice, 'carol', 'Thanks for having me');
  await showsMessage(bob, 'carol', 'Thanks for having me');
  await screenshot(carol, 'desktop-group');

  // Bob leaves: the others see the group without him; his messages no longer reach him.
  await until(bob, 'bob in the group conversation', () => !document.getElementById('leave').hidden);
  await bob.click('#leave');
  await seesRow(alice, 'groups', 'carol, you', 'member');
  await seesRow(bob, 'groups', 'alice, carol', 'not member');
  await until(bob, 'the join bar instead of the composer',
    () => !document.getElementById('join-bar').hidden && document.getElementById('composer').hidden);
  await send(alice, 'Bob has left');
  await showsMessage(carol, 'alice', 'Bob has left');
  const bobTexts = await bob.locator('#messages li .text').allTextContents();
  assert.ok(!bobTexts.includes('Bob has left'), `bob still got a group message: ${JSON.stringify(bobTexts)}`);
  await screenshot(bob, 'desktop-left-group');

  // Carol logs out and disappears from the others' lists, and from the group.
  await carol.click('#logout');
  await until(carol, 'the login form', () => document.getElementById('app').dataset.view === 'login');
  await noRow(alice, 'people', 'carol');
  await noRow(bob, 'people', 'carol');
  await seesRow(alice, 'groups', 'you', 'member');
  await screenshot(alice, 'desktop-after-logout');

  // She can come back under another name in the same tab.
  await login(carol, 'carol2');
  await seesRow(alice, 'people', 'carol2', 'online');

  assertNoProblems(chat.pages);
});

test('a taken name is refused with a clear message', async () => {
  const page = await openPage(chat, { name: 'second alice' });
  await page.fill('#username', 'alice');
  await page.press('#username', 'Enter');
  await until(page, 'the login error for a taken name',
    () => /already taken/.test(document.getElementById('login-error').textContent)
      && document.getElementById('app').dataset.view === 'login');
  await screenshot(page, 'desktop-name-taken');
  // The form stays usable.
  await login(page, 'alice the second');
  assertNoProblems([page]);
});
