// The retained directory (DESIGN §3, decisions.md): chat/contacts in the seed format, read by
// late subscribers with the retain flag, updated after login / create / join / leave / logout;
// chat/users/<uid> and chat/groups/<gid>, emptied when the entity is gone.
//
// The file keeps a model of the whole directory and compares complete snapshots, on a broker of
// its own so that nothing else changes it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker } from '../lib/broker.js';
import {
  connect, loggedIn, uniqueId, retained, retainedWithin, watchDirectory,
} from '../lib/client.js';

let broker;
let dir;
const open = [];
async function track(promise) {
  const c = await promise;
  open.push(c);
  return c;
}

// The expected directory.
const model = { person: {}, group: {} };
const expectedContacts = () => structuredClone(model);

before(async () => {
  broker = await startBroker();
});
after(async () => {
  await Promise.all(open.map((c) => c.end(true)));
  await dir?.end();
  await broker?.stop();
  broker?.cleanup();
});

/** Waits until the live chat/contacts equals the model, then checks a late subscriber's copy. */
async function contactsMatchModel(what) {
  const want = expectedContacts();
  await dir.until((d) => JSON.stringify(canon(d.contacts)) === JSON.stringify(canon(want)),
    `chat/contacts ${JSON.stringify(want)} (${what})`);
  const late = await retained(broker, 'chat/contacts');
  assert.equal(late.retain, true, 'a late subscriber gets chat/contacts with the retain flag set');
  assert.deepEqual(late.json, want, `retained chat/contacts for a late subscriber (${what}): got ${late.text}`);
}

/** Key order does not matter in JSON objects: sort keys recursively before comparing text. */
function canon(v) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])]));
}

test('at start-up chat/contacts is retained and empty: {"person":{},"group":{}}', async () => {
  // The snapshot is published on the first tick; a late subscriber (after the broker is up)
  // gets it retained. Poll by re-subscribing until the first tick has certainly passed.
  let first;
  for (let attempt = 1; !first; attempt += 1) {
    try {
      first = await retained(broker, 'chat/contacts', 1000);
    } catch (err) {
      if (attempt === 3) throw err;
    }
  }
  assert.equal(first.retain, true, 'retain flag');
  assert.deepEqual(first.json, { person: {}, group: {} }, `start-up snapshot: got ${first.text}`);
  dir = await watchDirectory(broker);
  await dir.until((d) => d.contacts !== undefined, 'the watcher to receive the retained chat/contacts');
});

let alice; let bob; let carol; let gid;

test('login adds {uid:{uid:name}} to person and publishes chat/users/<uid> {userid, username, online:true}', async () => {
  alice = await track(loggedIn(broker, uniqueId('alice')));
  model.person[alice.userid] = { [alice.userid]: alice.username };
  await contactsMatchModel('after alice logs in');
  const u = await retained(broker, `chat/users/${alice.userid}`);
  assert.equal(u.retain, true, `chat/users/${alice.userid} is retained`);
  assert.deepEqual(u.json, { userid: alice.userid, username: alice.username, online: true },
    `chat/users/${alice.userid}: got ${u.text}`);
  bob = await track(loggedIn(broker, uniqueId('bob'), { protocolVersion: 5 }));
  carol = await track(loggedIn(broker, uniqueId('carol')));
  model.person[bob.userid] = { [bob.userid]: bob.username };
  model.person[carol.userid] = { [carol.userid]: carol.username };
  await contactsMatchModel('after bob and carol log in');
});

test('create adds the group to contacts and publishes chat/groups/<gid> {groupid, member}', async () => {
  const g = await alice.createGroup([bob]);
  gid = g.groupid;
  model.group[gid] = { [alice.userid]: alice.username, [bob.userid]: bob.username };
  await contactsMatchModel('after create');
  const r = await retained(broker, `chat/groups/${gid}`);
  assert.equal(r.retain, true, `chat/groups/${gid} is retained`);
  assert.deepEqual(r.json, { groupid: gid, member: model.group[gid] }, `chat/groups/${gid}: got ${r.text}`);
});

test('join updates contacts and chat/groups/<gid>', async () => {
  await carol.joinGroup(gid);
  model.group[gid][carol.userid] = carol.username;
  await contactsMatchModel('after join');
  await dir.until((d) => JSON.stringify(canon(d.groups[gid])) === JSON.stringify(canon({ groupid: gid, member: model.group[gid] })),
    `chat/groups/${gid} with carol`);
});

test('leave updates contacts and chat/groups/<gid>', async () => {
  await bob.publish('chat/group/leave', { groupid: gid });
  delete model.group[gid][bob.userid];
  await contactsMatchModel('after leave');
  const r = await retained(broker, `chat/groups/${gid}`);
  assert.deepEqual(r.json, { groupid: gid, member: model.group[gid] }, `chat/groups/${gid}: got ${r.text}`);
});

test('logout removes the person (and its memberships); chat/users/<uid> becomes an empty retained payload', async () => {
  await carol.publish('chat/logout', {});
  delete model.person[carol.userid];
  delete model.group[gid][carol.userid];
  await contactsMatchModel('after logout');
  await dir.until((d) => d.users[carol.userid] === null, `an empty payload on chat/users/${carol.userid}`);
  const late = await retainedWithin(broker, `chat/users/${carol.userid}`, 400);
  assert.deepEqual(late.map((m) => m.text), [], 'nothing retained for a logged-out user');
});

test('a group deleted by its last leaver disappears from contacts; chat/groups/<gid> empty retained', async () => {
  await alice.publish('chat/group/leave', { groupid: gid });
  delete model.group[gid];
  await contactsMatchModel('after the last member left');
  await dir.until((d) => d.groups[gid] === null, `an empty payload on chat/groups/${gid}`);
  const late = await retainedWithin(broker, `chat/groups/${gid}`, 400);
  assert.deepEqual(late.map((m) => m.text), [], 'nothing retained for a deleted group');
});

test('every client may read the directory: not logged in, MQTT 3.1.1 and 5, with wildcards', async () => {
  for (const protocolVersion of [4, 5]) {
    const r = await track(connect(broker, { protocolVersion }));
    assert.equal(await r.trySubscribe('chat/users/+', 1), 1, 'chat/users/+ granted');
    assert.equal(await r.trySubscribe('chat/groups/+', 1), 1, 'chat/groups/+ granted');
    assert.equal(await r.trySubscribe('chat/contacts', 1), 1, 'chat/contacts granted');
    const c = await r.next('chat/contacts', (m) => m.retain);
    assert.deepEqual(c.json, expectedContacts(), `chat/contacts read by MQTT ${protocolVersion}`);
    const users = [alice, bob].map((u) => u.userid).sort();
    const got = [];
    for (const uid of users) {
      got.push((await r.next(`chat/users/${uid}`, (m) => m.retain)).json);
    }
    assert.deepEqual(got, users.map((uid) => ({
      userid: uid, username: [alice, bob].find((x) => x.userid === uid).username, online: true,
    })), 'chat/users/+ retained values');
  }
});

test('a message changes nothing in the directory', async () => {
  const m = dir.mark();
  await alice.send(bob.userid, 'no directory change');
  await bob.next(bob.inbox('message'));
  await new Promise((r) => setTimeout(r, 400));
  assert.deepEqual(dir.changesSince(m), [], 'directory changes after a direct message');
});

test('chat/contacts is coalesced: 20 simultaneous logins give fewer chat/contacts publishes than changes', async () => {
  const clients = [];
  for (let i = 0; i < 20; i += 1) {
    const c = await connect(broker);
    await c.subscribeInbox();
    clients.push(c);
    open.push(c);
  }
  const mark = dir.mark();
  const names = clients.map(() => uniqueId('burst'));
  await Promise.all(clients.map((c, i) => c.publish('chat/login', { username: names[i] })));
  const ids = [];
  for (const c of clients) ids.push((await c.next(c.inbox('login-response'))).json.userid);
  await dir.until((d) => ids.every((id) => d.contacts?.person?.[id]), 'all 20 in chat/contacts');
  await new Promise((r) => setTimeout(r, 300));
  const snapshots = dir.history.slice(mark.index).filter((m) => m.topic === 'chat/contacts');
  assert.ok(snapshots.length <= 15,
    `expected the 20 logins to be coalesced into a few chat/contacts publishes, got ${snapshots.length}`);
  for (const [i, c] of clients.entries()) {
    model.person[ids[i]] = { [ids[i]]: names[i] };
    await c.publish('chat/logout', {});
    delete model.person[ids[i]];
  }
  await contactsMatchModel('after the burst logged out');
});
