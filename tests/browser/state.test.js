// The web client's state module on its own, in Node (it touches no DOM): the rules the page
// relies on for rooms, unread counts, duplicates and reloads.
//
//   node --test tests/browser/state.test.js

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reduce, initialState, createStore } from '../../web/state.js';
import { people, groups, conversation, compareIds, newestId, oldestId } from '../../web/select.js';

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
  assert.deepEqual(s.conversations['20'].map((m) => [m.sender, m.text]), [['20', 'hi']]);
  assert.deepEqual(conversation(reduce(s, { type: 'open', room: '20' })).messages.map((m) => m.senderName), ['bob']);
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

test('a conversation is in server id order; an unconfirmed own message waits at the end', () => {
  // The flake of sessions.test.js: this tab's message went in before the other tab's, which the
  // broker had accepted first. Server ids decide, whatever the clocks and arrival order say.
  let s = reduce(loggedIn(), { type: 'open', room: '20' });
  s = reduce(s, { type: 'message', message: { sender: '20', receiver: '10', message: 'hi alice', id: '9', ts: 50 } });
  s = reduce(s, { type: 'send', room: '20', text: 'from tab 2', ts: 100, cid: 'c2' });
  const texts = (st) => st.conversations['20'].map((e) => `${e.text}${e.pending ? ' (pending)' : ''}`);
  assert.deepEqual(texts(s), ['hi alice', 'from tab 2 (pending)']);
  // The other tab's message (id 10) arrives while this one's is unconfirmed: it goes before it.
  s = reduce(s, { type: 'message', message: { sender: '10', receiver: '20', message: 'from tab 1', id: '10', ts: 300, cid: 'c1' } });
  assert.deepEqual(texts(s), ['hi alice', 'from tab 1', 'from tab 2 (pending)']);
  s = reduce(s, { type: 'acked', room: '20', cid: 'c2', ok: true });
  assert.deepEqual(texts(s), ['hi alice', 'from tab 1', 'from tab 2 (pending)'], 'the broker\'s PUBACK is no confirmation');
  s = reduce(s, { type: 'delivered', sent: { cid: 'c2', id: '11', ts: 90, receiver: '20' } });
  assert.deepEqual(texts(s), ['hi alice', 'from tab 1', 'from tab 2']);
  assert.equal(s.conversations['20'][2].id, '11');
  // And if this tab's confirmation comes first, the late message still goes where its id says.
  let t = reduce(loggedIn(), { type: 'send', room: '20', text: 'mine', ts: 1, cid: 'a' });
  t = reduce(t, { type: 'delivered', sent: { cid: 'a', id: '100', ts: 1, receiver: '20' } });
  t = reduce(t, { type: 'message', message: { sender: '10', receiver: '20', message: 'other tab', id: '99', ts: 5 } });
  assert.deepEqual(t.conversations['20'].map((e) => e.text), ['other tab', 'mine']);
});

test('ids compare as numbers of any length, without arithmetic', () => {
  assert.ok(compareIds('9', '10') < 0);
  assert.ok(compareIds('18446744073709551617', '18446744073709551616') > 0);
  assert.equal(compareIds('42', '42'), 0);
  let s = loggedIn();
  for (const id of ['100', '9', '1000', '99']) {
    s = reduce(s, { type: 'message', message: { sender: '20', receiver: '10', message: id, id, ts: 1 } });
  }
  assert.deepEqual(s.conversations['20'].map((e) => e.id), ['9', '99', '100', '1000']);
  assert.equal(newestId(s), '1000');
  assert.equal(oldestId(s, '20'), '9');
});

test('an own message\'s copy with its cid (room topic, or a message to oneself) confirms it once', () => {
  let s = reduce(loggedIn(), { type: 'send', room: '21', text: 'to the group', ts: 1, cid: 'x' });
  s = reduce(s, { type: 'message', message: { sender: '10', receiver: '21', message: 'to the group', id: '5', ts: 2, cid: 'x' } });
  assert.deepEqual(s.conversations['21'].map((e) => [e.text, e.id, Boolean(e.pending)]), [['to the group', '5', false]]);
  s = reduce(s, { type: 'delivered', sent: { cid: 'x', id: '5', ts: 2, receiver: '21' } });
  assert.equal(s.conversations['21'].length, 1, 'the later sent changes nothing');
  assert.deepEqual(s.unread, {}, 'an own message is never unread');
  const failed = reduce(reduce(loggedIn(), { type: 'send', room: '20', text: 't', ts: 1, cid: 'f' }),
    { type: 'acked', room: '20', cid: 'f', ok: false });
  assert.deepEqual(failed.conversations['20'].map((e) => [Boolean(e.pending), Boolean(e.failed)]), [[false, true]]);
});

test('caught-up messages count as unread, once; recent, older and summary history do not', () => {
  let s = loggedIn();
  const m = (id, room = '10', sender = '20') => ({ sender, receiver: room, message: `m${id}`, id, ts: Number(id) });
  s = reduce(s, { type: 'history', mode: 'catch-up', reply: { messages: [m('1'), m('2'), m('3', '21'), m('4', '21', '10')], complete: true } });
  assert.deepEqual(s.unread, { 20: 2, 21: 1 }, 'two from bob, one in the group; my own message is not unread');
  s = reduce(s, { type: 'history', mode: 'catch-up', reply: { messages: [m('2'), m('3', '21')], complete: true } });
  assert.deepEqual(s.unread, { 20: 2, 21: 1 }, 'a message caught up twice counts once');
  s = reduce(s, { type: 'open', room: '20' });
  assert.deepEqual(s.unread, { 21: 1 }, 'opening a conversation clears its count');
  s = reduce(s, { type: 'history', mode: 'summary', reply: { messages: [m('7', '21')], complete: true } });
  s = reduce(s, { type: 'history-requested', room: '21' });
  assert.equal(conversation(reduce(s, { type: 'open', room: '21' })).older, 'loading');
  s = reduce(s, { type: 'history', mode: 'recent', room: '21', reply: { room: '21', messages: [m('5', '21'), m('6', '21')], complete: false } });
  s = reduce(s, { type: 'history', mode: 'older', room: '21', reply: { room: '21', messages: [m('0', '21')], complete: true } });
  assert.deepEqual(s.unread, { 21: 1 }, 'only the catch-up counted');
  assert.deepEqual(s.conversations['21'].map((e) => e.id), ['0', '3', '4', '5', '6', '7']);
  assert.deepEqual(s.rooms['21'], { loading: false, error: null, loaded: true, complete: true });
  s = reduce(s, { type: 'history-failed', room: '20', error: 'history_unavailable' });
  assert.deepEqual([s.rooms['20'].loading, s.rooms['20'].error], [false, 'history_unavailable']);
});

test('sender names are looked up when shown, so a name learnt later shows on older messages', () => {
  // A message that arrives before the directory (during a reload) is not frozen as "user 30".
  let s = reduce(initialState(), { type: 'login-response', response: { result: 'success', userid: '10', username: 'alice' } });
  s = reduce(s, { type: 'message', message: { sender: '30', receiver: '10', message: 'early', id: '1', ts: 1 } });
  s = reduce(s, { type: 'open', room: '30' });
  assert.equal(conversation(s).messages[0].senderName, 'user 30');
  s = reduce(s, { type: 'user', user: { userid: '30', username: 'carol', online: true } });
  assert.equal(conversation(s).messages[0].senderName, 'carol');
  // Once carol has left the chat, her messages keep her name.
  s = reduce(s, { type: 'user', user: { userid: '30', removed: true } });
  assert.equal(conversation(s).messages[0].senderName, 'carol');
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
  store.dispatch({ type: 'send', room: '20', text: 'confirmed', ts: 1, cid: 'a' });
  store.dispatch({ type: 'delivered', sent: { cid: 'a', id: '4', ts: 1, receiver: '20' } });
  store.dispatch({ type: 'send', room: '20', text: 'in flight', ts: 2, cid: 'b' });
  store.dispatch({ type: 'history', mode: 'recent', room: '20', reply: { messages: [], complete: true } });
  store.dispatch({ type: 'user', user: { userid: '20', username: 'bob' } });
  const again = createStore(storage).state;
  assert.deepEqual(again.me, { userid: '10', username: 'alice' });
  assert.equal(again.active, '20');
  assert.deepEqual(conversation(again).messages.map((m) => [m.text, Boolean(m.pending), Boolean(m.failed)]),
    [['confirmed', false, false], ['in flight', false, true]]);
  assert.deepEqual(again.rooms['20'], { loaded: true, complete: true }, 'which rooms this tab loaded');
  assert.equal(again.names['20'], 'bob', 'the names seen');
  assert.equal(newestId(again), '4', 'the catch-up cursor survives the reload');
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
    { type: 'send', room: '20', text: 'mine', ts: 7, cid: 'k' },
    { type: 'history', mode: 'catch-up', reply: { messages: [{ sender: '20', receiver: '10', message: 'x', id: '8', ts: 1 }], complete: true } },
    { type: 'delivered', sent: { cid: 'none', id: '9', ts: 1, receiver: '20' } },
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
