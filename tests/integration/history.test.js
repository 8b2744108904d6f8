// History and idempotent sends against a real broker (docs/protocol.md §4.4, §4.11, §9):
// chat/history paging (before, after, both, neither; limit; complete), a new session of a user
// reading what was said before it existed, catch-up across rooms after a dropped tab, the
// summary, visibility (joined, shared), direct conversations (also after the peer is gone),
// history_unavailable without a database, the per-room cap, and cid / sent with a real QoS 2
// retransmission. Also: without a database a restart hands out no old id and shows no ghost
// directory record, even with mosquitto's own persistence.

import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import { startBroker } from '../lib/broker.js';
import {
  connect, loggedIn, uniqueId, quietFor, retainedWithin,
} from '../lib/client.js';

const brokers = new Set();
const clients = new Set();
after(async () => {
  await Promise.all([...clients].map((c) => c.end(true)));
  for (const b of brokers) {
    await b.stop();
    b.cleanup();
  }
});

async function broker(opts = {}) {
  const b = await startBroker(opts);
  brokers.add(b);
  return b;
}

async function track(promise) {
  const c = await promise;
  clients.add(c);
  return c;
}

const P5 = { protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 3600 } };

let qids = 0;
/**
 * Publishes chat/history with `req` (a qid is added) and resolves with the reply payload: the
 * history document, or the error document ({action, error, detail, qid}).
 */
async function history(c, req = {}) {
  qids += 1;
  const qid = `q${qids}`;
  await c.publish('chat/history', { ...req, qid });
  const m = await c.nextWhere(
    (x) => (x.topic === c.inbox('history') || x.topic === c.inbox('error')) && x.json?.qid === qid,
    `the answer to history request ${JSON.stringify({ ...req, qid })}`,
  );
  return m.json;
}

/** The history reply of `req`, which must succeed; checks the reply's shape. */
async function page(c, req = {}) {
  const r = await history(c, req);
  assert.ok(Array.isArray(r.messages), `a history reply, got ${JSON.stringify(r)}`);
  const keys = Object.keys(r).sort();
  const want = req.room !== undefined ? ['complete', 'messages', 'qid', 'room'] : ['complete', 'messages', 'qid'];
  assert.deepEqual(keys, want, `the reply's fields for ${JSON.stringify(req)}: ${JSON.stringify(r)}`);
  if (req.room !== undefined) assert.equal(r.room, req.room, 'the reply names the room asked for');
  assert.equal(typeof r.complete, 'boolean');
  return r;
}

const texts = (r) => r.messages.map((m) => m.message);

/** Sends `n` messages into `room` from `c` and resolves with their deliveries to `reader`. */
async function say(c, room, prefix, n, reader) {
  for (let i = 1; i <= n; i++) await c.send(room, `${prefix}${i}`);
  const got = [];
  for (let i = 1; i <= n; i++) {
    got.push((await reader.next(reader.inbox('message'), (m) => m.json?.message === `${prefix}${i}`)).json);
  }
  return got;
}

describe('history with a database (visibility joined, the default)', () => {
  let b; let alice; let bob; let gid; let live;

  test('set-up: alice and bob in a group, bob writes m1..m7', async () => {
    b = await broker();
    alice = await track(loggedIn(b, uniqueId('alice'), P5));
    bob = await track(loggedIn(b, uniqueId('bob')));
    gid = (await alice.createGroup([bob])).groupid;
    live = await say(bob, gid, 'm', 7, alice);
  });

  test('neither cursor: the newest messages, oldest first, exactly as they were delivered', async () => {
    const r = await page(alice, { room: gid });
    assert.deepEqual(r.messages, live, 'history holds the live deliveries, byte for byte in JSON');
    assert.equal(r.complete, true, 'all 7 fit the default limit of 50');
    const last3 = await page(alice, { room: gid, limit: 3 });
    assert.deepEqual(texts(last3), ['m5', 'm6', 'm7']);
    assert.equal(last3.complete, false, 'older messages exist');
  });

  test('before: older pages until complete', async () => {
    const ids = live.map((m) => m.id);
    let r = await page(alice, { room: gid, before: ids[4], limit: 3 });
    assert.deepEqual(texts(r), ['m2', 'm3', 'm4']);
    assert.equal(r.complete, false);
    r = await page(alice, { room: gid, before: ids[1], limit: 3 });
    assert.deepEqual(texts(r), ['m1']);
    assert.equal(r.complete, true, 'nothing older than m1');
  });

  test('after: newer pages until complete', async () => {
    const ids = live.map((m) => m.id);
    let r = await page(alice, { room: gid, after: ids[3], limit: 2 });
    assert.deepEqual(texts(r), ['m5', 'm6']);
    assert.equal(r.complete, false);
    r = await page(alice, { room: gid, after: ids[5], limit: 2 });
    assert.deepEqual(texts(r), ['m7']);
    assert.equal(r.complete, true);
    r = await page(alice, { room: gid, after: ids[6] });
    assert.deepEqual(r.messages, []);
    assert.equal(r.complete, true);
  });

  test('both: the oldest messages strictly between, complete within the range', async () => {
    const ids = live.map((m) => m.id);
    let r = await page(alice, { room: gid, after: ids[1], before: ids[5], limit: 2 });
    assert.deepEqual(texts(r), ['m3', 'm4']);
    assert.equal(r.complete, false, 'm5 is still in the range');
    r = await page(alice, { room: gid, after: ids[1], before: ids[5], limit: 10 });
    assert.deepEqual(texts(r), ['m3', 'm4', 'm5']);
    assert.equal(r.complete, true, 'the range is exhausted although m6 and m7 exist');
  });

  test('a new session of the same user reads what was said before it existed', async () => {
    // In anonymous mode a second client id joins alice with her token (§2.6).
    const lr = await track(connect(b));
    await lr.subscribeInbox();
    const token = alice.token;
    assert.ok(token, 'alice kept her token');
    const res = await lr.login(alice.username, { token });
    assert.equal(res.result, 'success', JSON.stringify(res));
    assert.equal(res.userid, alice.userid);
    const r = await page(lr, { room: gid });
    assert.deepEqual(r.messages, live);
  });

  test('visibility joined: a joiner sees from its join; leaving and re-joining starts again', async () => {
    const dave = await track(loggedIn(b, uniqueId('dave')));
    const outside = await history(dave, { room: gid });
    assert.equal(outside.error, 'not_a_member', `not yet a member: ${JSON.stringify(outside)}`);
    await dave.joinGroup(gid);
    await say(bob, gid, 'j', 2, dave);
    let r = await page(dave, { room: gid });
    assert.deepEqual(texts(r), ['j1', 'j2'], 'only what was sent since the join');
    assert.equal(r.complete, true);
    await dave.publish('chat/group/leave', { groupid: gid });
    const gone = await history(dave, { room: gid });
    assert.equal(gone.error, 'not_a_member', JSON.stringify(gone));
    await say(bob, gid, 'x', 1, alice);
    await dave.joinGroup(gid);
    await say(bob, gid, 'r', 1, dave);
    r = await page(dave, { room: gid });
    assert.deepEqual(texts(r), ['r1'], 'the re-join starts a new membership');
    // alice, a member since the group began, still sees everything.
    r = await page(alice, { room: gid, limit: 100 });
    assert.deepEqual(texts(r), ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'j1', 'j2', 'x1', 'r1']);
  });
});

describe('catch-up and summary', () => {
  test('a dropped clean tab catches up across every room of its user with "after"; the summary lists each room once', async () => {
    const b = await broker();
    // carol's phone keeps her user while her clean browser tab comes and goes.
    const phone = await track(loggedIn(b, uniqueId('carol-phone'), P5));
    const bob = await track(loggedIn(b, uniqueId('bob')));
    const eve = await track(loggedIn(b, uniqueId('eve')));
    const g1 = (await bob.createGroup([phone])).groupid;
    const g2 = (await phone.createGroup([eve])).groupid;
    const notHers = (await bob.createGroup([eve])).groupid;

    let tab = await track(connect(b));
    await tab.subscribeInbox();
    assert.equal((await tab.login(phone.username, { token: phone.token })).result, 'success');
    await bob.send(g1, 'before the drop');
    const seen = (await tab.next(tab.inbox('message'), (m) => m.json?.message === 'before the drop')).json;
    await tab.end(true); // the tab's connection drops (a clean session with subscriptions: its session ends)

    // While no tab is there: messages in both groups, a direct message, one in a group carol is not in.
    await bob.send(g1, 'g1 while away');
    await eve.send(g2, 'g2 while away');
    await eve.send(notHers, 'not for carol');
    await bob.send(phone.userid, 'dm while away');
    await phone.send(bob.userid, 'carol from her phone');
    await bob.next(bob.inbox('message'), (m) => m.json?.message === 'carol from her phone');

    tab = await track(connect(b));
    await tab.subscribeInbox();
    assert.equal((await tab.login(phone.username, { token: phone.token })).result, 'success');
    const r = await page(tab, { after: seen.id });
    assert.deepEqual(texts(r), ['g1 while away', 'g2 while away', 'dm while away', 'carol from her phone'],
      'every room of hers, in id order, nothing of a group she is not in');
    assert.equal(r.complete, true);
    const ids = r.messages.map((m) => BigInt(m.id));
    assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]), 'oldest first');
    assert.deepEqual(r.messages.map((m) => m.receiver), [g1, g2, phone.userid, bob.userid]);

    // Paging through a catch-up: limit 3, then after the last id of the page.
    const p1 = await page(tab, { after: seen.id, limit: 3 });
    assert.equal(p1.complete, false);
    const p2 = await page(tab, { after: p1.messages.at(-1).id, limit: 3 });
    assert.deepEqual([...texts(p1), ...texts(p2)], texts(r));
    assert.equal(p2.complete, true);

    // Summary: the newest message of each of her rooms, newest first.
    const s = await page(tab, {});
    assert.deepEqual(texts(s), ['carol from her phone', 'g2 while away', 'g1 while away'],
      'one message per room (the direct conversation with bob once), newest first');
    assert.equal(s.complete, true);
    const s2 = await page(tab, { limit: 2 });
    assert.deepEqual(texts(s2), ['carol from her phone', 'g2 while away']);
    assert.equal(s2.complete, false, 'a third room exists');
  });
});

describe('visibility shared', () => {
  test('with plugin_opt_history_visibility shared a new member reads the group\'s whole history', async () => {
    const b = await broker({ options: { history_visibility: 'shared' } });
    const alice = await track(loggedIn(b, uniqueId('alice')));
    const bob = await track(loggedIn(b, uniqueId('bob')));
    const gid = (await alice.createGroup([bob])).groupid;
    await say(alice, gid, 's', 3, bob);
    const dave = await track(loggedIn(b, uniqueId('dave')));
    await dave.joinGroup(gid);
    const r = await page(dave, { room: gid });
    assert.deepEqual(texts(r), ['s1', 's2', 's3']);
    assert.equal(r.complete, true);
  });
});

describe('direct conversations', () => {
  test('readable by both participants, and by one after the other is gone', async () => {
    const b = await broker();
    const erin = await track(loggedIn(b, uniqueId('erin')));
    const frank = await track(loggedIn(b, uniqueId('frank')));
    await erin.send(frank.userid, 'hi frank');
    await frank.next(frank.inbox('message'), (m) => m.json?.message === 'hi frank');
    await frank.send(erin.userid, 'hi erin');
    await erin.next(erin.inbox('message'), (m) => m.json?.message === 'hi erin');
    for (const [me, peer] of [[erin, frank], [frank, erin]]) {
      const r = await page(me, { room: peer.userid });
      assert.deepEqual(texts(r), ['hi frank', 'hi erin'], `${me.username} reads the conversation`);
      assert.deepEqual(r.messages.map((m) => [m.sender, m.receiver]),
        [[erin.userid, frank.userid], [frank.userid, erin.userid]]);
    }
    await frank.publish('chat/logout', {});
    await quietFor(100);
    const r = await page(erin, { room: frank.userid });
    assert.deepEqual(texts(r), ['hi frank', 'hi erin'], 'still readable after frank is gone');
    // Someone else's conversation is not visible: a third user reads an empty one.
    const gina = await track(loggedIn(b, uniqueId('gina')));
    const none = await page(gina, { room: erin.userid });
    assert.deepEqual(none.messages, []);
    assert.equal(none.complete, true);
  });
});

describe('errors', () => {
  test('history_unavailable without a database; the qid is echoed', async () => {
    const b = await broker({ options: { database: null } });
    const alice = await track(loggedIn(b, uniqueId('alice')));
    const r = await history(alice, {});
    const { detail, ...rest } = r;
    assert.deepEqual(rest, { action: 'history', error: 'history_unavailable', qid: rest.qid });
    assert.match(rest.qid, /^q\d+$/);
    assert.equal(typeof detail, 'string');
  });

  test('request errors answer on error with action history and the qid', async () => {
    const b = await broker();
    const alice = await track(loggedIn(b, uniqueId('alice')));
    const bob = await track(loggedIn(b, uniqueId('bob')));
    const gid = (await bob.createGroup([])).groupid;
    const cases = [
      [{ room: gid }, 'not_a_member'],
      [{ room: '999999991' }, 'unknown_room'],
      [{ room: 'abc' }, 'unknown_room'],
      [{ before: '5' }, 'invalid_request'],
      [{ room: gid, after: '9', before: '9' }, 'invalid_request'],
      [{ room: bob.userid, limit: 0 }, 'invalid_request'],
      [{ room: bob.userid, after: '012' }, 'invalid_request'],
    ];
    for (const [req, code] of cases) {
      const r = await history(alice, req);
      assert.equal(r.error, code, `${JSON.stringify(req)}: ${JSON.stringify(r)}`);
      assert.equal(r.action, 'history');
    }
    const anon = await track(connect(b));
    await anon.subscribeInbox();
    const r = await history(anon, {});
    assert.equal(r.error, 'not_logged_in', JSON.stringify(r));
  });
});

describe('retention', () => {
  test('history_per_room 3: a room keeps its newest 3 messages, groups and direct conversations alike', async () => {
    const b = await broker({ options: { history_per_room: 3 } });
    const alice = await track(loggedIn(b, uniqueId('alice')));
    const bob = await track(loggedIn(b, uniqueId('bob')));
    const gid = (await alice.createGroup([bob])).groupid;
    await say(alice, gid, 'k', 5, bob);
    await say(alice, bob.userid, 'd', 5, bob);
    let r = await page(bob, { room: gid });
    assert.deepEqual(texts(r), ['k3', 'k4', 'k5']);
    assert.equal(r.complete, true, 'the pruned messages are gone, not merely hidden');
    r = await page(bob, { room: alice.userid });
    assert.deepEqual(texts(r), ['d3', 'd4', 'd5']);
  });

  test('a deleted group\'s history is deleted', async () => {
    const b = await broker({ options: { history_visibility: 'shared' } });
    const alice = await track(loggedIn(b, uniqueId('alice')));
    const gid = (await alice.createGroup([])).groupid;
    await alice.send(gid, 'soon gone');
    await alice.publish('chat/group/leave', { groupid: gid });
    const r = await history(alice, { room: gid });
    assert.equal(r.error, 'unknown_room', JSON.stringify(r));
  });
});

// ------------------------------------------------------------------------------------------
// cid and sent
// ------------------------------------------------------------------------------------------

/** A bare MQTT 3.1.1 connection that writes packets as given (for a true retransmission). */
async function rawClient(b, clientId) {
  const socket = net.connect({ host: '127.0.0.1', port: b.port });
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const packets = [];
  let waiters = [];
  parser.on('packet', (p) => {
    packets.push(p);
    waiters = waiters.filter((w) => !w.pred(p) || (w.resolve(p), false));
  });
  socket.on('data', (d) => parser.parse(d));
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  const raw = {
    packets,
    send(p) { socket.write(mqttPacket.generate(p)); },
    wait(pred, what) {
      const found = packets.find(pred);
      if (found) { packets.splice(packets.indexOf(found), 1); return Promise.resolve(found); }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`expected ${what}; got ${JSON.stringify(packets.map((p) => p.cmd))}`)), 3000);
        waiters.push({
          pred,
          resolve: (p) => { clearTimeout(timer); packets.splice(packets.indexOf(p), 1); resolve(p); },
        });
      });
    },
    end() { socket.destroy(); },
  };
  raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 60 });
  await raw.wait((p) => p.cmd === 'connack', 'CONNACK');
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `chat/inbox/${clientId}/#`, qos: 1 }] });
  await raw.wait((p) => p.cmd === 'suback', 'SUBACK');
  return raw;
}

describe('cid and sent', () => {
  test('a QoS 2 message with a cid retransmitted with DUP (same packet id) is delivered once and acknowledged twice with the same id', async () => {
    const b = await broker();
    const bob = await track(loggedIn(b, uniqueId('bob')));
    const id = uniqueId('alice-raw');
    const raw = await rawClient(b, id);
    clients.add({ end: async () => raw.end() });
    raw.send({ cmd: 'publish', topic: 'chat/login', payload: JSON.stringify({ username: id }), qos: 1, messageId: 2 });
    const lr = await raw.wait((p) => p.cmd === 'publish' && p.topic === `chat/inbox/${id}/login-response`, 'login-response');
    const userid = JSON.parse(lr.payload.toString()).userid;

    const body = JSON.stringify({ message: 'exactly once', cid: 'c-1' });
    raw.send({ cmd: 'publish', topic: `chat/msg/${bob.userid}`, payload: body, qos: 2, messageId: 7 });
    await raw.wait((p) => p.cmd === 'pubrec' && p.messageId === 7, 'PUBREC 7');
    // The PUBREC is "lost": the client sends the PUBLISH again, DUP set, same packet id.
    raw.send({ cmd: 'publish', topic: `chat/msg/${bob.userid}`, payload: body, qos: 2, messageId: 7, dup: true });
    await raw.wait((p) => p.cmd === 'pubrec' && p.messageId === 7, 'the second PUBREC 7');
    raw.send({ cmd: 'pubrel', messageId: 7 });
    await raw.wait((p) => p.cmd === 'pubcomp' && p.messageId === 7, 'PUBCOMP 7');

    const sentTopic = `chat/inbox/${id}/sent`;
    const first = await raw.wait((p) => p.cmd === 'publish' && p.topic === sentTopic, 'the first sent');
    const second = await raw.wait((p) => p.cmd === 'publish' && p.topic === sentTopic, 'the second sent');
    const s1 = JSON.parse(first.payload.toString());
    const s2 = JSON.parse(second.payload.toString());
    assert.deepEqual(Object.keys(s1), ['cid', 'id', 'ts', 'receiver'], `sent's fields: ${JSON.stringify(s1)}`);
    assert.equal(s1.cid, 'c-1');
    assert.equal(s1.receiver, bob.userid);
    assert.equal(typeof s1.ts, 'number');
    assert.deepEqual(s2, s1, 'the repeat is acknowledged with the original id and ts');

    const delivered = await bob.collect(bob.inbox('message'), 400);
    assert.equal(delivered.length, 1, `bob gets the message once: ${delivered.map((m) => m.text)}`);
    assert.deepEqual(delivered[0].json, {
      sender: userid, receiver: bob.userid, message: 'exactly once', id: s1.id, ts: s1.ts, cid: 'c-1',
    });
    // History holds it once too.
    const r = await page(bob, { room: userid });
    assert.deepEqual(r.messages, [delivered[0].json]);
  });

  test('mqtt.js resends (QoS 2 with dup, and from another session of the user) are not delivered again', async () => {
    const b = await broker();
    const alice = await track(loggedIn(b, uniqueId('alice'), P5));
    const bob = await track(loggedIn(b, uniqueId('bob')));
    const gid = (await alice.createGroup([bob])).groupid;
    await alice.publish(`chat/msg/${gid}`, { message: 'once', cid: 'x' }, { qos: 2 });
    const s1 = (await alice.next(alice.inbox('sent'))).json;
    await alice.publish(`chat/msg/${gid}`, { message: 'once', cid: 'x' }, { qos: 2, dup: true });
    const s2 = (await alice.next(alice.inbox('sent'))).json;
    assert.deepEqual(s2, s1);
    const laptop = await track(connect(b));
    await laptop.subscribeInbox();
    assert.equal((await laptop.login(alice.username, { token: alice.token })).result, 'success');
    await laptop.publish(`chat/msg/${gid}`, { message: 'once', cid: 'x' });
    const s3 = (await laptop.next(laptop.inbox('sent'))).json;
    assert.deepEqual(s3, s1, 'another session of the user gets the original acknowledgement');
    assert.deepEqual((await alice.collect(alice.inbox('sent'), 100)), [], 'only the sending session is acknowledged');
    const got = await bob.collect(bob.inbox('message'), 400);
    assert.deepEqual(got.map((m) => m.json), [{
      sender: alice.userid, receiver: gid, message: 'once', id: s1.id, ts: s1.ts, cid: 'x',
    }]);
    // Another cid is another message; a message without a cid gets no sent.
    await alice.publish(`chat/msg/${gid}`, { message: 'twice', cid: 'y' });
    const s4 = (await alice.next(alice.inbox('sent'))).json;
    assert.notEqual(s4.id, s1.id);
    await alice.send(gid, 'no cid');
    await bob.next(bob.inbox('message'), (m) => m.json?.message === 'no cid' && !('cid' in m.json));
    assert.deepEqual(await alice.collect(alice.inbox('sent'), 200), [], 'no sent without a cid');
  });
});

// ------------------------------------------------------------------------------------------
// Without a database
// ------------------------------------------------------------------------------------------

describe('no ghosts without a database', () => {
  test('after a graceful restart with mosquitto persistence: no old id is handed out, old directory records are never delivered and are cleared', async () => {
    let b = await broker({ persistence: true, options: { database: null } });
    const aliceId = uniqueId('alice');
    const alice = await connect(b, { clientId: aliceId, ...P5 });
    await alice.subscribeInbox();
    const res = await alice.login('alice');
    assert.equal(res.result, 'success');
    alice.userid = res.userid;
    const gid = (await alice.createGroup([])).groupid;
    assert.ok((await retainedWithin(b, `chat/users/${res.userid}`)).some((m) => m.text.length > 0), 'alice is in the directory');
    await alice.end();
    await quietFor(300);

    brokers.delete(b);
    b = await b.restart();
    brokers.add(b);

    // A new subscriber gets no record of the old ids (an empty payload that clears one is fine).
    const sub = await track(connect(b));
    await sub.subscribe('chat/users/+', 1);
    await sub.subscribe('chat/groups/+', 1);
    await quietFor(500);
    const ghosts = sub.drain().filter((m) => m.text.length > 0
      && (m.topic === `chat/users/${res.userid}` || m.topic === `chat/groups/${gid}`));
    assert.deepEqual(ghosts.map((m) => `${m.topic} ${m.text}`), [], 'no ghost record is delivered');

    // New users (alice's name included) get ids the old run never issued.
    const carol = await track(loggedIn(b, uniqueId('carol')));
    const again = await track(loggedIn(b, 'alice', { clientId: uniqueId('alice2') }));
    for (const c of [carol, again]) {
      assert.notEqual(c.userid, res.userid, `a new user never gets the old id ${res.userid}`);
      assert.ok(BigInt(c.userid) > BigInt(res.userid), `ids grow across restarts: ${c.userid} > ${res.userid}`);
    }
    const g2 = (await carol.createGroup([])).groupid;
    assert.ok(BigInt(g2) > BigInt(gid), `group ids grow across restarts: ${g2} > ${gid}`);

    // The ghosts are cleared from the broker's retained store: a plain mosquitto on the same
    // persistence finds no record of the old ids.
    await quietFor(300);
    await Promise.all([sub, carol, again].map((c) => c.end(true)));
    brokers.delete(b);
    await b.stop();
    const plain = await startBroker({ dir: b.dir, port: b.port, persistence: true, plugin: false });
    brokers.add(plain);
    const reader = await connect(plain);
    await reader.subscribe('chat/#', 1);
    await quietFor(500);
    const kept = reader.drain().filter((m) => m.retain).map((m) => m.topic);
    await reader.end(true);
    assert.ok(!kept.includes(`chat/users/${res.userid}`), `chat/users/${res.userid} is cleared: ${kept}`);
    assert.ok(!kept.includes(`chat/groups/${gid}`), `chat/groups/${gid} is cleared: ${kept}`);
  });
});
