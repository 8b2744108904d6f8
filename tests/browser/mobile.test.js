// The web client at a phone's width (360 px) and with the keyboard alone.
//
//   CHAT_PLUGIN=$PWD/build/mosquitto_chat.so node --test tests/browser/mobile.test.js

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startChat, openPage, userPage, login, seesRow, clickRow, openConversation, send, showsMessages,
  showsMessage, until, screenshot, assertNoProblems, describe,
} from './helpers.js';

let chat;
const PHONE = { width: 360, height: 740 };

before(async () => {
  chat = await startChat();
});

after(async () => {
  await chat.close();
});

/** Fails if the page is wider than the viewport (a horizontal scrollbar on a phone). */
async function fitsWidth(page, what) {
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= PHONE.width, `${what}: the page is ${width} px wide on a ${PHONE.width} px screen`);
}

async function visible(page, selector) {
  return page.locator(selector).isVisible();
}

test('at 360 px: one pane at a time, chatting and groups work, nothing overflows', async () => {
  const phone = await openPage(chat, { ...PHONE, name: 'phone' });
  await screenshot(phone, 'phone-login');
  await fitsWidth(phone, 'login');
  await login(phone, 'pat');
  const desk = await userPage(chat, 'quinn');
  await userPage(chat, 'robin');

  // The list fills the screen; no conversation pane beside it.
  await seesRow(phone, 'people', 'quinn', 'online');
  await seesRow(phone, 'people', 'robin', 'online');
  assert.equal(await visible(phone, '#sidebar'), true, 'the list is visible');
  assert.equal(await visible(phone, '#conversation'), false,
    `no conversation pane next to the list on a phone: ${await describe(phone)}`);
  await screenshot(phone, 'phone-list');
  await fitsWidth(phone, 'list');

  // Opening a person replaces the list with the conversation.
  await openConversation(phone, 'people', 'quinn');
  assert.equal(await visible(phone, '#sidebar'), false, 'the list gives way to the conversation');
  assert.equal(await visible(phone, '#back'), true, 'a way back to the list');
  await send(phone, 'Hello from my phone, with a long line of text that has to wrap at 360 px');
  await openConversation(desk, 'people', 'pat');
  await showsMessage(desk, 'pat', 'Hello from my phone, with a long line of text that has to wrap at 360 px');
  await send(desk, 'Got it!');
  await showsMessages(phone, ['Hello from my phone, with a long line of text that has to wrap at 360 px', 'Got it!']);
  await screenshot(phone, 'phone-conversation');
  await fitsWidth(phone, 'conversation');

  // Back to the list; a new group from two people opens at once.
  await phone.click('#back');
  await until(phone, 'the list again', () => document.getElementById('app').dataset.pane === 'list');
  assert.equal(await visible(phone, '#sidebar'), true);
  await phone.click('#new-group');
  await clickRow(phone, 'people', 'quinn');
  await clickRow(phone, 'people', 'robin');
  await screenshot(phone, 'phone-picking');
  await phone.click('#create-group');
  await until(phone, 'the new group open', () => document.getElementById('conv-title').textContent === 'quinn, robin, you');
  await send(phone, 'Group from a phone');
  await seesRow(desk, 'groups', 'pat, robin, you', 'unread 1');
  await screenshot(phone, 'phone-group');
  await fitsWidth(phone, 'group');
  assertNoProblems(chat.pages);
});

test('keyboard only: log in, open a conversation, send with Enter, new line with Shift+Enter', async () => {
  const other = await userPage(chat, 'kim');
  const page = await openPage(chat, { name: 'keys' });
  // The name field has the focus on arrival.
  await until(page, 'focus in the name field', () => document.activeElement && document.activeElement.id === 'username');
  await page.keyboard.type('lee');
  await page.keyboard.press('Enter');
  await until(page, 'logged in', () => document.getElementById('app').dataset.view === 'chat');
  page.label = 'lee';
  await seesRow(page, 'people', 'kim', 'online');

  // Tab through the page to kim's row, and open it with Enter.
  let reached = false;
  for (let i = 0; i < 30 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement?.querySelector?.('.name')?.textContent === 'kim');
  }
  assert.ok(reached, `Tab never reached kim's row: ${await describe(page)}`);
  await page.keyboard.press('Enter');
  await until(page, 'the conversation open with the cursor in the composer',
    () => document.getElementById('conv-title').textContent === 'kim' && document.activeElement.id === 'text');
  await page.keyboard.type('first line');
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('second line');
  await page.keyboard.press('Enter');
  await openConversation(other, 'people', 'lee');
  await showsMessage(other, 'lee', 'first line\nsecond line');
  assert.equal(await page.inputValue('#text'), '', 'the composer is empty after sending');
  await screenshot(page, 'desktop-keyboard');
  assertNoProblems([page, other]);
});
