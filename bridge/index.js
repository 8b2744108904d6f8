/**
 * mosquitto-chat bridge: socket.io-client's surface, spoken over MQTT.
 *
 * `io(url, opts)` returns a ChatSocket that behaves like a Socket.IO client socket talking to the
 * seed's chat server, while underneath it is one MQTT.js connection to a Mosquitto broker that
 * runs the chat plugin (see DESIGN.md sections 3, 4 and 6):
 *
 *   emit('login' | 'logout' | 'message' | 'create_group' | 'join_group' | 'leave_group', data)
 *       publishes the matching request (chat/login, chat/msg/<receiver>, chat/group/create, ...);
 *       every message gets a `cid` (the page's own, or a random one), so a resend is never
 *       delivered twice;
 *   emit('history', {room, before, after, limit}, ack)
 *       asks chat/history; `ack` gets the reply {qid, room, messages, complete} or the error
 *       {action: 'history', error, detail, qid} (DESIGN.md section 10);
 *   'login-response', 'message', 'new_group', 'error'
 *       arrive from the connection's inbox chat/inbox/<clientId>/<event>; 'message' also from
 *       the room topics chat/room/<gid> of the user's groups, merged with the inbox by id;
 *   'sent'     {cid, id, ts, receiver}: the plugin accepted a message this socket sent (from
 *              chat/inbox/<clientId>/sent, or the message's own copy on its room topic);
 *   'update_group' (the new_group payload) and 'delete_group' {groupid}: the seed server's
 *              events, the latter when this socket's leave or logout deleted the group;
 *   'contact'  arrives from the retained seed-format snapshot chat/contacts;
 *   'user'     (an addition to the seed) arrives from chat/users/<userid>: {userid, username,
 *              online}, or {userid, removed: true} when the user is gone;
 *   'connect', 'disconnect' (with a reason), 'connect_error' as in socket.io-client, and on
 *   `socket.io` (the "manager") 'reconnect_attempt' and 'reconnect'.
 *
 * `opts.auth` (or `socket.auth`, as in socket.io-client) is `{ username, password }`: the MQTT
 * credentials of the next connection. A 'connect_error' whose `err.data.code` is
 * 'not_authorized' means the broker refused them (or refused a connection without any); the
 * socket then stays down until the page calls `connect()` again, typically after setting
 * `socket.auth`. 'session_taken_over' means another client keeps taking this client id.
 *
 * What is always true of a socket:
 *  - Its client id (`socket.id`) is stable for the life of a browser tab: it is kept in
 *    sessionStorage, so a reloaded page resumes the same MQTT session; a duplicated tab (which
 *    inherits a copy of that storage) notices and takes a new one.
 *  - The session is persistent (MQTT 5 clean start false with a session expiry, or MQTT 3.1.1
 *    clean session false) and the inbox is subscribed at QoS 1, so deliveries made while the
 *    connection is down are queued by the broker and arrive after it comes back.
 *  - Requests are published only once the inbox subscription is in place, and after a reconnect
 *    only once the user is logged in again (the bridge repeats the last successful login by
 *    itself); emits made meanwhile are buffered and sent in order.
 *  - A delivered message (by its server-assigned `id` and `ts`) reaches the tab at most once,
 *    even if the broker redelivers it after a reconnect or a reload, or it comes both on a room
 *    topic and in the inbox while a subscription changes.
 *  - For every group the user is in (new_group deliveries, the chat/contacts snapshot) the
 *    socket follows chat/groups/<gid> and, while logged in and not leaving, subscribes
 *    chat/room/<gid> (DESIGN.md section 11); it drops both once the directory shows the user
 *    out of the group.
 *
 * MQTT.js comes from `opts.mqtt` if given, otherwise from `import('mqtt')`: Node resolves it in
 * node_modules, a page through its import map. This file imports nothing else, so a page can
 * load it under any name.
 */

const INBOX_EVENTS = new Set(['login-response', 'message', 'new_group', 'error', 'sent', 'history']);
const RESERVED_EVENTS = new Set([
  'connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener',
]);
const REQUEST_TOPICS = {
  login: 'chat/login',
  logout: 'chat/logout',
  create_group: 'chat/group/create',
  join_group: 'chat/group/join',
  leave_group: 'chat/group/leave',
  history: 'chat/history',
};
const CLIENT_ID_KEY = 'mosquitto-chat.clientId';
// In anonymous mode whoever knows a client id continues its session: ids are 128 random bits.
const CLIENT_ID_BYTES = 16;
// How long a page waits for the Web Lock on its stored client id before it decides that another
// tab (its original, if this one is a duplicate) holds it. A reload's old page lets go quickly.
const CLAIM_WAIT_MS = 1000;
// MQTT 5 reason code of a DISCONNECT sent because another connection took over the client id.
const SESSION_TAKEN_OVER = 0x8e;
// CONNACK codes that refuse the credentials: MQTT 3.1.1 "bad user name or password" and "not
// authorized", MQTT 5 0x86 and 0x87 (Mosquitto 2.0.11 answers 5 / 0x87 for both).
const NOT_AUTHORIZED = new Set([4, 5, 0x86, 0x87]);
// A takeover loop: two clients with one client id take the session from each other at every
// reconnect. Mosquitto 2.0.11 just closes the older connection (no DISCONNECT 0x8E), so the loop
// is recognised by its shape: the broker accepts a connection and closes it within seconds, and
// the next attempt is accepted again at once. This many such closes in a row (of connections
// that lived less than SHORT_LIVED_MS), within the window, stop the reconnecting. A failed attempt (network down, broker restarting) starts the count
// again, so an unreliable network is not mistaken for a second client.
const TAKEOVER_CLOSES = 3;
const TAKEOVER_WINDOW_MS = 30000;
const SHORT_LIVED_MS = 5000;
const SEEN_KEY = 'mosquitto-chat.seen';
// How many delivered messages are remembered to drop redeliveries: in memory, and in the tab's
// storage for the next page after a reload (a message received just before the page went away
// may be redelivered, because its acknowledgement did not reach the broker).
const SEEN_KEPT = 5000;
const SEEN_STORED = 300;
// A history request whose answer has not come after this long is answered locally with the
// client's own error code `timeout` (an old plugin without chat/history, a broker gone away).
const HISTORY_TIMEOUT_MS = 15000;
// How many of its own message cids a socket remembers, to recognise its messages when they come
// back on a room topic (the plugin sends the sender's copy there too; the seed never did).
const CIDS_KEPT = 1000;
// If the plugin never answers the automatic re-login, buffered emits go out after this long
// anyway, so the page is not stuck; the plugin then answers them itself.
const RELOGIN_TIMEOUT_MS = 10000;

/** A minimal event emitter with socket.io-client's method names. */
class Emitter {
  #listeners = new Map();

  on(event, fn) {
    if (!this.#listeners.has(event)) this.#listeners.set(event, []);
    this.#listeners.get(event).push(fn);
    return this;
  }

  once(event, fn) {
    const wrapper = (...args) => {
      this.off(event, wrapper);
      fn.apply(this, args);
    };
    wrapper.listener = fn;
    return this.on(event, wrapper);
  }

  /** off() removes every listener, off(event) every listener of one event. */
  off(event, fn) {
    if (event === undefined) {
      this.#listeners.clear();
    } else if (fn === undefined) {
      this.#listeners.delete(event);
    } else {
      const list = (this.#listeners.get(event) || []).filter((l) => l !== fn && l.listener !== fn);
      if (list.length) this.#listeners.set(event, list);
      else this.#listeners.delete(event);
    }
    return this;
  }

  removeListener(event, fn) { return this.off(event, fn); }

  removeAllListeners(event) { return this.off(event); }

  listeners(event) { return [...(this.#listeners.get(event) || [])]; }

  hasListeners(event) { return (this.#listeners.get(event) || []).length > 0; }

  /** Calls the listeners of `event`; a throwing listener does not stop the others. */
  emitLocal(event, ...args) {
    for (const fn of this.listeners(event)) {
      try {
        fn.apply(this, args);
      } catch (err) {
        setTimeout(() => { throw err; });
      }
    }
    return this;
  }
}

/** socket.io-client's `socket.io`: here only the carrier of reconnection events. */
class Manager extends Emitter {
  emit(event, ...args) { return this.emitLocal(event, ...args); }
}

/** `bytes` random bytes in hex. */
function randomToken(bytes) {
  const buf = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(buf);
  return Array.from(buf, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** `web-` and 128 random bits in hex: one topic level, and not guessable. */
export function randomClientId() {
  return 'web-' + randomToken(CLIENT_ID_BYTES);
}

/** A fresh message cid (96 random bits in hex): a page that tracks its messages passes its own. */
export function randomCid() {
  return randomToken(12);
}

/**
 * Takes the Web Lock `name` for as long as the page lives; resolves false if another page holds
 * it for longer than waitMs. A failing Locks API (opaque origins) counts as taken: nothing to check.
 */
function holdLock(locks, name, waitMs) {
  return new Promise((resolve) => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), waitMs);
    locks.request(name, { signal: controller.signal }, () => {
      clearTimeout(timer);
      resolve(true);
      return new Promise(() => {});
    }).catch((err) => {
      clearTimeout(timer);
      resolve(!(err && err.name === 'AbortError'));
    });
  });
}

/** The error of a 'connect_error' event: a message for people, `data.code` for programs. */
function connectError(message, data) {
  const err = new Error(message);
  err.data = data;
  return err;
}

/** The client id of this tab: kept in `storage` so a reload resumes the same MQTT session. */
function stableClientId(storage) {
  try {
    const kept = storage && storage.getItem(CLIENT_ID_KEY);
    if (kept) return kept;
    const id = randomClientId();
    if (storage) storage.setItem(CLIENT_ID_KEY, id);
    return id;
  } catch {
    // Storage can be unavailable (privacy settings, sandboxed frames): the session then lasts
    // as long as the page.
    return randomClientId();
  }
}

function defaultStorage() {
  try {
    return globalThis.sessionStorage;
  } catch {
    return undefined;
  }
}

/**
 * The broker's WebSocket URL for io()'s argument: nothing means the page's own host and port
 * (Mosquitto serves the page and MQTT on one listener); http(s) becomes ws(s).
 */
export function brokerUrl(url, loc = globalThis.location) {
  const secure = Boolean(loc && loc.protocol === 'https:');
  if (url === undefined || url === null || url === '') {
    if (!loc || !loc.host) throw new TypeError('io(): give the broker URL when not in a browser page');
    url = `${secure ? 'wss:' : 'ws:'}//${loc.host}`;
  }
  url = String(url);
  // socket.io-client's rules (its url.ts): "//host" takes the page's scheme, "/path" the page's
  // host, and anything else without a ws/wss/http/https scheme is a host name: io('host:port')
  // and the seed's io('localhost:5000') ("localhost:" is not a scheme). Away from a page
  // socket.io-client guesses https; a broker's WebSockets listener is plain more often, so here
  // it is ws.
  if (url.startsWith('//')) {
    url = `${secure ? 'wss:' : 'ws:'}${url}`;
  } else if (url.startsWith('/')) {
    if (!loc || !loc.host) throw new TypeError(`io(): "${url}" needs a page to be relative to`);
    url = `${secure ? 'wss:' : 'ws:'}//${loc.host}${url}`;
  } else if (!/^(?:https?|wss?):\/\//i.test(url)) {
    url = `${secure ? 'wss:' : 'ws:'}//${url}`;
  }
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`io(): not a broker address: ${url}`);
  }
  if (parsed.protocol === 'http:') parsed.protocol = 'ws:';
  else if (parsed.protocol === 'https:') parsed.protocol = 'wss:';
  // Mosquitto ignores the path of a WebSocket upgrade; "/mqtt" is the customary one.
  if (parsed.pathname === '/' || parsed.pathname === '') parsed.pathname = '/mqtt';
  return parsed.href;
}

/** A chat room id that can be one MQTT topic level in a PUBLISH (no wildcards, no NUL). */
function roomLevel(receiver) {
  if (typeof receiver === 'number' && Number.isFinite(receiver)) receiver = String(receiver);
  if (typeof receiver !== 'string') return null;
  if (/[+#\u0000]/.test(receiver)) return null;
  return receiver;
}

/**
 * Turns one emit into { topic, payload } or { error, detail } when no request can be formed.
 * Content is the plugin's to judge: the bridge refuses only what cannot be published at all.
 */
function toRequest(event, data) {
  if (event === 'message') {
    if (data === null || typeof data !== 'object' || Array.isArray(data)) {
      return { error: 'invalid_request', detail: 'message expects an object {receiver, message}' };
    }
    const room = roomLevel(data.receiver);
    if (room === null) {
      return { error: 'unknown_room', detail: 'receiver must be a userid or groupid' };
    }
    const payload = { ...data };
    if (typeof data.receiver === 'number') payload.receiver = room;
    // The plugin delivers a repeated cid once (DESIGN.md section 10): a resend after a
    // reconnect, or MQTT.js retransmitting an unacknowledged PUBLISH, is then harmless.
    if (typeof payload.cid !== 'string' || payload.cid === '') payload.cid = randomToken(12);
    return { topic: `chat/msg/${room}`, payload };
  }
  if (event === 'history') {
    if (data !== undefined && data !== null && (typeof data !== 'object' || Array.isArray(data))) {
      return { error: 'invalid_request', detail: 'history expects an object {room, before, after, limit}' };
    }
    const payload = {};
    for (const key of ['room', 'before', 'after']) {
      const value = data && data[key];
      if (typeof value === 'number' && Number.isFinite(value)) payload[key] = String(value);
      else if (value !== undefined && value !== null) payload[key] = value;
    }
    if (data && data.limit !== undefined && data.limit !== null) payload.limit = data.limit;
    return { topic: REQUEST_TOPICS.history, payload };
  }
  const topic = REQUEST_TOPICS[event];
  if (!topic) return { error: 'invalid_request', detail: `unknown event "${event}"` };
  let payload = data;
  if (payload === undefined || payload === null) payload = {};
  else if (event === 'login' && typeof payload === 'string') payload = { username: payload };
  else if ((event === 'join_group' || event === 'leave_group')
           && (typeof payload === 'string' || typeof payload === 'number')) {
    payload = { groupid: String(payload) };
  }
  return { topic, payload };
}

function parseJson(payload) {
  const text = typeof payload === 'string' ? payload : new TextDecoder().decode(payload);
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * The socket. Fields a page may read: `id` (the MQTT client id), `connected`, `disconnected`,
 * `io` (reconnection events), `username` / `userid` (the user this connection is logged in as,
 * or null), and `mqtt` (the MQTT.js client, for diagnostics and tests). A page may set `auth`
 * (`{ username, password }`, or a function that calls back with one) before `connect()`.
 */
export class ChatSocket extends Emitter {
  id;
  connected = false;
  io = new Manager();
  username = null;
  userid = null;
  mqtt = null;
  auth;

  #url;
  #opts;
  #lib = null;
  #generation = 0;        // counts connections, so a stale async step can tell it is stale
  #ready = false;         // requests may be published now
  #buffer = [];           // emits waiting for #ready: { event, request, ack }
  #autoLogins = 0;        // automatic re-logins whose response has not come yet
  #reloginTimer = null;
  #closing = false;       // disconnect() was called
  #attempts = 0;
  #storage;
  #ownId;                 // the id came from the tab's storage, not from the caller
  #claimed = false;       // this page holds the Web Lock on its id
  #seen = new Set();
  #seenOrder = [];
  #token = null;          // the anonymous-mode token of the last login, for the re-login
  #connackAt = null;      // when the broker accepted the current connection
  #shortCloses = [];      // times of broker closes of short-lived connections, in a row
  #histories = new Map(); // qid -> { ack, timer }: history requests waiting for their answer
  #historySeq = 0;
  #cids = new Map();      // cid -> true once 'sent' was emitted: this socket's own messages
  // Groups the socket follows: gid -> { member, leaving: null | 'leave' | 'logout' }. It
  // subscribes chat/groups/<gid> for each, and chat/room/<gid> while member, logged in and not
  // leaving.
  #groups = new Map();
  #contacts = null;       // the last chat/contacts snapshot, to find the user's groups at login
  #groupsOf = null;       // the userid whose groups #groups holds
  #subscribed = new Set(); // topics beyond the inbox and the directory, as requested
  #granted = new Set();    // ... and those of them the broker granted

  constructor(url, opts = {}) {
    super();
    this.#url = brokerUrl(url);
    this.#opts = {
      protocolVersion: 5,
      sessionExpiryInterval: 86400,
      reconnection: true,
      reconnectionDelay: 1000,
      connectTimeout: 10000,
      keepalive: 30,
      autoConnect: true,
      ...opts,
    };
    this.auth = opts.auth;
    this.#storage = 'storage' in opts ? opts.storage : defaultStorage();
    this.#ownId = !opts.clientId;
    this.id = opts.clientId || stableClientId(this.#storage);
    this.#loadSeen();
    if (this.#opts.autoConnect) this.connect();
  }

  get disconnected() { return !this.connected; }

  get inboxFilter() { return `chat/inbox/${this.id}/#`; }

  /**
   * The room and group topics this socket holds now, as the broker granted them (sorted): what a
   * page or a test reads to see that room topics are in use.
   */
  get followedTopics() { return [...this.#granted].sort(); }

  /** Opens the connection (again, after disconnect()); io() does it unless autoConnect is false. */
  connect() {
    if (this.mqtt) return this;
    this.#closing = false;
    this.#start().catch((err) => this.emitLocal('connect_error', err));
    return this;
  }

  open() { return this.connect(); }

  /**
   * Closes the connection for good (no reconnection). Requests already published are delivered
   * first. The MQTT session and so the chat session stay: emit 'logout' before to end the latter.
   */
  disconnect() {
    this.#closing = true;
    this.#ready = false;
    this.#clearRelogin();
    const client = this.mqtt;
    this.mqtt = null;
    if (client) client.end(false);
    if (this.connected) {
      this.connected = false;
      this.emitLocal('disconnect', 'io client disconnect');
    }
    return this;
  }

  close() { return this.disconnect(); }

  /** socket.io-client's send(): emits 'message'. */
  send(...args) { return this.emit('message', ...args); }

  /**
   * Sends one of the seed's requests. A function as the last argument is called once the broker
   * has accepted the request (with null, or an Error), not with the plugin's answer: answers
   * arrive as events.
   */
  emit(event, ...args) {
    if (RESERVED_EVENTS.has(event)) throw new Error(`"${event}" is a reserved event name`);
    const ack = typeof args[args.length - 1] === 'function' ? args.pop() : undefined;
    const request = toRequest(event, args[0]);
    if (request.error) {
      const answer = { action: event, error: request.error, detail: request.detail };
      setTimeout(() => {
        this.emitLocal('error', answer);
        if (ack) ack(new Error(request.detail));
      });
      return this;
    }
    if (event === 'history') return this.#history(request, ack);
    if (event === 'message') this.#rememberCid(request.payload.cid);
    if (event === 'logout') {
      // No automatic re-login after a reconnect once the page has logged out.
      this.username = null;
      this.userid = null;
      this.#token = null;
      // Each group is followed until the directory shows whether the logout deleted it.
      for (const entry of this.#groups.values()) if (!entry.leaving) entry.leaving = 'logout';
      this.#syncGroups();
    } else if (event === 'leave_group') {
      const entry = this.#groups.get(String(request.payload.groupid));
      if (entry) {
        entry.leaving = 'leave';
        this.#syncGroups();
      }
    } else if (event === 'login') {
      const { token } = request.payload;
      this.#token = typeof token === 'string' ? token : null;
    }
    if (this.#ready) this.#publish(request, ack);
    else this.#buffer.push({ event, request, ack });
    return this;
  }

  /** Publishes a history request with a fresh qid; the answer goes to `ack` or a 'history' event. */
  #history(request, ack) {
    this.#historySeq += 1;
    const qid = `h${this.#historySeq}-${randomToken(4)}`;
    const payload = { ...request.payload, qid };
    if (ack) {
      const timer = setTimeout(() => this.#answerHistory(qid, {
        action: 'history', error: 'timeout', detail: `no answer to chat/history within ${HISTORY_TIMEOUT_MS / 1000} s`, qid,
      }), HISTORY_TIMEOUT_MS);
      this.#histories.set(qid, { ack, timer });
    }
    const refused = (err) => {
      if (err) {
        this.#answerHistory(qid, {
          action: 'history', error: 'history_unavailable', detail: `the broker did not take chat/history: ${err.message}`, qid,
        });
      }
    };
    const req = { topic: request.topic, payload };
    if (this.#ready) this.#publish(req, refused);
    else this.#buffer.push({ event: 'history', request: req, ack: refused });
    return this;
  }

  /** Hands a history answer (or error) to its waiting ack; false when nobody waits for `qid`. */
  #answerHistory(qid, answer) {
    const waiter = this.#histories.get(qid);
    if (!waiter) return false;
    this.#histories.delete(qid);
    clearTimeout(waiter.timer);
    try {
      waiter.ack(answer);
    } catch (err) {
      setTimeout(() => { throw err; });
    }
    return true;
  }

  #rememberCid(cid) {
    this.#cids.set(cid, false);
    if (this.#cids.size > CIDS_KEPT) this.#cids.delete(this.#cids.keys().next().value);
  }

  /** Emits 'sent' once per cid of this socket's; false for a cid that is not this socket's. */
  #confirm(sent) {
    if (typeof sent.cid !== 'string' || !this.#cids.has(sent.cid)) return false;
    if (!this.#cids.get(sent.cid)) {
      this.#cids.set(sent.cid, true);
      this.emitLocal('sent', { cid: sent.cid, id: sent.id, ts: sent.ts, receiver: sent.receiver });
    }
    return true;
  }

  /** The user is in group `gid` (a new_group, the snapshot or the group's record says so). */
  #member(gid) {
    if (typeof gid !== 'string' || gid === '' || /[+#/\u0000]/.test(gid)) return;
    const entry = this.#groups.get(gid);
    if (entry) entry.member = true;
    else this.#groups.set(gid, { member: true, leaving: null });
    this.#syncGroups();
  }

  /** A chat/groups/<gid> record: the member object, or null when the group is gone. */
  #groupRecord(gid, member) {
    const entry = this.#groups.get(gid);
    if (!entry) return;
    if (member && this.#groupsOf !== null && member[this.#groupsOf] !== undefined) {
      entry.member = true;
      return;
    }
    // Out of the group (or the group gone): nothing more to follow. A group that disappears
    // while this socket was leaving it was deleted by that leave or logout: there was nobody
    // else left in it (the seed server's delete_group goes to that member).
    this.#groups.delete(gid);
    this.#syncGroups();
    if (member === null && entry.leaving) this.emitLocal('delete_group', { groupid: gid });
  }

  /** After a login: the groups of the snapshot that list the user are followed. */
  #groupsFromContacts() {
    const groups = this.#contacts && this.#contacts.group;
    if (!groups || typeof groups !== 'object' || this.userid === null) return;
    for (const [gid, member] of Object.entries(groups)) {
      if (member && typeof member === 'object' && member[this.userid] !== undefined
          && !this.#groups.has(gid)) {
        this.#member(gid);
      }
    }
  }

  /** The topics the followed groups need now. */
  #wantedTopics() {
    const want = new Set();
    for (const [gid, entry] of this.#groups) {
      want.add(`chat/groups/${gid}`);
      if (entry.member && !entry.leaving && this.userid !== null) want.add(`chat/room/${gid}`);
    }
    return want;
  }

  /**
   * Brings the broker's subscriptions in line with the followed groups. Called after every change
   * and after each CONNACK (#onConnect subscribes everything again). A refused room topic (a
   * plugin without room topics) is no loss: the plugin then sends inbox copies.
   */
  #syncGroups() {
    const client = this.mqtt;
    if (!client || !client.connected || !this.connected) return;
    const want = this.#wantedTopics();
    const drop = [...this.#subscribed].filter((t) => !want.has(t));
    const add = [...want].filter((t) => !this.#subscribed.has(t));
    for (const t of drop) {
      this.#subscribed.delete(t);
      this.#granted.delete(t);
    }
    if (drop.length) client.unsubscribe(drop, () => {});
    if (add.length) this.#subscribe(client, add);
  }

  #subscribe(client, topics) {
    // Marked as requested at once, so a second change before the SUBACK does not subscribe
    // again; one SUBSCRIBE per topic, so a refused one does not hide the others' grants.
    const generation = this.#generation;
    for (const topic of topics) {
      this.#subscribed.add(topic);
      client.subscribe(topic, { qos: 1 }, (err, granted) => {
        if (generation !== this.#generation || !this.#subscribed.has(topic)) return;
        const code = granted && granted[0] ? granted[0].qos : 0x80;
        if (!err && code < 0x80) this.#granted.add(topic);
      });
    }
  }

  async #start() {
    const generation = ++this.#generation;
    await this.#claimId();
    if (!this.#lib) {
      const lib = this.#opts.mqtt || await import('mqtt');
      this.#lib = typeof lib.connect === 'function' ? lib : lib.default;
    }
    const credentials = await this.#credentials();
    if (generation !== this.#generation || this.#closing) return;
    const o = this.#opts;
    const options = {
      clientId: this.id,
      clean: false,
      protocolVersion: o.protocolVersion,
      reconnectPeriod: o.reconnection ? o.reconnectionDelay : 0,
      connectTimeout: o.connectTimeout,
      keepalive: o.keepalive,
      // The bridge subscribes itself after every CONNACK, in the order it needs.
      resubscribe: false,
      ...(o.protocolVersion === 5
        ? { properties: { sessionExpiryInterval: o.sessionExpiryInterval } } : {}),
      ...(o.mqttOptions || {}),
      ...credentials,
    };
    const client = this.#lib.connect(this.#url, options);
    this.mqtt = client;
    this.#shortCloses = [];
    client.on('connect', () => {
      if (client === this.mqtt) this.#connackAt = Date.now();
      this.#onConnect(client);
    });
    client.on('message', (topic, payload) => this.#onMessage(topic, payload));
    client.on('close', () => this.#onClose(client));
    client.on('reconnect', () => {
      this.#attempts += 1;
      this.io.emit('reconnect_attempt', this.#attempts);
    });
    client.on('error', (err) => {
      // MQTT.js reports a refusing CONNACK as an error whose code is the numeric reason code,
      // and does not reconnect after it. Forget the client, so connect() starts a new one.
      if (typeof err.code === 'number' && client === this.mqtt && !client.connected) {
        this.#refused(client, err, options);
      } else if (!this.connected) {
        this.emitLocal('connect_error', err);
      }
    });
    client.on('disconnect', (packet) => {
      if (packet && packet.reasonCode === SESSION_TAKEN_OVER) {
        // Another tab or device took over this client id; fighting back would make both
        // reconnect forever.
        this.#closing = true;
        this.mqtt = null;
        client.end(true);
        this.#ready = false;
        if (this.connected) {
          this.connected = false;
          this.emitLocal('disconnect', 'session taken over');
        }
        this.emitLocal('connect_error', this.#takeoverError('the broker says the session was taken over'));
      }
    });
  }

  /** The MQTT username and password from `auth` (an object, or socket.io's callback form). */
  async #credentials() {
    let auth = this.auth;
    if (typeof auth === 'function') auth = await new Promise((resolve) => auth(resolve));
    if (!auth || typeof auth !== 'object') return {};
    const out = {};
    if (auth.username !== undefined && auth.username !== null) out.username = String(auth.username);
    if (auth.password !== undefined && auth.password !== null) out.password = String(auth.password);
    return out;
  }

  /** The broker refused the connection in its CONNACK: report it and stay down. */
  #refused(client, err, options) {
    this.mqtt = null;
    client.end(true);
    if (NOT_AUTHORIZED.has(err.code)) {
      const anonymous = options.username === undefined;
      this.emitLocal('connect_error', connectError(anonymous
        ? 'not authorized: the broker refuses connections without a username and password'
        : `not authorized: the broker refused the username "${options.username}" with this password`,
      { code: 'not_authorized', reasonCode: err.code, anonymous }));
    } else {
      this.emitLocal('connect_error', connectError(
        `the broker refused the connection: ${err.message}`,
        { code: 'connection_refused', reasonCode: err.code }));
    }
  }

  #takeoverError(how) {
    return connectError(`another client uses the same client id "${this.id}" (${how}); not `
      + 'reconnecting, since each would take the session from the other forever. Every device '
      + 'and tab needs a client id of its own.', { code: 'session_taken_over', clientId: this.id });
  }

  /**
   * After the broker closed a connection: true when this is the takeover loop's shape (see
   * TAKEOVER_CLOSES). Only connections that were accepted and died young count, in a row.
   */
  #inTakeoverLoop() {
    const now = Date.now();
    const accepted = this.#connackAt;
    this.#connackAt = null;
    if (accepted === null || now - accepted > SHORT_LIVED_MS) {
      this.#shortCloses = [];
      return false;
    }
    this.#shortCloses = [...this.#shortCloses.filter((t) => now - t < TAKEOVER_WINDOW_MS), now];
    return this.#shortCloses.length >= TAKEOVER_CLOSES;
  }

  /**
   * Makes sure no other tab of this browser uses the client id. A duplicated tab starts with a
   * copy of the original's sessionStorage, and so with its client id; two connections with one
   * client id take the session from each other at every reconnect (Mosquitto 2.0.11 just closes
   * the older connection, without a DISCONNECT that would tell it why). Each page holds a Web
   * Lock named after its id for as long as it lives; a page that finds the lock taken picks a
   * new id. Without Web Locks (Node, old browsers) there is nothing to check.
   */
  async #claimId() {
    const locks = globalThis.navigator && globalThis.navigator.locks;
    if (!this.#ownId || !locks || this.#claimed) return;
    for (;;) {
      if (await holdLock(locks, `mosquitto-chat:${this.id}`, CLAIM_WAIT_MS)) break;
      this.id = randomClientId();
      try {
        if (this.#storage) {
          this.#storage.setItem(CLIENT_ID_KEY, this.id);
          this.#storage.removeItem(SEEN_KEY);
        }
      } catch {
        // Without storage the new id lasts as long as the page.
      }
    }
    this.#claimed = true;
  }

  async #onConnect(client) {
    if (client !== this.mqtt) return;
    const generation = ++this.#generation;
    const subscriptions = {
      [this.inboxFilter]: { qos: 1 },
      // Retained snapshots: re-sent on every subscribe, so they need no queueing.
      'chat/contacts': { qos: 0 },
      'chat/users/+': { qos: 0 },
    };
    let granted;
    try {
      granted = await client.subscribeAsync(subscriptions);
    } catch (err) {
      if (generation === this.#generation) this.emitLocal('connect_error', err);
      return;
    }
    if (generation !== this.#generation || client !== this.mqtt) return;
    const refused = granted.filter((g) => g.qos >= 0x80).map((g) => g.topic);
    if (refused.length) {
      this.emitLocal('connect_error', new Error(`subscription refused: ${refused.join(', ')}`));
    }
    const reconnected = this.#attempts > 0;
    this.connected = true;
    // The room and group topics again: kept by a persistent session, but a new session (the
    // broker lost it) would not have them, and repeating a subscription costs nothing.
    this.#subscribed.clear();
    this.#granted.clear();
    this.#syncGroups();
    this.emitLocal('connect');
    if (reconnected) {
      this.io.emit('reconnect', this.#attempts);
      this.#attempts = 0;
    }
    if (this.username !== null) {
      // Resume the chat session: the same username from the same client id is the same user.
      this.#autoLogins += 1;
      const login = { username: this.username };
      if (this.#token !== null) login.token = this.#token;
      this.#publish(toRequest('login', login));
      this.#reloginTimer = setTimeout(() => this.#open(generation), RELOGIN_TIMEOUT_MS);
    } else {
      this.#open(generation);
    }
  }

  #open(generation) {
    this.#clearRelogin();
    if (generation !== this.#generation || !this.connected) return;
    this.#ready = true;
    const pending = this.#buffer;
    this.#buffer = [];
    for (const { request, ack } of pending) this.#publish(request, ack);
  }

  #clearRelogin() {
    if (this.#reloginTimer) clearTimeout(this.#reloginTimer);
    this.#reloginTimer = null;
  }

  #onClose(client) {
    if (client !== this.mqtt && this.mqtt !== null) return;
    this.#generation += 1;
    this.#ready = false;
    this.#autoLogins = 0;
    this.#clearRelogin();
    if (this.connected) {
      this.connected = false;
      this.emitLocal('disconnect', this.#closing ? 'io client disconnect' : 'transport close');
    }
    if (client === this.mqtt && !this.#closing && this.#inTakeoverLoop()) {
      this.mqtt = null;
      client.end(true);
      this.emitLocal('connect_error', this.#takeoverError(
        `the broker accepted and then closed this connection ${TAKEOVER_CLOSES} times in a row`));
    }
  }

  #publish({ topic, payload }, ack) {
    const client = this.mqtt;
    if (!client) {
      if (ack) ack(new Error('not connected'));
      return;
    }
    client.publish(topic, JSON.stringify(payload), { qos: 1 }, (err) => {
      if (ack) ack(err || null);
    });
  }

  #onMessage(topic, payload) {
    const inbox = `chat/inbox/${this.id}/`;
    if (topic.startsWith(inbox)) {
      const event = topic.slice(inbox.length);
      const data = parseJson(payload);
      if (data === null || typeof data !== 'object' || !INBOX_EVENTS.has(event)) return;
      if (event === 'message') {
        this.#onChatMessage(data, false);
        return;
      }
      if (event === 'sent') {
        // A cid this socket does not know (a reload lost the list) still tells the page.
        if (!this.#confirm(data)) this.emitLocal('sent', data);
        return;
      }
      if (event === 'history') {
        if (!this.#answerHistory(data.qid, data)) this.emitLocal('history', data);
        return;
      }
      if (event === 'error' && data.action === 'history' && this.#answerHistory(data.qid, data)) return;
      if (event === 'login-response' && !this.#onLoginResponse(data)) return;
      this.emitLocal(event, data);
      if (event === 'new_group') {
        if (data.member && this.userid !== null && data.member[this.userid] !== undefined) {
          const entry = this.#groups.get(data.groupid);
          if (entry) entry.leaving = null;   // joined again
          this.#member(data.groupid);
        }
        this.emitLocal('update_group', data);
      }
    } else if (topic.startsWith('chat/room/')) {
      const data = parseJson(payload);
      if (data !== null && typeof data === 'object') this.#onChatMessage(data, true);
    } else if (topic === 'chat/contacts') {
      const data = parseJson(payload);
      if (data !== null && typeof data === 'object') {
        this.#contacts = data;
        this.#groupsFromContacts();
        this.emitLocal('contact', data);
      }
    } else if (topic.startsWith('chat/users/')) {
      const userid = topic.slice('chat/users/'.length);
      const data = parseJson(payload);
      if (data === undefined) this.emitLocal('user', { userid, removed: true });
      else if (data !== null && typeof data === 'object') this.emitLocal('user', data);
    } else if (topic.startsWith('chat/groups/')) {
      const gid = topic.slice('chat/groups/'.length);
      const data = parseJson(payload);
      if (data === undefined) this.#groupRecord(gid, null);
      else if (data !== null && typeof data === 'object' && data.member && typeof data.member === 'object') {
        this.#groupRecord(gid, data.member);
      }
    }
  }

  /**
   * A message from the inbox or a room topic. The sender's own copy on a room topic is not a
   * message the seed would deliver: it confirms the send ('sent') instead.
   */
  #onChatMessage(data, fromRoom) {
    if (fromRoom && data.sender === this.userid && this.#cids.has(data.cid)) {
      this.#firstSight(data);
      this.#confirm({ cid: data.cid, id: data.id, ts: data.ts, receiver: data.receiver });
      return;
    }
    if (!this.#firstSight(data)) return;
    this.emitLocal('message', data);
  }

  /** Records a login's outcome; false when the page need not hear of it (a resumed session). */
  #onLoginResponse(data) {
    const automatic = this.#autoLogins > 0;
    if (automatic) this.#autoLogins -= 1;
    let unchanged = false;
    if (data.result === 'success') {
      // A report of deliveries the broker dropped while away always reaches the page.
      unchanged = data.userid === this.userid && data.username === this.username && !data.dropped;
      if (data.userid !== this.#groupsOf) this.#groups.clear();
      this.#groupsOf = data.userid;
      this.userid = data.userid;
      this.username = data.username;
      if (typeof data.token === 'string') this.#token = data.token;
      // Logged in again: a group the logout was leaving is the user's again if still listed.
      for (const entry of this.#groups.values()) if (entry.leaving === 'logout') entry.leaving = null;
      this.#groupsFromContacts();
      this.#syncGroups();
    }
    if (automatic) this.#open(this.#generation);
    return !(automatic && unchanged);
  }

  /**
   * True the first time a message is seen. A redelivery carries the same id and ts; the ts
   * keeps a broker restart that starts its ids again from dropping new messages.
   */
  #firstSight(message) {
    if (message.id === undefined || message.id === null) return true;
    const key = `${message.id}@${message.ts}`;
    if (this.#seen.has(key)) return false;
    this.#seen.add(key);
    this.#seenOrder.push(key);
    if (this.#seenOrder.length > SEEN_KEPT) this.#seen.delete(this.#seenOrder.shift());
    this.#saveSeen();
    return true;
  }

  #loadSeen() {
    try {
      const kept = JSON.parse((this.#storage && this.#storage.getItem(SEEN_KEY)) || '[]');
      if (!Array.isArray(kept)) return;
      for (const key of kept) {
        this.#seen.add(String(key));
        this.#seenOrder.push(String(key));
      }
    } catch {
      // A damaged record only costs the protection against redeliveries after a reload.
    }
  }

  #saveSeen() {
    try {
      if (this.#storage) {
        this.#storage.setItem(SEEN_KEY, JSON.stringify(this.#seenOrder.slice(-SEEN_STORED)));
      }
    } catch {
      // Full or unavailable storage: redeliveries after a reload are then not recognised.
    }
  }
}

/** socket.io-client's entry point: `io(url, opts)` connects and returns the socket. */
export function io(url, opts) {
  if (url !== null && typeof url === 'object' && opts === undefined) {
    return new ChatSocket(undefined, url);
  }
  return new ChatSocket(url, opts);
}

export default io;
export { io as connect };
