// Access control (DESIGN §5, decisions.md): inboxes are private, the directory is read-only,
// requests are never delivered nor retained, wildcard subscribers only get what they may read;
// topics outside chat/ behave as without the plugin (outside_chat allow), or are decided by an
// acl_file (outside_chat defer).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, chmodSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startBroker } from '../lib/broker.js';
import { brokerPerFile } from '../lib/fixture.js';
import {
  connect, loggedIn, uniqueId, PROTOCOLS, quietFor, retainedWithin,
} from '../lib/client.js';

const fx = brokerPerFile();
const { track } = fx;

const REQUEST_TOPIC = /^chat\/(login|logout|msg(\/.*)?|group\/(create|join|leave))$/;

/** What a client with this id may receive under chat/: its own inbox and the directory. */
function mayRead(clientId, topic) {
  if (!topic.startsWith('chat/')) return true;
  if (topic.startsWith(`chat/inbox/${clientId}/`)) return true;
  return topic === 'chat/contacts' || /^chat\/(users|groups)\/[^/]+$/.test(topic);
}

/** MQTT 3.1.1 refuses with 128, MQTT 5 with a reason code >= 0x80 (0x87 not authorised). */
function assertRefused(code, proto, what) {
  if (proto === 4) assert.equal(code, 128, `${what}: expected SUBACK 0x80, got ${code}`);
  else assert.equal(code, 0x87, `${what}: expected SUBACK 0x87 (not authorised), got ${code}`);
}

/** A denied QoS 1 write: MQTT 5 gets PUBACK 0x87; MQTT 3.1.1 gets a plain PUBACK. */
async function deniedWrite(client, proto, topic, payload, opts = { qos: 1 }) {
  if (proto === 5) {
    await assert.rejects(client.publish(topic, payload, opts), (err) => {
      assert.equal(err.code, 0x87, `write to ${topic}: expected PUBACK 0x87, got ${err.code} (${err.message})`);
      return true;
    }, `write to ${topic}: expected PUBACK 0x87 (not authorised)`);
  } else {
    await client.publish(topic, payload, opts);
  }
}

for (const proto of PROTOCOLS) {
  const opts = { protocolVersion: proto.protocolVersion };
  const pv = proto.protocolVersion;

  describe(proto.name, () => {
    test("another client's inbox cannot be subscribed, and nothing of it arrives", async () => {
      const victim = await track(loggedIn(fx.broker, uniqueId('victim')));
      const spy = await track(loggedIn(fx.broker, uniqueId('spy'), opts));
      for (const filter of [
        `chat/inbox/${victim.clientId}/#`,
        `chat/inbox/${victim.clientId}/message`,
        `chat/inbox/${victim.clientId}/+`,
      ]) {
        assertRefused(await spy.trySubscribe(filter, 1), pv, `SUBSCRIBE ${filter}`);
      }
      const peer = await track(loggedIn(fx.broker, uniqueId('peer')));
      await peer.send(victim.userid, 'secret');
      await victim.next(victim.inbox('message'), (m) => m.json?.message === 'secret');
      await quietFor(300);
      const leaked = spy.drain().filter((m) => !mayRead(spy.clientId, m.topic));
      assert.deepEqual(leaked.map((m) => `${m.topic} ${m.text}`), [], "the spy must get nothing of the victim's inbox");
    });

    test('filters that match only requests or unknown chat topics are refused; own inbox and directory granted', async () => {
      const c = await track(connect(fx.broker, opts));
      for (const filter of ['chat/login', 'chat/logout', 'chat/msg/#', 'chat/msg/+', 'chat/group/create', 'chat/group/#', 'chat/other']) {
        assertRefused(await c.trySubscribe(filter, 1), pv, `SUBSCRIBE ${filter}`);
      }
      for (const filter of [`chat/inbox/${c.clientId}/#`, 'chat/contacts', 'chat/users/+', 'chat/groups/+', '#', 'chat/#', 'chat/inbox/+/message']) {
        assert.equal(await c.trySubscribe(filter, 1), 1, `SUBSCRIBE ${filter} must be granted at QoS 1`);
      }
    });

    test('wildcard subscribers (#, chat/#, chat/inbox/+/message) get only their own inbox and the directory', async () => {
      const filters = ['#', 'chat/#', 'chat/inbox/+/message'];
      const eaves = [];
      for (const f of filters) {
        // logged in, but the inbox is only covered by the wildcard
        const e = await track(connect(fx.broker, opts));
        assert.equal(await e.trySubscribe(f, 1), 1, `${f} granted`);
        await e.publish('chat/login', { username: uniqueId('eave') });
        const r = await e.next(e.inbox('login-response'));
        assert.equal(r.json?.result, 'success', `login of the ${f} subscriber: ${r.text}`);
        e.userid = r.json.userid; e.username = r.json.username; e.filter = f;
        eaves.push(e);
      }
      const anon = await track(connect(fx.broker, opts));
      assert.equal(await anon.trySubscribe('#', 1), 1, '# granted to a client that never logs in');
      anon.filter = '# (not logged in)';

      // Traffic among others: a login, a group, group and direct messages, an error, a logout.
      const v = await track(loggedIn(fx.broker, uniqueId('v')));
      const p = await track(loggedIn(fx.broker, uniqueId('p'), { protocolVersion: 5 }));
      const g = await v.createGroup([p]);
      await v.send(g.groupid, 'group secret');
      await p.next(p.inbox('message'), (m) => m.json?.message === 'group secret');
      await v.send(p.userid, 'direct secret');
      await p.next(p.inbox('message'), (m) => m.json?.message === 'direct secret');
      await v.send('999991', 'error please');
      await v.expectError('message', 'unknown_room');
      const w = await track(loggedIn(fx.broker, uniqueId('w')));
      await w.publish('chat/logout', {});
      // Each eavesdropper gets its own direct message through its wildcard, exactly once.
      for (const e of eaves) {
        await p.send(e.userid, `for ${e.username}`);
        await e.next(`chat/inbox/${e.clientId}/message`, (m) => m.json?.message === `for ${e.username}`);
      }
      await quietFor(400);
      for (const e of [...eaves, anon]) {
        const all = e.drain();
        const leaked = all.filter((m) => !mayRead(e.clientId, m.topic));
        assert.deepEqual(leaked.map((m) => `${m.topic} ${m.text}`), [], `${e.filter} subscriber got what it may not read`);
        const requests = all.filter((m) => REQUEST_TOPIC.test(m.topic));
        assert.deepEqual(requests.map((m) => m.topic), [], `${e.filter} subscriber got requests`);
        const dup = all.filter((m) => m.topic === `chat/inbox/${e.clientId}/message`);
        assert.deepEqual(dup.map((m) => m.text), [], `${e.filter}: its direct message must arrive exactly once`);
      }
    });

    test('nobody can write an inbox: a spoofed chat/inbox/<victim>/... never arrives', async () => {
      const victim = await track(loggedIn(fx.broker, uniqueId('victim'), opts));
      for (const attacker of [
        await track(loggedIn(fx.broker, uniqueId('mallory'), opts)),
        await track(connect(fx.broker, opts)),
      ]) {
        const fake = { sender: '10', receiver: victim.userid, message: 'spoofed', id: '1', ts: Date.now() };
        await deniedWrite(attacker, pv, `chat/inbox/${victim.clientId}/message`, fake);
        await deniedWrite(attacker, pv, `chat/inbox/${victim.clientId}/login-response`, { result: 'success', userid: '10', username: 'x' });
        await deniedWrite(attacker, pv, `chat/inbox/${victim.clientId}/new_group`, { groupid: '11', member: {} });
        await deniedWrite(attacker, pv, `chat/inbox/${victim.clientId}/error`, { action: 'login', error: 'internal', detail: '' });
        await deniedWrite(attacker, pv, `chat/inbox/${attacker.clientId}/message`, fake); // not even one's own
      }
      // the victim itself cannot write its own inbox either
      await deniedWrite(victim, pv, `chat/inbox/${victim.clientId}/message`, { message: 'self-spoof' });
      await quietFor(400);
      const got = victim.drain().filter((m) => m.topic.startsWith(`chat/inbox/${victim.clientId}/`));
      assert.deepEqual(got.map((m) => `${m.topic} ${m.text}`), [], 'spoofed inbox publishes must not arrive');
    });

    test('nobody can write the directory: retained values and live subscribers are unaffected', async () => {
      const u = await track(loggedIn(fx.broker, uniqueId('dirowner')));
      const g = await u.createGroup([]);
      await fx.dir.until((d) => d.users[u.userid] && d.groups[g.groupid] && d.contacts?.group?.[g.groupid],
        'the user and group in the directory');
      const attacker = await track(loggedIn(fx.broker, uniqueId('vandal'), opts));
      await fx.dir.until((d) => d.users[attacker.userid] && d.contacts?.person?.[attacker.userid], 'the attacker in the directory');
      const mark = fx.dir.mark();
      const r = { qos: 1, retain: true };
      await deniedWrite(attacker, pv, 'chat/contacts', { person: { 666: { 666: 'mallory' } }, group: {} }, r);
      await deniedWrite(attacker, pv, 'chat/contacts', '', r);
      await deniedWrite(attacker, pv, `chat/users/${u.userid}`, '', r);
      await deniedWrite(attacker, pv, `chat/users/${u.userid}`, { userid: u.userid, username: 'renamed', online: false }, r);
      await deniedWrite(attacker, pv, 'chat/users/666', { userid: '666', username: 'ghost', online: true }, r);
      await deniedWrite(attacker, pv, `chat/groups/${g.groupid}`, '', r);
      await deniedWrite(attacker, pv, 'chat/groups/667', { groupid: '667', member: {} }, r);
      await deniedWrite(attacker, pv, 'chat/other/topic', 'x', r);
      await quietFor(400);
      assert.deepEqual(fx.dir.changesSince(mark), [], 'spoofed directory writes must change nothing');
      const ghosts = [
        ...await retainedWithin(fx.broker, 'chat/users/666', 300),
        ...await retainedWithin(fx.broker, 'chat/groups/667', 300),
      ];
      assert.deepEqual(ghosts.map((m) => m.text), [], 'no retained ghost entries');
      const other = await retainedWithin(fx.broker, '#', 400);
      const bad = other.filter((m) => m.topic.startsWith('chat/other'));
      assert.deepEqual(bad.map((m) => m.topic), [], 'nothing retained under chat/other');
    });

    test('requests are processed but never delivered and never retained, even when published with retain', async () => {
      const watcher = await track(connect(fx.broker, opts));
      await watcher.subscribe('#', 1);
      const r = await track(connect(fx.broker, opts));
      await r.subscribeInbox();
      const name = uniqueId('retainer');
      await r.publish('chat/login', { username: name }, { qos: 1, retain: true });
      const lr = await r.next(r.inbox('login-response'));
      assert.equal(lr.json?.result, 'success', `a login published with retain is still processed: ${lr.text}`);
      r.userid = lr.json.userid; r.username = name;
      const peer = await track(loggedIn(fx.broker, uniqueId('peer')));
      await r.publish(`chat/msg/${peer.userid}`, { message: 'retained dm' }, { qos: 1, retain: true });
      await peer.next(peer.inbox('message'), (m) => m.json?.message === 'retained dm');
      await r.publish('chat/group/create', { member: {} }, { qos: 0, retain: true });
      const ng = await r.next(r.inbox('new_group'));
      await r.publish('chat/group/join', { groupid: ng.json.groupid }, { qos: 2, retain: true });
      await r.next(r.inbox('new_group'));
      await r.publish('chat/group/leave', { groupid: ng.json.groupid }, { qos: 1, retain: true });
      await r.publish('chat/logout', {}, { qos: 1, retain: true });
      await fx.dir.until((d) => d.users[r.userid] === null, 'the retainer logged out');
      const live = watcher.drain().filter((m) => REQUEST_TOPIC.test(m.topic));
      assert.deepEqual(live.map((m) => `${m.topic} ${m.text}`), [], 'a # subscriber must never see requests');
      const late = (await retainedWithin(fx.broker, '#', 500)).filter((m) => REQUEST_TOPIC.test(m.topic));
      assert.deepEqual(late.map((m) => `${m.topic} ${m.text}`), [], 'no request is retained');
      const c = await track(connect(fx.broker, opts));
      await c.trySubscribe('chat/login/#', 1);
      await c.trySubscribe('chat/login', 1);
      const got = await c.collect('chat/login', 400);
      assert.deepEqual(got.map((m) => m.text), [], 'no retained chat/login');
    });
  });
}

describe('topics outside chat/', () => {
  /** Cross-topic order may differ between QoS levels; the order within a topic may not. */
  const stable = (list) => list.filter((m) => !m.topic.startsWith('chat/'))
    .map((m, i) => ({ topic: m.topic, text: m.text, qos: m.qos, retain: m.retain, i }))
    .sort((x, y) => (x.topic < y.topic ? -1 : x.topic > y.topic ? 1 : x.i - y.i))
    .map(({ i, ...rest }) => rest);

  /** Publishes and records the outcome: the PUBACK reason code, or the error code. */
  async function outcome(client, topic, payload, opts) {
    try {
      const r = await client.publish(topic, payload, opts);
      return r?.reasonCode ?? 0;
    } catch (err) {
      return `refused ${err.code}`;
    }
  }

  /** Runs the same pub/sub scenario on a broker; returns everything the clients observed. */
  async function scenario(b, filters, publishes) {
    const cs = [];
    const mk = async (o) => { const c = await connect(b, o); cs.push(c); return c; };
    try {
      const sub4 = await mk({ protocolVersion: 4 });
      const sub5 = await mk({ protocolVersion: 5 });
      const granted = [];
      for (const [f, q] of filters) granted.push(await sub4.trySubscribe(f, q), await sub5.trySubscribe(f, q));
      const pub4 = await mk({ protocolVersion: 4 });
      const pub5 = await mk({ protocolVersion: 5 });
      const acks = [];
      for (const [who, topic, payload, opts] of publishes) acks.push(await outcome(who === 4 ? pub4 : pub5, topic, payload, opts));
      await outcome(pub4, 'sensors/open/end', 'end', { qos: 1 });
      for (const c of [sub4, sub5]) await c.next('sensors/open/end');
      // QoS 2 deliveries complete (PUBREL) after later QoS 0/1 ones may have arrived: leave a
      // window for stragglers, the same on both brokers, before comparing.
      await quietFor(300);
      const live = { sub4: stable(sub4.drain()), sub5: stable(sub5.drain()) };
      const late = await mk({ protocolVersion: 5 });
      await late.subscribe('sensors/#', 1);
      const z = await late.next('sensors/open/z', (m) => m.retain);
      await quietFor(300);
      const lateRetained = stable([z, ...late.drain()]);
      await pub4.publish('sensors/open/z', '', { qos: 1, retain: true }); // clears
      await pub4.publish('sensors/open/a', '', { qos: 1, retain: true });
      const late2 = await mk({ protocolVersion: 4 });
      await late2.subscribe('sensors/#', 1);
      await quietFor(300);
      const late2Retained = stable(late2.drain());
      return { granted, acks, live, lateRetained, late2Retained };
    } finally {
      await Promise.all(cs.map((c) => c.end(true)));
    }
  }

  const FILTERS = [['sensors/#', 2], ['+/+/deep', 0], ['#', 1], ['sensors/secret/#', 1], ['sensors/ro/#', 1]];
  const PUBLISHES = [
    [4, 'sensors/open/a', 'retained-a', { qos: 1, retain: true }],
    [5, 'sensors/open/b', 'q0', { qos: 0 }],
    [5, 'sensors/open/c', 'q2', { qos: 2 }],
    [4, 'sensors/x/deep', 'deep', { qos: 1 }],
    [5, 'sensors/ro/t', 'read-only', { qos: 1 }],
    [4, 'sensors/ro/t', 'read-only', { qos: 1 }],
    [5, 'sensors/secret/t', 'secret', { qos: 1 }],
    [4, 'sensors/secret/t', 'secret', { qos: 2 }],
    [5, 'chatter/x', 'not chat', { qos: 1 }],
    [5, 'Chat/x', 'case differs', { qos: 1 }],
    [4, 'x/chat/y', 'chat inside', { qos: 1 }],
    [5, 'sensors/open/z', 'retained-z', { qos: 1, retain: true }],
    [5, 'sensors/open/empty', '', { qos: 1 }],
  ];

  test('pub/sub outside chat/ (QoS 0-2, retained, wildcards) is the same as on a broker without the plugin', async () => {
    const plain = await startBroker({ plugin: false });
    try {
      const withPlugin = await scenario(fx.broker, FILTERS, PUBLISHES);
      const without = await scenario(plain, FILTERS, PUBLISHES);
      assert.deepEqual(withPlugin, without, 'outside chat/ the plugin must change nothing');
      assert.ok(withPlugin.live.sub4.some((m) => m.topic === 'sensors/secret/t'), 'sanity: everything is allowed');
      assert.equal(withPlugin.lateRetained.length, 2, `sanity: two retained messages: ${JSON.stringify(withPlugin.lateRetained)}`);
    } finally {
      await plain.stop();
      plain.cleanup();
    }
  });

  test('plugin_opt_outside_chat defer with an acl_file: the acl_file decides outside chat/ as without the plugin; chat still works', async () => {
    const aclDir = mkdtempSync(path.join(os.tmpdir(), 'chat-acl-'));
    chmodSync(aclDir, 0o755);
    const aclPath = path.join(aclDir, 'acl');
    writeFileSync(aclPath, 'topic readwrite sensors/open/#\ntopic read sensors/ro/#\ntopic readwrite +/+/deep\n');
    chmodSync(aclPath, 0o644);
    const b = await startBroker({ options: { outside_chat: 'defer' }, extraConfig: `acl_file ${aclPath}` });
    const plain = await startBroker({ plugin: false, extraConfig: `acl_file ${aclPath}` });
    const cs = [];
    const mk = async (p) => { const c = await p; cs.push(c); return c; };
    try {
      const deferred = await scenario(b, FILTERS, PUBLISHES);
      const byAclFile = await scenario(plain, FILTERS, PUBLISHES);
      assert.deepEqual(deferred, byAclFile, 'with outside_chat defer the acl_file alone decides outside chat/');
      assert.ok(!deferred.live.sub4.some((m) => m.topic.startsWith('sensors/secret') || m.topic.startsWith('sensors/ro')),
        `sanity: the acl_file denies sensors/secret and writes to sensors/ro: ${JSON.stringify(deferred.live.sub4)}`);
      assert.ok(deferred.live.sub4.some((m) => m.topic === 'sensors/open/a'), 'sanity: sensors/open is allowed');

      // chat is decided by the plugin, not by the acl_file (which knows nothing of chat/)
      for (const pv of [4, 5]) {
        const a = await mk(loggedIn(b, uniqueId('da'), { protocolVersion: pv }));
        const bb = await mk(loggedIn(b, uniqueId('db')));
        await a.send(bb.userid, 'chat under defer');
        const dm = await bb.next(bb.inbox('message'), (x) => x.json?.message === 'chat under defer');
        assert.equal(dm.json.sender, a.userid);
        const reader = await mk(connect(b, { protocolVersion: pv }));
        assert.equal(await reader.trySubscribe('chat/contacts', 1), 1, 'directory readable under defer');
        const contacts = await reader.next('chat/contacts', (x) => x.json?.person?.[bb.userid]);
        assert.deepEqual(contacts.json.person[a.userid], { [a.userid]: a.username });
        assertRefused(await reader.trySubscribe(`chat/inbox/${a.clientId}/#`, 1), pv, "another's inbox under defer");
        await deniedWrite(reader, pv, `chat/inbox/${a.clientId}/message`, { message: 'spoof' });
        const spoofs = await a.collect(a.inbox('message'), 300);
        assert.deepEqual(spoofs.map((x) => x.text), [], 'spoofed inbox publish under defer');
      }
    } finally {
      await Promise.all(cs.map((c) => c.end(true)));
      await b.stop();
      await plain.stop();
      b.cleanup();
      plain.cleanup();
      rmSync(aclDir, { recursive: true, force: true });
    }
  });
});
