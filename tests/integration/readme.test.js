// The documentation stays true: mosquitto.conf.example starts a working broker, and the README's
// walkthrough, run command by command with Debian's mosquitto-clients, prints what the README
// says it prints.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot, pluginPath, freePort, startBroker } from '../lib/broker.js';
import { connect } from '../lib/client.js';
import { rowsMarkdown } from './hostile_table.test.js';

const run = promisify(execFile);

// The example configuration, changed only where a test must: loopback ports, this build's
// plugin, a temporary persistence folder, and root as the broker's user.
function exampleConfig(port, wsPort, dir) {
  const text = readFileSync(path.join(repoRoot, 'mosquitto.conf.example'), 'utf8');
  const replaced = text
    .replace(/^listener 1883$/m, `listener ${port} 127.0.0.1`)
    .replace(/^listener 8080$/m, `listener ${wsPort} lo`)
    .replace(/^plugin .*$/m, `plugin ${pluginPath}`)
    .replace(/^http_dir .*$/m, `http_dir ${path.join(repoRoot, 'web')}`)
    .replace(/^persistence_location .*$/m, `persistence_location ${dir}/`)
    .replace(/^plugin_opt_database .*$/m, `plugin_opt_database ${dir}/chat.db`);
  for (const line of [`listener ${port} 127.0.0.1`, `listener ${wsPort} lo`, `plugin ${pluginPath}`]) {
    assert.ok(replaced.includes(line), `mosquitto.conf.example no longer has the line this test replaces with '${line}'`);
  }
  return `${replaced}\nuser root\nlog_dest stderr\n`;
}

// The shell block of the README's walkthrough, as its lines.
function walkthroughLines() {
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Walkthrough'));
  const block = section.match(/```sh\n([\s\S]*?)```/);
  assert.ok(block, 'the README has a walkthrough shell block');
  return block[1].split('\n');
}

let broker;

before(async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chat-example-'));
  chmodSync(dir, 0o777);
  const port = await freePort();
  const wsPort = await freePort();
  writeFileSync(path.join(dir, 'example.conf'), exampleConfig(port, wsPort, dir));
  // startBroker writes its own configuration; start the example's instead through `extra`.
  broker = await startBroker({ port, dir, plugin: false, configOverride: path.join(dir, 'example.conf'), websockets: true, wsPort });
});

after(async () => {
  await broker?.stop();
});

test('mosquitto.conf.example loads the plugin with every documented option', () => {
  const log = broker.log();
  assert.match(log, /chat: mosquitto-chat \S+ loaded: max_message_bytes=8192 offline_expiry=86400 reconnect_grace=60 max_groups_per_user=500 max_group_members=1000 max_groups_added_by_others=500 max_sessions_per_user=10 max_users=50000 max_groups=100000 request_rate=50 request_burst=1000 delivery_budget=262144 delivery_burst=16777216 offline_queue=1000 listen_backlog=0 history_days=365 history_per_room=10000 bind_mqtt_username=false outside_chat=allow history_visibility=joined database=\S+chat\.db state_file=\(none\)/,
    `expected the plugin's start-up line in the broker log; got:\n${log}`);
});

test("the README's walkthrough prints what the README says", async () => {
  const lines = walkthroughLines();
  let session = '';
  const readers = [];
  const outputs = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line.startsWith('S=')) {
      session = line.slice(3, -1).replace('-p 1883', `-p ${broker.port}`).replace('-h localhost', '-h 127.0.0.1');
      continue;
    }
    if (!/^mosquitto_(rr|pub|sub) /.test(line)) continue;
    const argv = line
      .replace(/\$S/g, session)
      .replace('-h localhost', `-h 127.0.0.1 -p ${broker.port}`)
      .match(/'[^']*'|\S+/g)
      .map((word) => word.replace(/^'(.*)'$/, '$1'));
    // The comment after a command says what it prints ("# <output>").
    const expected = lines[i + 1]?.trim().startsWith('# {') || lines[i + 1]?.trim().startsWith("# alice's terminal:")
      ? lines[i + 1].trim().replace(/^# (alice's terminal: )?/, '')
      : undefined;

    if (argv[0] === 'mosquitto_sub' && !argv.includes('-W')) {
      // The long-running reader: keep it in the background and wait until it has subscribed.
      // Line-buffered, so its output arrives while it runs.
      const child = spawn('stdbuf', ['-oL', ...argv, '-d'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const reader = { child, out: '' };
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${line} did not subscribe: ${reader.out}`)), 5000);
        for (const stream of [child.stdout, child.stderr]) {
          stream.setEncoding('utf8');
          stream.on('data', (chunk) => {
            reader.out += chunk;
            if (reader.out.includes('SUBACK')) { clearTimeout(timer); resolve(); }
          });
        }
      });
      readers.push(reader);
      continue;
    }
    let stdout;
    try {
      ({ stdout } = await run(argv[0], argv.slice(1), { timeout: 10000 }));
    } catch (err) {
      // mosquitto_sub -W exits non-zero when its time is up; what it printed is the point.
      if (!argv.includes('-W')) throw new Error(`${line} failed: ${err.stderr || err.message}`);
      stdout = err.stdout;
    }
    outputs.push({ line, stdout });
    if (expected && !expected.includes('chat/inbox/alice/message')) {
      // A token is random: the README shows where it is, the test checks its form.
      const printed = JSON.parse(stdout.trim());
      const wanted = JSON.parse(expected);
      if (typeof wanted.token === 'string' && wanted.token.startsWith('<')) {
        assert.match(printed.token ?? '', /^[0-9a-f]{32}$/, `${line}\nprinted ${stdout} without a token`);
        wanted.token = printed.token;
      }
      assert.deepEqual(printed, wanted, `${line}\nprinted ${stdout}`);
    }
  }

  // alice's reader saw bob's message as the README shows it (id and ts vary).
  const reader = readers[0];
  assert.ok(reader, 'the walkthrough starts a reader for alice');
  const deadline = Date.now() + 5000;
  while (!reader.out.includes('chat/inbox/alice/message') && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  for (const r of readers) r.child.kill();
  const got = reader.out.split('\n').find((l) => l.startsWith('chat/inbox/alice/message '));
  assert.ok(got, `alice's reader should print bob's message; it printed:\n${reader.out}`);
  const message = JSON.parse(got.slice('chat/inbox/alice/message '.length));
  assert.equal(message.sender, '20');
  assert.equal(message.receiver, '10');
  assert.equal(message.message, 'hi alice');
  assert.equal(typeof message.ts, 'number');

  // The directory listing at the end shows both users and the group.
  const listing = outputs.at(-1).stdout;
  assert.match(listing, /^chat\/contacts \{"person":\{"10":\{"10":"alice"\},"20":\{"20":"bob"\}\},"group":\{"11":\{"20":"bob","10":"alice"\}\}\}$/m,
    `the directory listing should show alice, bob and group 11; it printed:\n${listing}`);
});

test("the README's MQTT.js example logs in and sends", async () => {
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const block = readme.match(/```js\n(import mqtt[\s\S]*?)```/);
  assert.ok(block, 'the README has an MQTT.js example');
  // Alice (user 10) must exist for the example's message; she does, from the walkthrough.
  const alice = await connect(broker, { clientId: 'alice', clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } });
  await alice.subscribeInbox(1);
  const code = block[1]
    .replace("'mqtt://localhost:1883'", `'${broker.url}'`)
    .replace("import mqtt from 'mqtt';", '')
    .replace('console.log(topic, payload.toString())', 'seen.push(topic)');
  const seen = [];
  const fn = new Function('mqtt', 'seen', `return (async () => { ${code}; return client; })();`);
  const { default: mqtt } = await import('mqtt');
  const client = await fn(mqtt, seen);
  const message = await alice.next('chat/inbox/alice/message');
  assert.equal(message.json.message, 'hi alice');
  const deadline = Date.now() + 3000;
  while (!seen.includes('chat/inbox/carol-laptop/login-response') && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.ok(seen.includes('chat/inbox/carol-laptop/login-response'), `carol should get her login-response; got ${seen}`);
  await client.endAsync();
  await alice.end();
});

test("the README's table of hostile inputs is the one the tests run", () => {
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const start = readme.indexOf('<!-- hostile-inputs');
  const end = readme.indexOf('<!-- /hostile-inputs -->');
  assert.ok(start >= 0 && end > start, 'the README has the hostile-inputs markers');
  const inReadme = readme.slice(readme.indexOf('\n', start) + 1, end).trim();
  assert.equal(inReadme, rowsMarkdown().trim(),
    'README.md must show exactly the rows of tests/integration/hostile_table.test.js (paste rowsMarkdown())');
});
