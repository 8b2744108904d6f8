// Limits (decisions.md, "Added for durability and limits"): a token bucket per client id over
// every chat request (plugin_opt_request_rate / request_burst) answers the excess with
// `rate_limited` and changes nothing, without slowing anyone else down; max_groups_per_user and
// max_group_members refuse with `limit_exceeded` and change nothing; the defaults apply when the
// options are not set, and the start-up log line lists every effective value.

import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker } from '../lib/broker.js';
import {
  connect, loggedIn, uniqueId, watchDirectory, quietFor,
} from '../lib/client.js';

const brokers = [];
const clients = [];
async function broker(opts) {
  const b = await startBroker(opts);
  brokers.push(b);
  return b;
}
async function track(promise) {
  const c = await promise;
  clients.push(c);
  return c;
}
after(async () => {
  await Promise.all(clients.map((c) => c.end(true)));
  for (const b of brokers) { await b.stop(); b.cleanup(); }
});

/** Waits until `count` messages on `topic` have arrived (or fails saying how many did). */
async function arrivals(c, topic, count, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const n = c.received.filter((m) => m.topic === topic).length;
    if (n >= count) return c.drain(topic);
    if (Date.now() > deadline) {
      throw new Error(`expected ${count} messages on ${topic} within ${timeoutMs} ms, got ${n}`);
    }
    await quietFor(25);
  }
}

describe('request rate (plugin_opt_request_rate 10, request_burst 20)', () => {
  test('a client flooding 10,000 requests gets rate_limited for the excess; two others keep chatting; nothing changes', async () => {
    const RATE = 10; const BURST = 20; const FLOOD = 10000; const CHAT = 20;
    const b = await broker({ options: { request_rate: RATE, request_burst: BURST } });
    const dir = await watchDirectory(b);
    clients.push(dir.client);
    const x = await track(loggedIn(b, uniqueId('x')));
    const y = await track(loggedIn(b, uniqueId('y'), { protocolVersion: 5 }));
    // The flooder's inbox at QoS 0: the broker neither queues nor drops the replies, so every
    // one of the 10,000 requests can be accounted for.
    const f = await track(loggedIn(b, uniqueId('flood'), { inboxQos: 0 }));
    const gf = await f.createGroup([x]);   // the flooder and x
    await x.next(x.inbox('new_group'), (m) => m.json?.groupid === gf.groupid);
    const gxy = await x.createGroup([y]);  // x and y
    await y.next(y.inbox('new_group'), (m) => m.json?.groupid === gxy.groupid);
    await dir.until((d) => d.groups[gf.groupid] && d.groups[gxy.groupid] && d.contacts?.group?.[gxy.groupid], 'set-up');
    await quietFor(BURST / RATE * 1000 + 200); // the flooder's bucket is full again
    const mark = dir.mark();
    for (const c of [f, x, y]) c.drain();

    // Each flood request, if accepted, answers exactly once and changes nothing: join_group of a
    // group it is already in (new_group to itself), or a malformed request (invalid_request).
    const started = Date.now();
    for (let i = 0; i < FLOOD; i += 1) {
      if (i % 2) f.client.publish('chat/group/join', JSON.stringify({ groupid: gf.groupid }), { qos: 0 });
      else f.client.publish('chat/logout', 'not json', { qos: 0 });
    }
    // Meanwhile x and y chat (each well within its own bucket): every message must arrive.
    const chatting = (async () => {
      for (let i = 0; i < CHAT; i += 1) {
        await Promise.all([x.send(y.userid, `x${i}`), y.send(gxy.groupid, `y${i}`)]);
        await quietFor(50);
      }
    })();
    await chatting;
    const toY = await arrivals(y, y.inbox('message'), CHAT);
    const toX = await arrivals(x, x.inbox('message'), CHAT);
    assert.deepEqual(toY.map((m) => m.json.message), Array.from({ length: CHAT }, (_, i) => `x${i}`), 'x -> y, all in order');
    assert.deepEqual(toX.map((m) => m.json.message), Array.from({ length: CHAT }, (_, i) => `y${i}`), 'y -> x, all in order');
    assert.deepEqual([...x.drain(x.inbox('error')), ...y.drain(y.inbox('error'))].map((m) => m.text), [],
      'the chatting clients are not limited');

    // Every flood request is answered exactly once.
    const deadline = Date.now() + 30000;
    const answers = () => f.received.filter((m) => m.topic === f.inbox('error') || m.topic === f.inbox('new_group')).length;
    while (answers() < FLOOD && Date.now() < deadline) await quietFor(50);
    const elapsed = (Date.now() - started) / 1000;
    const errors = f.drain(f.inbox('error')).map((m) => m.json);
    const joined = f.drain(f.inbox('new_group'));
    const limited = errors.filter((e) => e.error === 'rate_limited');
    const invalid = errors.filter((e) => e.error === 'invalid_request');
    assert.equal(errors.length + joined.length, FLOOD, 'one answer per request');
    assert.equal(limited.length + invalid.length, errors.length,
      `only rate_limited and invalid_request: ${JSON.stringify([...new Set(errors.map((e) => e.error))])}`);
    const accepted = joined.length + invalid.length;
    assert.ok(accepted >= BURST, `at least the burst (${BURST}) is served, got ${accepted}`);
    assert.ok(accepted <= BURST + RATE * elapsed + 1,
      `at most burst + rate x ${elapsed.toFixed(1)} s = ${Math.floor(BURST + RATE * elapsed + 1)} are served, got ${accepted}`);
    assert.ok(limited.every((e) => ['join_group', 'logout'].includes(e.action) && typeof e.detail === 'string'), 'rate_limited answers name the request');
    assert.ok(limited.length >= FLOOD - (BURST + RATE * elapsed + 1), `${limited.length} rate_limited`);
    assert.deepEqual(f.drain().filter((m) => m.topic.startsWith('chat/inbox/')).map((m) => m.topic), [], 'nothing else');

    // The flooder's state is unchanged, it is still connected and served once its bucket refills.
    await quietFor(300);
    assert.deepEqual(dir.changesSince(mark), [], 'the directory did not change');
    assert.ok(f.connected, 'the flooder is not disconnected');
    assert.ok(x.connected && y.connected, 'nobody else is disconnected');
    await quietFor(200);
    await f.send(gf.groupid, 'still here');
    const m = await x.next(x.inbox('message'), (n) => n.json?.message === 'still here');
    assert.equal(m.json.sender, f.userid, 'the flooder is still the same user in the same group');
    const lines = b.log().split('\n').filter((l) => l.includes(`client ${f.clientId} sends more than ${RATE} requests a second`));
    assert.equal(lines.length, 1, 'one warning in the log, no flood of lines');
  });

  test('requests before login are limited too, and a limited login is answered in login-response as well', async () => {
    const b = await broker({ options: { request_rate: 1, request_burst: 3 } });
    const dir = await watchDirectory(b);
    clients.push(dir.client);
    const c = await track(connect(b));
    await c.subscribeInbox();
    const mark = dir.mark();
    for (let i = 0; i < 3; i += 1) c.client.publish('chat/logout', '{}', { qos: 0 });
    const early = [];
    for (let i = 0; i < 3; i += 1) early.push((await c.next(c.inbox('error'))).json.error);
    assert.deepEqual(early, ['not_logged_in', 'not_logged_in', 'not_logged_in'], 'the burst is served');
    await c.publish('chat/login', { username: uniqueId('lim') });
    const r = await c.next(c.inbox('login-response'));
    assert.equal(r.json.result, 'rate_limited', `login-response: ${r.text}`);
    assert.equal(typeof r.json.detail, 'string');
    await c.expectError('login', 'rate_limited');
    await quietFor(300);
    assert.deepEqual(dir.changesSince(mark), [], 'nothing changed: no user was created');
    await quietFor(1000); // one token back
    const ok = await c.login(uniqueId('lim'));
    assert.equal(ok.result, 'success', `after a second the login is served: ${JSON.stringify(ok)}`);
  });

  test('plugin_opt_request_rate 0 means no limit: 300 requests at once are all served', async () => {
    const b = await broker({ options: { request_rate: 0, request_burst: 1 } });
    const c = await track(loggedIn(b, uniqueId('nolimit'), { inboxQos: 0 }));
    for (let i = 0; i < 300; i += 1) c.client.publish(`chat/msg/${c.userid}`, JSON.stringify({ message: `m${i}` }), { qos: 0 });
    const got = await arrivals(c, c.inbox('message'), 300, 10000);
    assert.equal(got.length, 300);
    assert.deepEqual(c.drain(c.inbox('error')).map((m) => m.text), [], 'no rate_limited');
  });
});

describe('group limits (plugin_opt_max_groups_per_user 2, max_group_members 3, max_groups_added_by_others 2)', () => {
  test('exceeding either limit is limit_exceeded and changes nothing; within the limits everything works', async () => {
    const b = await broker({ options: { max_groups_per_user: 2, max_group_members: 3, max_groups_added_by_others: 2 } });
    const dir = await watchDirectory(b);
    clients.push(dir.client);
    const [a, bb, c, d, e] = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((n) => track(loggedIn(b, uniqueId(n)))));
    const all = [a, bb, c, d, e];

    const ga1 = await a.createGroup([]);
    const ga2 = await a.createGroup([]);
    const gb = await bb.createGroup([c]);          // 2 members
    await c.next(c.inbox('new_group'));
    await d.joinGroup(gb.groupid);                 // 3 members: full
    await dir.until((x) => x.contacts?.group?.[gb.groupid] && Object.keys(x.contacts.group[gb.groupid]).length === 3
      && x.contacts.group[ga2.groupid], 'set-up');
    await quietFor(200);

    const refused = async (who, topic, payload, action, what, limit) => {
      for (const x of all) x.drain();
      const mark = dir.mark();
      await who.publish(topic, payload);
      const err = await who.expectError(action, 'limit_exceeded');
      assert.match(err.detail, new RegExp(`^${limit}:`), `${what}: the detail names the limit: ${err.detail}`);
      await quietFor(300);
      assert.deepEqual(dir.changesSince(mark), [], `${what}: the directory must not change`);
      const stray = all.flatMap((x) => x.drain().filter((m) => m.topic.startsWith('chat/inbox/')).map((m) => `${m.topic} ${m.text}`));
      assert.deepEqual(stray, [], `${what}: nothing delivered (no new_group)`);
      return err;
    };
    await refused(a, 'chat/group/create', { member: {} }, 'create_group', 'a third group of a creator of 2', 'max_groups_per_user');
    await refused(e, 'chat/group/join', { groupid: gb.groupid }, 'join_group', 'joining a full group', 'max_group_members');
    await refused(e, 'chat/group/create', { member: { [bb.userid]: bb.username, [c.userid]: c.username, [d.userid]: d.username } },
      'create_group', 'creating a group of 4', 'max_group_members');

    // Within the limits: re-joining a group one is in still works at the limit; a group of
    // exactly 3 can be created; after leaving one group, a user can join another. Others may
    // add a user that created its 2 groups (groups others add it to have a cap of their own).
    const again = await a.joinGroup(ga1.groupid);
    assert.deepEqual(Object.keys(again.member), [a.userid], 'a re-join at the limit succeeds');
    const ge = await e.createGroup([c]);
    assert.equal(Object.keys(ge.member).length, 2);
    await refused(a, 'chat/group/join', { groupid: ge.groupid }, 'join_group', 'joining when in 2 groups already', 'max_groups_per_user');
    await a.publish('chat/group/leave', { groupid: ga2.groupid });
    await dir.until((x) => x.groups[ga2.groupid] === null, 'ga2 deleted');
    const joined = await a.joinGroup(ge.groupid);
    assert.deepEqual(Object.keys(joined.member).sort(), [a.userid, c.userid, e.userid].sort(), 'a joins a third member');
    // c was added to gb (by b) and ge (by e): 2 groups added by others, the cap; d may not add c.
    await refused(d, 'chat/group/create', { member: { [c.userid]: c.username } }, 'create_group', 'a member at its cap',
      'max_groups_added_by_others');
  });

  test('group spam: 5 groups naming a victim use up max_groups_added_by_others, never the victim\'s own limit', async () => {
    const b = await broker({ options: { max_groups_per_user: 2, max_groups_added_by_others: 4, request_rate: 0 } });
    const victim = await track(loggedIn(b, uniqueId('victim')));
    const spammers = await Promise.all([0, 1, 2].map((i) => track(loggedIn(b, uniqueId(`spam${i}`)))));
    const other = await track(loggedIn(b, uniqueId('other')));
    const g = await other.createGroup([]);
    // Each spammer may create 2 groups of its own: 6 attempts naming the victim, 4 succeed.
    const codes = [];
    for (const s of spammers) {
      for (let i = 0; i < 2; i += 1) {
        await s.publish('chat/group/create', { member: { [victim.userid]: victim.username } });
        const m = await s.nextWhere((x) => x.topic === s.inbox('new_group') || x.topic === s.inbox('error'), 'new_group or error');
        codes.push(m.json.error ? `${m.json.error} ${m.json.detail.split(':')[0]}` : 'created');
      }
    }
    assert.deepEqual(codes, ['created', 'created', 'created', 'created',
      'limit_exceeded max_groups_added_by_others', 'limit_exceeded max_groups_added_by_others'],
    'the cap on groups others add the victim to');
    // The victim, in 4 groups, can still create one and join one: its own limit of 2.
    victim.drain();
    const own = await victim.createGroup([]);
    assert.ok(own.groupid, 'the victim creates a group');
    const joined = await victim.joinGroup(g.groupid);
    assert.ok(joined.member[victim.userid], 'the victim joins a group');
    await victim.publish('chat/group/create', { member: {} });
    const err = await victim.expectError('create_group', 'limit_exceeded');
    assert.match(err.detail, /^max_groups_per_user:/, 'a third own group is over its own limit');
  });
});

describe('chat-wide limits (plugin_opt_max_users 3, max_groups 2)', () => {
  test('a new user or group beyond them is limit_exceeded and changes nothing; existing users still log in', async () => {
    const b = await broker({ options: { max_users: 3, max_groups: 2 } });
    const dir = await watchDirectory(b);
    clients.push(dir.client);
    // u1 by hand, to keep the token its first login returns.
    const u1 = await track(connect(b));
    await u1.subscribeInbox();
    const name1 = uniqueId('u1');
    const first = await u1.login(name1);
    assert.equal(first.result, 'success');
    Object.assign(u1, { userid: first.userid, username: name1 });
    const [u2, u3] = await Promise.all(['u2', 'u3'].map((n) => track(loggedIn(b, uniqueId(n)))));
    await u1.createGroup([u2]);
    await u3.createGroup([]);
    await dir.until((x) => Object.keys(x.contacts?.group ?? {}).length === 2 && Object.keys(x.contacts?.person ?? {}).length === 3, 'set-up');
    await quietFor(200);
    const mark = dir.mark();

    const late = await track(connect(b));
    await late.subscribeInbox();
    await late.expectLoginFailure({ username: uniqueId('late') }, 'limit_exceeded', 'a fourth user');
    await u2.publish('chat/group/create', { member: {} });
    const err = await u2.expectError('create_group', 'limit_exceeded');
    assert.match(err.detail, /^max_groups:/, `the detail names the limit: ${err.detail}`);
    await quietFor(300);
    assert.deepEqual(dir.changesSince(mark), [], 'nothing changed');

    // Users that exist log in at the limit: again from their client id, and as a new session.
    const resumed = await u1.login(name1);
    assert.equal(resumed.result, 'success', `u1 again: ${JSON.stringify(resumed)}`);
    const second = await track(connect(b));
    await second.subscribeInbox();
    const joined = await second.login(name1, { token: first.token });
    assert.equal(joined.result, 'success', `u1 from a second client id with its token: ${JSON.stringify(joined)}`);
    assert.equal(joined.userid, u1.userid);

    // A user that goes frees its place.
    await u3.publish('chat/logout', {});
    await dir.until((x) => x.users[u3.userid] === null, 'u3 gone');
    const res = await late.login(uniqueId('late2'));
    assert.equal(res.result, 'success', `a freed place can be taken: ${JSON.stringify(res)}`);
  });
});

describe('defaults', () => {
  test('without options the start-up log line lists the defaults, and they apply', async () => {
    const b = await broker({});
    const line = b.log().split('\n').find((l) => l.includes('chat: mosquitto-chat') && l.includes('loaded'));
    assert.ok(line, `a start-up line:\n${b.log()}`);
    for (const kv of ['max_message_bytes=8192', 'offline_expiry=86400', 'reconnect_grace=60', 'max_groups_per_user=500',
      'max_group_members=1000', 'max_groups_added_by_others=500', 'max_users=50000', 'max_groups=100000',
      'request_rate=50', 'request_burst=1000', 'delivery_budget=262144', 'delivery_burst=16777216', 'offline_queue=1000',
      'bind_mqtt_username=false', 'outside_chat=allow', 'state_file=(none)']) {
      assert.ok(line.includes(kv), `the start-up line lists ${kv}: ${line}`);
    }
    // The default bucket: 1000 at once, then about 50 a second.
    const c = await track(loggedIn(b, uniqueId('def'), { inboxQos: 0 }));
    await quietFor(300);
    const started = Date.now();
    for (let i = 0; i < 2000; i += 1) c.client.publish('chat/logout', 'x', { qos: 0 });
    const answers = await arrivals(c, c.inbox('error'), 2000, 20000);
    const elapsed = (Date.now() - started) / 1000 + 0.3;
    const served = answers.filter((m) => m.json.error === 'invalid_request').length;
    const limited = answers.filter((m) => m.json.error === 'rate_limited').length;
    assert.equal(served + limited, 2000);
    assert.ok(served >= 999 && served <= 1000 + 50 * elapsed + 1,
      `the default burst of 1000 (and 50/s) is served: ${served} served, ${limited} limited in ${elapsed.toFixed(2)} s`);
  });

  test('options that are set show in the start-up line', async () => {
    const b = await broker({
      options: {
        max_groups_per_user: 7, max_group_members: 8, request_rate: 9, request_burst: 11, offline_queue: 12, bind_mqtt_username: 'true',
        max_groups_added_by_others: 13, max_users: 14, max_groups: 15, delivery_budget: 16, delivery_burst: 17,
      },
    });
    const line = b.log().split('\n').find((l) => l.includes('chat: mosquitto-chat') && l.includes('loaded'));
    for (const kv of ['max_groups_per_user=7', 'max_group_members=8', 'request_rate=9', 'request_burst=11', 'offline_queue=12',
      'max_groups_added_by_others=13', 'max_users=14', 'max_groups=15', 'delivery_budget=16', 'delivery_burst=17',
      'bind_mqtt_username=true']) {
      assert.ok(line.includes(kv), `the start-up line lists ${kv}: ${line}`);
    }
  });

  test('a bad limit value refuses to start, naming the option', async () => {
    for (const [key, value] of [['max_groups_per_user', '-1'], ['request_burst', '0'], ['request_rate', 'fast'],
      ['offline_queue', '1e3'], ['bind_mqtt_username', 'yes'], ['max_group_members', ''], ['max_users', '-5'],
      ['max_groups', 'many'], ['max_groups_added_by_others', '1.5'], ['delivery_budget', '1 MiB'], ['delivery_burst', '0']]) {
      await assert.rejects(broker({ options: { [key]: value } }), (err) => {
        // (an empty value is refused by mosquitto itself: "Empty max_group_members value")
        assert.match(err.message, value === '' ? new RegExp(`Empty ${key} value`) : new RegExp(`plugin_opt_${key}`),
          `${key} ${JSON.stringify(value)}: the log names the option`);
        return true;
      }, `${key} ${JSON.stringify(value)} must be refused`);
    }
  });
});
