// The bridge's version 2 surface as a page uses it, in Chromium: io('host:port'), the seed
// server's update_group and delete_group events, and room topics (DESIGN.md sections 11, 12).
//
//   CHAT_PLUGIN=$PWD/build/mosquitto_chat.so node --test tests/browser/rooms.test.js

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startChat, userPage, openConversation, clickRow, send, showsMessages, until, seesRow, noRow,
  assertNoProblems,
} from './helpers.js';

let chat;

before(async () => {
  chat = await startChat();
});

after(async () => {
  await chat.close();
});

test('io(\'host:port\') in a page connects like socket.io-client, without a scheme', async () => {
  const page = await userPage(chat, 'hostport');
  const result = await page.evaluate(async (hostPort) => {
    const { io } = await import('socket.io-client');
    const socket = io(hostPort, { clientId: `web-hostport-${Date.now()}`, storage: null });
    const connected = await new Promise((resolve) => {
      socket.once('connect', () => resolve(true));
      setTimeout(() => resolve(false), 5000);
    });
    socket.disconnect();
    return { connected };
  }, `127.0.0.1:${chat.broker.wsPort}`);
  assert.deepEqual(result, { connected: true });
  assertNoProblems([page]);
});

/** Records the page socket's events of these names in window.seen. */
function record(page, events) {
  return page.evaluate((names) => {
    window.seen = [];
    for (const name of names) window.chat.socket.on(name, (data) => window.seen.push([name, data]));
  }, events);
}

function seen(page) {
  return page.evaluate(() => window.seen);
}

/** Creates a group of `page` and the people named; resolves with its gid once it is open. */
async function createGroup(page, names, title) {
  await page.click('#new-group');
  for (const name of names) await clickRow(page, 'people', name);
  await page.click('#create-group');
  await until(page, `the new group "${title}" open`, (t) => document.getElementById('conv-title').textContent === t, title);
  return page.evaluate(() => window.chat.store.state.active);
}

test('update_group on create and join; delete_group when this page\'s leave deletes the group', async () => {
  const gina = await userPage(chat, 'gina');
  const hank = await userPage(chat, 'hank');
  const ivan = await userPage(chat, 'ivan');
  for (const page of [gina, hank, ivan]) await record(page, ['update_group', 'delete_group']);
  const gid = await createGroup(gina, ['hank'], 'hank, you');
  await until(hank, 'update_group for the new group', (g) => window.seen.some(([n, d]) => n === 'update_group' && d.groupid === g), gid);
  await clickRow(ivan, 'groups', 'gina, hank');
  await ivan.click('#join');
  await until(gina, 'update_group for ivan\'s join', (g) => window.seen.some(([n, d]) => n === 'update_group'
    && d.groupid === g && Object.keys(d.member).length === 3), gid);

  await openConversation(hank, 'groups', 'gina, ivan, you');
  await hank.click('#leave');
  await openConversation(ivan, 'groups', 'gina, you');
  await ivan.click('#leave');
  await seesRow(gina, 'groups', 'you', 'member');
  await openConversation(gina, 'groups', 'you');
  await gina.click('#leave');
  await until(gina, 'delete_group for the group her leave deleted',
    (g) => window.seen.some(([n, d]) => n === 'delete_group' && d.groupid === g), gid);
  await noRow(hank, 'groups', 'you');
  for (const page of [hank, ivan]) {
    assert.deepEqual((await seen(page)).filter(([n]) => n === 'delete_group'), [],
      `${page.label} left before the group was deleted: no delete_group`);
  }
  assertNoProblems([gina, hank, ivan]);
});

test('a page holds the room topic of each of its groups and drops it after leaving', async () => {
  const jane = await userPage(chat, 'jane');
  const kurt = await userPage(chat, 'kurt');
  const gid = await createGroup(jane, ['kurt'], 'kurt, you');
  for (const page of [jane, kurt]) {
    await until(page, `chat/room/${gid} among the socket's granted subscriptions`,
      (g) => window.chat.socket.followedTopics.includes(`chat/room/${g}`), gid);
  }
  await openConversation(kurt, 'groups', 'jane, you');
  await send(kurt, 'over the room topic');
  await showsMessages(jane, ['over the room topic']);
  await showsMessages(kurt, ['over the room topic']);
  await kurt.click('#leave');
  await until(kurt, `chat/room/${gid} dropped after leaving`,
    (g) => !window.chat.socket.followedTopics.some((t) => t.endsWith(`/${g}`)), gid);
  await until(jane, `jane still holds chat/room/${gid}`,
    (g) => window.chat.socket.followedTopics.includes(`chat/room/${g}`), gid);
  assertNoProblems([jane, kurt]);
});
