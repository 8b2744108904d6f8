// The web client's state module on its own, in Node (it touches no DOM): the rules the page
// relies on for rooms, unread counts, duplicates and reloads.
//
//   node --test tests/browser/state.test.js

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reduce, initialState, createStore } from '../../web/state.js';
import { people, groups, conversation } from '../../web/select.js';

function loggedIn() {
  let s = initialState();
  s = reduce(s, { type: 'login-requested', username: 'alice' });
  s = reduce(s, { type: 'login-response', response: { result: 'success', userid: '10', username: 'alice' } });
  s = reduce(s, { type: 'contact', contact: { person: { 10: { 10: 'alice' }, 20: { 20: 'bob' } }, group: { 21: { 10: 'alice', 20: 'bob' } } } });
  return s;
}

test('a direct message files under the sender, a group message under the group', () => {
  let s = loggedIn();
  s = reduce(s, { type: 'message', message: { sender: '20', receiver: '10', message: 'hi', id: '1', ts: 5 } });
  s = reduce(s, { type: 'message', message: { sender: '20', receiver: '21', message: 'all', id: '2', ts: 6 } });
  assert.deepEqual(s.conversations['20'].map((m) => [m.senderName, m.text]), [['bob', 'hi']]);
  assert.deepEqual(s.conversations['21'].map((m) => m.text), ['all']);
  assert.deepEqual(s.unread, { 20: 1, 21: 1 });
});

test('a redelivered message is shown once; the open room collects no unread count', () => {
  let s = reduce(loggedIn(), { type: 'open', room: '20' });
  const m = { sender: '20', receiver: '10', message: 'hi', id: '7', ts: 9 };
  s = reduce(s, { type: 'message', message: m });
  s = reduce(s, { type: 'message', message: { ...m } });
  assert.equal(s.conversations['20'].length, 1);
  assert.deepEqual(s.unread, {});
});

test('a message from this user\'s other tab that arrives late still shows in the order written', () => {
  let s = loggedIn();
  s = reduce(s, { type: 'sent', room: '20', text: 'from this tab', ts: 200, key: 'k' });
  s = reduce(s, { type: 'message', message: { sender: '10', receiver: '20', message: 'from the other tab', id: '7', ts: 100 } });
  assert.deepEqual(s.conversations['20'].map((e) => e.text), ['from the other tab', 'from this tab']);
});

test('people: online first, me excluded, removed users gone', () => {
  let s = loggedIn();
  s = reduce(s, { type: 'user', user: { userid: '20', username: 'bob', online: false } });
  s = reduce(s, { type: 'user', user: { userid: '30', username: 'carol', online: true } });
  assert.deepEqual(people(s).map((p) => [p.username, p.online]), [['carol', true], ['bob', false]]);
  s = reduce(s, { type: 'user', user: { userid: '20', removed: true } });
  assert.deepEqual(people(s).map((p) => p.username), ['carol']);
  assert.deepEqual(groups(s).map((g) => [g.title, g.member]), [['bob, you', true]]);
});

test('a failed login shows the reason; a failed resume returns to the login form', () => {
  let s = reduce(initialState(), { type: 'login-requested', username: 'bob' });
  s = reduce(s, { type: 'login-response', response: { result: 'username_taken' } });
  assert.equal(s.me, null);
  assert.match(s.login.error, /already taken/);
  s = reduce(loggedIn(), { type: 'message', message: { sender: '20', receiver: '10', message: 'hi', id: '1', ts: 5 } });
  s = reduce(s, { type: 'login-response', response: { result: 'username_taken' } });
  assert.equal(s.me, null);
  assert.deepEqual(s.conversations, {}, 'the next user does not see the previous one\'s messages');
  assert.match(s.login.error, /already taken/);
});

test('the store keeps the conversation over a reload; unsent messages then show as not sent', () => {
  const items = new Map();
  const storage = { getItem: (k) => items.get(k) ?? null, setItem: (k, v) => items.set(k, v), removeItem: (k) => items.delete(k) };
  const store = createStore(storage);
  store.dispatch({ type: 'login-response', response: { result: 'success', userid: '10', username: 'alice' } });
  store.dispatch({ type: 'open', room: '20' });
  store.dispatch({ type: 'sent', room: '20', text: 'acked', ts: 1, key: 'a' });
  store.dispatch({ type: 'acked', room: '20', key: 'a', ok: true });
  store.dispatch({ type: 'sent', room: '20', text: 'in flight', ts: 2, key: 'b' });
  const again = createStore(storage).state;
  assert.deepEqual(again.me, { userid: '10', username: 'alice' });
  assert.equal(again.active, '20');
  assert.deepEqual(conversation(again).messages.map((m) => [m.text, Boolean(m.pending), Boolean(m.failed)]),
    [['acked', false, false], ['in flight', false, true]]);
  createStore(storage).dispatch({ type: 'logged-out' });
  assert.equal(createStore(storage).state.me, null, 'logging out forgets the conversation');
});

test('a login that reports dropped deliveries tells the user how many were lost', () => {
  let s = loggedIn();
  s = reduce(s, { type: 'login-response', response: { result: 'success', userid: '10', username: 'alice', dropped: 3 } });
  assert.match(s.notice?.text ?? "", /3 messages were lost/, `the state should carry a notice; it is ${JSON.stringify(s.notice)}`);
});

test('the reducer is pure: the same state and action always give the same state', () => {
  const s = loggedIn();
  const actions = [
    { type: 'notice', text: 'hello' },
    { type: 'error', error: { action: 'join_group', error: 'unknown_room' } },
    { type: 'login-response', response: { result: 'success', userid: '10', username: 'alice', dropped: 2 } },
    { type: 'login-response', response: { result: 'username_taken' } },
    { type: 'message', message: { sender: '20', receiver: '10', message: 'no ts', id: '3' }, receivedAt: 42 },
    { type: 'sent', room: '20', text: 'mine', ts: 7, key: 'k' },
    { type: 'user', user: { userid: '30', username: 'carol' } },
    { type: 'logged-out' },
  ];
  for (const action of actions) {
    const once = reduce(s, action);
    const twice = reduce(s, action);
    assert.deepEqual(twice, once, `reducing ${JSON.stringify(action)} twice gave different states`);
  }
  // Ids still tell one notice from the next, because they count in the state.
  const first = reduce(s, { type: 'notice', text: 'a' });
  const second = reduce(first, { type: 'notice', text: 'a' });
  assert.notEqual(second.notice.id, first.notice.id, 'a second notice needs an id of its own');
  assert.equal(reduce(s, actions[4]).conversations['20'].at(-1).ts, 42,
    'a delivery without a ts is stamped with the time the caller gives');
});
