// Connections (DESIGN §4, decisions.md): a clean disconnect with an inbox subscription logs out
// at once (graceful or dropped); a persistent session keeps the user offline with its groups,
// deliveries queue and arrive in order on reconnect, re-login resumes the same userid; offline
// expiry; connections with an empty, refused or unusable client id.
//
// Grace-period behaviour (client-id takeover, clean disconnect without subscriptions, the
// duplicate DISCONNECT of a persistent reconnect) is in takeover.test.js.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { startBroker } from '../lib/broker.js';
import {
  connect, loggedIn, uniqueId, PROTOCOLS, SESSION_KINDS, kindOpts, watchDirectory, quietFor,
} from '../lib/client.js';

let broker;
let dir;
const open = [];
async function track(promise) {
  const c = await promise;
  open.push(c);
  return c;
}

before(async () => {
  // A password file so that a failed authentication (a DISCONNECT with a NULL client id) can be
  // provoked; clients without a username stay anonymous and allowed.
  const { mkdtempSync, chmodSync } = await import('node:fs');
  const os = await import('node:os');
  const pwDir = mkdtempSync(path.join(os.tmpdir(), 'chat-pw-'));
  chmodSync(pwDir, 0o755);
  const pw = path.join(pwDir, 'passwd');
  execFileSync('mosquitto_passwd', ['-c', '-b', pw, 'known', 'right'], { stdio: 'ignore' });
  chmodSync(pw, 0o644);
  broker = await startBroker({ extraConfig: `password_file ${pw}` });
  dir = await watchDirectory(broker);
});
after(async () => {
  await Promise.all(open.map((c) => c.end(true)));
  await dir?.end();
  await broker?.stop();
  broker?.cleanup();
});

const memberIds = (d, gid) => Object.keys(d.groups[gid]?.member ?? {}).sort();

describe('clean disconnect with an inbox subscription logs out at once', () => {
  const ways = [
    ['graceful DISCONNECT', (c) => c.end()],
    ['dropped socket (stream.destroy)', (c) => { c.client.stream.destroy(); }],
    ['forced end without DISCONNECT (end(true))', (c) => c.end(true)],
  ];
  for (const proto of PROTOCOLS) {
    for (const [how, disconnect] of ways) {
      test(`${proto.name}: ${how}`, async () => {
        const a = await loggedIn(broker, uniqueId('cl'), { protocolVersion: proto.protocolVersion });
        const b = await track(loggedIn(broker, uniqueId('clb')));
        const g = await b.createGroup([a]);
        await a.next(a.inbox('new_group'));
        await dir.until((d) => d.users[a.userid]?.online === true && memberIds(d, g.groupid).length === 2, 'set-up');
        await disconnect(a);
        // Within 1.5 s: well before the 2 s... 60 s grace a subscription-less disconnect would get.
        await dir.until((d) => d.users[a.userid] === null, `chat/users/${a.userid} emptied at once`, 1500);
        await dir.until((d) => d.contacts && !d.contacts.person?.[a.userid]
          && JSON.stringify(memberIds(d, g.groupid)) === JSON.stringify([b.userid]), 'a gone from contacts and group', 1500);
        // the name is free again
        const again = await track(loggedIn(broker, a.username, { protocolVersion: proto.protocolVersion }));
        assert.notEqual(again.userid, a.userid, 'a new login gets a new userid');
      });
    }
  }
});

for (const kind of SESSION_KINDS.filter((k) => k.persistent)) {
  describe(`${kind.name} session`, () => {
    test('disconnect keeps the user offline with its groups; deliveries queue and arrive in order on reconnect; re-login resumes', async () => {
      const id = uniqueId('pers');
      const name = uniqueId('pu');
      const a = await loggedIn(broker, name, { clientId: id, ...kindOpts(kind) });
      const b = await track(loggedIn(broker, uniqueId('pb'), { protocolVersion: 5 }));
      const g = await b.createGroup([a]);
      await a.next(a.inbox('new_group'), (m) => m.json?.groupid === g.groupid);
      await dir.until((d) => d.users[a.userid]?.online === true && memberIds(d, g.groupid).length === 2, 'set-up');
      await a.end();
      await dir.until((d) => d.users[a.userid]?.online === false, `chat/users/${a.userid} online:false`);
      assert.deepEqual(dir.users[a.userid], { userid: a.userid, username: name, online: false },
        'an offline persistent user stays in chat/users');
      await dir.until((d) => d.contacts?.person?.[a.userid]?.[a.userid] === name
        && d.contacts.group?.[g.groupid]?.[a.userid] === name, 'an offline user stays in contacts and its group');
      assert.deepEqual(memberIds(dir, g.groupid), [a.userid, b.userid].sort(), 'membership kept');

      // Sent while a is away.
      for (let i = 0; i < 5; i += 1) await b.send(g.groupid, `queued ${i}`);
      await b.send(a.userid, 'direct while away');
      const g2 = await b.createGroup([a]);

      // Same client id, no clean start, no re-subscription: the queue is delivered.
      const a2 = await track(connect(broker, { clientId: id, ...kindOpts(kind) }));
      const got = [];
      for (let i = 0; i < 6; i += 1) got.push((await a2.next(a2.inbox('message'))).json?.message);
      assert.deepEqual(got, ['queued 0', 'queued 1', 'queued 2', 'queued 3', 'queued 4', 'direct while away'],
        'queued deliveries in order');
      const ng = await a2.next(a2.inbox('new_group'), (m) => m.json?.groupid === g2.groupid);
      assert.deepEqual(ng.json.member, { [a.userid]: name, [b.userid]: b.username }, 'queued new_group');

      const r = await a2.login(name);
      assert.deepEqual(r, { result: 'success', userid: a.userid, username: name },
        `re-login from the same client id resumes ${a.userid}: got ${JSON.stringify(r)}`);
      await dir.until((d) => d.users[a.userid]?.online === true, `chat/users/${a.userid} online:true again`);
      // live again, still a member
      await a2.send(g.groupid, 'back');
      const m = await b.next(b.inbox('message'), (x) => x.json?.message === 'back');
      assert.equal(m.json.sender, a.userid);
      await b.send(g.groupid, 'welcome back');
      await a2.next(a2.inbox('message'), (x) => x.json?.message === 'welcome back');
    });

    test('another username from the client id of an offline user: the old user is logged out, the new one bound', async () => {
      const id = uniqueId('swap');
      const a = await loggedIn(broker, uniqueId('old'), { clientId: id, ...kindOpts(kind) });
      await a.end();
      await dir.until((d) => d.users[a.userid]?.online === false, 'offline');
      const a2 = await track(connect(broker, { clientId: id, ...kindOpts(kind) }));
      const newName = uniqueId('new');
      const r = await a2.login(newName);
      assert.equal(r.result, 'success', `login of another name while the bound user is offline: ${JSON.stringify(r)}`);
      assert.notEqual(r.userid, a.userid, 'a new user, a new id');
      await dir.until((d) => d.users[a.userid] === null, `the old user ${a.userid} logged out`);
      await dir.until((d) => d.users[r.userid]?.online === true && !d.contacts?.person?.[a.userid], 'the new one online');
    });

    test('re-login with the same name but a NEW client id while offline is username_taken (the name stays with its session)', async () => {
      const a = await loggedIn(broker, uniqueId('keep'), { clientId: uniqueId('k'), ...kindOpts(kind) });
      await a.end();
      await dir.until((d) => d.users[a.userid]?.online === false, 'offline');
      const other = await track(connect(broker, kindOpts(kind)));
      await other.subscribeInbox();
      await other.expectLoginFailure({ username: a.username }, 'username_taken');
    });
  });
}

describe('offline expiry', () => {
  test('with plugin_opt_offline_expiry 1 a persistent offline user is logged out after ~1-2 s; online users stay', async () => {
    const b2 = await startBroker({ options: { offline_expiry: 1 } });
    const d2 = await watchDirectory(b2);
    const cs = [];
    try {
      const online = await loggedIn(b2, uniqueId('stay'));
      cs.push(online);
      for (const kind of SESSION_KINDS.filter((k) => k.persistent)) {
        const a = await loggedIn(b2, uniqueId('exp'), kindOpts(kind));
        cs.push(a);
        await d2.until((d) => d.users[a.userid]?.online === true, 'online');
        const t0 = Date.now();
        await a.end();
        await d2.until((d) => d.users[a.userid]?.online === false, 'offline first');
        await d2.until((d) => d.users[a.userid] === null, `${kind.name}: logged out by the expiry`, 5000);
        const elapsed = Date.now() - t0;
        assert.ok(elapsed >= 900, `${kind.name}: logged out after ${elapsed} ms, before the 1 s expiry`);
        await d2.until((d) => d.contacts && !d.contacts.person?.[a.userid], 'gone from contacts');
      }
      assert.equal(d2.users[online.userid]?.online, true, 'a connected user does not expire');
      const r = await online.login(online.username);
      assert.equal(r.userid, online.userid, 'the connected user is still bound');
    } finally {
      await Promise.all(cs.map((c) => c.end(true)));
      await d2.end();
      await b2.stop();
      b2.cleanup();
    }
  });
});

describe('empty, refused and unusable client ids', () => {
  let sentinel; let friend;
  before(async () => {
    sentinel = await track(loggedIn(broker, uniqueId('sentinel')));
    friend = await track(loggedIn(broker, uniqueId('friend'), { protocolVersion: 5 }));
  });

  async function othersUnaffected(what) {
    assert.equal(broker.exited, null, `the broker died (${what})`);
    assert.ok(sentinel.connected && friend.connected, `other clients must stay connected (${what})`);
    const text = `still fine after ${what}`;
    await friend.send(sentinel.userid, text);
    const m = await sentinel.next(sentinel.inbox('message'), (x) => x.json?.message === text);
    assert.equal(m.json.sender, friend.userid);
    assert.equal(dir.users[sentinel.userid]?.online, true, `the sentinel is still online (${what})`);
  }

  test('MQTT 3.1.1 with an empty client id (clean): the broker assigns one and chat works on it', async () => {
    const c = await track(connect(broker, { clientId: '', protocolVersion: 4 }));
    await c.publish('chat/login', { username: uniqueId('anonid') });
    const lr = await c.nextWhere((m) => /^chat\/inbox\/[^/]+\/login-response$/.test(m.topic), 'a login-response');
    assert.equal(lr.json?.result, 'success', `login with an assigned client id: ${lr.text}`);
    const assigned = lr.topic.split('/')[2];
    await friend.send(lr.json.userid, 'to the assigned id');
    const m = await c.next(`chat/inbox/${assigned}/message`, (x) => x.json?.message === 'to the assigned id');
    assert.equal(m.json.sender, friend.userid);
    await othersUnaffected('an empty 3.1.1 client id');
  });

  test('MQTT 5 with an empty client id: the assigned client identifier is used', async () => {
    const c = await track(connect(broker, { clientId: '', protocolVersion: 5 }));
    assert.ok(c.clientId, 'CONNACK carries an assigned client identifier');
    await c.subscribeInbox();
    const r = await c.login(uniqueId('assigned5'));
    assert.equal(r.result, 'success', `login: ${JSON.stringify(r)}`);
    await othersUnaffected('an empty MQTT 5 client id');
  });

  test('a refused connection (empty client id with clean_session false) and failed authentications change nothing', async () => {
    // MQTT.js will not send this CONNECT, so it is written by hand: MQTT 3.1.1, clean session
    // off, keepalive 60, zero-length client id. The broker answers CONNACK 0x02 (identifier
    // rejected) and closes: a connection that never had a client id.
    const connack = await new Promise((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port: broker.port }, () => {
        sock.write(Buffer.from([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x00, 0, 60, 0, 0]));
      });
      let got = Buffer.alloc(0);
      sock.on('data', (d) => { got = Buffer.concat([got, d]); });
      sock.on('close', () => resolve(got));
      sock.on('error', reject);
    });
    assert.deepEqual([...connack], [0x20, 0x02, 0x00, 0x02], 'CONNACK "identifier rejected" for an empty id without clean session');
    for (const [username, password] of [['known', 'wrong'], ['nobody', 'x']]) {
      for (const protocolVersion of [4, 5]) {
        await assert.rejects(connect(broker, { clientId: uniqueId('auth'), protocolVersion, username, password }),
          `bad credentials ${username}/${password} must be refused`);
      }
    }
    // the taken-over id of a logged-in user with bad credentials
    await assert.rejects(connect(broker, { clientId: sentinel.clientId, username: 'known', password: 'wrong' }));
    await othersUnaffected('refused connections');
    const ok = await track(loggedIn(broker, uniqueId('authed'), { username: 'known', password: 'right' }));
    assert.match(ok.userid, /0$/);
  });

  test('raw TCP: connect-and-close, garbage bytes, a CONNECT followed by a close', async () => {
    const raw = (bytes) => new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: broker.port }, () => {
        if (bytes) s.write(bytes);
        setTimeout(() => s.destroy(), 50);
      });
      s.on('close', resolve);
      s.on('error', () => {});
    });
    await raw(null);
    await raw(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x00]));
    await raw(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    // CONNECT, MQTT 3.1.1, clean, keepalive 60, client id "rawclient"
    const id = Buffer.from('rawclient');
    const body = Buffer.concat([Buffer.from([0, 4]), Buffer.from('MQTT'), Buffer.from([4, 2, 0, 60, 0, id.length]), id]);
    await raw(Buffer.concat([Buffer.from([0x10, body.length]), body]));
    await othersUnaffected('raw TCP connections');
  });

  for (const badId of ['a+b', '$x', 'a#b', 'a/b', 'x'.repeat(129)]) {
    for (const protocolVersion of [4, 5]) {
      test(`MQTT ${protocolVersion === 4 ? '3.1.1' : '5'} client id ${JSON.stringify(badId.length > 20 ? `${badId.slice(0, 8)}… (${badId.length} bytes)` : badId)}: chat requests ignored, nothing breaks`, async () => {
        const logStart = broker.log().length;
        const c = await track(connect(broker, { clientId: badId, protocolVersion }));
        assert.equal(await c.trySubscribe('#', 1), 1, 'a # subscription is fine');
        const name = uniqueId('ignored');
        await c.publish('chat/login', { username: name });
        await c.publish(`chat/msg/${sentinel.userid}`, { message: 'from a bad id' });
        await c.publish('chat/group/create', { member: {} });
        await quietFor(400);
        const inbox = c.drain().filter((m) => m.topic.startsWith('chat/inbox/') || m.topic === 'chat/login');
        assert.deepEqual(inbox.map((m) => `${m.topic} ${m.text}`), [], 'no reply is possible and none may be attempted');
        const leaked = (await sentinel.collect(sentinel.inbox('message'), 0)).filter((m) => m.json?.message === 'from a bad id');
        assert.deepEqual(leaked.map((m) => m.text), [], 'requests of an unusable client id are ignored');
        const names = Object.values(dir.contacts?.person ?? {}).map((p) => Object.values(p)[0]);
        assert.ok(!names.includes(name), `${name} must not be logged in: ${JSON.stringify(dir.contacts)}`);
        assert.ok(c.connected, 'the connection is ignored, not dropped');
        // "logs a warning once": three ignored requests, at most one plugin line about this client
        const chatLines = broker.log().slice(logStart).split('\n').filter((l) => l.includes('chat:') && l.includes(badId));
        assert.ok(chatLines.length <= 1, `expected at most one warning about client ${badId.slice(0, 10)}, got:\n${chatLines.join('\n')}`);
        const claim = await track(loggedIn(broker, name));
        assert.match(claim.userid, /0$/, 'the name stays free');
        await othersUnaffected(`client id ${badId.slice(0, 10)}`);
      });
    }
  }
});
