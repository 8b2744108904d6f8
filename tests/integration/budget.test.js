// The delivery budget (docs/protocol.md §4.10, DESIGN §11) with the default options stops the
// memory attack of issue 11: one 8 KiB message into a group of 1000 members who are away with
// persistent sessions makes the broker store about 8 MiB of inbox copies. The sender must be
// refused (rate_limited, naming the limit) long before the broker has grown by 512 MiB, and the
// innocent members still get a later message. The broker's memory is read from
// /proc/<pid>/status (VmRSS): a bound on behaviour, not a timing threshold.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startBroker } from '../lib/broker.js';
import { connect, loggedIn, uniqueId } from '../lib/client.js';

const MEMBERS = 998; // away members; with the sender and one online member: max_group_members
const MESSAGES = 64; // 64 x 998 x 8 KiB would be about 530 MB without the budget
const TEXT = 'a'.repeat(8192);
const MiB = 1024 * 1024;

let broker;
const clients = [];
after(async () => {
  await Promise.all(clients.map((c) => c.end(true)));
  await broker?.stop();
  broker?.cleanup();
});

function rssBytes(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(status.match(/^VmRSS:\s+(\d+) kB$/m)[1]);
  return kb * 1024;
}

/** A member that logs in with a persistent session, subscribes its inbox at QoS 1, and leaves. */
async function awayMember() {
  const c = await connect(broker, { clientId: uniqueId('away'), clean: false });
  await c.subscribeInbox(1);
  const username = uniqueId('m');
  const r = await c.login(username);
  assert.equal(r.result, 'success', JSON.stringify(r));
  await c.end();
  return { clientId: c.clientId, userid: r.userid, username };
}

test('with the default options, 8 KiB messages into a group of 1000 away members are rate_limited long before the broker grows by 512 MiB', async (t) => {
  broker = await startBroker({}); // every chat option at its default
  const away = [];
  for (let i = 0; i < MEMBERS; i += 50) {
    away.push(...await Promise.all(Array.from({ length: Math.min(50, MEMBERS - i) }, awayMember)));
  }
  const attacker = await loggedIn(broker, uniqueId('attacker'), { inboxQos: 0 });
  const innocent = await loggedIn(broker, uniqueId('innocent'));
  clients.push(attacker, innocent);
  const member = Object.fromEntries([...away, innocent].map((m) => [m.userid, m.username]));
  await attacker.publish('chat/group/create', { member });
  const gid = (await attacker.next(attacker.inbox('new_group'), () => true, 10000)).json.groupid;
  await innocent.next(innocent.inbox('new_group'), (m) => m.json?.groupid === gid);

  const before = rssBytes(broker.pid);
  let firstRefusal = null;
  const refusals = [];
  for (let i = 0; i < MESSAGES; i += 1) {
    await attacker.send(gid, TEXT);
    // A request answered after it: every answer to the message has arrived before this one.
    await attacker.publish('chat/logout', 'sync');
    await attacker.next(attacker.inbox('error'), (m) => m.json?.error === 'invalid_request', 10000);
    const refused = attacker.drain(attacker.inbox('error')).map((m) => m.json);
    refusals.push(...refused);
    if (refused.length > 0 && firstRefusal === null) {
      firstRefusal = { message: i + 1, growth: rssBytes(broker.pid) - before };
    }
  }
  const growth = rssBytes(broker.pid) - before;
  const accepted = MESSAGES - refusals.length;
  t.diagnostic(`first refusal at message ${firstRefusal?.message} (broker +${(firstRefusal?.growth / MiB).toFixed(1)} MiB); `
    + `${accepted} of ${MESSAGES} accepted; broker +${(growth / MiB).toFixed(1)} MiB in all, `
    + `${(growth / Math.max(accepted, 1) / MiB).toFixed(2)} MiB per accepted message (${MEMBERS} inbox copies each)`);

  assert.ok(firstRefusal, `the sender must be rate_limited; ${MESSAGES} messages were accepted`);
  assert.ok(refusals.every((e) => e.action === 'message' && e.error === 'rate_limited' && /^delivery_(budget|burst):/.test(e.detail)),
    `every refusal is rate_limited naming the delivery budget: ${JSON.stringify(refusals.slice(0, 2))}`);
  assert.ok(firstRefusal.growth < 512 * MiB, `refused before the broker grew by 512 MiB (it grew by ${(firstRefusal.growth / MiB).toFixed(1)} MiB)`);
  assert.ok(growth < 512 * MiB, `the broker grew by ${(growth / MiB).toFixed(1)} MiB, expected less than 512 MiB`);
  assert.ok(accepted >= 1, 'the burst lets the first message through');

  // The members are not hurt: another member's message reaches them when they come back.
  await innocent.send(gid, 'marker after the attack');
  for (const m of away.slice(0, 3)) {
    const c = await connect(broker, { clientId: m.clientId, clean: false });
    clients.push(c);
    const r = await c.login(m.username);
    assert.equal(r.result, 'success');
    const got = await c.next(c.inbox('message'), (x) => x.json?.message === 'marker after the attack', 10000);
    assert.equal(got.json.sender, innocent.userid);
    const fromAttacker = c.received.filter((x) => x.json?.sender === attacker.userid).length;
    assert.equal(fromAttacker, accepted, `${m.clientId} got the accepted messages before the marker, no more`);
  }
});
