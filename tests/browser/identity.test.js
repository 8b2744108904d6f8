// What the browser remembers about its user (web/identity.js, localStorage) and the login
// form's password mode (web/state.js, web/select.js), in Node: tokens per name, forgetting a
// refused token, the last name for a newly opened tab, and a refused connection.
//
//   node --test tests/browser/identity.test.js

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createIdentity, tokenKey } from '../../web/identity.js';
import { reduce, initialState } from '../../web/state.js';
import { screen, asksPassword } from '../../web/select.js';

/** localStorage as a Map, so a test can look inside. */
function memoryStorage() {
  const items = new Map();
  return {
    items,
    getItem: (k) => (items.has(k) ? items.get(k) : null),
    setItem: (k, v) => items.set(k, String(v)),
    removeItem: (k) => items.delete(k),
  };
}

const TOKEN = '4f1c9a0b7e2d4c3a9b8f6e5d4c3b2a19';

test('the first login\'s token is kept per name and sent with the next login of that name', () => {
  const storage = memoryStorage();
  const id = createIdentity(storage);
  const first = id.loginRequest('alice');
  assert.deepEqual(first, { username: 'alice' }, 'no token before the first login');
  id.answered(first, { result: 'success', userid: '10', username: 'alice', token: TOKEN });
  assert.equal(storage.items.get('mosquitto-chat.token.alice'), TOKEN);
  assert.deepEqual(id.loginRequest('alice'), { username: 'alice', token: TOKEN });
  assert.deepEqual(id.loginRequest('bob'), { username: 'bob' }, 'a token only goes with its own name');
  // Another tab of the same browser (another identity object on the same storage) has it too.
  assert.deepEqual(createIdentity(storage).loginRequest('alice'), { username: 'alice', token: TOKEN });
});

test('a name is one key in any case and Unicode form; the user\'s spelling logs in', () => {
  const storage = memoryStorage();
  const id = createIdentity(storage);
  id.answered({ username: 'Zoë' }, { result: 'success', userid: '10', username: 'Zoë', token: TOKEN });
  assert.equal(tokenKey('Zoë'), 'mosquitto-chat.token.zoë');
  // "ZOE" + combining diaeresis is the same name in NFC and lower case.
  assert.deepEqual(id.loginRequest('ZOE\u0308'), { username: 'ZOE\u0308', token: TOKEN });
});

test('a later success without a token keeps the token; one with a new token replaces it', () => {
  const id = createIdentity(memoryStorage());
  id.answered({ username: 'alice' }, { result: 'success', userid: '10', username: 'alice', token: TOKEN });
  id.answered({ username: 'alice', token: TOKEN }, { result: 'success', userid: '10', username: 'alice' });
  assert.equal(id.token('alice'), TOKEN);
  id.answered({ username: 'alice', token: TOKEN }, { result: 'success', userid: '30', username: 'alice', token: 'new' });
  assert.equal(id.token('alice'), 'new');
});

test('username_taken to a login that carried the token forgets it; other failures keep it', () => {
  const id = createIdentity(memoryStorage());
  id.answered({ username: 'alice' }, { result: 'success', userid: '10', username: 'alice', token: TOKEN });
  id.answered({ username: 'alice', token: TOKEN }, { result: 'rate_limited' });
  assert.equal(id.token('alice'), TOKEN, 'a failure that says nothing about the token keeps it');
  id.answered({ username: 'alice' }, { result: 'username_taken' });
  assert.equal(id.token('alice'), TOKEN, 'a login sent without the token says nothing about it');
  id.answered({ username: 'alice', token: TOKEN }, { result: 'username_taken' });
  assert.equal(id.token('alice'), null, 'the plugin no longer accepts the token');
  assert.deepEqual(id.loginRequest('alice'), { username: 'alice' });
});

test('a refusal of an older token does not forget a newer one another tab stored', () => {
  const storage = memoryStorage();
  const id = createIdentity(storage);
  storage.setItem(tokenKey('alice'), 'newer');
  id.answered({ username: 'alice', token: 'older' }, { result: 'username_taken' });
  assert.equal(id.token('alice'), 'newer');
});

test('a newly opened tab logs in as the last user when it has a token; after logout it only pre-fills', () => {
  const storage = memoryStorage();
  const id = createIdentity(storage);
  assert.equal(id.last(), null);
  assert.equal(id.autoLogin(), null);
  id.answered({ username: 'alice' }, { result: 'success', userid: '10', username: 'alice', token: TOKEN });
  assert.deepEqual(createIdentity(storage).last(), { username: 'alice', auto: true });
  assert.equal(createIdentity(storage).autoLogin(), 'alice');
  id.loggedOut('alice');
  assert.deepEqual(id.last(), { username: 'alice', auto: false });
  assert.equal(id.autoLogin(), null);
  assert.equal(id.token('alice'), TOKEN, 'logging out one tab keeps the token for the others');
  // Without a token (password mode, or a forgotten one) a tab pre-fills but does not log in.
  id.answered({ username: 'bob' }, { result: 'success', userid: '20', username: 'bob' });
  assert.deepEqual(id.last(), { username: 'bob', auto: true });
  assert.equal(id.autoLogin(), null);
});

test('missing, damaged or refusing storage only makes the browser remember less', () => {
  const none = createIdentity(undefined);
  none.answered({ username: 'a' }, { result: 'success', userid: '10', username: 'a', token: TOKEN });
  assert.deepEqual(none.loginRequest('a'), { username: 'a' });
  const refusing = createIdentity({
    getItem() { throw new Error('SecurityError'); },
    setItem() { throw new Error('QuotaExceededError'); },
    removeItem() { throw new Error('SecurityError'); },
  });
  refusing.answered({ username: 'a', token: 'x' }, { result: 'username_taken' });
  refusing.loggedOut('a');
  assert.equal(refusing.autoLogin(), null);
  const damaged = memoryStorage();
  damaged.setItem('mosquitto-chat.last', '{not json');
  assert.equal(createIdentity(damaged).last(), null);
});

/* ---- The login form's password mode (state.js, select.js) ---- */

test('a broker that refuses an anonymous connection makes the form ask for a password, without an error', () => {
  let s = initialState();
  assert.equal(asksPassword(s), false, 'a connection accepted anonymously never asks');
  s = reduce(s, { type: 'connection', status: 'connected' });
  assert.equal(asksPassword(s), false);
  s = reduce(s, { type: 'refused', anonymous: true });
  assert.equal(asksPassword(s), true);
  assert.equal(s.login.error, null);
  assert.equal(screen(s), 'login');
});

test('refused credentials show an error and leave the form ready for another try', () => {
  let s = reduce(initialState(), { type: 'refused', anonymous: true });
  s = reduce(s, { type: 'login-requested', username: 'alice' });
  assert.equal(s.login.pending, 'alice');
  s = reduce(s, { type: 'refused', anonymous: false });
  assert.equal(s.login.pending, null, 'the form is usable again');
  assert.match(s.login.error, /Wrong name or password/);
  s = reduce(s, { type: 'login-requested', username: 'alice' });
  assert.equal(s.login.error, null, 'a new try clears the error');
  s = reduce(s, { type: 'connection', status: 'connected' });
  s = reduce(s, { type: 'login-response', response: { result: 'success', userid: '10', username: 'alice' } });
  assert.equal(screen(s), 'chat');
  assert.equal(asksPassword(s), true, 'the tab stays in password mode (for the next login)');
  s = reduce(s, { type: 'login-failed', code: 'password_required' });
  assert.match(s.login.error, /password/);
});

test('a logged-in tab whose broker wants a password keeps its page for the same name only', () => {
  let s = reduce(initialState({ me: { userid: '10', username: 'alice' }, conversations: { 20: [{ key: 'k', text: 'hi' }] } }),
    { type: 'refused', anonymous: true });
  assert.equal(screen(s), 'login', 'the form asks for the password first');
  assert.equal(s.login.suggested, 'alice', 'with the name filled in');
  const same = reduce(s, { type: 'login-requested', username: 'alice' });
  assert.deepEqual(Object.keys(same.conversations), ['20']);
  const other = reduce(s, { type: 'login-requested', username: 'mallory' });
  assert.equal(other.me, null);
  assert.deepEqual(other.conversations, {}, 'someone else does not see alice\'s conversations');
  // And a success for another userid than the page showed starts from an empty page too.
  const swapped = reduce(s, { type: 'login-response', response: { result: 'success', userid: '30', username: 'alice' } });
  assert.deepEqual(swapped.conversations, {});
});

test('logging out offers the name again', () => {
  let s = reduce(initialState(), { type: 'login-response', response: { result: 'success', userid: '10', username: 'alice' } });
  s = reduce(s, { type: 'logged-out' });
  assert.equal(s.me, null);
  assert.equal(s.login.suggested, 'alice');
  s = reduce(initialState(), { type: 'suggest-name', username: 'bob' });
  assert.equal(s.login.suggested, 'bob');
});
