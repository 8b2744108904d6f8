// Catching up after a reconnect (DESIGN.md section 12), in Chromium with the plugin's store. The
// broker queues at most 2 messages for a session that is away, so what a page shows after its
// connection comes back is what it fetched through chat/history, and the messages it caught up
// count as unread in conversations it does not have open.
//
//   CHAT_PLUGIN=$PWD/build/mosquitto_chat.so node --test tests/browser/catchup.test.js

import { test, before, after } from 'node:test';
import {
  startChat, userPage, openConversation, showsMessages, until, seesRow, connected, clickRow,
  assertNoProblems,
} from './helpers.js';
import { loggedInSocket, closeAll } from '../bridge/helpers.js';

let chat;
const sockets = [];

before(async () => {
  // startBroker gives the broker a database in its folder.
  chat = await startChat({
    proxy: true,
    brokerOptions: { extraConfig: 'max_queued_messages 2' },
  });
});

after(async () => {
  await closeAll(...sockets);
  await chat.close();
});

/** A user on a bridge socket straight to the broker: the proxy's cut does not reach it. */
async function socketUser(name) {
  const p = await loggedInSocket(chat.broker.wsUrl, name);
  sockets.push(p);
  return p;
}

async function sendAll(from, room, texts) {
  for (const message of texts) {
    const cid = `c-${from.username}-${message}`;
    from.socket.emit('message', { receiver: room, message, cid });
    await from.next('sent', (s) => s.cid === cid);
  }
}

test('messages sent while the page was offline appear after the reconnect, and count as unread', async () => {
  const bob = await userPage(chat, 'bob');
  const bobId = await bob.evaluate(() => window.chat.store.state.me.userid);
  const alice = await socketUser('alice');
  const carol = await socketUser('carol');
  await sendAll(alice, bobId, ['before the drop']);
  await openConversation(bob, 'people', 'alice');
  await showsMessages(bob, ['before the drop']);

  chat.net.cut();
  await until(bob, 'the connection state "Reconnecting…"',
    () => document.getElementById('connection').dataset.state === 'reconnecting');
  const offline = Array.from({ length: 6 }, (_, i) => `offline ${i + 1}`);
  await sendAll(alice, bobId, offline);
  await sendAll(carol, bobId, ['carol 1', 'carol 2', 'carol 3']);
  chat.net.restore();
  await connected(bob);

  await showsMessages(bob, ['before the drop', ...offline]);
  await seesRow(bob, 'people', 'carol', 'unread 3');
  await seesRow(bob, 'people', 'alice', 'no unread');
  await clickRow(bob, 'people', 'carol');
  await showsMessages(bob, ['carol 1', 'carol 2', 'carol 3']);
  await seesRow(bob, 'people', 'carol', 'no unread');
  for (const page of [bob]) page.problems = page.problems.filter((p) => !/WebSocket|ERR_CONNECTION|net::/.test(p));
  assertNoProblems([bob]);
});

test('a reloaded page catches up from the newest message it held', async () => {
  const erin = await userPage(chat, 'erin');
  const erinId = await erin.evaluate(() => window.chat.store.state.me.userid);
  const frank = await socketUser('frank');
  await sendAll(frank, erinId, ['first']);
  await openConversation(erin, 'people', 'frank');
  await showsMessages(erin, ['first']);
  await erin.goto('about:blank');
  const away = Array.from({ length: 5 }, (_, i) => `while away ${i + 1}`);
  await sendAll(frank, erinId, away);
  await erin.goto(chat.url);
  await connected(erin);
  await showsMessages(erin, ['first', ...away]);
  assertNoProblems([erin]);
});
