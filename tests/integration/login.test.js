// Login and logout (DESIGN §2-§4): the login-response shape, userids, re-login, already_logged_in,
// username_taken, invalid usernames, and logout's effect on the directory — with MQTT 3.1.1 and
// MQTT 5 clients, clean and persistent sessions.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { brokerPerFile } from '../lib/fixture.js';
import {
  connect, loggedIn, uniqueId, SESSION_KINDS, kindOpts, retainedWithin,
} from '../lib/client.js';

const fx = brokerPerFile();
const { track } = fx;

/** Asserts the exact success payload and returns the userid. */
function assertSuccess(res, username, what) {
  assert.equal(typeof res?.userid, 'string', `${what}: expected a string userid, got ${JSON.stringify(res)}`);
  // A new user in anonymous mode also gets its token (32 hex digits), a returning one does not.
  const { token, ...rest } = res;
  assert.ok(token === undefined || /^[0-9a-f]{32}$/.test(token), `${what}: a token is 32 hex digits, got ${JSON.stringify(res)}`);
  assert.deepEqual(rest, { result: 'success', userid: res.userid, username },
    `${what}: expected exactly {result:"success", userid, username:${JSON.stringify(username)}} (and a token), got ${JSON.stringify(res)}`);
  assert.match(res.userid, /^[1-9][0-9]*0$/, `${what}: a userid is a decimal string ending in 0, got ${res.userid}`);
  return res.userid;
}

test('the first logins on a fresh broker get userids "10" and "20" (decisions: k*10)', async () => {
  const a = await track(connect(fx.broker));
  await a.subscribeInbox();
  const na = uniqueId('first');
  const ra = await a.login(na);
  assert.deepEqual(ra, { result: 'success', userid: '10', username: na, token: ra.token },
    `first login: expected userid "10", got ${JSON.stringify(ra)}`);
  const b = await track(connect(fx.broker, { protocolVersion: 5 }));
  await b.subscribeInbox();
  const nb = uniqueId('second');
  const rb = await b.login(nb);
  assert.deepEqual(rb, { result: 'success', userid: '20', username: nb, token: rb.token },
    `second login: expected userid "20", got ${JSON.stringify(rb)}`);
});

for (const kind of SESSION_KINDS) {
  describe(kind.name, () => {
    test('login succeeds with {result, userid, username}; the user appears in the directory', async () => {
      const c = await track(connect(fx.broker, kindOpts(kind)));
      await c.subscribeInbox();
      const name = uniqueId('alice');
      const uid = assertSuccess(await c.login(name), name, 'login');
      await fx.dir.until((d) => d.contacts?.person?.[uid]?.[uid] === name,
        `chat/contacts to list ${uid}:${name}`);
      await fx.dir.until((d) => d.users[uid] != null, `chat/users/${uid}`);
      assert.deepEqual(fx.dir.users[uid], { userid: uid, username: name, online: true },
        `chat/users/${uid}: expected the user online, got ${JSON.stringify(fx.dir.users[uid])}`);
      // Nothing else is delivered for a successful login.
      const errors = await c.collect(c.inbox('error'), 300);
      assert.deepEqual(errors.map((m) => m.text), [], 'a successful login must not produce error deliveries');
    });

    test('the same username twice from the same connection: success, same userid', async () => {
      const c = await track(loggedIn(fx.broker, uniqueId('twice'), kindOpts(kind)));
      const again = await c.login(c.username);
      assertSuccess(again, c.username, 're-login');
      assert.equal(again.userid, c.userid, `re-login must keep userid ${c.userid}, got ${JSON.stringify(again)}`);
      const errors = await c.collect(c.inbox('error'), 300);
      assert.deepEqual(errors.map((m) => m.text), [], 're-login with the same name must not produce errors');
    });

    test('another username from a logged-in connection: already_logged_in, still bound to the first', async () => {
      const c = await track(loggedIn(fx.broker, uniqueId('bound'), kindOpts(kind)));
      const other = uniqueId('other');
      await c.expectLoginFailure({ username: other }, 'already_logged_in');
      // Still the first user: logging in with the first name again gives the same id.
      const again = await c.login(c.username);
      assert.deepEqual(again, { result: 'success', userid: c.userid, username: c.username },
        `after already_logged_in the connection must still be ${c.userid}, got ${JSON.stringify(again)}`);
      await fx.dir.until((d) => d.contacts?.person?.[c.userid]?.[c.userid] === c.username, `${c.username} in contacts`);
      const names = Object.values(fx.dir.contacts.person).map((p) => Object.values(p)[0]);
      assert.ok(!names.includes(other), `${other} must not be in chat/contacts: ${JSON.stringify(fx.dir.contacts)}`);
    });

    test('a username held by another client id: username_taken, and no user is bound', async () => {
      const holder = await track(loggedIn(fx.broker, uniqueId('holder')));
      const c = await track(connect(fx.broker, kindOpts(kind)));
      await c.subscribeInbox();
      await c.expectLoginFailure({ username: holder.username }, 'username_taken');
      // Not bound: a free name now logs in (it would be already_logged_in otherwise).
      const name = uniqueId('free');
      assertSuccess(await c.login(name), name, 'login after username_taken');
      // The holder keeps its name and id.
      const h = await holder.login(holder.username);
      assert.deepEqual(h, { result: 'success', userid: holder.userid, username: holder.username },
        `the holder must be unaffected, got ${JSON.stringify(h)}`);
    });

    const invalid = [
      ['the empty string', { username: '' }],
      ['65 bytes', { username: 'x'.repeat(65) }],
      ['66 bytes of 2-byte characters (33 code points)', { username: 'é'.repeat(33) }],
      ['a control character (U+0001)', { username: 'bad\u0001name' }],
      ['a newline', { username: 'bad\nname' }],
      ['a NUL (\\u0000)', { username: 'bad\u0000name' }],
      ['invalid UTF-8 bytes in the JSON string',
        Buffer.concat([Buffer.from('{"username":"bad'), Buffer.from([0xff, 0xfe]), Buffer.from('name"}')])],
      ['a lone continuation byte',
        Buffer.concat([Buffer.from('{"username":"x'), Buffer.from([0x80]), Buffer.from('"}')])],
    ];
    for (const [what, payload] of invalid) {
      test(`invalid_username: ${what}; the connection stays unbound`, async () => {
        const c = await track(connect(fx.broker, kindOpts(kind)));
        await c.subscribeInbox();
        await c.expectLoginFailure(payload, 'invalid_username', what);
        const name = uniqueId('ok');
        assertSuccess(await c.login(name), name, `login after invalid_username (${what})`);
      });
    }

    test('boundary usernames are accepted: 64 ASCII bytes, 64 bytes of 2-byte characters, non-ASCII', async () => {
      const twoByte = (() => {
        let n = uniqueId('e');
        if (n.length % 2) n += '-';
        while (Buffer.byteLength(n) < 64) n += 'é';
        return n;
      })();
      const names = [`${uniqueId('b')}-`.padEnd(64, 'y'), twoByte, `名前-${uniqueId('u')}`];
      assert.deepEqual(names.slice(0, 2).map((n) => Buffer.byteLength(n)), [64, 64], 'test set-up: 64-byte names');
      for (const name of names) {
        const c = await track(connect(fx.broker, kindOpts(kind)));
        await c.subscribeInbox();
        assertSuccess(await c.login(name), name, `login of ${JSON.stringify(name)} (${Buffer.byteLength(name)} bytes)`);
      }
    });

    test('logout removes the user from chat/contacts, empties chat/users/<uid>, and allows a new login', async () => {
      const c = await track(loggedIn(fx.broker, uniqueId('bye'), kindOpts(kind)));
      const uid = c.userid;
      await fx.dir.until((d) => d.contacts?.person?.[uid] && d.users[uid]?.online === true, `${uid} in the directory`);
      await c.publish('chat/logout', {});
      await fx.dir.until((d) => d.users[uid] === null, `chat/users/${uid} to become an empty payload`);
      await fx.dir.until((d) => d.contacts && !d.contacts.person?.[uid], `chat/contacts without ${uid}`);
      // Empty retained payload = nothing retained for a late subscriber.
      const late = await retainedWithin(fx.broker, `chat/users/${uid}`, 400);
      assert.deepEqual(late.map((m) => m.text), [], `no retained chat/users/${uid} after logout`);
      // logout has no success delivery
      const inbox = await c.collect(c.inbox('error'), 300);
      assert.deepEqual(inbox.map((m) => m.text), [], 'logout must not produce error deliveries');
      // May log in again (even with the same name); ids are never reused.
      const again = await c.login(c.username);
      const uid2 = assertSuccess(again, c.username, 'login after logout');
      assert.notEqual(uid2, uid, `userids are never reused: got ${uid} again after logout`);
      await fx.dir.until((d) => d.contacts?.person?.[uid2]?.[uid2] === c.username, `${uid2} in contacts`);
    });

    test('after logout the username is free for another client', async () => {
      const c = await track(loggedIn(fx.broker, uniqueId('free'), kindOpts(kind)));
      await c.publish('chat/logout', {});
      await fx.dir.until((d) => d.users[c.userid] === null, `chat/users/${c.userid} emptied`);
      const d2 = await track(connect(fx.broker));
      await d2.subscribeInbox();
      assertSuccess(await d2.login(c.username), c.username, 'login of a logged-out name from another client');
    });
  });
}

test('a login request carrying seed fields (action, sender) is accepted: sender is not checked on login', async () => {
  const c = await track(connect(fx.broker, { protocolVersion: 5 }));
  await c.subscribeInbox();
  const name = uniqueId('seed');
  await c.publish('chat/login', { action: 'login', username: name, sender: 'whoever', receiver: null });
  const r = await c.next(c.inbox('login-response'));
  assertSuccess(r.json, name, 'seed-style login');
});
