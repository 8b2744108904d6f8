/**
 * What the web client shows, derived from the state (state.js): the text for an error code,
 * the name to show for a userid, and the lists and the conversation the view renders.
 *
 * Always true:
 *  - Every function here only reads: none changes the state, keeps anything between calls or
 *    touches the DOM, so each gives the same answer for the same state.
 *  - What comes out is plain text and data; view.js decides how it reaches the page (as text).
 *  - ERROR_TEXT has a text for every error code the plugin can send (select.test.js reads the
 *    codes from plugin/core/chat_error.c), and for the client's own: the broker refusing a
 *    name and password (`not_authorized`) and a password left empty (`password_required`).
 */

/* ---- Display text ---- */

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
  limit_exceeded: 'A limit of this chat was reached: the group is full, or someone is already in '
    + 'as many groups as allowed.',
  internal: 'The server had a problem. Please try again.',
  history_unavailable: 'Earlier messages cannot be loaded: this chat server keeps no history.',
  // The client's own codes.
  timeout: 'The server did not answer in time.',
  not_authorized: 'Wrong name or password. Please try again.',
  password_required: 'This chat needs your password.',
};

/**
 * Codes whose detail from the plugin says what no fixed text can: which of the broker's
 * configured limits was reached, and how big it is. The text leads into the detail.
 */
const DETAIL_TEXT = {
  limit_exceeded: 'A limit of this chat was reached',
};

/** The text to show for an error code, with the plugin's detail where it helps. */
export function errorText(code, detail) {
  if (DETAIL_TEXT[code] && detail) {
    return `${DETAIL_TEXT[code]}: ${String(detail).replace(/\.$/, '')}.`;
  }
  return ERROR_TEXT[code] || detail || `Something went wrong (${code}).`;
}

/**
 * The name to show for a userid, from whatever the client knows now: asked at render time, so a
 * name that becomes known later (the directory arriving after a reload) shows on every message.
 */
export function nameOf(state, userid) {
  if (state.me && state.me.userid === userid) return state.me.username;
  if (state.users[userid]) return state.users[userid].username;
  if (state.contactPeople[userid] !== undefined) return state.contactPeople[userid];
  for (const member of Object.values(state.groups)) {
    if (member[userid] !== undefined) return member[userid];
  }
  if (state.names && state.names[userid] !== undefined) return state.names[userid];
  return `user ${userid}`;
}

/* ---- Message ids ---- */

/**
 * Orders two message ids: decimal strings of any length (DESIGN.md section 10), compared by
 * length, then digit by digit; never turned into numbers, which would lose precision.
 */
export function compareIds(a, b) {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The newest server id this tab holds in any conversation, or null: the catch-up cursor. */
export function newestId(state) {
  let newest = null;
  for (const list of Object.values(state.conversations)) {
    for (let i = list.length - 1; i >= 0; i -= 1) {
      if (list[i].id === undefined) continue;
      if (newest === null || compareIds(list[i].id, newest) > 0) newest = list[i].id;
      break;
    }
  }
  return newest;
}

/** The oldest server id of a room's conversation, or null: the cursor for older messages. */
export function oldestId(state, room) {
  const found = (state.conversations[room] || []).find((e) => e.id !== undefined);
  return found ? found.id : null;
}

/** What this tab knows of a room's history: { loaded, complete, loading, error }. */
export function roomHistory(state, room) {
  return state.rooms[room] || {};
}

/* ---- Views of the state (what the sidebar and the conversation show) ---- */

/**
 * Which screen to show: the chat once someone is logged in on a connection the broker accepted;
 * the login form otherwise (also for a logged-in tab whose broker wants a password first).
 */
export function screen(state) {
  return state.me && state.connection !== 'refused' ? 'chat' : 'login';
}

/** Whether the login form asks for a password: only after the broker refused a connection. */
export function asksPassword(state) {
  return state.auth === 'password';
}

/** Whether a room is a group: group ids end in 1 to 9, user ids in 0 (the plugin's ids). */
export function isGroupId(room) {
  return typeof room === 'string' && /[1-9]$/.test(room);
}

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

/**
 * The open conversation: { room, kind, title, subtitle, member, exists, messages, older }; each
 * message with its sender's name as known now; `older` is 'loading', 'complete', 'failed' or
 * 'more'.
 */
export function conversation(state) {
  const room = state.active;
  if (!room) return null;
  const messages = (state.conversations[room] || [])
    .map((m) => ({ ...m, senderName: nameOf(state, m.sender) }));
  const h = roomHistory(state, room);
  const older = h.loading ? 'loading' : h.complete ? 'complete' : h.error ? 'failed' : 'more';
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
      older,
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
    older,
  };
}

export function totalUnread(state) {
  return Object.values(state.unread).reduce((a, b) => a + b, 0);
}
