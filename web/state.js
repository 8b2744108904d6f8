/**
 * The web client's state, in one place: what the user sees is a function of this object.
 *
 * `reduce(state, action)` is pure: it returns a new state (sharing untouched parts), never
 * touches the DOM, the socket, storage or the clock, and keeps nothing between calls (the notice
 * ids count in the state), so the same state and action always give the same result. `createStore(storage)` holds the current state,
 * applies actions, tells subscribers, and keeps the part that must survive a page reload (who
 * is logged in, the conversations, unread counts, the open room) in the tab's sessionStorage.
 *
 * Always true:
 *  - Rooms are ids: a person's userid (a direct conversation) or a groupid.
 *  - A conversation holds each message once: deliveries are keyed by server id and timestamp,
 *    the user's own messages by a local key.
 *  - Text is kept as text; rendering decides how to show it.
 */

const STORAGE_KEY = 'mosquitto-chat.page';
const MESSAGES_KEPT = 500;

export const ERROR_TEXT = {
  invalid_request: 'The server did not understand that request.',
  invalid_username: 'Names are 1 to 64 characters long and contain no control characters.',
  username_taken: 'That name is already taken. Please choose another one.',
  already_logged_in: 'This tab is already logged in as someone else.',
  username_mismatch: 'That name does not belong to this session.',
  not_logged_in: 'You are not logged in (any more). Please log in again.',
  sender_mismatch: 'That message claimed another sender.',
  unknown_room: 'That person or group does not exist (any more).',
  unknown_user: 'One of the people you picked is no longer here.',
  not_a_member: 'You are not a member of that group.',
  invalid_message: 'A message cannot be empty.',
  message_too_large: 'That message is too long.',
  rate_limited: 'You are sending too fast. Please wait a moment.',
  internal: 'The server had a problem. Please try again.',
};

export function errorText(code, detail) {
  return ERROR_TEXT[code] || detail || `Something went wrong (${code}).`;
}

export function isGroupId(room) {
  return typeof room === 'string' && /[1-9]$/.test(room);
}

export function initialState(saved = {}) {
  return {
    connection: 'connecting',   // connecting | connected | reconnecting | offline | taken-over
    me: saved.me || null,       // { userid, username }
    login: { pending: null, error: null },
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

/** The name to show for a userid, from whatever the client knows. */
export function nameOf(state, userid) {
  if (state.me && state.me.userid === userid) return state.me.username;
  if (state.users[userid]) return state.users[userid].username;
  if (state.contactPeople[userid] !== undefined) return state.contactPeople[userid];
  for (const member of Object.values(state.groups)) {
    if (member[userid] !== undefined) return member[userid];
  }
  return `user ${userid}`;
}

function messageKey(m) {
  return `${m.id}@${m.ts}`;
}

function append(state, room, entry) {
  const list = state.conversations[room] || [];
  if (list.some((e) => e.key === entry.key)) return state;
  const next = [...list, entry].slice(-MESSAGES_KEPT);
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

    case 'login-requested':
      return { ...state, login: { pending: action.username, error: null } };

    case 'login-response': {
      const res = action.response;
      if (res.result === 'success') {
        const me = { userid: res.userid, username: res.username };
        const next = { ...state, me, login: { pending: null, error: null } };
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
        return { ...state, login: { pending: null, error } };
      }
      // The conversations were that user's: whoever logs in next must not see them.
      return { ...reduce(state, { type: 'logged-out' }), login: { pending: null, error } };
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
        return { ...state, login: { pending: null, error: errorText(e.error, e.detail) } };
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

/* ---- Derived views of the state (what the sidebar and the conversation show) ---- */

/** Every person but me, online first, then by name: { userid, username, online, unread }. */
export function people(state) {
  const ids = new Set([...Object.keys(state.contactPeople), ...Object.keys(state.users)]);
  if (state.me) ids.delete(state.me.userid);
  return [...ids].map((userid) => ({
    userid,
    username: nameOf(state, userid),
    // A user the snapshot lists but whose own record has not come yet counts as online.
    online: state.users[userid] ? state.users[userid].online : true,
    unread: state.unread[userid] || 0,
  })).sort((a, b) => (b.online - a.online) || a.username.localeCompare(b.username)
    || a.userid.localeCompare(b.userid));
}

/** Every group, mine first: { groupid, title, names, size, member, unread }. */
export function groups(state) {
  return Object.entries(state.groups).map(([groupid, member]) => {
    const mine = Boolean(state.me && member[state.me.userid] !== undefined);
    return {
      groupid,
      title: groupTitle(state, member),
      size: Object.keys(member).length,
      member: mine,
      unread: state.unread[groupid] || 0,
    };
  }).sort((a, b) => (b.member - a.member) || (Number(a.groupid) - Number(b.groupid)));
}

function groupTitle(state, member) {
  const names = Object.entries(member)
    .map(([userid, name]) => (state.me && userid === state.me.userid ? 'you' : String(name)))
    .sort((a, b) => (a === 'you') - (b === 'you') || a.localeCompare(b));
  if (names.length === 0) return 'Empty group';
  if (names.length <= 4) return names.join(', ');
  return `${names.slice(0, 3).join(', ')} +${names.length - 3}`;
}

/** The open conversation: { room, kind, title, subtitle, member, exists, messages }. */
export function conversation(state) {
  const room = state.active;
  if (!room) return null;
  const messages = state.conversations[room] || [];
  if (isGroupId(room)) {
    const member = state.groups[room];
    const size = member ? Object.keys(member).length : 0;
    const mine = Boolean(member && state.me && member[state.me.userid] !== undefined);
    return {
      room,
      kind: 'group',
      title: member ? groupTitle(state, member) : `Group ${room}`,
      subtitle: member ? `${size} member${size === 1 ? '' : 's'}${mine ? '' : ' · you are not a member'}`
        : 'This group no longer exists',
      member: mine,
      exists: Boolean(member),
      messages,
    };
  }
  const known = room in state.users || room in state.contactPeople
    || Boolean(state.me && state.me.userid === room);
  const online = state.users[room] ? state.users[room].online : known;
  return {
    room,
    kind: 'person',
    title: nameOf(state, room),
    subtitle: !known ? 'Left the chat' : online ? 'Online' : 'Offline',
    member: known,
    exists: known,
    messages,
  };
}

export function totalUnread(state) {
  return Object.values(state.unread).reduce((a, b) => a + b, 0);
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
