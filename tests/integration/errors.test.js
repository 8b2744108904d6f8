// Every error code of DESIGN §4 (except rate_limited and internal), each for its case: answered on
// chat/inbox/<C>/error with the right action name (and, for login, also in login-response), and
// the failed request changes nothing — no directory change, no delivery to anyone.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker } from '../lib/broker.js';
import {
  connect, loggedIn, uniqueId, PROTOCOLS, watchDirectory, quietFor,
} from '../lib/client.js';

const open = [];
async function track(promise) {
  const c = await promise;
  open.push(c);
  return c;
}
after(async () => {
  await Promise.all(open.map((c) => c.end(true)));
});

const UNKNOWN_GROUP = '999991';
const UNKNOWN_USER = '999990';

// The two protocol versions run side by side, each against a broker of its own (so that one's
// set-up cannot show up as the other's directory change).
describe('error codes', { concurrency: true }, () => {
for (const proto of PROTOCOLS) {
  describe(proto.name, { concurrency: 1 }, () => {
    // x: the requester (logged in, member of g); y: the other member of g;
    // z: logged in, not a member of g; n: connected and subscribed, never logged in.
    const s = {};
    let broker;
    let dir;
    after(async () => {
      await dir?.end();
      await broker?.stop();
      broker?.cleanup();
    });
    before(async () => {
      broker = await startBroker();
      dir = await watchDirectory(broker);
      const opts = { protocolVersion: proto.protocolVersion };
      s.x = await track(loggedIn(broker, uniqueId('ex'), opts));
      s.y = await track(loggedIn(broker, uniqueId('ey'), opts));
      s.z = await track(loggedIn(broker, uniqueId('ez'), opts));
      s.w = await track(loggedIn(broker, uniqueId('ew'), opts)); // for logout cases: if one wrongly succeeds, only w is gone
      s.n = await track(connect(broker, opts));
      await s.n.subscribeInbox();
      const g = await s.x.createGroup([s.y]);
      s.gid = g.groupid;
      await s.y.next(s.y.inbox('new_group'), (m) => m.json?.groupid === s.gid);
      await dir.until((d) => d.groups[s.gid] && d.users[s.z.userid] && d.contacts?.group?.[s.gid]
        && d.contacts.person?.[s.z.userid] && d.contacts.person?.[s.w.userid], 'the set-up in the directory');
    });

    // [code, action, who, topic, payload, what]; topic and payload are read when the test runs
    // (they need the ids made in before()), through the getters of `s`.
    const cases = (s) => [
      // login
      ['invalid_request', 'login', 'n', 'chat/login', 'not json', 'payload is not JSON'],
      ['invalid_request', 'login', 'n', 'chat/login', '["alice"]', 'payload is a JSON array'],
      ['invalid_request', 'login', 'n', 'chat/login', {}, 'username missing'],
      ['invalid_request', 'login', 'n', 'chat/login', { username: 5 }, 'username is a number'],
      ['invalid_request', 'login', 'n', 'chat/login', { username: null }, 'username is null'],
      ['invalid_request', 'login', 'n', 'chat/login', '', 'empty payload'],
      ['invalid_username', 'login', 'n', 'chat/login', { username: '' }, 'empty username'],
      ['username_taken', 'login', 'n', 'chat/login', { username: s.y.username }, "another client's username"],
      ['already_logged_in', 'login', 'x', 'chat/login', { username: uniqueId('second') }, 'a second username'],
      // logout
      ['not_logged_in', 'logout', 'n', 'chat/logout', {}, 'logout before login'],
      ['sender_mismatch', 'logout', 'w', 'chat/logout', { sender: s.y.userid }, "logout with another user's sender"],
      ['username_mismatch', 'logout', 'w', 'chat/logout', { username: s.y.username },
        "logout naming another user's username (reading: a username field must name the bound user)"],
      ['invalid_request', 'logout', 'w', 'chat/logout', 'garbage', 'logout payload not JSON'],
      ['username_mismatch', 'message', 'x', `chat/msg/${s.gid}`, { username: s.y.username, message: 'hi' },
        "a message naming another user's username"],
      // message
      ['not_logged_in', 'message', 'n', `chat/msg/${s.gid}`, { message: 'hi' }, 'message before login'],
      ['sender_mismatch', 'message', 'x', `chat/msg/${s.gid}`, { sender: s.y.userid, message: 'hi' }, 'foreign sender'],
      ['invalid_request', 'message', 'x', `chat/msg/${s.gid}`, { sender: 7, message: 'hi' }, 'non-string sender'],
      ['invalid_request', 'message', 'x', `chat/msg/${s.gid}`, { receiver: s.y.userid, message: 'hi' }, 'receiver is not the room'],
      ['invalid_request', 'message', 'x', `chat/msg/${s.gid}`, '{"message":', 'truncated JSON'],
      ['unknown_room', 'message', 'x', `chat/msg/${UNKNOWN_GROUP}`, { message: 'hi' }, 'unknown group'],
      ['unknown_room', 'message', 'x', `chat/msg/${UNKNOWN_USER}`, { message: 'hi' }, 'unknown userid'],
      ['unknown_room', 'message', 'x', 'chat/msg/', { message: 'hi' }, 'empty room'],
      ['unknown_room', 'message', 'x', `chat/msg/${s.gid}/x`, { message: 'hi' }, 'multi-level room'],
      ['unknown_room', 'message', 'x', 'chat/msg/lobby', { message: 'hi' }, 'a room that is no id'],
      ['not_a_member', 'message', 'z', `chat/msg/${s.gid}`, { message: 'hi' }, 'message into a group of others'],
      ['invalid_message', 'message', 'x', `chat/msg/${s.gid}`, { message: '' }, 'empty text'],
      ['invalid_message', 'message', 'x', `chat/msg/${s.gid}`, { message: 5 }, 'text is a number'],
      ['invalid_message', 'message', 'x', `chat/msg/${s.gid}`, { message: null }, 'text is null'],
      ['invalid_message', 'message', 'x', `chat/msg/${s.gid}`, {}, 'text missing'],
      ['message_too_large', 'message', 'x', `chat/msg/${s.gid}`, { message: 'x'.repeat(8193) }, '8193 bytes (default max 8192)'],
      ['message_too_large', 'message', 'x', `chat/msg/${s.y.userid}`, { message: 'é'.repeat(4097) }, '8194 UTF-8 bytes in 4097 characters'],
      // create_group
      ['not_logged_in', 'create_group', 'n', 'chat/group/create', { member: {} }, 'create before login'],
      ['unknown_user', 'create_group', 'x', 'chat/group/create',
        { member: { [s.y.userid]: s.y.username, [UNKNOWN_USER]: 'ghost' } }, 'one unknown member among known ones'],
      ['unknown_user', 'create_group', 'x', 'chat/group/create', { member: { [s.gid]: 'a group' } }, 'a groupid as member'],
      ['invalid_request', 'create_group', 'x', 'chat/group/create', { member: 'abc' }, 'member is a string'],
      ['invalid_request', 'create_group', 'x', 'chat/group/create', { member: [s.y.userid] }, 'member is an array'],
      ['invalid_request', 'create_group', 'x', 'chat/group/create', {}, 'member missing'],
      ['sender_mismatch', 'create_group', 'x', 'chat/group/create', { sender: s.y.userid, member: {} }, 'foreign sender'],
      // join_group
      ['not_logged_in', 'join_group', 'n', 'chat/group/join', { groupid: s.gid }, 'join before login'],
      ['unknown_room', 'join_group', 'z', 'chat/group/join', { groupid: UNKNOWN_GROUP }, 'unknown group'],
      ['unknown_room', 'join_group', 'z', 'chat/group/join', { groupid: s.y.userid }, 'a userid is not a group'],
      ['invalid_request', 'join_group', 'z', 'chat/group/join', { groupid: Number(s.gid) }, 'groupid is a number'],
      ['invalid_request', 'join_group', 'z', 'chat/group/join', {}, 'groupid missing'],
      ['sender_mismatch', 'join_group', 'z', 'chat/group/join', { sender: s.x.userid, groupid: s.gid }, 'foreign sender'],
      // leave_group
      ['not_logged_in', 'leave_group', 'n', 'chat/group/leave', { groupid: s.gid }, 'leave before login'],
      ['unknown_room', 'leave_group', 'x', 'chat/group/leave', { groupid: UNKNOWN_GROUP }, 'unknown group'],
      ['not_a_member', 'leave_group', 'z', 'chat/group/leave', { groupid: s.gid }, 'not a member'],
      ['invalid_request', 'leave_group', 'x', 'chat/group/leave', { groupid: ['x'] }, 'groupid is an array'],
      ['sender_mismatch', 'leave_group', 'x', 'chat/group/leave', { sender: s.y.userid, groupid: s.gid }, 'foreign sender'],
    ];

    // The test names come from a dry run with placeholder ids; the real list is built when the
    // test runs.
    const placeholder = { x: { userid: 'X', username: 'x' }, y: { userid: 'Y', username: 'y' }, gid: 'G' };
    // w stays logged in through every case
    cases(placeholder).forEach(([code, action, who, , , what], i) => {
      test(`${code} (${action}): ${what}`, async () => {
        const [, , , topic, payload] = cases(s)[i];
        const client = s[who];
        for (const k of ['x', 'y', 'z', 'n', 'w']) s[k].drain();
        const mark = dir.mark();
        if (action === 'login') {
          await client.expectLoginFailure(payload, code, what);
        } else {
          await client.publish(topic, payload);
          await client.expectError(action, code);
        }
        await quietFor(300);
        assert.deepEqual(dir.changesSince(mark), [], `a failed ${action} (${code}) must not change the directory`);
        const stray = [];
        for (const k of ['x', 'y', 'z', 'n', 'w']) {
          stray.push(...s[k].drain().filter((m) => m.topic.startsWith('chat/inbox/')).map((m) => `${k}: ${m.topic} ${m.text}`));
        }
        assert.deepEqual(stray, [], `a failed ${action} (${code}) must deliver nothing else (exactly one error)`);
      });
    });

    test('after all failures the state is intact: x and y still in the group, w logged in, n still unbound', async () => {
      const rw = await s.w.login(s.w.username);
      assert.deepEqual(rw, { result: 'success', userid: s.w.userid, username: s.w.username }, 'w unchanged');
      const rx = await s.x.login(s.x.username);
      assert.deepEqual(rx, { result: 'success', userid: s.x.userid, username: s.x.username }, 'x unchanged');
      await s.y.send(s.gid, 'still here');
      const m = await s.x.next(s.x.inbox('message'), (d) => d.json?.message === 'still here');
      assert.equal(m.json.sender, s.y.userid);
      const name = uniqueId('late');
      const rn = await s.n.login(name);
      assert.equal(rn.result, 'success', `n can still log in: ${JSON.stringify(rn)}`);
    });

    test('the boundary: a message of exactly 8192 bytes is accepted', async () => {
      const text = 'y'.repeat(8188) + 'éé';
      assert.equal(Buffer.byteLength(text), 8192);
      await s.x.send(s.gid, text);
      const m = await s.y.next(s.y.inbox('message'), (d) => d.json?.message === text);
      assert.equal(m.json.sender, s.x.userid);
    });
  });
}
});
