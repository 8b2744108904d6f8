// Test harness: a real mosquitto with the freshly built chat plugin, on free loopback ports.
//
// startBroker() writes a configuration into a fresh temporary folder, starts /usr/sbin/mosquitto
// on it, and resolves once the TCP listener accepts MQTT connections (it polls; it never sleeps
// and hopes). The broker's log is kept so a failing test can print it. Every broker started here
// is stopped when the test process exits, even if a test forgets to.

import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, chmodSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
const MOSQUITTO = process.env.MOSQUITTO || '/usr/sbin/mosquitto';

// The plugin under test: ctest passes the one it just built; a developer running a test file by
// hand gets the default build folder's.
export const pluginPath = process.env.CHAT_PLUGIN || path.join(repoRoot, 'build', 'mosquitto_chat.so');

const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Resolves to a TCP port on 127.0.0.1 that nothing listened on a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Starts mosquitto with the chat plugin.
 *   options:     plugin_opt_<key> values, e.g. { max_message_bytes: 100 }; null leaves one out
 *                (database defaults to chat.db in the broker's folder)
 *   plugin:      false starts plain mosquitto (no chat plugin), for comparisons
 *   websockets:  true adds a WebSockets listener on another free port, bound to loopback
 *   httpDir:     served over the WebSockets listener
 *   extraConfig: lines appended to the configuration (acl_file, password_file, ...)
 *   dir:         reuse this folder (and its persistence file) instead of a new one
 *   persistence: true turns on mosquitto's own persistence in the folder
 *   configOverride: start this configuration file instead (with port/wsPort/dir saying where it listens)
 */
export async function startBroker(opts = {}) {
  const dir = opts.dir || mkdtempSync(path.join(os.tmpdir(), 'chat-broker-'));
  chmodSync(dir, 0o777);
  const port = opts.port || await freePort();
  const wsPort = opts.websockets ? (opts.wsPort || await freePort()) : undefined;
  const lines = [
    'per_listener_settings false',
    'allow_anonymous true',
    'user root',
    'log_dest stderr',
    'log_type all',
    'log_timestamp_format %H:%M:%S',
    `listener ${port} 127.0.0.1`,
    'socket_domain ipv4',
  ];
  if (wsPort) {
    // An IP bind address is ignored for WebSockets listeners in 2.0; an interface name is not.
    lines.push(`listener ${wsPort} lo`, 'protocol websockets', 'socket_domain ipv4');
    if (opts.httpDir) lines.push(`http_dir ${opts.httpDir}`);
  }
  if (opts.persistence) {
    lines.push('persistence true', `persistence_location ${dir}/`, 'autosave_interval 1');
  }
  if (opts.plugin !== false) {
    lines.push(`plugin ${pluginPath}`);
    // outside_chat has no default (README, "Identity and authentication"): like every
    // configuration the README shows, the tests set it, to allow unless they say otherwise;
    // `outside_chat: null` leaves it out. Every broker keeps its chat in a database in its
    // folder, as the README's configurations do; `database: null` runs one without.
    const options = {
      outside_chat: 'allow', database: path.join(dir, 'chat.db'), ...(opts.options || {}),
    };
    for (const [key, value] of Object.entries(options)) {
      if (value !== null) lines.push(`plugin_opt_${key} ${value}`);
    }
  }
  if (opts.extraConfig) lines.push(opts.extraConfig);
  // A test of a configuration file of its own (e.g. mosquitto.conf.example) passes its path.
  const configPath = opts.configOverride || path.join(dir, 'mosquitto.conf');
  if (!opts.configOverride) writeFileSync(configPath, lines.join('\n') + '\n');

  const broker = await launch({ dir, port, wsPort, configPath, opts });
  return broker;
}

async function launch({ dir, port, wsPort, configPath, opts }) {
  // CHAT_VALGRIND=1 runs every broker with the plugin under valgrind's memcheck; stop() then
  // fails if valgrind found an error or a leak (a graceful stop frees everything).
  const valgrind = process.env.CHAT_VALGRIND === '1' && opts.plugin !== false && !opts.wrapper;
  const prefix = opts.wrapper || (valgrind ? [
    'valgrind', '--error-exitcode=99', '--leak-check=full', '--show-leak-kinds=definite,indirect',
    '--errors-for-leak-kinds=definite,indirect', '--track-origins=yes', '--num-callers=30',
    `--suppressions=${path.join(repoRoot, 'tests', 'valgrind', 'mosquitto-2.0.11.supp')}`,
  ] : []);
  const argv = [...prefix, MOSQUITTO, '-c', configPath];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  running.add(child);
  let log = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => { log += chunk; });
  let exited = null;
  let started = false;
  let stopRequested = false;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      running.delete(child);
      exited = { code, signal };
      if (started && !stopRequested) {
        // A crash shows up in tests as timeouts and closed connections: say what happened.
        process.stderr.write(`\n*** mosquitto (pid ${child.pid}, port ${port}) exited unexpectedly `
          + `(${JSON.stringify(exited)}); the end of its log:\n${log.slice(-4000)}\n`);
      }
      resolve(exited);
    });
  });

  const deadline = Date.now() + (opts.startTimeoutMs || (valgrind ? 60000 : 20000));
  for (;;) {
    if (exited) {
      throw new Error(`mosquitto exited during start-up (${JSON.stringify(exited)}); its log:\n${log}`);
    }
    if (await canConnect(port) && (!wsPort || await canConnect(wsPort))) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`mosquitto did not accept connections on port ${port} in time; its log:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  started = true;

  return {
    dir,
    port,
    wsPort,
    configPath,
    pid: child.pid,
    url: `mqtt://127.0.0.1:${port}`,
    wsUrl: wsPort ? `ws://127.0.0.1:${wsPort}` : undefined,
    log: () => log,
    get exited() { return exited; },
    /** Stops the broker with the given signal and resolves with its exit status. */
    async stop(signal = 'SIGTERM') {
      stopRequested = true;
      if (!exited) child.kill(signal);
      // A broker that does not stop is a bug worth a failure, not a hung test file.
      const limitMs = valgrind ? 120000 : 30000;
      const stuck = setTimeout(() => {
        process.stderr.write(`\n*** mosquitto (pid ${child.pid}) did not exit within ${limitMs} ms of ${signal}; `
          + `killing it. The end of its log:\n${log.slice(-4000)}\n`);
        child.kill('SIGKILL');
      }, limitMs);
      const status = await exitPromise;
      clearTimeout(stuck);
      if (status.signal === 'SIGKILL' && signal !== 'SIGKILL') {
        throw new Error(`mosquitto did not exit within ${limitMs} ms of ${signal}`);
      }
      if (valgrind && signal === 'SIGTERM' && status.code !== 0) {
        throw new Error(`valgrind reports errors or leaks in the broker (exit ${status.code}):\n${log}`);
      }
      return status;
    },
    /** Starts the same configuration again (same ports and folder), e.g. after a restart. */
    async restart(signal = 'SIGTERM') {
      stopRequested = true;
      if (!exited) { child.kill(signal); await exitPromise; }
      return launch({ dir, port, wsPort, configPath, opts });
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Reads a file the broker wrote (helper for tests that inspect logs or state). */
export function readBrokerFile(broker, name) {
  return readFileSync(path.join(broker.dir, name), 'utf8');
}

export { mqtt };
