/**
 * The web client's entry point: connects the socket, the state and the view.
 *
 * The page is written as for the seed's Socket.IO server: `io` comes from 'socket.io-client',
 * which the page's import map points at the bridge. Socket events become state actions; user
 * actions become socket emits and state actions. Nothing else happens here.
 *
 * History (DESIGN.md section 12): on every (re)connect the page catches up through the bridge's
 * emit('history') from the newest id it held when the connection went (or the page loaded),
 * page by page until the reply is complete; a tab that holds no message starts from the summary
 * (the newest message of each room). Opening a conversation loads its recent history once per
 * tab; scrolling to its top loads the messages before the oldest shown.
 *
 * Who the page logs in as:
 *  - anonymous mode (the broker lets anyone connect): a name, sent with the token this browser
 *    keeps for it (identity.js); a newly opened tab logs in with the last name by itself when it
 *    has a token for it, and pre-fills it otherwise;
 *  - password mode (the broker refused a connection without credentials): name and password
 *    become the MQTT username and password of a new connection, and the chat name is that
 *    username. The password stays in the bridge's memory only: a reload asks for it again.
 */

import { io } from 'socket.io-client';
import { createStore } from '#app/state';
import { errorText, newestId, oldestId, roomHistory } from '#app/select';
import { createView } from '#app/view';
import { createIdentity } from '#app/identity';

const NOTICE_MS = 8000;
const PAGE = 50;          // messages per history page of one conversation
const CATCH_UP_PAGE = 100;
const RETRY_MS = 1000;    // after rate_limited

function browserStorage(name) {
  try {
    return window[name];
  } catch {
    return undefined;
  }
}

const store = createStore(browserStorage('sessionStorage'));
const identity = createIdentity(browserStorage('localStorage'));
const dispatch = (action) => store.dispatch(action);
// No URL: the broker is the host and port this page came from.
const socket = io();
let sentLogin = null;        // the last login request this page sent, to read its answer
let loginOnConnect = null;   // password mode: the name to log in once the new connection is up
let firstConnect = true;
// The newest id held when the connection last went away (or the page loaded): the catch-up
// starts there, before anything the new connection brings in.
let cursor = newestId(store.state);
let syncing = false;
let syncAgain = false;

/** A random cid for a message: the plugin delivers a repeated one once. */
function randomCid() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The bridge's history request as a promise of its answer (a reply or an error object). */
function ask(query) {
  return new Promise((resolve) => socket.emit('history', query, resolve));
}

/** Asks again while the plugin says rate_limited; resolves with the reply or the error. */
async function askPatiently(query) {
  for (let tries = 0; ; tries += 1) {
    const reply = await ask(query);
    if (reply.error !== 'rate_limited' || tries >= 5) return reply;
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS * (tries + 1)));
  }
}

/** Catches up after a (re)connect or login; one at a time, again if asked meanwhile. */
async function sync() {
  if (syncing) {
    syncAgain = true;
    return;
  }
  syncing = true;
  try {
    do {
      syncAgain = false;
      await syncOnce();
    } while (syncAgain);
  } finally {
    syncing = false;
  }
}

async function syncOnce() {
  if (!store.state.me) return;
  if (newestId(store.state) === null) {
    // Nothing held: the newest message of each room lists the conversations.
    const reply = await askPatiently({ limit: PAGE });
    if (!reply.error) dispatch({ type: 'history', mode: 'summary', reply, receivedAt: Date.now() });
    cursor = null;
    return;
  }
  let after = cursor !== null ? cursor : newestId(store.state);
  for (;;) {
    const reply = await askPatiently({ after, limit: CATCH_UP_PAGE });
    if (reply.error) return;   // keep the cursor: the next connect tries again
    dispatch({ type: 'history', mode: 'catch-up', reply, receivedAt: Date.now() });
    const last = reply.messages[reply.messages.length - 1];
    if (reply.complete || !last) break;
    after = last.id;
  }
  cursor = null;
}

/** Loads a room's recent messages (once per tab) or those before the oldest shown. */
async function loadHistory(room, mode) {
  const h = roomHistory(store.state, room);
  if (!store.state.me || h.loading) return;
  if (mode === 'recent' && h.loaded) return;
  if (mode === 'older' && (h.complete || !h.loaded)) return;
  const query = { room, limit: PAGE };
  if (mode === 'older') {
    const before = oldestId(store.state, room);
    if (before === null) return;
    query.before = before;
  }
  dispatch({ type: 'history-requested', room });
  const reply = await askPatiently(query);
  if (reply.error) dispatch({ type: 'history-failed', room, error: reply.error });
  else dispatch({ type: 'history', mode, room, reply, receivedAt: Date.now() });
}

function sendLogin(username) {
  sentLogin = identity.loginRequest(username);
  socket.emit('login', sentLogin);
}

const actions = {
  login(username, password) {
    if (username === '') {
      dispatch({ type: 'login-response', response: { result: 'invalid_username' } });
      return;
    }
    if (store.state.auth === 'password') {
      if (!password) {
        dispatch({ type: 'login-failed', code: 'password_required' });
        return;
      }
      dispatch({ type: 'login-requested', username });
      dispatch({ type: 'connection', status: 'connecting' });
      // New credentials need a new connection; the login follows once it is accepted.
      loginOnConnect = username;
      socket.disconnect();
      socket.auth = { username, password };
      socket.connect();
      return;
    }
    dispatch({ type: 'login-requested', username });
    sendLogin(username);
  },
  logout() {
    const { me, auth } = store.state;
    if (me) identity.loggedOut(me.username);
    // {}: only this tab's session ends; the user's other tabs and devices stay logged in.
    socket.emit('logout', () => {
      if (auth !== 'password') return;
      // The connection is still the logged-out user's: whoever logs in next brings a password.
      socket.disconnect();
      socket.auth = undefined;
      dispatch({ type: 'refused', anonymous: true });
    });
    dispatch({ type: 'logged-out' });
    cursor = null;
  },
  open(room) { dispatch({ type: 'open', room }); },
  loadOlder(room) { loadHistory(room, 'older'); },
  close() { dispatch({ type: 'close' }); },
  send(room, text) {
    const cid = randomCid();
    // Shown at once, pending, at the end of the conversation; the plugin's `sent` gives it its
    // id and so its place (a message another tab sent first goes before it).
    dispatch({ type: 'send', room, text, ts: Date.now(), cid });
    socket.emit('message', { receiver: room, message: text, cid },
      (err) => dispatch({ type: 'acked', room, cid, ok: !err }));
  },
  pickStart() { dispatch({ type: 'pick-start' }); },
  pickToggle(userid) { dispatch({ type: 'pick-toggle', userid }); },
  pickCancel() { dispatch({ type: 'pick-cancel' }); },
  createGroup() {
    const state = store.state;
    const member = {};
    for (const userid of state.picking || []) {
      member[userid] = (state.users[userid] && state.users[userid].username)
        || state.contactPeople[userid] || '';
    }
    dispatch({ type: 'group-requested' });
    socket.emit('create_group', { member });
  },
  join(groupid) {
    dispatch({ type: 'group-requested' });
    socket.emit('join_group', { groupid });
  },
  leave(groupid) {
    socket.emit('leave_group', { groupid });
  },
  dismiss() { dispatch({ type: 'dismiss' }); },
};

const render = createView(document, actions);
store.subscribe(render);
render(store.state, null);

// A conversation opened in this tab (by the user, or a group just created or joined) shows its
// recent history.
store.subscribe((state, previous) => {
  if (state.active && state.active !== previous.active) loadHistory(state.active, 'recent');
});

let noticeTimer = null;
store.subscribe((state, previous) => {
  if (state.notice && state.notice !== previous.notice) {
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => dispatch({ type: 'dismiss' }), NOTICE_MS);
  }
});

socket.on('connect', () => {
  dispatch({ type: 'connection', status: 'connected' });
  const resume = firstConnect;
  firstConnect = false;
  // A reconnect: the bridge logs in again by itself and sends the catch-up after that login.
  if (!resume && store.state.me && loginOnConnect === null) sync();
  if (loginOnConnect !== null) {
    sendLogin(loginOnConnect);
    loginOnConnect = null;
  } else if (resume && store.state.me) {
    // After a reload the tab is still logged in: resume the same user. The bridge's session is
    // the same one, so messages that came meanwhile are delivered now.
    sendLogin(store.state.me.username);
  } else if (resume && !store.state.login.pending) {
    // A newly opened tab continues as the last user of this browser, when it holds a token.
    const username = identity.autoLogin();
    if (username) {
      dispatch({ type: 'login-requested', username });
      sendLogin(username);
    }
  }
});
socket.on('disconnect', (reason) => {
  if (cursor === null) cursor = newestId(store.state);
  const status = reason === 'io client disconnect' ? 'offline'
    : reason === 'session taken over' ? 'taken-over' : 'reconnecting';
  dispatch({ type: 'connection', status });
});
socket.io.on('reconnect_attempt', () => dispatch({ type: 'connection', status: 'reconnecting' }));
socket.on('connect_error', (err) => {
  const code = err && err.data && err.data.code;
  if (code === 'not_authorized') {
    loginOnConnect = null;
    dispatch({ type: 'refused', anonymous: Boolean(err.data.anonymous) });
  } else if (code === 'session_taken_over') {
    dispatch({ type: 'connection', status: 'taken-over' });
  } else if (!socket.connected && store.state.connection === 'connecting') {
    dispatch({ type: 'notice', text: `Cannot reach the chat server: ${err && err.message}` });
  }
});
socket.on('login-response', (response) => {
  identity.answered(sentLogin, response);
  sentLogin = null;
  const before = store.state.me;
  dispatch({ type: 'login-response', response });
  if (response.result === 'success') {
    // Someone else than this tab showed starts with nothing held: the summary.
    if (!before || before.userid !== response.userid) cursor = null;
    sync();
    // After a reload the open conversation is there already; a tab that has not loaded it yet does.
    if (store.state.active) loadHistory(store.state.active, 'recent');
  }
});
socket.on('sent', (sent) => dispatch({ type: 'delivered', sent }));
socket.on('message', (message) => dispatch({ type: 'message', message, receivedAt: Date.now() }));
socket.on('new_group', (group) => dispatch({ type: 'new_group', group }));
socket.on('contact', (contact) => dispatch({ type: 'contact', contact }));
socket.on('user', (user) => dispatch({ type: 'user', user }));
socket.on('error', (error) => dispatch({ type: 'error', error }));

// A new tab offers the name this browser used last.
if (!store.state.me && identity.last()) {
  dispatch({ type: 'suggest-name', username: identity.last().username });
}

// For tests and the curious: the socket and the store of this page.
window.chat = { socket, store, errorText };
