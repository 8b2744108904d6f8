// Group and direct messages (DESIGN §3-§4): who gets a message, its payload (id, ts), ordering,
// the seed's full objects (action / sender / receiver), and the QoS of inbox deliveries.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker } from '../lib/broker.js';
import {
  connect, loggedIn, uniqueId, SESSION_KINDS, PROTOCOLS, kindOpts,
} from '../lib/client.js';

let broker;
const open = [];
async function track(promise) {
  const c = await promise;
  open.push(c);
  return c;
}

before(async () => { broker = await startBroker(); });
after(async () => {
  await Promise.all(open.map((c) => c.end(true)));
  await broker?.stop();
  broker?.cleanup();
});

const seenIds = new Set();

/** Asserts a message delivery: exact keys, the given fields, a fresh decimal id and a ts near now. */
function assertDelivery(m, { sender, receiver, message }, what) {
  const p = m.json;
  assert.ok(p && typeof p === 'object', `${what}: expected a JSON object, got ${JSON.stringify(m.text)}`);
  assert.deepEqual(Object.keys(p).sort(), ['id', 'message', 'receiver', 'sender', 'ts'],
    `${what}: expected exactly sender, receiver, message, id, ts; got ${m.text}`);
  assert.deepEqual({ sender: p.sender, receiver: p.receiver, message: p.message }, { sender, receiver, message },
    `${what}: got ${m.text}`);
  assert.equal(typeof p.id, 'string', `${what}: id must be a string, got ${m.text}`);
  assert.match(p.id, /^[0-9]+$/, `${what}: id must be a decimal string (decisions.md), got ${m.text}`);
  assert.equal(typeof p.ts, 'number', `${what}: ts must be a JSON number, got ${m.text}`);
  assert.ok(Number.isInteger(p.ts), `${what}: ts must be whole milliseconds, got ${m.text}`);
  assert.ok(Math.abs(p.ts - Date.now()) < 10000, `${what}: ts ${p.ts} is not near now (${Date.now()})`);
}

for (const kind of SESSION_KINDS) {
  describe(kind.name, () => {
    let a; let b; let c; let gid;
    before(async () => {
      a = await track(loggedIn(broker, uniqueId('a'), kindOpts(kind)));
      b = await track(loggedIn(broker, uniqueId('b'), { protocolVersion: 4 }));
      c = await track(loggedIn(broker, uniqueId('c'), { protocolVersion: 5 }));
      const g = await a.createGroup([b, c]);
      gid = g.groupid;
      await b.next(b.inbox('new_group'), (m) => m.json?.groupid === gid);
      await c.next(c.inbox('new_group'), (m) => m.json?.groupid === gid);
    });

    test('a group message reaches every member except the sender, with id and ts', async () => {
      const text = `hello ${uniqueId()}`;
      await a.send(gid, text);
      const mb = await b.next(b.inbox('message'), (m) => m.json?.message === text);
      const mc = await c.next(c.inbox('message'), (m) => m.json?.message === text);
      assertDelivery(mb, { sender: a.userid, receiver: gid, message: text }, 'delivery to b');
      assertDelivery(mc, { sender: a.userid, receiver: gid, message: text }, 'delivery to c');
      const own = await a.collect(a.inbox('message'), 300);
      assert.deepEqual(own.map((m) => m.text), [], 'the sender must not get its own group message');
      // and the other way round: a (this session kind) receives
      const back = `back ${uniqueId()}`;
      await b.send(gid, back);
      const ma = await a.next(a.inbox('message'), (m) => m.json?.message === back);
      assertDelivery(ma, { sender: b.userid, receiver: gid, message: back }, 'delivery to a');
    });

    test('message ids are unique across messages', async () => {
      const ids = [];
      for (let i = 0; i < 5; i += 1) {
        const text = `u${i} ${uniqueId()}`;
        await (i % 2 ? b : a).send(gid, text);
        const m = await c.next(c.inbox('message'), (x) => x.json?.message === text);
        ids.push(m.json.id);
      }
      for (const id of ids) {
        assert.ok(!seenIds.has(id), `message id ${id} was used before (ids so far: ${[...seenIds].join(',')})`);
        seenIds.add(id);
      }
      assert.equal(new Set(ids).size, ids.length, `ids must be unique, got ${ids.join(',')}`);
    });

    test('a direct message reaches only the recipient', async () => {
      const text = `dm ${uniqueId()}`;
      await a.send(b.userid, text);
      const mb = await b.next(b.inbox('message'), (m) => m.json?.message === text);
      assertDelivery(mb, { sender: a.userid, receiver: b.userid, message: text }, 'direct message');
      const [toA, toC] = await Promise.all([a.collect(a.inbox('message'), 300), c.collect(c.inbox('message'), 300)]);
      const leaked = [...toA, ...toC].filter((m) => m.json?.message === text);
      assert.deepEqual(leaked.map((m) => m.text), [], 'a direct message must reach nobody but the recipient');
      // and to the session kind under test
      const reply = `reply ${uniqueId()}`;
      await b.send(a.userid, reply);
      const ma = await a.next(a.inbox('message'), (m) => m.json?.message === reply);
      assertDelivery(ma, { sender: b.userid, receiver: a.userid, message: reply }, 'direct reply');
    });

    test('a direct message to oneself is delivered to oneself', async () => {
      const text = `self ${uniqueId()}`;
      await a.send(a.userid, text);
      const m = await a.next(a.inbox('message'), (x) => x.json?.message === text);
      assertDelivery(m, { sender: a.userid, receiver: a.userid, message: text }, 'message to self');
    });

    test('text is delivered unchanged (unicode, quotes, backslashes, newlines)', async () => {
      const text = `héllo 🌍 "quoted" \\ back\nnew line\ttab </script> ${uniqueId()}`;
      await a.send(gid, text);
      const m = await b.next(b.inbox('message'), (x) => x.json?.sender === a.userid && x.json?.message === text, 3000);
      assert.equal(m.json.message, text);
    });

    test('a text with an embedded NUL (\\u0000) is delivered intact or refused, never truncated', async () => {
      const text = `before\u0000after ${uniqueId()}`;
      await a.send(b.userid, text);
      const got = await b.nextWhere((m) => m.topic === b.inbox('message') && m.json?.sender === a.userid
        && String(m.json?.message).startsWith('before'), 'the NUL message', 1000).catch(() => null);
      if (got) {
        assert.equal(got.json.message, text, `a delivered text must be unchanged: got ${JSON.stringify(got.json.message)}`);
      } else {
        await a.expectError('message', 'invalid_message');
      }
    });

    test('50 rapid messages keep their order for every recipient (group and direct, two senders at once)', async () => {
      const tag = uniqueId('ord');
      const sends = [];
      for (let i = 0; i < 50; i += 1) sends.push(a.send(gid, `${tag} ${i}`));
      // direct messages from another sender, so that no sender exceeds the rate limit's burst
      for (let i = 0; i < 50; i += 1) sends.push(c.send(b.userid, `${tag} dm ${i}`));
      await Promise.all(sends);
      for (const r of [b, c]) {
        const got = [];
        for (let i = 0; i < 50; i += 1) {
          const m = await r.next(r.inbox('message'), (x) => x.json?.receiver === gid && x.json?.message?.startsWith(tag));
          got.push(m.json.message);
        }
        assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => `${tag} ${i}`), `group order at ${r.username}`);
      }
      const dms = [];
      for (let i = 0; i < 50; i += 1) {
        const m = await b.next(b.inbox('message'), (x) => x.json?.receiver === b.userid && x.json?.message?.startsWith(tag));
        dms.push(m.json.message);
      }
      assert.deepEqual(dms, Array.from({ length: 50 }, (_, i) => `${tag} dm ${i}`), 'direct message order');
    });

    describe('seed full objects', () => {
      test('{action, sender, receiver, message} with the own userid and the topic room is delivered', async () => {
        const text = `seed ${uniqueId()}`;
        await a.publish(`chat/msg/${gid}`, { action: 'message', sender: a.userid, receiver: gid, message: text });
        const m = await b.next(b.inbox('message'), (x) => x.json?.message === text);
        assertDelivery(m, { sender: a.userid, receiver: gid, message: text }, 'seed object message');
      });

      test('null sender and receiver count as absent', async () => {
        const text = `nulls ${uniqueId()}`;
        await a.publish(`chat/msg/${b.userid}`, { action: 'message', sender: null, receiver: null, message: text });
        const m = await b.next(b.inbox('message'), (x) => x.json?.message === text);
        assertDelivery(m, { sender: a.userid, receiver: b.userid, message: text }, 'null fields');
      });

      test('action in the payload is ignored: the topic decides', async () => {
        const text = `act ${uniqueId()}`;
        await a.publish(`chat/msg/${gid}`, { action: 'logout', message: text });
        const m = await c.next(c.inbox('message'), (x) => x.json?.message === text);
        assertDelivery(m, { sender: a.userid, receiver: gid, message: text }, 'action ignored');
        const r = await a.login(a.username);
        assert.deepEqual(r, { result: 'success', userid: a.userid, username: a.username },
          `the sender must still be logged in, got ${JSON.stringify(r)}`);
      });

      test('a sender other than the own user: sender_mismatch, nothing delivered', async () => {
        const text = `spoof ${uniqueId()}`;
        await a.publish(`chat/msg/${gid}`, { action: 'message', sender: b.userid, receiver: gid, message: text });
        await a.expectError('message', 'sender_mismatch');
        const leaked = [...await b.collect(b.inbox('message'), 400), ...await c.collect(c.inbox('message'), 0)]
          .filter((m) => m.json?.message === text);
        assert.deepEqual(leaked.map((m) => m.text), [], 'a message with a foreign sender must not be delivered');
      });

      test('a non-string sender: invalid_request, nothing delivered', async () => {
        const text = `numsender ${uniqueId()}`;
        await a.publish(`chat/msg/${gid}`, { sender: Number(a.userid), message: text });
        await a.expectError('message', 'invalid_request');
        const leaked = (await b.collect(b.inbox('message'), 400)).filter((m) => m.json?.message === text);
        assert.deepEqual(leaked.map((m) => m.text), [], 'nothing delivered');
      });

      test('a receiver other than the topic room: invalid_request, nothing delivered', async () => {
        const text = `wrongrcv ${uniqueId()}`;
        await a.publish(`chat/msg/${gid}`, { action: 'message', sender: a.userid, receiver: b.userid, message: text });
        await a.expectError('message', 'invalid_request');
        const leaked = [...await b.collect(b.inbox('message'), 400), ...await c.collect(c.inbox('message'), 0)]
          .filter((m) => m.json?.message === text);
        assert.deepEqual(leaked.map((m) => m.text), [], 'nothing delivered');
      });
    });
  });
}

describe('deliveries at the inbox QoS', () => {
  for (const proto of PROTOCOLS) {
    for (const qos of [0, 1]) {
      test(`${proto.name}: inbox subscribed at QoS ${qos} -> login-response, new_group, message, error at QoS ${qos}`, async () => {
        const x = await track(connect(broker, { protocolVersion: proto.protocolVersion }));
        const granted = await x.subscribeInbox(qos);
        assert.equal(granted, qos, `own inbox subscription must be granted at QoS ${qos}`);
        const name = uniqueId('q');
        await x.publish('chat/login', { username: name });
        const lr = await x.next(x.inbox('login-response'));
        assert.equal(lr.json?.result, 'success', `login: ${lr.text}`);
        x.userid = lr.json.userid; x.username = name;
        const peer = await track(loggedIn(broker, uniqueId('peer')));
        await x.publish('chat/group/create', { member: { [peer.userid]: peer.username } });
        const ng = await x.next(x.inbox('new_group'));
        await peer.send(x.userid, 'qos check');
        const msg = await x.next(x.inbox('message'), (m) => m.json?.message === 'qos check');
        await x.publish('chat/msg/', { message: 'nowhere' });
        const err = await x.next(x.inbox('error'));
        assert.deepEqual(
          { 'login-response': lr.qos, new_group: ng.qos, message: msg.qos, error: err.qos },
          { 'login-response': qos, new_group: qos, message: qos, error: qos },
          `every delivery at the inbox QoS ${qos}`,
        );
      });
    }

    test(`${proto.name}: without an inbox subscription deliveries still arrive, at QoS 1`, async () => {
      const x = await track(connect(broker, { protocolVersion: proto.protocolVersion }));
      const name = uniqueId('nosub');
      await x.publish('chat/login', { username: name });
      const lr = await x.next(x.inbox('login-response'));
      assert.equal(lr.json?.result, 'success', `login: ${lr.text}`);
      const peer = await track(loggedIn(broker, uniqueId('peer')));
      await peer.send(lr.json.userid, 'to an unsubscribed client');
      const msg = await x.next(x.inbox('message'));
      await x.publish('chat/group/join', { groupid: '999991' });
      const err = await x.next(x.inbox('error'));
      assert.deepEqual({ lr: lr.qos, msg: msg.qos, err: err.qos }, { lr: 1, msg: 1, err: 1 },
        'deliveries to a client that has not subscribed its inbox are QoS 1');
    });

    test(`${proto.name}: re-subscribing the inbox at another QoS changes the delivery QoS`, async () => {
      const x = await track(loggedIn(broker, uniqueId('resub'), { protocolVersion: proto.protocolVersion, inboxQos: 0 }));
      const peer = await track(loggedIn(broker, uniqueId('peer')));
      await peer.send(x.userid, 'first');
      const m0 = await x.next(x.inbox('message'), (m) => m.json?.message === 'first');
      await x.subscribeInbox(1);
      await peer.send(x.userid, 'second');
      const m1 = await x.next(x.inbox('message'), (m) => m.json?.message === 'second');
      assert.deepEqual([m0.qos, m1.qos], [0, 1], 'QoS 0 before, QoS 1 after re-subscribing at QoS 1');
    });
  }
});

test('the broker log never contains message bodies (delivered or refused)', async () => {
  const a = await track(loggedIn(broker, uniqueId('log')));
  const b = await track(loggedIn(broker, uniqueId('log')));
  const marker = `BODY-${uniqueId('secret')}`;
  await a.send(b.userid, `${marker} delivered`);
  await b.next(b.inbox('message'), (m) => m.json?.message === `${marker} delivered`);
  await a.send(b.userid, `${marker} refused`, { sender: b.userid });
  await a.expectError('message', 'sender_mismatch');
  await a.publish(`chat/msg/${b.userid}`, `${marker} not json`);
  await a.expectError('message', 'invalid_request');
  const lines = broker.log().split('\n').filter((l) => l.includes(marker));
  assert.deepEqual(lines, [], 'message bodies must not be logged');
});
