// Identity you can trust (README, "Identity and authentication"; docs/protocol.md §5): what
// outside_chat opens and closes, $share filters, the inbox QoS of several subscriptions, log
// lines about rejected input, and the state file's mode. Each attack of the issue is a test
// with the attacker's steps.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, statSync, mkdirSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot, pluginPath, startBroker } from '../lib/broker.js';
import { connect, loggedIn, uniqueId, quietFor } from '../lib/client.js';

const run = promisify(execFile);

async function withBroker(opts, body) {
  const broker = await startBroker(opts);
  const clients = [];
  const track = async (promise) => { const c = await promise; clients.push(c); return c; };
  try {
    await body(broker, track);
  } finally {
    await Promise.all(clients.map((c) => c.end(true)));
    await broker.stop();
    broker.cleanup();
  }
}

/**
 * Runs `body(broker, track, ctrl)` on a broker that loads the chat plugin with `outside_chat`,
 * then dynamic security (initialised with user admin / adminpw); `ctrl(args)` runs
 * `mosquitto_ctrl dynsec` as admin.
 */
async function withDynsec(outside, body) {
  const base = await startBroker({ plugin: false });
  const { dir } = base;
  await base.stop();
  const dynsec = path.join(dir, 'dynsec.json');
  await run('mosquitto_ctrl', ['dynsec', 'init', dynsec, 'admin', 'adminpw']);
  chmodSync(dynsec, 0o666);
  const extra = `plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so\nplugin_opt_config_file ${dynsec}`;
  await withBroker({ dir, extraConfig: extra, options: { outside_chat: outside } }, (b, track) => {
    const ctrl = (args) => run('mosquitto_ctrl',
      ['-h', '127.0.0.1', '-p', String(b.port), '-u', 'admin', '-P', 'adminpw', 'dynsec', ...args]);
    return body(b, track, ctrl);
  });
}

describe('plugin_opt_outside_chat has no default', () => {
  test('without it the broker refuses to start, with a line that explains defer and allow', async () => {
    await assert.rejects(startBroker({ options: { outside_chat: null } }), (err) => {
      assert.match(err.message, /plugin_opt_outside_chat must be set/);
      assert.match(err.message, /defer: this broker has an acl_file, dynamic security/);
      assert.match(err.message, /allow: it has none/);
      return true;
    });
  });

  test("the README's conf.d snippet, run as written into a conf.d folder, gives a working broker", async () => {
    const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Adding chat to an existing broker'));
    const block = section.match(/```sh\n([\s\S]*?)```/)[1];
    const broker = await startBroker({ plugin: false, extraConfig: '' });
    const confd = path.join(broker.dir, 'conf.d');
    await broker.stop();
    broker.cleanup?.();
    mkdirSync(confd, { recursive: true });
    chmodSync(confd, 0o777);
    // The snippet as written, with this build's plugin, a temporary conf.d folder and a
    // database in a temporary folder instead of /var/lib/mosquitto.
    const database = path.join(confd, 'chat.db');
    const script = block
      .replaceAll('/usr/lib/x86_64-linux-gnu/mosquitto_chat.so', pluginPath)
      .replaceAll('/etc/mosquitto/conf.d', confd)
      .replaceAll('/var/lib/mosquitto/chat.db', database);
    assert.ok(script.includes(database), 'the snippet sets plugin_opt_database');
    await run('sh', ['-c', script]);
    await withBroker({ plugin: false, extraConfig: `include_dir ${confd}` }, async (b, track) => {
      assert.match(b.log(), /chat: mosquitto-chat .* loaded: .*outside_chat=allow/);
      assert.ok(b.log().includes(`database=${database} `), `the database is the snippet's:\n${b.log()}`);
      const alice = await track(loggedIn(b, uniqueId('alice')));
      assert.match(alice.userid, /0$/);
      // The chat keeps history there: a message, then the summary has it.
      await alice.send(alice.userid, 'kept');
      await alice.next(alice.inbox('message'));
      await alice.publish('chat/history', { qid: 'snippet' });
      const reply = await alice.next(alice.inbox('history'));
      assert.deepEqual(reply.json.messages.map((m) => m.message), ['kept'], reply.text);
      assert.equal(statSync(database).mode & 0o777, 0o600, 'the database is private to the broker');
    });
  });
});

describe('outside_chat allow: a broker without access control keeps its open topics', () => {
  test('plain topics and $SYS reads stay open; $CONTROL is never decided by the plugin', async () => {
    await withBroker({ options: { outside_chat: 'allow' } }, async (b, track) => {
      const c = await track(connect(b));
      assert.equal(await c.trySubscribe('sensors/#', 1), 1);
      assert.equal(await c.trySubscribe('$SYS/broker/uptime', 0), 0);
      await c.publish('sensors/t', 'x');
      const m = await c.next('sensors/t');
      assert.equal(m.text, 'x');
      // Nothing else decides $CONTROL here, so Mosquitto denies it (all checks deferred).
      assert.equal(await c.trySubscribe('$CONTROL/dynamic-security/#', 0), 128);
    });
  });

  test('dynamic security loaded after chat with allow: a client without roles cannot make itself admin', async () => {
    await withDynsec('allow', async (b, track, ctrl) => {
      await ctrl(['createClient', 'mallory', '-p', 'mallorypw']);
      // The attack: publish the command that gives mallory the admin role.
      const mallory = await track(connect(b, { username: 'mallory', password: 'mallorypw' }));
      const attack = { commands: [{ command: 'addClientRole', username: 'mallory', rolename: 'admin' }] };
      await mallory.publish('$CONTROL/dynamic-security/v1', JSON.stringify(attack));
      await quietFor(500);
      const { stdout } = await ctrl(['getClient', 'mallory']);
      assert.doesNotMatch(stdout, /admin/, `mallory must have no admin role:\n${stdout}`);
    });
  });
});

describe('outside_chat defer with dynamic security: its rules stay as they were', () => {
  test('a client without roles is refused outside chat/ as dynamic security says; chat still works', async () => {
    await withDynsec('defer', async (b, track, ctrl) => {
      await ctrl(['createClient', 'carl', '-p', 'carlpw']);
      const carl = await track(connect(b, { username: 'carl', password: 'carlpw' }));
      // dynamic security's default: no subscriptions for a client without roles.
      assert.equal(await carl.trySubscribe('sensors/#', 1), 128, 'dynamic security refuses sensors/#');
      // Given a role that allows it, the same client may.
      await ctrl(['createRole', 'reader']);
      await ctrl(['addRoleACL', 'reader', 'subscribePattern', 'sensors/#', 'allow']);
      await ctrl(['addClientRole', 'carl', 'reader']); // dynamic security then disconnects carl
      const again = await track(connect(b, { username: 'carl', password: 'carlpw' }));
      assert.equal(await again.trySubscribe('sensors/#', 1), 1, 'the role lets carl subscribe');
      // Chat topics are the plugin's, whatever dynamic security says.
      await again.subscribeInbox(1);
      const r = await again.login(uniqueId('carl'));
      assert.equal(r.result, 'success', JSON.stringify(r));
    });
  });
});

describe('$share and the inbox QoS', () => {
  test('MQTT 5 SUBSCRIBE $share/g/chat/inbox/<other>/# is refused; $share/g/chat/inbox/<own>/# granted', async () => {
    await withBroker({}, async (b, track) => {
      const victim = await track(loggedIn(b, uniqueId('victim')));
      const spy = await track(connect(b, { protocolVersion: 5 }));
      assert.equal(await spy.trySubscribe(`$share/g/chat/inbox/${victim.clientId}/#`, 1), 135);
      assert.equal(await spy.trySubscribe(`$share/g/chat/inbox/${spy.clientId}/#`, 1), 1);
    });
  });

  test('a persistent client with an inbox subscription at QoS 1 and chat/# at QoS 0 keeps everything sent while away', async () => {
    await withBroker({}, async (b, track) => {
      const id = uniqueId('away');
      const first = await connect(b, { clientId: id, clean: false });
      await first.subscribe(`chat/inbox/${id}/#`, 1);
      await first.subscribe('chat/#', 0);
      const res = await first.login(uniqueId('carol'));
      assert.equal(res.result, 'success');
      await first.end(true);
      await quietFor(300);
      const peer = await track(loggedIn(b, uniqueId('peer')));
      for (let i = 0; i < 3; i += 1) await peer.send(res.userid, `m${i}`);
      await quietFor(300);
      const back = await track(connect(b, { clientId: id, clean: false }));
      const got = await back.collect(`chat/inbox/${id}/message`, 1500);
      assert.deepEqual(got.map((m) => m.json.message).sort(), ['m0', 'm1', 'm2'],
        `expected the 3 messages sent while away, got ${got.map((m) => m.text).join(' | ')}`);
    });
  });
});

describe('log lines and the database', () => {
  test('a client without a chat session that is denied 500 times gets one log line', async () => {
    await withBroker({}, async (b, track) => {
      const c = await track(connect(b));
      for (let i = 0; i < 500; i += 1) c.client.publish('chat/inbox/other/message', 'x', { qos: 0 });
      await c.publish('chat/nothing', 'x');
      await quietFor(300);
      const lines = b.log().split('\n').filter((l) => l.includes(`by client ${c.clientId}`));
      assert.equal(lines.length, 1, `one denial line for ${c.clientId}, got ${lines.length}:\n${lines.slice(0, 3).join('\n')}`);
    });
  });

  test('the database, which lists client ids and token hashes, is mode 0600 with its -wal and -shm', async () => {
    const base = await startBroker({ plugin: false });
    const dir = base.dir;
    await base.stop();
    const file = path.join(dir, 'chat.db');
    await withBroker({ dir, options: { database: file } }, async (b, track) => {
      await track(loggedIn(b, uniqueId('dora'), { clean: false }));
      await quietFor(300);
      for (const name of [file, `${file}-wal`, `${file}-shm`]) {
        assert.equal(statSync(name).mode & 0o777, 0o600, `mode of ${name}`);
      }
    });
  });
});

describe('names that look alike are one name (NFC, UTS #39 skeletons through ICU)', () => {
  test('while alice and café are online, invisible, bidi, space-padded and look-alike names are refused', async () => {
    await withBroker({}, async (b, track) => {
      await track(loggedIn(b, 'alice'));
      await track(loggedIn(b, 'caf\u00e9'));
      const mallory = await track(connect(b));
      await mallory.subscribeInbox(1);
      for (const name of ['alice\u200b', '\ufeffalice', 'alice ', ' alice', '\u202ealice', '\u200b\u200b', '\u200d']) {
        await mallory.expectLoginFailure({ username: name }, 'invalid_username', JSON.stringify(name));
      }
      for (const name of ['\u0430lice', 'Alice', 'ALICE', 'cafe\u0301', 'CAF\u00c9']) {
        await mallory.expectLoginFailure({ username: name }, 'username_taken', JSON.stringify(name));
      }
      // The NFD spelling of a new name is stored in NFC, as its own spelling.
      const r = await mallory.login('zoe\u0301');
      assert.equal(r.result, 'success');
      assert.equal(r.username, 'zo\u00e9', 'the directory shows the NFC spelling');
      const dir = await track(connect(b));
      await dir.subscribe('chat/contacts', 1);
      const snap = await dir.next('chat/contacts', (m) => Object.keys(m.json?.person || {}).length === 3);
      const names = Object.values(snap.json.person).map((p) => Object.values(p)[0]).sort();
      assert.deepEqual(names, ['alice', 'caf\u00e9', 'zo\u00e9']);
    });
  });
});
