// The duplicate DISCONNECT events of Mosquitto 2.0 (DESIGN §4, decisions.md), on a broker with
// plugin_opt_reconnect_grace 2:
//  - a client-id takeover reports the old connection as a clean disconnect without
//    subscriptions: the session of the NEW connection must survive past the grace once the new
//    connection subscribes or publishes;
//  - a clean disconnect without subscriptions is a logout only after the grace (and not at all
//    if the client id comes back in time);
//  - a persistent session's reconnect reports a second DISCONNECT for the stale connection:
//    ignored, the offline user stays.
// The scenarios wait past the grace, so they run concurrently.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { brokerPerFile } from '../lib/fixture.js';
import {
  connect, loggedIn, uniqueId, SESSION_KINDS, PROTOCOLS, kindOpts, quietFor,
} from '../lib/client.js';

const GRACE_MS = 2000;
const PAST_GRACE_MS = 3200;

const fx = brokerPerFile({ options: { reconnect_grace: 2 } });
const { track } = fx;

function closed(c) {
  if (c.closed) return Promise.resolve();
  return new Promise((resolve) => c.client.once('close', resolve));
}

/** Directory publishes about one user since a mark. */
function userChanges(mark, uid) {
  return fx.dir.changesSince(mark).filter((ch) => ch.topic === `chat/users/${uid}`
    || (ch.topic === 'chat/contacts' && JSON.stringify(ch.before?.person?.[uid]) !== JSON.stringify(ch.after?.person?.[uid])));
}

describe('takeover and grace', { concurrency: true }, () => {
  for (const kind of SESSION_KINDS) {
    test(`${kind.name}: a client-id takeover keeps the user; the new connection carries on past the grace`, async () => {
      const id = uniqueId('tk');
      const a = await track(loggedIn(fx.broker, uniqueId('tku'), { clientId: id, ...kindOpts(kind) }));
      const b = await track(loggedIn(fx.broker, uniqueId('tkb')));
      const g = await b.createGroup([a]);
      await a.next(a.inbox('new_group'), (m) => m.json?.groupid === g.groupid);
      await fx.dir.until((d) => d.users[a.userid]?.online === true, 'online');
      const mark = fx.dir.mark();

      const a2 = await track(connect(fx.broker, { clientId: id, ...kindOpts(kind) }));
      await closed(a); // the broker drops the old connection
      await a2.subscribeInbox(); // the client id is back: an ACL check from it
      await quietFor(PAST_GRACE_MS);
      const gone = userChanges(mark, a.userid).filter((ch) => ch.after === null || (ch.topic === 'chat/contacts' && !ch.after?.person?.[a.userid]));
      assert.deepEqual(gone, [], `the user must not be logged out after a takeover: ${JSON.stringify(gone)}`);
      assert.ok(fx.dir.contacts.person[a.userid], `${a.userid} still in chat/contacts`);
      // Without logging in again the new connection speaks as the same user, still in the group.
      await a2.send(g.groupid, 'after takeover');
      const m = await b.next(b.inbox('message'), (x) => x.json?.message === 'after takeover');
      assert.equal(m.json.sender, a.userid, 'the new connection is the same user');
      await b.send(g.groupid, 'to the new connection');
      await a2.next(a2.inbox('message'), (x) => x.json?.message === 'to the new connection');
      const r = await a2.login(a.username);
      assert.deepEqual(r, { result: 'success', userid: a.userid, username: a.username }, 'same userid on re-login');
      await fx.dir.until((d) => d.users[a.userid]?.online === true, 'online after re-login');
    });
  }

  for (const proto of PROTOCOLS) {
    test(`${proto.name}: a takeover whose new connection publishes first (no subscription) keeps the user`, async () => {
      const id = uniqueId('tkp');
      const a = await track(loggedIn(fx.broker, uniqueId('tkpu'), { clientId: id, protocolVersion: proto.protocolVersion }));
      const b = await track(loggedIn(fx.broker, uniqueId('tkpb')));
      const mark = fx.dir.mark();
      const a2 = await track(connect(fx.broker, { clientId: id, protocolVersion: proto.protocolVersion }));
      await closed(a);
      await a2.send(b.userid, 'first words');
      const m = await b.next(b.inbox('message'), (x) => x.json?.message === 'first words');
      assert.equal(m.json.sender, a.userid);
      await quietFor(PAST_GRACE_MS);
      const gone = userChanges(mark, a.userid).filter((ch) => ch.after === null);
      assert.deepEqual(gone, [], 'not logged out');
      await a2.send(b.userid, 'still me');
      const m2 = await b.next(b.inbox('message'), (x) => x.json?.message === 'still me');
      assert.equal(m2.json.sender, a.userid, 'still the same user past the grace');
    });

    test(`${proto.name}: a takeover whose new connection only uses topics outside chat/ keeps the user (any ACL check counts)`, async () => {
      const id = uniqueId('tko');
      const a = await track(loggedIn(fx.broker, uniqueId('tkou'), { clientId: id, protocolVersion: proto.protocolVersion }));
      const b = await track(loggedIn(fx.broker, uniqueId('tkob')));
      const mark = fx.dir.mark();
      const a2 = await track(connect(fx.broker, { clientId: id, protocolVersion: proto.protocolVersion }));
      await closed(a);
      // DESIGN §4: "if the client id comes back (any request or ACL check from it) the session continues"
      await a2.subscribe('sensors/#', 1);
      await a2.publish('sensors/temp', '21', { qos: 1 });
      await a2.next('sensors/temp');
      await quietFor(PAST_GRACE_MS);
      const gone = userChanges(mark, a.userid).filter((ch) => ch.after === null);
      assert.deepEqual(gone, [], `logged out although its client id came back (SUBSCRIBE/PUBLISH outside chat/): ${JSON.stringify(gone)}`);
      await a2.send(b.userid, 'still me');
      const m = await b.next(b.inbox('message'), (x) => x.json?.message === 'still me');
      assert.equal(m.json.sender, a.userid, 'still the same user past the grace');
    });

    test(`${proto.name}: a clean disconnect without subscriptions is offline during the grace, then a logout`, async () => {
      const c = await connect(fx.broker, { protocolVersion: proto.protocolVersion });
      const name = uniqueId('nosub');
      const r = await c.login(name); // no inbox subscription: the reply still arrives (QoS 1)
      assert.equal(r.result, 'success', JSON.stringify(r));
      await fx.dir.until((d) => d.users[r.userid]?.online === true, 'online');
      const t0 = Date.now();
      await c.end();
      await fx.dir.until((d) => d.users[r.userid]?.online === false, `chat/users/${r.userid} online:false during the grace`, 1500);
      assert.ok(fx.dir.contacts.person[r.userid], 'still in chat/contacts during the grace');
      await fx.dir.until((d) => d.users[r.userid] === null, 'logged out after the grace', 6000);
      const elapsed = Date.now() - t0;
      assert.ok(elapsed >= GRACE_MS - 500, `logged out after ${elapsed} ms: before the ${GRACE_MS} ms grace`);
      await fx.dir.until((d) => !d.contacts.person[r.userid], 'gone from chat/contacts');
    });

    test(`${proto.name}: a clean disconnect without subscriptions, then the client id comes back within the grace: the session continues`, async () => {
      const id = uniqueId('back');
      const c = await connect(fx.broker, { clientId: id, protocolVersion: proto.protocolVersion });
      const name = uniqueId('backu');
      const r = await c.login(name);
      assert.equal(r.result, 'success', JSON.stringify(r));
      const b = await track(loggedIn(fx.broker, uniqueId('backb')));
      await c.end();
      await fx.dir.until((d) => d.users[r.userid]?.online === false, 'offline');
      const mark = fx.dir.mark();
      const c2 = await track(connect(fx.broker, { clientId: id, protocolVersion: proto.protocolVersion }));
      await c2.send(b.userid, 'I am back'); // a request from the client id
      const m = await b.next(b.inbox('message'), (x) => x.json?.message === 'I am back');
      assert.equal(m.json.sender, r.userid, 'the returning connection is the same user');
      await quietFor(PAST_GRACE_MS);
      const gone = userChanges(mark, r.userid).filter((ch) => ch.after === null);
      assert.deepEqual(gone, [], 'a session that came back within the grace must not be logged out');
      await c2.send(b.userid, 'still here');
      const m2 = await b.next(b.inbox('message'), (x) => x.json?.message === 'still here');
      assert.equal(m2.json.sender, r.userid);
    });
  }

  for (const kind of SESSION_KINDS.filter((k) => k.persistent)) {
    test(`${kind.name}: the stale DISCONNECT of a persistent reconnect is ignored; the user stays past the grace`, async () => {
      const id = uniqueId('stale');
      const a = await loggedIn(fx.broker, uniqueId('staleu'), { clientId: id, ...kindOpts(kind) });
      await a.end();
      await fx.dir.until((d) => d.users[a.userid]?.online === false, 'offline');
      const mark = fx.dir.mark();
      // Reconnect, nothing queued, no request, no subscription: no ACL check can rescue a
      // session wrongly put into the grace.
      const a2 = await track(connect(fx.broker, { clientId: id, ...kindOpts(kind) }));
      assert.equal(a2.connack?.sessionPresent, true, 'the broker kept the persistent session');
      await quietFor(PAST_GRACE_MS);
      const gone = userChanges(mark, a.userid).filter((ch) => ch.after === null);
      assert.deepEqual(gone, [], `a reconnected persistent user must not be logged out: ${JSON.stringify(gone)}`);
      assert.deepEqual(fx.dir.users[a.userid], { userid: a.userid, username: a.username, online: false },
        'still offline until it logs in again');
      const r = await a2.login(a.username);
      assert.deepEqual(r, { result: 'success', userid: a.userid, username: a.username }, 'resumes the same userid');
      await fx.dir.until((d) => d.users[a.userid]?.online === true, 'online again');
    });
  }
});
