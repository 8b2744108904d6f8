/**
 * The web client's entry point: connects the socket, the state and the view.
 *
 * The page is written as for the seed's Socket.IO server: `io` comes from 'socket.io-client',
 * which the page's import map points at the bridge. Socket events become state actions; user
 * actions become socket emits and state actions. Nothing else happens here.
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
import { errorText } from '#app/select';
import { createView } from '#app/view';
import { createIdentity } from '#app/identity';

const NOTICE_MS = 8000;

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
let localCounter = 0;
let sentLogin = null;        // the last login request this page sent, to read its answer
let loginOnConnect = null;   // password mode: the name to log in once the new connection is up
let firstConnect = true;

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
  },
  open(room) { dispatch({ type: 'open', room }); },
  close() { dispatch({ type: 'close' }); },
  send(room, text) {
    localCounter += 1;
    const key = `local-${Date.now()}-${localCounter}`;
    // The plugin delivers to everyone in the room but the sender, so the sender's own copy is
    // added here; a message to oneself comes back and is shown from the delivery.
    if (room === store.state.me.userid) {
      socket.emit('message', { receiver: room, message: text });
      return;
    }
    dispatch({ type: 'sent', room, text, ts: Date.now(), key });
    socket.emit('message', { receiver: room, message: text },
      (err) => dispatch({ type: 'acked', room, key, ok: !err }));
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
  dispatch({ type: 'login-response', response });
});
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
