// create_group / join_group / leave_group (DESIGN §3-§4, decisions.md): new_group payloads and
// who gets them, membership, deletion of an empty group, groupid shape, and the effect of logout
// on groups.

import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { brokerPerFile } from '../lib/fixture.js';
import {
  loggedIn, uniqueId, SESSION_KINDS, kindOpts, retainedWithin, retained,
} from '../lib/client.js';

const fx = brokerPerFile();
const { track } = fx;

const members = (...cs) => Object.fromEntries(cs.map((c) => [c.userid, c.username]));

function assertNewGroup(m, gid, expectMembers, what) {
  assert.deepEqual(m.json, { groupid: gid, member: expectMembers },
    `${what}: expected new_group ${JSON.stringify({ groupid: gid, member: expectMembers })}, got ${m.text}`);
}

async function nothingOn(clients, kind, ms, what, pred = () => true) {
  await new Promise((r) => setTimeout(r, ms));
  const got = [];
  for (const c of clients) got.push(...(await c.collect(c.inbox(kind), 0)).filter(pred));
  assert.deepEqual(got.map((m) => `${m.topic} ${m.text}`), [], what);
}

for (const kind of SESSION_KINDS) {
  describe(kind.name, () => {
    let a; let b; let c; let d;
    before(async () => {
      a = await track(loggedIn(fx.broker, uniqueId('ga'), kindOpts(kind)));
      b = await track(loggedIn(fx.broker, uniqueId('gb'), kindOpts(kind)));
      c = await track(loggedIn(fx.broker, uniqueId('gc'), { protocolVersion: 4 }));
      d = await track(loggedIn(fx.broker, uniqueId('gd'), { protocolVersion: 5 }));
    });

    test('create -> new_group {groupid, member} to every member incl. the sender; groupid ends in a non-zero digit', async () => {
      await a.publish('chat/group/create', { member: { [b.userid]: b.username, [c.userid]: c.username } });
      const ma = await a.next(a.inbox('new_group'));
      const gid = ma.json?.groupid;
      assert.equal(typeof gid, 'string', `new_group must carry a string groupid, got ${ma.text}`);
      assert.match(gid, /^[0-9]*[1-9]$/, `a groupid is a decimal string ending in a non-zero digit, got ${gid}`);
      const expectMembers = members(a, b, c);
      assertNewGroup(ma, gid, expectMembers, 'new_group to the creator');
      assertNewGroup(await b.next(b.inbox('new_group')), gid, expectMembers, 'new_group to b');
      assertNewGroup(await c.next(c.inbox('new_group')), gid, expectMembers, 'new_group to c');
      await nothingOn([d], 'new_group', 300, 'a non-member gets no new_group');
      await fx.dir.until((x) => x.groups[gid] != null && JSON.stringify(x.contacts?.group?.[gid]) === JSON.stringify(expectMembers),
        `group ${gid} in the directory`);
      assert.deepEqual(fx.dir.groups[gid], { groupid: gid, member: expectMembers }, `chat/groups/${gid}`);
      assert.deepEqual(fx.dir.contacts.group[gid], expectMembers, `chat/contacts group ${gid}`);
      const r = await retained(fx.broker, `chat/groups/${gid}`);
      assert.deepEqual(r.json, { groupid: gid, member: expectMembers }, `retained chat/groups/${gid}: ${r.text}`);
    });

    test('usernames in the member map are ignored (the userid decides); the sender listed again is fine', async () => {
      await a.publish('chat/group/create', { member: { [b.userid]: 'not-b', [a.userid]: 'whatever' } });
      const m = await a.next(a.inbox('new_group'));
      assertNewGroup(m, m.json?.groupid, members(a, b), 'create with wrong usernames');
      assertNewGroup(await b.next(b.inbox('new_group'), (x) => x.json?.groupid === m.json.groupid),
        m.json.groupid, members(a, b), 'new_group to b');
    });

    test('create with an empty member object makes a group of the sender alone', async () => {
      await b.publish('chat/group/create', { member: {} });
      const m = await b.next(b.inbox('new_group'));
      assertNewGroup(m, m.json?.groupid, members(b), 'create with {}');
      await nothingOn([a, c, d], 'new_group', 300, 'nobody else hears of a one-person group');
    });

    test('join -> new_group with the new member list to every member; join again -> only the joiner', async () => {
      const g = await a.createGroup([b]);
      const gid = g.groupid;
      await b.next(b.inbox('new_group'), (x) => x.json?.groupid === gid);
      await c.publish('chat/group/join', { groupid: gid });
      const expectMembers = members(a, b, c);
      for (const x of [a, b, c]) {
        assertNewGroup(await x.next(x.inbox('new_group'), (m) => m.json?.groupid === gid), gid, expectMembers,
          `new_group after join, to ${x.username}`);
      }
      await fx.dir.until((x) => JSON.stringify(x.groups[gid]?.member) === JSON.stringify(expectMembers),
        `chat/groups/${gid} with c`);
      // a joiner gets the group's messages from now on
      await a.send(gid, 'after join');
      const m = await c.next(c.inbox('message'), (x) => x.json?.message === 'after join');
      assert.equal(m.json.sender, a.userid);
      // already a member: success, new_group to the joiner only
      await c.publish('chat/group/join', { groupid: gid });
      assertNewGroup(await c.next(c.inbox('new_group'), (x) => x.json?.groupid === gid), gid, expectMembers,
        'new_group re-sent to the joiner');
      await nothingOn([a, b], 'new_group', 400, 'a repeated join must not re-send new_group to the others');
      await nothingOn([c], 'error', 0, 'a repeated join is not an error');
    });

    test('leave: no delivery, member removed at once; not a member any more -> not_a_member', async () => {
      const g = await a.createGroup([b, c]);
      const gid = g.groupid;
      await b.next(b.inbox('new_group'), (x) => x.json?.groupid === gid);
      await c.next(c.inbox('new_group'), (x) => x.json?.groupid === gid);
      await b.publish('chat/group/leave', { groupid: gid });
      await fx.dir.until((x) => JSON.stringify(x.groups[gid]?.member) === JSON.stringify(members(a, c))
        && JSON.stringify(x.contacts?.group?.[gid]) === JSON.stringify(members(a, c)), `${gid} without b`);
      await nothingOn([b], 'error', 0, 'leave has no error');
      await nothingOn([a, b, c], 'new_group', 0, 'leave sends no new_group');
      // b no longer gets the group's messages
      await a.send(gid, 'after leave');
      await c.next(c.inbox('message'), (x) => x.json?.message === 'after leave');
      await nothingOn([b], 'message', 300, 'a member who left must not get group messages', (m) => m.json?.message === 'after leave');
      // and may neither write into it nor leave again
      await b.send(gid, 'not a member');
      await b.expectError('message', 'not_a_member');
      await b.publish('chat/group/leave', { groupid: gid });
      await b.expectError('leave_group', 'not_a_member');
      await nothingOn([a, c], 'message', 300, 'a non-member message is not delivered', (m) => m.json?.message === 'not a member');
    });

    test('the last member leaving deletes the group: chat/groups/<gid> empty retained, gone from contacts', async () => {
      const g = await a.createGroup([d]);
      const gid = g.groupid;
      await d.next(d.inbox('new_group'), (x) => x.json?.groupid === gid);
      await fx.dir.until((x) => x.groups[gid] != null && x.contacts?.group?.[gid], `${gid} in the directory`);
      await a.publish('chat/group/leave', { groupid: gid });
      await fx.dir.until((x) => JSON.stringify(x.groups[gid]?.member) === JSON.stringify(members(d)), `${gid} with d alone`);
      await d.publish('chat/group/leave', { groupid: gid });
      await fx.dir.until((x) => x.groups[gid] === null, `chat/groups/${gid} to become an empty payload`);
      await fx.dir.until((x) => x.contacts && !(gid in (x.contacts.group || {})), `chat/contacts without ${gid}`);
      const late = await retainedWithin(fx.broker, `chat/groups/${gid}`, 400);
      assert.deepEqual(late.map((m) => m.text), [], `nothing retained on chat/groups/${gid} once deleted`);
      // a deleted group is an unknown room
      await d.publish('chat/group/join', { groupid: gid });
      await d.expectError('join_group', 'unknown_room');
      await d.send(gid, 'into a deleted group');
      await d.expectError('message', 'unknown_room');
      // groupids are not reused
      const g2 = await d.createGroup([]);
      assert.notEqual(g2.groupid, gid, `groupid ${gid} reused`);
      assert.match(g2.groupid, /^[0-9]*[1-9]$/, `groupid shape: ${g2.groupid}`);
    });

    test('logout removes the user from every group; a group left empty is deleted', async () => {
      const x = await track(loggedIn(fx.broker, uniqueId('gx'), kindOpts(kind)));
      const shared = await a.createGroup([x]);
      await x.next(x.inbox('new_group'), (m) => m.json?.groupid === shared.groupid);
      const alone = await x.createGroup([]);
      await fx.dir.until((s) => s.groups[shared.groupid] && s.groups[alone.groupid], 'both groups listed');
      await x.publish('chat/logout', {});
      await fx.dir.until((s) => s.groups[alone.groupid] === null, `the group ${alone.groupid} of x alone deleted`);
      await fx.dir.until((s) => JSON.stringify(s.groups[shared.groupid]?.member) === JSON.stringify(members(a)),
        `x removed from ${shared.groupid}`);
      await fx.dir.until((s) => s.contacts && !s.contacts.person?.[x.userid]
        && JSON.stringify(s.contacts.group?.[shared.groupid]) === JSON.stringify(members(a))
        && !(alone.groupid in (s.contacts.group || {})), 'chat/contacts after the logout');
    });
  });
}
