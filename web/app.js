/**
 * The web client's entry point: connects the socket, the state and the view.
 *
 * The page is written as for the seed's Socket.IO server: `io` comes from 'socket.io-client',
 * which the page's import map points at the bridge. Socket events become state actions; user
 * actions become socket emits and state actions. Nothing else happens here.
 */

import { io } from 'socket.io-client';
import { createStore } from '#app/state';
import { errorText } from '#app/select';
import { createView } from '#app/view';

const NOTICE_MS = 8000;

function tabStorage() {
  try {
    return window.sessionStorage;
  } catch {
    return undefined;
  }
}

const store = createStore(tabStorage());
const dispatch = (action) => store.dispatch(action);
// No URL: the broker is the host and port this page came from.
const socket = io();
let localCounter = 0;

const actions = {
  login(username) {
    if (username === '') {
      dispatch({ type: 'login-response', response: { result: 'invalid_username' } });
      return;
    }
    dispatch({ type: 'login-requested', username });
    socket.emit('login', { username });
  },
  logout() {
    socket.emit('logout');
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

socket.on('connect', () => dispatch({ type: 'connection', status: 'connected' }));
socket.on('disconnect', (reason) => {
  const status = reason === 'io client disconnect' ? 'offline'
    : reason === 'session taken over' ? 'taken-over' : 'reconnecting';
  dispatch({ type: 'connection', status });
});
socket.io.on('reconnect_attempt', () => dispatch({ type: 'connection', status: 'reconnecting' }));
socket.on('connect_error', (err) => {
  if (!socket.connected && store.state.connection === 'connecting') {
    dispatch({ type: 'notice', text: `Cannot reach the chat server: ${err && err.message}` });
  }
});
socket.on('login-response', (response) => dispatch({ type: 'login-response', response }));
socket.on('message', (message) => dispatch({ type: 'message', message, receivedAt: Date.now() }));
socket.on('new_group', (group) => dispatch({ type: 'new_group', group }));
socket.on('contact', (contact) => dispatch({ type: 'contact', contact }));
socket.on('user', (user) => dispatch({ type: 'user', user }));
socket.on('error', (error) => dispatch({ type: 'error', error }));

// After a reload the tab is still logged in: resume the same user. The bridge's session is the
// same one, so messages that came meanwhile are delivered now.
if (store.state.me) socket.emit('login', { username: store.state.me.username });

// For tests and the curious: the socket and the store of this page.
window.chat = { socket, store, errorText };
