// Helpers for the bridge tests (and the browser tests): a recorder that waits for bridge events
// and fails with what did arrive instead, and a TCP proxy whose cable a test can pull.

import net from 'node:net';
import { io } from '../../bridge/index.js';

/** An in-memory stand-in for sessionStorage: two sockets sharing one behave like one tab. */
export class MemoryStorage {
  #items = new Map();
  getItem(key) { return this.#items.has(key) ? this.#items.get(key) : null; }
  setItem(key, value) { this.#items.set(key, String(value)); }
  removeItem(key) { this.#items.delete(key); }
}

const RECORDED = ['connect', 'disconnect', 'connect_error', 'login-response', 'message',
  'new_group', 'error', 'contact', 'user', 'sent', 'history', 'update_group', 'delete_group'];

/**
 * Wraps a bridge socket and records every event it emits, in arrival order, so a test can wait
 * for "the next 'message' whose text is x" without racing the network.
 */
export class Probe {
  constructor(socket, name = socket.id) {
    this.socket = socket;
    this.name = name;
    this.received = [];   // { event, data }
    this.waiters = [];
    for (const event of RECORDED) {
      socket.on(event, (data) => this.#push({ event, data }));
    }
    socket.io.on('reconnect', (n) => this.#push({ event: 'io:reconnect', data: n }));
  }

  #push(entry) {
    this.received.push(entry);
    for (const w of [...this.waiters]) {
      if (this.received.includes(entry) && w.match(entry)) w.resolve(entry);
    }
  }

  /**
   * Resolves with the data of the first not-yet-taken event named `event` that satisfies
   * `pred`, waiting up to timeoutMs; takes it off the list.
   */
  next(event, pred = () => true, timeoutMs = 4000) {
    const match = (e) => e.event === event && pred(e.data);
    const index = this.received.findIndex(match);
    if (index >= 0) return Promise.resolve(this.received.splice(index, 1)[0].data);
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (e) => {
          clearTimeout(timer);
          this.waiters = this.waiters.filter((w) => w !== waiter);
          this.received.splice(this.received.indexOf(e), 1);
          resolve(e.data);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`${this.name}: expected a '${event}' event matching ${pred} within `
          + `${timeoutMs} ms; received instead:\n  ${this.describe()}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Every not-yet-taken event of one name, taken off the list. */
  take(event) {
    const out = this.received.filter((e) => e.event === event).map((e) => e.data);
    this.received = this.received.filter((e) => e.event !== event);
    return out;
  }

  describe() {
    return this.received.map((e) => `${e.event} ${JSON.stringify(e.data)}`).join('\n  ')
      || '(nothing)';
  }

  /** Waits for the next 'contact' snapshot that satisfies pred. */
  contact(pred, timeoutMs) {
    return this.next('contact', pred, timeoutMs);
  }

  /** Waits for the 'message' event with this text. */
  message(text, timeoutMs) {
    return this.next('message', (m) => m.message === text, timeoutMs);
  }
}

/**
 * Opens a bridge socket on `url` and resolves with its Probe once it is connected (inbox
 * subscribed). Bridge options pass through; reconnection is quick to keep tests short.
 */
export async function openSocket(url, opts = {}, name) {
  const socket = io(url, { reconnectionDelay: 200, ...opts });
  const probe = new Probe(socket, name);
  await probe.next('connect', () => true, 8000);
  return probe;
}

/** Opens a socket and logs in; resolves with the probe, its userid set from the response. */
export async function loggedInSocket(url, username, opts = {}) {
  const probe = await openSocket(url, opts, username);
  probe.socket.emit('login', { username });
  const res = await probe.next('login-response');
  if (res.result !== 'success') {
    throw new Error(`login of ${username} failed: ${JSON.stringify(res)}`);
  }
  probe.userid = res.userid;
  probe.username = username;
  return probe;
}

/**
 * socket.emit('history', query, ack) as a promise of what the ack gets: the reply
 * {qid, room, messages, complete} or the error {action, error, detail, qid}.
 */
export function history(probe, query) {
  return new Promise((resolve) => probe.socket.emit('history', query, resolve));
}

/** Closes every socket given, waiting until their connections have been handed back. */
export async function closeAll(...probes) {
  await Promise.all(probes.filter(Boolean).map((p) => {
    const client = p.socket.mqtt;
    p.socket.disconnect();
    return client ? new Promise((resolve) => {
      if (client.disconnected) return resolve();
      client.once('end', resolve);
      // A graceful end waits for the broker to acknowledge what is in flight; a teardown does
      // not wait for ever on a broker that is gone.
      setTimeout(() => client.end(true, resolve), 5000).unref();
    }) : undefined;
  }));
}

/**
 * A TCP proxy to 127.0.0.1:targetPort. cut() drops every connection through it and refuses new
 * ones until restore(): a network failure as the client and the broker both see it.
 */
export async function startProxy(targetPort) {
  const open = new Set();
  let up = true;
  const server = net.createServer((inbound) => {
    if (!up) {
      inbound.destroy();
      return;
    }
    const outbound = net.connect(targetPort, '127.0.0.1');
    const pair = [inbound, outbound];
    for (const s of pair) {
      open.add(s);
      s.on('error', () => pair.forEach((x) => x.destroy()));
      s.on('close', () => { open.delete(s); pair.forEach((x) => x.destroy()); });
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    url: `ws://127.0.0.1:${port}`,
    httpUrl: `http://127.0.0.1:${port}`,
    cut() {
      up = false;
      for (const s of open) s.destroy();
    },
    restore() { up = true; },
    close() {
      up = false;
      for (const s of open) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
