// History in the web client (DESIGN.md section 12), in Chromium with the plugin's store: a tab
// that holds nothing starts from the summary, loads a conversation's recent history when it is
// opened and older messages when the reader scrolls up; the user's own messages are pending
// until the plugin's `sent` gives them their id.
//
//   CHAT_PLUGIN=$PWD/build/mosquitto_chat.so node --test tests/browser/history.test.js

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startChat, userPage, openTab, openConversation, send, showsMessages, until, seesRow,
  assertNoProblems,
} from './helpers.js';
import { loggedInSocket, closeAll } from '../bridge/helpers.js';

let chat;
const sockets = [];

before(async () => {
  chat = await startChat(); // startBroker gives the broker a database in its folder
});

after(async () => {
  await closeAll(...sockets);
  await chat.close();
});

async function socketUser(name) {
  const p = await loggedInSocket(chat.broker.wsUrl, name);
  sockets.push(p);
  return p;
}

/** The texts the open conversation shows. */
function shown(page) {
  return page.evaluate(() => [...document.querySelectorAll('#messages li .text')].map((n) => n.textContent));
}

test('a new tab starts from the summary, loads a conversation when opened, and older messages on scrolling up', async () => {
  const alice = await userPage(chat, 'alice');
  const bob = await socketUser('bob');
  const aliceId = await alice.evaluate(() => window.chat.store.state.me.userid);
  const texts = Array.from({ length: 80 }, (_, i) => `m${i + 1}`);
  for (const message of texts) {
    const cid = `c-${message}`;
    bob.socket.emit('message', { receiver: aliceId, message, cid });
    await bob.next('sent', (s) => s.cid === cid);
  }
  // A second tab of alice's holds nothing: the summary tells it of the conversation with bob.
  const second = await openTab(chat, alice.context(), { name: 'alice (new tab)' });
  await until(second, 'the summary: bob\'s newest message held', (uid) => {
    const list = window.chat?.store.state.conversations[uid] || [];
    return list.length === 1 && list[0].text === 'm80';
  }, bob.userid);
  await seesRow(second, 'people', 'bob', 'no unread');

  await openConversation(second, 'people', 'bob');
  await until(second, 'the newest 50 messages, m31 to m80', () => {
    const got = [...document.querySelectorAll('#messages li .text')].map((n) => n.textContent);
    return got.length === 50 && got[0] === 'm31' && got[49] === 'm80';
  });
  // Scrolling to the top loads the rest, keeping the reader's place.
  const anchor = await second.evaluate(() => {
    const box = document.getElementById('messages');
    box.scrollTop = 0;
    box.dispatchEvent(new Event('scroll'));
    return document.querySelector('#messages li[data-key] .text').textContent;
  });
  assert.equal(anchor, 'm31');
  await showsMessages(second, texts);
  await until(second, 'the conversation marked complete', () => document.getElementById('messages').dataset.older === 'complete');
  const top = await second.evaluate(() => {
    const box = document.getElementById('messages');
    const li = [...box.children].find((n) => n.querySelector('.text').textContent === 'm31');
    return li.offsetTop - box.scrollTop;
  });
  assert.ok(top >= -5, `m31 stays in view after older messages came in above it (offset ${top}px)`);
  assert.deepEqual((await shown(second)).length, 80);
  assertNoProblems([alice, second]);
});

test('an own message is pending until the plugin\'s `sent`, then has the id the receiver sees', async () => {
  const carol = await userPage(chat, 'carol');
  const dave = await socketUser('dave');
  await openConversation(carol, 'people', 'dave');
  await send(carol, 'confirmed by the plugin');
  const got = await dave.message('confirmed by the plugin');
  await until(carol, `the message confirmed with id ${got.id}`, ([room, id]) => {
    const list = window.chat.store.state.conversations[room] || [];
    const li = document.querySelector('#messages li:last-child');
    return list.length === 1 && list[0].id === id && !list[0].pending
      && !li.classList.contains('pending') && li.querySelector('.delivery').textContent === '';
  }, [dave.userid, got.id]);
  assert.match(got.cid ?? '', /^[0-9a-f]{24}$/, `the page sent a cid: ${JSON.stringify(got)}`);
  assertNoProblems([carol]);
});
