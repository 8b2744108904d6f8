// Room topics (docs/protocol.md §3.5, DESIGN §11): a member session that subscribes
// chat/room/<gid> or chat/room/+ reads the group's messages from one publish on the room topic
// instead of inbox copies; only those two filters count; READ admits members only, per delivery;
// switching between room and inbox mid-conversation loses and doubles nothing.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { brokerPerFile } from '../lib/fixture.js';
import { connect, loggedIn, uniqueId, quietFor } from '../lib/client.js';

const fx = brokerPerFile({ options: { request_rate: 0 } });

/** Logged-in clients a (the creator), b, c in one group; resolves with [gid, a, b, c]. */
async function group(names = ['a', 'b', 'c'], opts = {}) {
  const cs = await Promise.all(names.map((n) => fx.track(loggedIn(fx.broker, uniqueId(n), opts[n] ?? {}))));
  const g = await cs[0].createGroup(cs.slice(1));
  for (const c of cs.slice(1)) await c.next(c.inbox('new_group'), (m) => m.json?.groupid === g.groupid);
  return [g.groupid, ...cs];
}

/** Every message `c` has received with text `text`, as "topic" strings. */
function where(c, text) {
  return c.received.filter((m) => m.json?.message === text).map((m) => m.topic);
}

/**
 * Sends a marker from `from` to `room` and waits until every client in `to` has it (on any
 * topic); a client's deliveries arrive in the order the plugin made them, so whatever was sent
 * before has arrived too.
 */
async function settle(from, room, to) {
  const tag = uniqueId('marker');
  await from.send(room, tag);
  for (const c of to) await c.nextWhere((m) => m.json?.message === tag, `the marker ${tag}`);
}

describe('room topics', () => {
  test('a member subscribed to chat/room/<gid> gets one room copy; the others inbox copies with the same id and ts', async () => {
    const [gid, a, b, c] = await group();
    assert.equal(await b.trySubscribe(`chat/room/${gid}`, 1), 1, 'a member may subscribe its group\'s room');
    await a.send(gid, 'hello room');
    const room = await b.next(`chat/room/${gid}`, (m) => m.json?.message === 'hello room');
    const inbox = await c.next(c.inbox('message'), (m) => m.json?.message === 'hello room');
    assert.equal(room.retain, false, 'not retained');
    assert.equal(room.qos, 1, 'QoS 1');
    assert.deepEqual(room.json, inbox.json, 'the same payload: sender, receiver, message, id and ts');
    assert.equal(room.json.sender, a.userid);
    await settle(a, gid, [b, c]);
    assert.deepEqual(where(b, 'hello room'), [], 'no inbox copy for b');
    assert.deepEqual(where(a, 'hello room'), [], 'nothing for the sender');
  });

  test('chat/room/+ reads every group of the member, and the sender gets its own message back there', async () => {
    const [gid, a, b] = await group(['a', 'b']);
    const [gid2, , b2] = [...await group(['x', 'y'])];
    assert.equal(await a.trySubscribe('chat/room/+', 1), 1);
    await a.send(gid, 'mine');
    const own = await a.next(`chat/room/${gid}`, (m) => m.json?.message === 'mine');
    assert.equal(own.json.sender, a.userid);
    await b.next(b.inbox('message'), (m) => m.json?.message === 'mine');
    // Another group's room publish (y reads it through chat/room/+ too) never reaches a.
    assert.equal(await b2.trySubscribe('chat/room/+', 1), 1);
    await b2.send(gid2, 'not for a');
    await settle(b, gid, [a]);
    assert.deepEqual(where(a, 'not for a'), [], 'a is not in the other group');
    assert.deepEqual(where(a, 'mine'), [], 'exactly one copy for the sender');
  });

  test('a non-member cannot subscribe chat/room/<gid>; chat/room/#, shared room filters and filters before login are refused', async () => {
    const [gid] = await group(['a']);
    const outsider = await fx.track(loggedIn(fx.broker, uniqueId('out')));
    assert.ok(await outsider.trySubscribe(`chat/room/${gid}`, 1) >= 0x80, 'not a member: refused');
    assert.ok(await outsider.trySubscribe('chat/room/#', 1) >= 0x80, 'chat/room/# refused');
    assert.ok(await outsider.trySubscribe('$share/g/chat/room/+', 1) >= 0x80, 'a shared room filter refused');
    const anon = await fx.track(connect(fx.broker));
    assert.ok(await anon.trySubscribe('chat/room/+', 1) >= 0x80, 'chat/room/+ before login refused');
  });

  test('chat/# and # never receive room topics: a member holding one reads its group through the inbox, exactly once', async () => {
    const [gid, a, b, c] = await group();
    assert.equal(await b.trySubscribe('chat/#', 1), 1);
    assert.equal(await c.trySubscribe('chat/room/+', 1), 1);
    await a.send(gid, 'wide');
    await settle(a, gid, [b, c]);
    assert.deepEqual(where(b, 'wide'), [b.inbox('message')], 'chat/# alone: the inbox copy only (received once)');
    assert.deepEqual(where(c, 'wide'), [`chat/room/${gid}`], 'c: the room copy');
    // With both chat/# and chat/room/+ the broker would deliver a room message twice: inbox.
    assert.equal(await b.trySubscribe('chat/room/+', 1), 1);
    assert.equal(await b.trySubscribe('#', 1), 1);
    b.drain();
    await a.send(gid, 'both');
    await settle(a, gid, [b, c]);
    // (b's inbox matches chat/#, # and chat/inbox/<b>/#: once per filter, as Mosquitto does)
    assert.deepEqual([...new Set(where(b, 'both'))], [b.inbox('message')], 'no room copy while an overlapping filter is held');
    await b.client.unsubscribeAsync(['chat/#', '#']);
    b.drain();
    await a.send(gid, 'room again');
    await settle(a, gid, [b]);
    assert.deepEqual(where(b, 'room again'), [`chat/room/${gid}`], 'without the overlap the room counts again');
  });

  test('switching between room and inbox while messages flow loses and doubles nothing', async (t) => {
    const [gid, a, b] = await group(['a', 'b']);
    const N = 300;
    const sending = (async () => {
      for (let i = 0; i < N; i += 1) a.client.publish(`chat/msg/${gid}`, JSON.stringify({ message: `n${i}` }), { qos: 1 });
      await a.publish('chat/logout', 'not json'); // answered after all of them were handled
      await a.next(a.inbox('error'));
    })();
    let switches = 0;
    let done = false;
    sending.then(() => { done = true; });
    while (!done) {
      await b.client.subscribeAsync(switches % 2 ? `chat/room/${gid}` : 'chat/room/+', { qos: 1 });
      await b.client.unsubscribeAsync(switches % 2 ? `chat/room/${gid}` : 'chat/room/+');
      switches += 1;
    }
    await b.client.subscribeAsync('chat/room/+', { qos: 1 });
    await settle(a, gid, [b]);
    const got = new Map();
    for (const m of b.received) {
      if (/^n\d+$/.test(m.json?.message ?? '')) got.set(m.json.message, [...(got.get(m.json.message) ?? []), m.topic]);
    }
    const missing = []; const doubled = [];
    for (let i = 0; i < N; i += 1) {
      const t = got.get(`n${i}`) ?? [];
      if (t.length === 0) missing.push(i);
      if (t.length > 1) doubled.push(`n${i}: ${t.join(', ')}`);
    }
    const viaRoom = [...got.values()].filter((x) => x[0].startsWith('chat/room/')).length;
    t.diagnostic(`${switches} switches; ${viaRoom} of ${N} messages through the room, the rest through the inbox`);
    assert.deepEqual({ missing, doubled }, { missing: [], doubled: [] },
      `each of ${N} messages exactly once across ${switches} switches (${viaRoom} through the room)`);
    const order = b.received.filter((m) => /^n\d+$/.test(m.json?.message ?? '')).map((m) => Number(m.json.message.slice(1)));
    assert.deepEqual(order, [...order].sort((x, y) => x - y), 'in the order they were sent');
  });

  test('a member who leaves stops receiving at once; its kept subscription counts again when it re-joins', async () => {
    const [gid, a, b] = await group(['a', 'b']);
    assert.equal(await b.trySubscribe(`chat/room/${gid}`, 1), 1);
    await b.publish('chat/group/leave', { groupid: gid });
    await quietFor(100);
    await a.send(gid, 'after leaving');
    await a.send(a.userid, 'sync'); // to a itself: a's deliveries are in order
    await a.next(a.inbox('message'), (m) => m.json?.message === 'sync');
    await quietFor(200);
    assert.deepEqual(where(b, 'after leaving'), [], 'nothing after the leave');
    await b.joinGroup(gid);
    await a.send(gid, 'after re-joining');
    const m = await b.next(`chat/room/${gid}`, (x) => x.json?.message === 'after re-joining');
    assert.equal(m.json.sender, a.userid);
    await settle(a, gid, [b]);
    assert.deepEqual(where(b, 'after re-joining'), [], 'once, through the room');
  });

  test('a persistent member away with a room subscription gets what was sent meanwhile, once, on reconnect', async () => {
    const opts = { b: { clean: false, protocolVersion: 4 } };
    const [gid, a, b] = await group(['a', 'b'], opts);
    assert.equal(await b.trySubscribe(`chat/room/${gid}`, 1), 1);
    await b.end();
    await quietFor(200);
    for (let i = 0; i < 5; i += 1) await a.send(gid, `away ${i}`);
    const back = await fx.track(connect(fx.broker, { clientId: b.clientId, clean: false, protocolVersion: 4 }));
    await back.login(b.username);
    await settle(a, gid, [back]);
    const got = back.received.filter((m) => m.json?.message?.startsWith('away ')).map((m) => `${m.topic} ${m.json.message}`);
    assert.deepEqual(got, [0, 1, 2, 3, 4].map((i) => `chat/room/${gid} away ${i}`), 'each once, on the room topic, in order');
  });

  test('each session of a user is judged on its own subscriptions', async () => {
    const [gid, a, b] = await group(['a', 'b']);
    // b's second session, with the token of b's first login.
    const first = await fx.track(connect(fx.broker));
    await first.subscribeInbox();
    const name = uniqueId('multi');
    const r = await first.login(name);
    const second = await fx.track(connect(fx.broker));
    await second.subscribeInbox();
    assert.equal((await second.login(name, { token: r.token })).result, 'success');
    Object.assign(first, { userid: r.userid, username: name });
    await b.publish('chat/group/create', { member: { [r.userid]: name } });
    const g2 = (await b.next(b.inbox('new_group'), (m) => m.json?.member?.[r.userid])).json.groupid;
    await first.next(first.inbox('new_group'));
    await second.next(second.inbox('new_group'));
    assert.equal(await first.trySubscribe(`chat/room/${g2}`, 1), 1);
    await b.send(g2, 'to both sessions');
    await settle(b, g2, [first, second]);
    assert.deepEqual(where(first, 'to both sessions'), [`chat/room/${g2}`]);
    assert.deepEqual(where(second, 'to both sessions'), [second.inbox('message')]);
    assert.ok(gid && a);
  });
});
