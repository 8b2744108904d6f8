/**
 * The web client's state, in one place: what the user sees is a function of this object. This
 * module changes the state; select.js derives what to show from it.
 *
 * `reduce(state, action)` is pure: it returns a new state (sharing untouched parts), never
 * touches the DOM, the socket, storage or the clock, and keeps nothing between calls (the notice
 * ids count in the state), so the same state and action always give the same result.
 * `createStore(storage)` holds the current state, applies actions, tells subscribers, and keeps
 * the part that must survive a page reload (who is logged in, the conversations, unread counts,
 * the open room, the names seen, which rooms' history this tab loaded) in the tab's
 * sessionStorage. What the browser remembers across tabs (tokens, the last name) is identity.js's.
 *
 * Always true:
 *  - Rooms are ids: a person's userid (a direct conversation) or a groupid.
 *  - A conversation holds each message once, keyed by its server id: live deliveries, room-topic
 *    copies and history replies merge. An own message the plugin has not confirmed yet has no id
 *    (only its `cid`) and is `pending`; its confirmation (`sent`, or its copy carrying the cid)
 *    gives it the id.
 *  - A conversation is in server id order (ids compared as numbers of any length, never by
 *    arithmetic), with the messages that have no id yet after all others, in the order written.
 *  - Sender names are not stored with messages: select.js looks them up when it shows them, so
 *    a name learnt later (after a reload, from the directory) shows on old messages too.
 *  - Text is kept as text; rendering decides how to show it.
 */

import { errorText, compareIds } from '#app/select';

const STORAGE_KEY = 'mosquitto-chat.page';
// Messages per room kept over a reload; older ones are loaded again from history on scrolling.
const MESSAGES_STORED = 200;

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
    names: saved.names || {},   // userid -> the last name seen for it, kept after the user left
    // room -> { loaded, complete, loading, error }: loaded, this tab has asked for the room's
    // recent history; complete, nothing older exists; loading, a request is out.
    rooms: saved.rooms || {},
    picking: null,              // userids picked for a new group, or null when not picking
    openNextGroup: false,       // open the next new_group (after create or join)
    notice: null,               // { text, id }
    noticeSeq: 0,               // the last notice's id: each notice gets the next one
  };
}

/**
 * Own messages still waiting for the broker when the page went away were lost with it (the
 * MQTT client's queue lives in the page): after a reload they show as not sent. Entries saved by
 * an older version of the page carry their id only in their key (`<id>@<ts>`).
 */
function unsentAsFailed(conversations) {
  const out = {};
  for (const [room, list] of Object.entries(conversations)) {
    if (!Array.isArray(list)) continue;
    out[room] = list.map((e) => {
      const { senderName, ...entry } = e;
      const old = entry.id === undefined && !entry.pending && /^(\d+)@/.exec(String(entry.key));
      if (old) Object.assign(entry, { id: old[1], key: old[1] });
      return entry.pending ? { ...entry, pending: false, failed: true } : entry;
    });
  }
  return out;
}

function withNotice(state, text) {
  const id = state.noticeSeq + 1;
  return { ...state, notice: { text, id }, noticeSeq: id };
}

/** The room a delivery belongs to: the other person of a direct message, or the group. */
function roomOf(state, m) {
  return m.receiver === state.me.userid ? m.sender : m.receiver;
}

function isDelivery(m) {
  return Boolean(m) && typeof m === 'object' && typeof m.receiver === 'string'
    && typeof m.sender === 'string' && typeof m.id === 'string';
}

/**
 * Puts `entry` where it belongs in `list` (server id order, unconfirmed ones last) and returns the
 * new list, or null when the list holds it already. A confirmed copy of an own message replaces
 * its unconfirmed entry (same cid).
 */
function place(list, entry) {
  if (entry.id !== undefined && list.some((e) => e.id === entry.id)) return null;
  const rest = entry.cid === undefined ? list
    : list.filter((e) => !(e.id === undefined && e.cid === entry.cid && e.mine));
  if (entry.id === undefined) return [...rest, entry];
  let at = rest.length;
  while (at > 0 && (rest[at - 1].id === undefined || compareIds(rest[at - 1].id, entry.id) > 0)) at -= 1;
  return [...rest.slice(0, at), entry, ...rest.slice(at)];
}

/**
 * Merges deliveries (live, or from a history reply) into their conversations. With `count`,
 * each new one from someone else, in a room not open in this tab, adds to the room's unread count
 * (live deliveries and caught-up ones do; a page of older history or a summary does not).
 */
function merge(state, messages, { count, receivedAt }) {
  let { conversations, unread } = state;
  for (const m of messages) {
    if (!isDelivery(m)) continue;
    const room = roomOf(state, m);
    const mine = m.sender === state.me.userid;
    const replacing = mine && m.cid !== undefined
      && (conversations[room] || []).some((e) => e.id === undefined && e.cid === m.cid);
    const entry = {
      key: m.id,
      id: m.id,
      sender: m.sender,
      text: String(m.message),
      // The reducer reads no clock: the caller says when the delivery came.
      ts: typeof m.ts === 'number' ? m.ts : receivedAt,
      mine,
    };
    if (typeof m.cid === 'string') entry.cid = m.cid;
    const next = place(conversations[room] || [], entry);
    if (next === null) continue;
    conversations = { ...conversations, [room]: next };
    if (count && !mine && !replacing && room !== state.active) {
      unread = { ...unread, [room]: (unread[room] || 0) + 1 };
    }
  }
  if (conversations === state.conversations) return state;
  return { ...state, conversations, unread };
}

/** Records names from the directory: a message from someone who has left keeps a name. */
function withNames(state, pairs) {
  let { names } = state;
  for (const [userid, name] of pairs) {
    if (typeof name === 'string' && names[userid] !== name) names = { ...names, [userid]: name };
  }
  return names === state.names ? state : { ...state, names };
}

function withRoom(state, room, change) {
  const rooms = { ...state.rooms, [room]: { ...(state.rooms[room] || {}), ...change } };
  return { ...state, rooms };
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
        const next = withNames({ ...base, me, login: { pending: null, error: null, suggested: res.username } },
          [[res.userid, res.username]]);
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
      const pairs = [...Object.entries(person),
        ...Object.values(groups).flatMap((member) => Object.entries(member))];
      return withNames({ ...state, contactPeople: person, groups }, pairs);
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
      return withNames({ ...state, users, contactPeople }, [[u.userid, u.username]]);
    }

    case 'message': {
      if (!state.me || !isDelivery(action.message)) return state;
      return merge(state, [action.message], { count: true, receivedAt: action.receivedAt });
    }

    case 'send': {
      // The user wrote a message: shown at once, pending until the plugin confirms it.
      if (!state.me) return state;
      const entry = {
        key: `cid:${action.cid}`,
        cid: action.cid,
        sender: state.me.userid,
        text: action.text,
        ts: action.ts,
        mine: true,
        pending: true,
      };
      const list = state.conversations[action.room] || [];
      return { ...state, conversations: { ...state.conversations, [action.room]: [...list, entry] } };
    }

    case 'acked': {
      // The broker took the message (it stays pending until the plugin's `sent`) or refused it.
      if (action.ok) return state;
      const list = state.conversations[action.room];
      if (!list) return state;
      const next = list.map((e) => (e.id === undefined && e.cid === action.cid
        ? { ...e, pending: false, failed: true } : e));
      return { ...state, conversations: { ...state.conversations, [action.room]: next } };
    }

    case 'delivered': {
      // The plugin's `sent` {cid, id, ts, receiver}: the own message gets its id and its place.
      const sent = action.sent || {};
      if (!state.me || typeof sent.cid !== 'string' || typeof sent.id !== 'string') return state;
      const room = Object.keys(state.conversations).find((r) => state.conversations[r]
        .some((e) => e.id === undefined && e.cid === sent.cid));
      if (room === undefined) return state;
      const list = state.conversations[room];
      const old = list.find((e) => e.id === undefined && e.cid === sent.cid);
      const entry = {
        ...old, key: sent.id, id: sent.id, ts: typeof sent.ts === 'number' ? sent.ts : old.ts,
      };
      delete entry.pending;
      delete entry.failed;
      const next = place(list, entry) || list.filter((e) => e !== old);
      return { ...state, conversations: { ...state.conversations, [room]: next } };
    }

    case 'history-requested':
      return withRoom(state, action.room, { loading: true, error: null });

    case 'history': {
      // A reply to a history request: `mode` recent (a conversation opened), older (scrolled
      // up), catch-up (after a (re)connect: counts as unread) or summary (a tab with nothing).
      const reply = action.reply || {};
      if (!state.me || !Array.isArray(reply.messages)) return state;
      const merged = merge(state, reply.messages, { count: action.mode === 'catch-up', receivedAt: action.receivedAt });
      if (action.mode === 'recent') {
        return withRoom(merged, action.room, { loaded: true, loading: false, complete: reply.complete === true });
      }
      if (action.mode === 'older') {
        return withRoom(merged, action.room, { loading: false, complete: reply.complete === true });
      }
      return merged;
    }

    case 'history-failed':
      return action.room ? withRoom(state, action.room, { loading: false, error: action.error || 'internal' }) : state;

    case 'new_group': {
      const g = action.group;
      if (!g || typeof g.groupid !== 'string') return state;
      const groups = { ...state.groups, [g.groupid]: { ...(g.member || {}) } };
      const named = withNames(state, Object.entries(g.member || {}));
      if (state.openNextGroup) {
        const unread = { ...state.unread };
        delete unread[g.groupid];
        return { ...named, groups, openNextGroup: false, active: g.groupid, unread };
      }
      return { ...named, groups };
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
        names: state.names,
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
        const { me, unread, active, names } = state;
        // The newest messages of each room; a room whose older part is left out can load it
        // again (its history is then not complete).
        const conversations = {};
        const rooms = {};
        for (const [room, list] of Object.entries(state.conversations)) {
          conversations[room] = list.slice(-MESSAGES_STORED);
        }
        for (const [room, r] of Object.entries(state.rooms)) {
          const trimmed = (state.conversations[room] || []).length > MESSAGES_STORED;
          rooms[room] = { loaded: Boolean(r.loaded), complete: Boolean(r.complete) && !trimmed };
        }
        storage.setItem(STORAGE_KEY, JSON.stringify({ me, conversations, unread, active, names, rooms }));
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
          || before.unread !== next.unread || before.active !== next.active
          || before.names !== next.names || before.rooms !== next.rooms) {
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
