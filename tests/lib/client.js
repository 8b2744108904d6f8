// Test harness: an MQTT.js client that records everything it receives, so a test can wait for
// "the next delivery on chat/inbox/<me>/message" and fail with what did come instead.

import assert from 'node:assert/strict';
import mqtt from 'mqtt';

let counter = 0;

/** A client id that is unique within this test process and valid as a chat client id. */
export function uniqueId(prefix = 'c') {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}

export class TestClient {
  constructor(client, clientId) {
    this.client = client;
    this.clientId = clientId;
    this.received = [];   // every { topic, text, json, retain, qos } in arrival order
    this.waiters = [];
    this.closed = false;  // the network connection has ended (by us or by the broker)
    this.errors = [];     // 'error' events (kept so that an unexpected one fails a test, not the process)
    this.disconnectPacket = null; // an MQTT 5 DISCONNECT the broker sent us, if any
    client.setMaxListeners(0);
    client.on('close', () => { this.closed = true; });
    client.on('error', (err) => { this.errors.push(err); });
    client.on('disconnect', (packet) => { this.disconnectPacket = packet; });
    client.on('message', (topic, payload, packet) => {
      const text = payload.toString('utf8');
      let json;
      try { json = text.length ? JSON.parse(text) : undefined; } catch { json = undefined; }
      const msg = { topic, text, json, retain: packet.retain, qos: packet.qos, payload };
      this.received.push(msg);
      this.waiters = this.waiters.filter((w) => !w.match(msg) || (w.resolve(msg), false));
    });
  }

  /** This client's inbox topic for one kind of delivery. */
  inbox(kind) {
    return `chat/inbox/${this.clientId}/${kind}`;
  }

  async subscribe(filter, qos = 1) {
    const granted = await this.client.subscribeAsync(filter, { qos });
    return granted[0].qos;
  }

  /**
   * Subscribes and resolves with the granted QoS, or with the SUBACK failure code (128 for
   * MQTT 3.1.1, a reason code >= 0x80 such as 135 for MQTT 5) instead of rejecting.
   */
  async trySubscribe(filter, qos = 1) {
    try {
      const granted = await this.client.subscribeAsync(filter, { qos });
      return granted[0].qos;
    } catch (err) {
      // MQTT.js rejects a refused SUBSCRIBE with the SUBACK packet attached.
      const code = err.packet?.granted?.[0] ?? err.code;
      if (typeof code === 'number') return code;
      throw err;
    }
  }

  /** True while the network connection is up. */
  get connected() {
    return this.client.connected && !this.closed;
  }

  async subscribeInbox(qos = 1) {
    return this.subscribe(`chat/inbox/${this.clientId}/#`, qos);
  }

  publish(topic, payload, opts = { qos: 1 }) {
    const body = typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload);
    // A publish whose connection ends (a broker crash, a kick) rejects instead of pending forever.
    if (this.closed) {
      return Promise.reject(new Error(`publish to ${topic}: the connection of ${this.clientId} is closed`));
    }
    return new Promise((resolve, reject) => {
      const onClose = () => reject(new Error(
        `publish to ${topic}: the connection of ${this.clientId} closed before the broker acknowledged it`));
      this.client.once('close', onClose);
      this.client.publishAsync(topic, body, opts).then(
        (r) => { this.client.off('close', onClose); resolve(r); },
        (e) => { this.client.off('close', onClose); reject(e); },
      );
    });
  }

  /**
   * Resolves with the first message (already received and not yet taken, or arriving within
   * timeoutMs) whose topic equals `topic` and which satisfies `pred`; takes it off the list.
   */
  next(topic, pred = () => true, timeoutMs = 3000) {
    const match = (m) => m.topic === topic && pred(m);
    const index = this.received.findIndex(match);
    if (index >= 0) return Promise.resolve(this.received.splice(index, 1)[0]);
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (m) => {
          clearTimeout(timer);
          this.received.splice(this.received.indexOf(m), 1);
          resolve(m);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        const seen = this.received.map((m) => `${m.topic} ${m.text}`).join('\n  ') || '(nothing)';
        reject(new Error(`expected a message on ${topic} within ${timeoutMs} ms; received instead:\n  ${seen}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /**
   * Like next(), but for the first message on any topic that satisfies `pred(msg)`;
   * `what` describes the awaited message in the failure text.
   */
  nextWhere(pred, what = 'a matching message', timeoutMs = 3000) {
    const index = this.received.findIndex(pred);
    if (index >= 0) return Promise.resolve(this.received.splice(index, 1)[0]);
    return new Promise((resolve, reject) => {
      const waiter = {
        match: pred,
        resolve: (m) => {
          clearTimeout(timer);
          this.received.splice(this.received.indexOf(m), 1);
          resolve(m);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        const seen = this.received.map((m) => `${m.topic} ${m.text}`).join('\n  ') || '(nothing)';
        reject(new Error(`expected ${what} within ${timeoutMs} ms; received instead:\n  ${seen}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Drops (and returns) every message already received on `topic` (every topic if omitted). */
  drain(topic) {
    const out = this.received.filter((m) => topic === undefined || m.topic === topic);
    this.received = this.received.filter((m) => !(topic === undefined || m.topic === topic));
    return out;
  }

  /**
   * Waits for the next delivery on this client's error inbox and asserts that it is exactly
   * { action, error: code, detail: <string> }. Resolves with the payload.
   */
  async expectError(action, code, timeoutMs = 3000) {
    const m = await this.next(this.inbox('error'), () => true, timeoutMs);
    assert.ok(m.json && typeof m.json === 'object',
      `error delivery for ${action}: expected a JSON object, got ${JSON.stringify(m.text)}`);
    const { detail, ...rest } = m.json;
    assert.deepEqual(rest, { action, error: code },
      `error delivery: expected action ${action} / error ${code}, got ${m.text}`);
    assert.equal(typeof detail, 'string', `error delivery: "detail" must be a string, got ${m.text}`);
    return m.json;
  }

  /**
   * Publishes chat/login with `payload` (object, string or Buffer) and asserts the failure
   * `code` both in login-response ({ result: code, detail }) and on the error inbox.
   */
  async expectLoginFailure(payload, code, what = JSON.stringify(payload)) {
    await this.publish('chat/login', payload);
    const r = await this.next(this.inbox('login-response'));
    assert.ok(r.json && typeof r.json === 'object',
      `login-response for ${what}: expected a JSON object, got ${JSON.stringify(r.text)}`);
    const { detail, ...rest } = r.json;
    assert.deepEqual(rest, { result: code },
      `login-response for ${what}: expected result ${code}, got ${r.text}`);
    assert.equal(typeof detail, 'string', `login-response for ${what}: "detail" must be a string, got ${r.text}`);
    await this.expectError('login', code);
  }

  /** Resolves after `ms` with every message received on `topic` and not yet taken. */
  async collect(topic, ms = 300) {
    await new Promise((resolve) => setTimeout(resolve, ms));
    const out = this.received.filter((m) => m.topic === topic);
    this.received = this.received.filter((m) => m.topic !== topic);
    return out;
  }

  /** Logs in and resolves with the login-response payload (whatever its result). */
  async login(username, extra = {}) {
    await this.publish('chat/login', { username, ...extra });
    return (await this.next(this.inbox('login-response'))).json;
  }

  /**
   * create_group with the given logged-in TestClients (besides this one); resolves with the
   * new_group payload this client receives for it.
   */
  async createGroup(others = []) {
    const member = Object.fromEntries(others.map((o) => [o.userid, o.username]));
    await this.publish('chat/group/create', { member });
    const want = [this.userid, ...others.map((o) => o.userid)].sort();
    const m = await this.next(this.inbox('new_group'),
      (x) => x.json && JSON.stringify(Object.keys(x.json.member || {}).sort()) === JSON.stringify(want));
    return m.json;
  }

  /** join_group; resolves with the new_group payload this client receives for it. */
  async joinGroup(groupid) {
    await this.publish('chat/group/join', { groupid });
    return (await this.next(this.inbox('new_group'), (x) => x.json?.groupid === groupid)).json;
  }

  /** Sends a chat message (string) to a room (groupid or userid). */
  send(room, message, extra = {}) {
    return this.publish(`chat/msg/${room}`, { message, ...extra });
  }

  /** Ends the connection (force: drop the socket without DISCONNECT); never rejects. */
  end(force = false) {
    if (this.closed) return Promise.resolve();
    return this.client.endAsync(force).catch(() => {});
  }
}

/**
 * Connects to the broker and resolves with a TestClient.
 *   clientId, protocolVersion (4 or 5), clean (default true), properties (MQTT 5 CONNECT props)
 */
export function connect(broker, opts = {}) {
  const clientId = opts.clientId ?? uniqueId();
  let client;
  try {
    client = mqtt.connect(opts.url || broker.url, {
      clientId,
      protocolVersion: opts.protocolVersion ?? 4,
      clean: opts.clean ?? true,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      properties: opts.properties,
      username: opts.username,
      password: opts.password,
      keepalive: opts.keepalive ?? 60,
      will: opts.will,
    });
  } catch (err) {
    return Promise.reject(err); // e.g. MQTT.js refusing an option combination
  }
  // The recorder is attached before the CONNACK: messages queued for a persistent session can
  // arrive in the same TCP segment as the CONNACK, before any promise continuation runs.
  const tc = new TestClient(client, clientId);
  return new Promise((resolve, reject) => {
    const done = () => {
      client.off('connect', onConnect);
      client.off('error', onError);
      client.off('close', onClose);
    };
    const onConnect = (connack) => {
      done();
      tc.connack = connack;
      // MQTT 5: a broker-assigned client id for an empty one.
      const assigned = connack?.properties?.assignedClientIdentifier;
      if (assigned && !clientId) tc.clientId = assigned;
      resolve(tc);
    };
    const onError = (err) => {
      done();
      client.end(true);
      reject(err);
    };
    const onClose = () => {
      done();
      reject(new Error(`connection of ${JSON.stringify(clientId)} closed before CONNACK`));
    };
    client.on('connect', onConnect);
    client.on('error', onError);
    client.on('close', onClose);
  });
}

/**
 * Connection options for the four kinds of session the suite runs against:
 * MQTT 3.1.1 / MQTT 5, clean / persistent (MQTT 5 persistent = clean start false + an expiry).
 */
export const SESSION_KINDS = [
  { name: 'MQTT 3.1.1 clean', protocolVersion: 4, clean: true, persistent: false },
  { name: 'MQTT 3.1.1 persistent', protocolVersion: 4, clean: false, persistent: true },
  { name: 'MQTT 5 clean', protocolVersion: 5, clean: true, persistent: false },
  {
    name: 'MQTT 5 persistent', protocolVersion: 5, clean: false, persistent: true,
    properties: { sessionExpiryInterval: 3600 },
  },
];

/** Just the two protocol versions, clean sessions. */
export const PROTOCOLS = [
  { name: 'MQTT 3.1.1', protocolVersion: 4 },
  { name: 'MQTT 5', protocolVersion: 5 },
];

/** The connect() options of a SESSION_KINDS / PROTOCOLS entry. */
export function kindOpts(kind, extra = {}) {
  const o = { protocolVersion: kind.protocolVersion, clean: kind.clean ?? true, ...extra };
  if (kind.properties) o.properties = { ...kind.properties };
  return o;
}

/**
 * Connects a fresh client, subscribes `topic` and resolves with the retained message sent on
 * subscribe; rejects (saying what came) if none arrives within timeoutMs.
 */
export async function retained(broker, topic, timeoutMs = 3000) {
  const c = await connect(broker);
  try {
    await c.subscribe(topic, 1);
    return await c.next(topic, (m) => m.retain, timeoutMs);
  } finally {
    await c.end(true);
  }
}

/**
 * Connects a fresh client, subscribes `topic` and resolves with every message that arrives
 * within ms (normally used to assert that there is no retained message: []).
 */
export async function retainedWithin(broker, topic, ms = 400) {
  const c = await connect(broker);
  try {
    await c.subscribe(topic, 1);
    return await c.collect(topic, ms);
  } finally {
    await c.end(true);
  }
}

/** Connects, subscribes the inbox and logs in; rejects unless the login succeeds. */
export async function loggedIn(broker, username, opts = {}) {
  const c = await connect(broker, opts);
  await c.subscribeInbox(opts.inboxQos ?? 1);
  const res = await c.login(username);
  if (res.result !== 'success') {
    throw new Error(`login of ${username} failed: ${JSON.stringify(res)}`);
  }
  c.userid = res.userid;
  c.username = username;
  c.token = res.token; // anonymous mode: what another client id shows to join this user
  return c;
}

/**
 * A client that follows the directory (chat/contacts, chat/users/+, chat/groups/+) and keeps the
 * latest value of each topic (null once a topic's value is the empty payload).
 *   until(pred, what)  waits until pred(dir) holds (pred sees dir.contacts / dir.users / dir.groups)
 *   mark()             remembers the current state; changesSince(mark) lists every directory
 *                      publish after it whose value differs from the value at the mark.
 */
export async function watchDirectory(broker, opts = {}) {
  const c = await connect(broker, opts);
  const dir = {
    client: c,
    contacts: undefined,
    users: {},      // userid -> { userid, username, online } | null (deleted)
    groups: {},     // groupid -> { groupid, member } | null (deleted)
    history: [],    // every directory message in arrival order
    waiters: [],
    valueOf(topic) {
      if (topic === 'chat/contacts') return this.contacts;
      const [, kind, id] = topic.split('/');
      return kind === 'users' ? this.users[id] : this.groups[id];
    },
    until(pred, what = 'a directory state', timeoutMs = 3000) {
      if (pred(this)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const w = { pred, resolve: () => { clearTimeout(timer); resolve(); } };
        const timer = setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new Error(`expected ${what} within ${timeoutMs} ms; the directory is:\n`
            + `  chat/contacts ${JSON.stringify(this.contacts)}\n`
            + `  chat/users/+ ${JSON.stringify(this.users)}\n`
            + `  chat/groups/+ ${JSON.stringify(this.groups)}`));
        }, timeoutMs);
        this.waiters.push(w);
      });
    },
    mark() {
      return {
        index: this.history.length,
        snapshot: structuredClone({ contacts: this.contacts, users: this.users, groups: this.groups }),
      };
    },
    /** Directory publishes after the mark that changed a value: [{ topic, before, after }]. */
    changesSince(m) {
      const out = [];
      const current = structuredClone(m.snapshot);
      for (const msg of this.history.slice(m.index)) {
        const value = msg.text.length ? msg.json ?? msg.text : null;
        let before;
        if (msg.topic === 'chat/contacts') { before = current.contacts; current.contacts = value; } else {
          const [, kind, id] = msg.topic.split('/');
          before = current[kind][id];
          current[kind][id] = value;
        }
        try { assert.deepEqual(value, before); } catch {
          out.push({ topic: msg.topic, before: before ?? null, after: value });
        }
      }
      return out;
    },
    end() { return c.end(true); },
  };
  c.client.on('message', (topic) => {
    const msg = c.received.at(-1);
    if (!msg || msg.topic !== topic) return;
    c.received.pop();
    const value = msg.text.length ? (msg.json ?? msg.text) : null;
    if (topic === 'chat/contacts') dir.contacts = value;
    else if (topic.startsWith('chat/users/')) dir.users[topic.slice(11)] = value;
    else if (topic.startsWith('chat/groups/')) dir.groups[topic.slice(12)] = value;
    dir.history.push(msg);
    dir.waiters = dir.waiters.filter((w) => !w.pred(dir) || (w.resolve(), false));
  });
  await c.subscribe('chat/contacts', 1);
  await c.subscribe('chat/users/+', 1);
  await c.subscribe('chat/groups/+', 1);
  return dir;
}

/** The contacts entry of a person, as the seed format has it: { uid: { uid: name } }. */
export function personEntry(c) {
  return { [c.userid]: c.username };
}

/** Resolves after ms (only for "nothing must happen in this window" checks). */
export function quietFor(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
