/**
 * The web client's state, in one place: what the user sees is a function of this object. This
 * module changes the state; select.js derives what to show from it.
 *
 * `reduce(state, action)` is pure: it returns a new state (sharing untouched parts), never
 * touches the DOM, the socket, storage or the clock, and keeps nothing between calls (the notice
 * ids count in the state), so the same state and action always give the same result.
 * `createStore(storage)` holds the current state, applies actions, tells subscribers, and keeps
 * the part that must survive a page reload (who is logged in, the conversations, unread counts,
 * the open room) in the tab's sessionStorage. What the browser remembers across tabs (tokens,
 * the last name) is identity.js's.
 *
 * Always true:
 *  - Rooms are ids: a person's userid (a direct conversation) or a groupid.
 *  - A conversation holds each message once: deliveries are keyed by server id and timestamp,
 *    the user's own messages by a local key.
 *  - Text is kept as text; rendering decides how to show it.
 */

import { errorText, nameOf } from '#app/select';

const STORAGE_KEY = 'mosquitto-chat.page';
const MESSAGES_KEPT = 500;

export function initialState(saved = {}) {
  return {
    // connecting | connected | reconnecting | offline | taken-over | refused (credentials)
    connection: 'connecting',
    // anonymous, or password once the broker refused a connection without one: the login form
    // then asks for it, and the chat name is the MQTT username.
    auth: 'anonymous',
    me: saved.me || null,       // { userid, username }
    // pending: the name being logged in; suggested: the name to pre-fill in the form.
    login: { pending: null, error: null, suggested: saved.me ? saved.me.username : null },
    contactPeople: {},          // userid -> username, from the last chat/contacts snapshot
    users: {},                  // userid -> { username, online }, from chat/users/<userid>
    groups: {},                 // groupid -> { userid: username }
    conversations: unsentAsFailed(saved.conversations || {}),
    unread: saved.unread || {},
    active: saved.active || null,
    picking: null,              // userids picked for a new group, or null when not picking
    openNextGroup: false,       // open the next new_group (after create or join)
    notice: null,               // { text, id }
    noticeSeq: 0,               // the last notice's id: each notice gets the next one
  };
}

/**
 * Own messages still waiting for the broker when the page went away were lost with it (the
 * MQTT client's queue lives in the page): after a reload they show as not sent.
 */
function unsentAsFailed(conversations) {
  const out = {};
  for (const [room, list] of Object.entries(conversations)) {
    out[room] = list.map((e) => (e.pending ? { ...e, pending: false, failed: true } : e));
  }
  return out;
}

function withNotice(state, text) {
  const id = state.noticeSeq + 1;
  return { ...state, notice: { text, id }, noticeSeq: id };
}

function messageKey(m) {
  return `${m.id}@${m.ts}`;
}

/**
 * Adds a message to a conversation in time order: a message another tab or device of this user
 * sent can arrive after one this tab sent later, and both show in the order they were written.
 */
function append(state, room, entry) {
  const list = state.conversations[room] || [];
  if (list.some((e) => e.key === entry.key)) return state;
  let at = list.length;
  while (at > 0 && typeof entry.ts === 'number' && typeof list[at - 1].ts === 'number'
    && list[at - 1].ts > entry.ts) {
    at -= 1;
  }
  const next = [...list.slice(0, at), entry, ...list.slice(at)].slice(-MESSAGES_KEPT);
  const unread = room === state.active ? state.unread
    : entry.mine ? state.unread
      : { ...state.unread, [room]: (state.unread[room] || 0) + 1 };
  return { ...state, conversations: { ...state.conversations, [room]: next }, unread };
}

function personFromContact(entry, userid) {
  // The seed's person entry is { "<userid>": "<username>" }.
  if (entry && typeof entry === 'object') {
    if (typeof entry[userid] === 'string') return entry[userid];
    const first = Object.values(entry).find((v) => typeof v === 'string');
    if (first !== undefined) return first;
  }
  return typeof entry === 'string' ? entry : `user ${userid}`;
}

export function reduce(state, action) {
  switch (action.type) {
    case 'connection':
      return { ...state, connection: action.status };

    case 'login-requested': {
      // Someone else logging in on this tab (after a refused connection) must not see the
      // conversations of whoever was logged in before.
      const base = state.me && state.me.username !== action.username
        ? reduce(state, { type: 'logged-out' }) : state;
      return { ...base, login: { ...base.login, pending: action.username, error: null } };
    }

    case 'login-failed':
      // Refused before anything was sent (an empty name or password).
      return { ...state, login: { ...state.login, pending: null, error: errorText(action.code) } };

    case 'suggest-name':
      return { ...state, login: { ...state.login, suggested: action.username } };

    case 'refused':
      // The broker refused the connection: without credentials, it wants a password (no error
      // to show); with them, they were wrong. Who was logged in stays, for the same name.
      return {
        ...state,
        connection: 'refused',
        auth: 'password',
        login: {
          pending: null,
          error: action.anonymous ? null : errorText('not_authorized'),
          suggested: state.me ? state.me.username : state.login.suggested,
        },
      };

    case 'login-response': {
      const res = action.response;
      if (res.result === 'success') {
        const me = { userid: res.userid, username: res.username };
        // A different user than the one this tab showed starts from an empty page.
        const base = state.me && state.me.userid !== res.userid
          ? reduce(state, { type: 'logged-out' }) : state;
        const next = { ...base, me, login: { pending: null, error: null, suggested: res.username } };
        // The broker could not keep everything sent while this tab was away.
        return res.dropped > 0
          ? withNotice(next, `${res.dropped} message${res.dropped === 1 ? ' was' : 's were'} lost while you were away (the broker's queue was full).`)
          : next;
      }
      // already_logged_in leaves this connection's user logged in; any other failure means
      // nobody is (a resume after a reload or reconnect can fail if the name went meanwhile),
      // and the login form comes back with the reason.
      const error = errorText(res.result, res.detail);
      if (res.result === 'already_logged_in' || !state.me) {
        return { ...state, login: { ...state.login, pending: null, error } };
      }
      // The conversations were that user's: whoever logs in next must not see them.
      const out = reduce(state, { type: 'logged-out' });
      return { ...out, login: { ...out.login, pending: null, error } };
    }

    case 'contact': {
      const person = {};
      for (const [userid, entry] of Object.entries(action.contact.person || {})) {
        person[userid] = personFromContact(entry, userid);
      }
      const groups = {};
      for (const [groupid, member] of Object.entries(action.contact.group || {})) {
        if (member && typeof member === 'object') groups[groupid] = { ...member };
      }
      // Users in the snapshot are known; per-user records of users it no longer lists are
      // stale unless they are newer (a login the snapshot has not caught up with).
      return { ...state, contactPeople: person, groups };
    }

    case 'user': {
      const u = action.user;
      if (!u || typeof u.userid !== 'string') return state;
      const users = { ...state.users };
      let { contactPeople } = state;
      if (u.removed) {
        delete users[u.userid];
        if (u.userid in contactPeople) {
          contactPeople = { ...contactPeople };
          delete contactPeople[u.userid];
        }
      } else {
        users[u.userid] = { username: u.username, online: u.online !== false };
      }
      return { ...state, users, contactPeople };
    }

    case 'message': {
      const m = action.message;
      if (!state.me || !m || typeof m.receiver !== 'string') return state;
      const room = m.receiver === state.me.userid ? m.sender : m.receiver;
      return append(state, room, {
        key: messageKey(m),
        sender: m.sender,
        senderName: nameOf(state, m.sender),
        text: String(m.message),
        // The reducer reads no clock: the caller says when the delivery came.
        ts: typeof m.ts === 'number' ? m.ts : action.receivedAt,
        mine: m.sender === state.me.userid,
      });
    }

    case 'sent': {
      if (!state.me) return state;
      return append(state, action.room, {
        key: action.key,
        sender: state.me.userid,
        senderName: state.me.username,
        text: action.text,
        ts: action.ts,
        mine: true,
        pending: true,
      });
    }

    case 'acked': {
      // The broker has the message (or refused it): it is no longer "sending".
      const list = state.conversations[action.room];
      if (!list) return state;
      const next = list.map((e) => (e.key === action.key
        ? { ...e, pending: false, failed: !action.ok } : e));
      return { ...state, conversations: { ...state.conversations, [action.room]: next } };
    }

    case 'new_group': {
      const g = action.group;
      if (!g || typeof g.groupid !== 'string') return state;
      const groups = { ...state.groups, [g.groupid]: { ...(g.member || {}) } };
      if (state.openNextGroup) {
        const unread = { ...state.unread };
        delete unread[g.groupid];
        return { ...state, groups, openNextGroup: false, active: g.groupid, unread };
      }
      return { ...state, groups };
    }

    case 'error': {
      const e = action.error || {};
      if (e.action === 'login') {
        return { ...state, login: { ...state.login, pending: null, error: errorText(e.error, e.detail) } };
      }
      const next = (e.action === 'create_group' || e.action === 'join_group')
        ? { ...state, openNextGroup: false } : state;
      return withNotice(next, errorText(e.error, e.detail));
    }

    case 'open': {
      const unread = { ...state.unread };
      delete unread[action.room];
      return { ...state, active: action.room, unread };
    }

    case 'close':
      return { ...state, active: null };

    case 'pick-start':
      return { ...state, picking: [] };

    case 'pick-toggle': {
      if (!state.picking) return state;
      const picking = state.picking.includes(action.userid)
        ? state.picking.filter((id) => id !== action.userid)
        : [...state.picking, action.userid];
      return { ...state, picking };
    }

    case 'pick-cancel':
      return { ...state, picking: null };

    case 'group-requested':
      // create_group or join_group: the new_group that answers it opens the group.
      return { ...state, picking: null, openNextGroup: true };

    case 'logged-out':
      return {
        ...initialState(),
        connection: state.connection,
        auth: state.auth,
        // The form offers the name again.
        login: { pending: null, error: null, suggested: state.me ? state.me.username : state.login.suggested },
        users: state.users,
        contactPeople: state.contactPeople,
        groups: state.groups,
        noticeSeq: state.noticeSeq,
      };

    case 'notice':
      return withNotice(state, action.text);

    case 'dismiss':
      return { ...state, notice: null };

    default:
      throw new Error(`unknown action ${action.type}`);
  }
}

/* ---- The store ---- */

/** Holds the state; `storage` (sessionStorage) keeps what a reload must not lose. */
export function createStore(storage) {
  let saved = {};
  try {
    saved = JSON.parse((storage && storage.getItem(STORAGE_KEY)) || '{}') || {};
  } catch {
    saved = {};
  }
  let state = initialState(saved);
  const subscribers = new Set();

  function persist() {
    if (!storage) return;
    try {
      if (state.me) {
        const { me, conversations, unread, active } = state;
        storage.setItem(STORAGE_KEY, JSON.stringify({ me, conversations, unread, active }));
      } else {
        storage.removeItem(STORAGE_KEY);
      }
    } catch {
      // Storage full or unavailable: the page still works, a reload just forgets more.
    }
  }

  return {
    get state() { return state; },
    dispatch(action) {
      const next = reduce(state, action);
      if (next === state) return;
      const before = state;
      state = next;
      if (before.me !== next.me || before.conversations !== next.conversations
          || before.unread !== next.unread || before.active !== next.active) {
        persist();
      }
      for (const fn of subscribers) fn(state, before);
    },
    subscribe(fn) {
      subscribers.add(fn);
      return () => subscribers.delete(fn);
    },
  };
}
