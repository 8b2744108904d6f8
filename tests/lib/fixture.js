// Test harness: one broker per test file, a watcher of its directory topics, and every client a
// test tracks closed when the file ends — the set-up most integration files share.

import { before, after } from 'node:test';
import { startBroker } from './broker.js';
import { watchDirectory } from './client.js';

/**
 * Registers before/after hooks for this file and returns { broker, dir, track }: `broker` and
 * `dir` are set once the before hook has run; `track(promise)` awaits a client and closes it at
 * the end.
 */
export function brokerPerFile(opts = {}) {
  const clients = [];
  const fx = {
    broker: undefined,
    dir: undefined,
    async track(promise) {
      const client = await promise;
      clients.push(client);
      return client;
    },
  };
  before(async () => {
    fx.broker = await startBroker(opts);
    fx.dir = await watchDirectory(fx.broker);
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.end(true)));
    await fx.dir?.end();
    await fx.broker?.stop();
    fx.broker?.cleanup();
  });
  return fx;
}
