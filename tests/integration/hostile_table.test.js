// Hostile input, table-driven (DESIGN §2-5, decisions.md). Each row is one publish (or
// subscribe) by a logged-in client, a client that has not logged in, or a client whose id cannot
// be a topic level, and says what must happen:
//   an error code (or a list of acceptable codes, where the contract allows "invalid_request or a
//     more specific code"): answered on chat/inbox/<C>/error (and login-response for a login);
//   'denied':   refused by the ACL — PUBACK 0x87 for a publish (MQTT 5), a SUBACK failure for a
//               subscribe; no delivery;
//   'filtered': a wildcard subscription that is granted, but whose deliveries are checked one by
//               one: nothing of anyone else's reaches it;
//   'ignored':  accepted by the broker, no reply possible, nothing happens (bad client ids).
// A row's `detail` names the limit the error's detail must begin with.
// After every row: the directory is exactly as before, nobody received anything else, the broker
// is alive and the sender still connected. Retained rows are checked with a later subscriber,
// and at the end the broker's retained store is read back by a plain mosquitto.
//
// `rows` is exported (and rendered to <build>/hostile-inputs.md when the test runs) so that the
// README can include the table. Importing this file from another script does not run the tests.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { startBroker, repoRoot } from '../lib/broker.js';
import { connect, loggedIn, uniqueId, quietFor } from '../lib/client.js';

const MB = 1024 * 1024;
const deep = (n, open, close, inner) => open.repeat(n) + inner + close.repeat(n);
const bytes = (...parts) => Buffer.concat(parts.map((p) => Buffer.from(p)));
const LI = 'logged-in';
const NL = 'not logged in';
const BAD_PLUS = 'bad client id a+b';
const BAD_DOLLAR = 'bad client id $x';
const BAD_LONG = 'bad client id of 129 bytes';

/**
 * The table. topic and string payloads may name {gid} (a group of the logged-in hostile client
 * and an innocent user), {otherGid} (a group it is not in), {uid} (its userid), {otherUid} /
 * {otherName} / {other} (the innocent user's userid, username and client id) and {self} (the
 * acting client's id). op defaults to 'publish'; retain publishes with the retain flag.
 */
export const rows = [
  // --- malformed JSON ---
  { name: 'login: truncated JSON', client: NL, topic: 'chat/login', payload: '{"username":"x"', expect: 'invalid_request' },
  { name: 'message: unquoted key', client: LI, topic: 'chat/msg/{gid}', payload: '{message:"hi"}', expect: 'invalid_request' },
  { name: 'create_group: single quotes', client: LI, topic: 'chat/group/create', payload: "{'member':{}}", expect: 'invalid_request' },
  { name: 'join_group: trailing comma', client: LI, topic: 'chat/group/join', payload: '{"groupid":"{gid}",}', expect: 'invalid_request' },
  { name: 'leave_group: a bare number', client: LI, topic: 'chat/group/leave', payload: '42', expect: 'invalid_request' },
  { name: 'logout: a JSON array', client: LI, topic: 'chat/logout', payload: '[]', expect: 'invalid_request' },
  { name: 'logout: binary garbage', client: LI, topic: 'chat/logout', payload: Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0x7b]), expect: 'invalid_request' },

  // --- wrong types for every field ---
  { name: 'login: username is a number', client: NL, topic: 'chat/login', payload: '{"username":5}', expect: 'invalid_request' },
  { name: 'login: username is an array', client: NL, topic: 'chat/login', payload: '{"username":["a"]}', expect: 'invalid_request' },
  { name: 'login: username is true', client: NL, topic: 'chat/login', payload: '{"username":true}', expect: 'invalid_request' },
  { name: 'message: message is a number', client: LI, topic: 'chat/msg/{gid}', payload: '{"message":5}', expect: 'invalid_message' },
  { name: 'message: message is an object', client: LI, topic: 'chat/msg/{gid}', payload: '{"message":{"text":"hi"}}', expect: 'invalid_message' },
  { name: 'message: message is null', client: LI, topic: 'chat/msg/{gid}', payload: '{"message":null}', expect: 'invalid_message' },
  { name: 'message: sender is a number', client: LI, topic: 'chat/msg/{gid}', payload: '{"message":"hi","sender":10}', expect: 'invalid_request' },
  { name: 'message: receiver is a number', client: LI, topic: 'chat/msg/{gid}', payload: '{"message":"hi","receiver":11}', expect: 'invalid_request' },
  { name: 'message: username is an array', client: LI, topic: 'chat/msg/{gid}', payload: '{"message":"hi","username":["x"]}', expect: 'invalid_request' },
  { name: 'create_group: member is a string', client: LI, topic: 'chat/group/create', payload: '{"member":"{otherUid}"}', expect: 'invalid_request' },
  { name: 'create_group: member is an array', client: LI, topic: 'chat/group/create', payload: '{"member":["{otherUid}"]}', expect: 'invalid_request' },
  { name: 'create_group: sender is a number', client: LI, topic: 'chat/group/create', payload: '{"member":{},"sender":10}', expect: 'invalid_request' },
  { name: 'join_group: groupid is a number', client: LI, topic: 'chat/group/join', payload: '{"groupid":11}', expect: 'invalid_request' },
  { name: 'join_group: groupid is false', client: LI, topic: 'chat/group/join', payload: '{"groupid":false}', expect: 'invalid_request' },
  { name: 'leave_group: groupid is an array', client: LI, topic: 'chat/group/leave', payload: '{"groupid":["{gid}"]}', expect: 'invalid_request' },
  { name: 'logout: sender is an object', client: LI, topic: 'chat/logout', payload: '{"sender":{}}', expect: 'invalid_request' },
  { name: 'logout: username is a number', client: LI, topic: 'chat/logout', payload: '{"username":5}', expect: 'invalid_request' },

  // --- huge and deeply nested ---
  { name: 'login: 1 MB payload', client: NL, topic: 'chat/login', payload: `{"username":"${'a'.repeat(MB)}"}`, expect: 'invalid_request' },
  { name: 'message: 1 MB payload', client: LI, topic: 'chat/msg/{gid}', payload: `{"message":"${'a'.repeat(MB)}"}`, expect: 'message_too_large' },
  { name: 'create_group: 1 MB payload', client: LI, topic: 'chat/group/create', payload: `{"member":{},"pad":"${'a'.repeat(MB)}"}`, expect: 'invalid_request' },
  { name: 'logout: 1 MB of garbage', client: LI, topic: 'chat/logout', payload: Buffer.alloc(MB, 0xfe), expect: 'invalid_request' },
  { name: 'login: username nested 1000 deep', client: NL, topic: 'chat/login', payload: `{"username":${deep(1000, '[', ']', '"x"')}}`, expect: 'invalid_request' },
  { name: 'message: message nested 1000 deep', client: LI, topic: 'chat/msg/{gid}', payload: `{"message":${deep(1000, '{"a":', '}', '"x"')}}`, expect: 'invalid_request' },
  { name: 'create_group: member nested 1000 deep', client: LI, topic: 'chat/group/create', payload: `{"member":${deep(1000, '{"10":', '}', '"x"')}}`, expect: 'invalid_request' },
  { name: 'join_group: groupid nested 1000 deep', client: LI, topic: 'chat/group/join', payload: `{"groupid":${deep(1000, '[', ']', '"11"')}}`, expect: 'invalid_request' },
  { name: 'leave_group: 1000-deep array', client: LI, topic: 'chat/group/leave', payload: deep(1000, '[', ']', '1'), expect: 'invalid_request' },
  { name: 'logout: 1001-deep object', client: LI, topic: 'chat/logout', payload: deep(1001, '{"a":', '}', '1'), expect: 'invalid_request' },

  // --- invalid UTF-8 in each string field ---
  { name: 'login: invalid UTF-8 in username', client: NL, topic: 'chat/login', payload: bytes('{"username":"a', [0xff], 'b"}'), expect: 'invalid_username' },
  { name: 'login: overlong "/" in username', client: NL, topic: 'chat/login', payload: bytes('{"username":"a', [0xc0, 0xaf], '"}'), expect: 'invalid_username' },
  { name: 'message: invalid UTF-8 in message', client: LI, topic: 'chat/msg/{gid}', payload: bytes('{"message":"a', [0xc3, 0x28], '"}'), expect: 'invalid_message' },
  { name: 'message: invalid UTF-8 in sender', client: LI, topic: 'chat/msg/{gid}', payload: bytes('{"message":"hi","sender":"1', [0xff], '0"}'), expect: ['sender_mismatch', 'invalid_request'] },
  { name: 'message: invalid UTF-8 in receiver', client: LI, topic: 'chat/msg/{gid}', payload: bytes('{"message":"hi","receiver":"', [0xfe], '"}'), expect: 'invalid_request' },
  { name: 'message: invalid UTF-8 in username', client: LI, topic: 'chat/msg/{gid}', payload: bytes('{"message":"hi","username":"', [0xed, 0xa0, 0x80], '"}'), expect: ['username_mismatch', 'invalid_request'] },
  { name: 'create_group: invalid UTF-8 in a member key', client: LI, topic: 'chat/group/create', payload: bytes('{"member":{"', [0xff], '0":"x"}}'), expect: ['unknown_user', 'invalid_request'] },
  { name: 'join_group: invalid UTF-8 in groupid', client: LI, topic: 'chat/group/join', payload: bytes('{"groupid":"1', [0xc0], '1"}'), expect: ['unknown_room', 'invalid_request'] },
  { name: 'leave_group: invalid UTF-8 in groupid', client: LI, topic: 'chat/group/leave', payload: bytes('{"groupid":"', [0xf8, 0x88, 0x80, 0x80, 0x80], '"}'), expect: ['unknown_room', 'invalid_request'] },
  { name: 'logout: invalid UTF-8 in sender', client: LI, topic: 'chat/logout', payload: bytes('{"sender":"', [0xe0, 0x80], '"}'), expect: ['sender_mismatch', 'invalid_request'] },

  // --- ids with + # / $ or spaces ---
  { name: 'join_group: groupid "1+1"', client: LI, topic: 'chat/group/join', payload: '{"groupid":"1+1"}', expect: 'unknown_room' },
  { name: 'join_group: groupid "#"', client: LI, topic: 'chat/group/join', payload: '{"groupid":"#"}', expect: 'unknown_room' },
  { name: 'join_group: groupid "$SYS"', client: LI, topic: 'chat/group/join', payload: '{"groupid":"$SYS"}', expect: 'unknown_room' },
  { name: 'join_group: groupid with a leading space', client: LI, topic: 'chat/group/join', payload: '{"groupid":" {otherGid}"}', expect: 'unknown_room' },
  { name: 'leave_group: groupid "<gid>/<gid>"', client: LI, topic: 'chat/group/leave', payload: '{"groupid":"{gid}/{gid}"}', expect: 'unknown_room' },
  { name: 'message: room "$11"', client: LI, topic: 'chat/msg/$11', payload: '{"message":"hi"}', expect: 'unknown_room' },
  { name: 'message: room with a leading space', client: LI, topic: 'chat/msg/ {gid}', payload: '{"message":"hi"}', expect: 'unknown_room' },
  { name: 'message: room "<gid>/x" (two levels)', client: LI, topic: 'chat/msg/{gid}/x', payload: '{"message":"hi"}', expect: 'unknown_room' },
  { name: 'message: room "+" spelled out in the receiver', client: LI, topic: 'chat/msg/{gid}', payload: '{"message":"hi","receiver":"+"}', expect: 'invalid_request' },
  { name: 'create_group: member key "1+0"', client: LI, topic: 'chat/group/create', payload: '{"member":{"1+0":"x"}}', expect: 'unknown_user' },
  { name: 'create_group: member key with a trailing space', client: LI, topic: 'chat/group/create', payload: '{"member":{"{otherUid} ":"x"}}', expect: 'unknown_user' },
  { name: 'create_group: member key "#"', client: LI, topic: 'chat/group/create', payload: '{"member":{"#":"x"}}', expect: 'unknown_user' },
  { name: 'message: sender with a trailing space', client: LI, topic: 'chat/msg/{gid}', payload: '{"message":"hi","sender":"{uid} "}', expect: 'sender_mismatch' },

  // --- client ids that cannot be a topic level ---
  { name: 'login from client id "a+b"', client: BAD_PLUS, topic: 'chat/login', payload: '{"username":"ghost-plus"}', expect: 'ignored' },
  { name: 'message from client id "a+b"', client: BAD_PLUS, topic: 'chat/msg/{gid}', payload: '{"message":"hi"}', expect: 'ignored' },
  { name: 'login from client id "$x"', client: BAD_DOLLAR, topic: 'chat/login', payload: '{"username":"ghost-dollar"}', expect: 'ignored' },
  { name: 'create_group from client id "$x"', client: BAD_DOLLAR, topic: 'chat/group/create', payload: '{"member":{}}', expect: 'ignored' },
  { name: 'login from a 129-byte client id', client: BAD_LONG, topic: 'chat/login', payload: '{"username":"ghost-long"}', expect: 'ignored' },
  { name: 'malformed request from a 129-byte client id', client: BAD_LONG, topic: 'chat/logout', payload: 'garbage', expect: 'ignored' },

  // --- spoofing ---
  { name: 'message: spoofed sender', client: LI, topic: 'chat/msg/{gid}', payload: '{"message":"hi","sender":"{otherUid}"}', expect: 'sender_mismatch' },
  { name: 'message: seed object with a spoofed sender', client: LI, topic: 'chat/msg/{gid}', payload: '{"action":"message","sender":"{otherUid}","receiver":"{gid}","message":"hi"}', expect: 'sender_mismatch' },
  { name: 'message: spoofed username', client: LI, topic: 'chat/msg/{gid}', payload: '{"message":"hi","username":"{otherName}"}', expect: 'username_mismatch' },
  { name: 'logout: spoofed sender (log out someone else)', client: LI, topic: 'chat/logout', payload: '{"sender":"{otherUid}"}', expect: 'sender_mismatch' },
  { name: 'create_group: spoofed sender', client: LI, topic: 'chat/group/create', payload: '{"member":{},"sender":"{otherUid}"}', expect: 'sender_mismatch' },
  { name: 'join_group: spoofed sender', client: LI, topic: 'chat/group/join', payload: '{"groupid":"{otherGid}","sender":"{otherUid}"}', expect: 'sender_mismatch' },
  { name: 'leave_group: spoofed username', client: LI, topic: 'chat/group/leave', payload: '{"groupid":"{gid}","username":"{otherName}"}', expect: 'username_mismatch' },
  { name: 'message: into a group it is not in', client: LI, topic: 'chat/msg/{otherGid}', payload: '{"message":"hi"}', expect: 'not_a_member' },
  { name: 'login: another user\'s name while logged in', client: LI, topic: 'chat/login', payload: '{"username":"{otherName}"}', expect: 'already_logged_in' },
  { name: 'login: another user\'s name', client: NL, topic: 'chat/login', payload: '{"username":"{otherName}"}', expect: 'username_taken' },
  { name: 'message before login, spoofed sender', client: NL, topic: 'chat/msg/{gid}', payload: '{"message":"hi","sender":"{otherUid}"}', expect: 'not_logged_in' },
  { name: 'leave_group before login', client: NL, topic: 'chat/group/leave', payload: '{"groupid":"{gid}"}', expect: 'not_logged_in' },

  // --- foreign inboxes and wildcard subscriptions ---
  { name: 'publish into another client\'s inbox', client: LI, topic: 'chat/inbox/{other}/message', payload: '{"sender":"{uid}","message":"fake"}', expect: 'denied' },
  { name: 'publish a fake login-response into another inbox', client: NL, topic: 'chat/inbox/{other}/login-response', payload: '{"result":"success"}', expect: 'denied' },
  { name: 'publish into its own inbox', client: LI, topic: 'chat/inbox/{self}/message', payload: '{"message":"self-made"}', expect: 'denied' },
  { name: 'publish retained into another inbox', client: LI, topic: 'chat/inbox/{other}/error', payload: '{"error":"x"}', retain: true, expect: 'denied' },
  { name: 'subscribe chat/inbox/<other>/#', client: LI, op: 'subscribe', topic: 'chat/inbox/{other}/#', expect: 'denied' },
  { name: 'subscribe chat/inbox/<other>/message', client: LI, op: 'subscribe', topic: 'chat/inbox/{other}/message', expect: 'denied' },
  { name: 'subscribe chat/inbox/<other>/# before login', client: NL, op: 'subscribe', topic: 'chat/inbox/{other}/#', expect: 'denied' },
  { name: 'subscribe chat/login (a request topic)', client: LI, op: 'subscribe', topic: 'chat/login', expect: 'denied' },
  { name: 'subscribe chat/msg/#', client: LI, op: 'subscribe', topic: 'chat/msg/#', expect: 'denied' },
  { name: 'subscribe #', client: LI, op: 'subscribe', topic: '#', expect: 'filtered' },
  { name: 'subscribe chat/#', client: LI, op: 'subscribe', topic: 'chat/#', expect: 'filtered' },
  { name: 'subscribe chat/inbox/+/message', client: LI, op: 'subscribe', topic: 'chat/inbox/+/message', expect: 'filtered' },
  { name: 'subscribe +/inbox/<other>/#', client: LI, op: 'subscribe', topic: '+/inbox/{other}/#', expect: 'filtered' },
  { name: 'subscribe chat/+/<other>/#', client: LI, op: 'subscribe', topic: 'chat/+/{other}/#', expect: 'filtered' },
  { name: 'subscribe # before login', client: NL, op: 'subscribe', topic: '#', expect: 'filtered' },

  // --- writes to the directory ---
  { name: 'publish retained chat/contacts', client: LI, topic: 'chat/contacts', payload: '{"person":{},"group":{}}', retain: true, expect: 'denied' },
  { name: 'publish retained chat/users/10', client: LI, topic: 'chat/users/10', payload: '{"userid":"10","username":"mallory","online":true}', retain: true, expect: 'denied' },
  { name: 'publish retained chat/groups/11', client: LI, topic: 'chat/groups/11', payload: '{"groupid":"11","member":{}}', retain: true, expect: 'denied' },
  { name: 'clear chat/users/<other> (empty retained)', client: LI, topic: 'chat/users/{otherUid}', payload: '', retain: true, expect: 'denied' },
  { name: 'publish chat/contacts before login', client: NL, topic: 'chat/contacts', payload: '{}', expect: 'denied' },

  // --- retained requests: answered, never retained ---
  { name: 'retained login with a bad payload', client: NL, topic: 'chat/login', payload: '{}', retain: true, expect: 'invalid_request' },
  { name: 'retained message with a bad text', client: LI, topic: 'chat/msg/{gid}', payload: '{"message":5}', retain: true, expect: 'invalid_message' },
  { name: 'retained join of an unknown group', client: LI, topic: 'chat/group/join', payload: '{"groupid":"999999991"}', retain: true, expect: 'unknown_room' },
  { name: 'retained empty logout', client: LI, topic: 'chat/logout', payload: '', retain: true, expect: 'invalid_request' },

  // --- trailing garbage after the JSON document ---
  { name: 'login: trailing garbage', client: NL, topic: 'chat/login', payload: '{"username":"trailing"} x', expect: 'invalid_request' },
  { name: 'message: an extra closing brace', client: LI, topic: 'chat/msg/{gid}', payload: '{"message":"hi"}}', expect: 'invalid_request' },
  { name: 'join_group: two JSON documents', client: LI, topic: 'chat/group/join', payload: '{"groupid":"{gid}"}{"groupid":"{otherGid}"}', expect: 'invalid_request' },
  { name: 'create_group: garbage after a valid request', client: LI, topic: 'chat/group/create', payload: '{"member":{}}garbage', expect: 'invalid_request' },

  // --- NUL ---
  { name: 'login: \\u0000 in username', client: NL, topic: 'chat/login', payload: '{"username":"a\\u0000b"}', expect: 'invalid_username' },
  { name: 'message: \\u0000 in message', client: LI, topic: 'chat/msg/{gid}', payload: '{"message":"hi\\u0000there"}', expect: 'invalid_message' },
  { name: 'join_group: \\u0000 in groupid', client: LI, topic: 'chat/group/join', payload: '{"groupid":"{gid}\\u0000"}', expect: 'invalid_request' },
  { name: 'create_group: \\u0000 in a member key', client: LI, topic: 'chat/group/create', payload: '{"member":{"{otherUid}\\u0000":"x"}}', expect: 'invalid_request' },
  { name: 'message: a raw NUL byte in the text', client: LI, topic: 'chat/msg/{gid}', payload: bytes('{"message":"a', [0x00], 'b"}'), expect: ['invalid_request', 'invalid_message'] },

  // --- identity (version 2): names, tokens, sessions, shared subscriptions ---
  { name: 'login: a zero-width space after the name', client: NL, topic: 'chat/login', payload: '{"username":"alice\\u200b"}', expect: 'invalid_username' },
  { name: 'login: a byte order mark before the name', client: NL, topic: 'chat/login', payload: '{"username":"\\ufeffalice"}', expect: 'invalid_username' },
  { name: 'login: a trailing space', client: NL, topic: 'chat/login', payload: '{"username":"alice "}', expect: 'invalid_username' },
  { name: 'login: a right-to-left override', client: NL, topic: 'chat/login', payload: '{"username":"\\u202ealice"}', expect: 'invalid_username' },
  { name: 'login: only zero-width characters', client: NL, topic: 'chat/login', payload: '{"username":"\\u200b\\u200d"}', expect: 'invalid_username' },
  { name: 'login: a held name with a wrong token', client: NL, topic: 'chat/login', payload: '{"username":"{otherName}","token":"00000000000000000000000000000000"}', expect: 'username_taken' },
  { name: 'login: a held name with a numeric token', client: NL, topic: 'chat/login', payload: '{"username":"{otherName}","token":5}', expect: 'username_taken' },
  { name: 'logout: all is a string', client: LI, topic: 'chat/logout', payload: '{"all":"yes"}', expect: 'invalid_request' },
  { name: 'subscribe $share/g/chat/inbox/<other>/#', client: LI, op: 'subscribe', topic: '$share/g/chat/inbox/{other}/#', expect: 'denied' },

  // --- limits of the whole chat and of one user (the table's broker: max_users 5, max_groups 2,
  //     max_groups_added_by_others 1, delivery_burst 8192; the set-up fills them) ---
  { name: 'login: a new user when max_users users exist', client: NL, topic: 'chat/login', payload: '{"username":"one-too-many"}', expect: 'limit_exceeded', detail: 'max_users' },
  { name: 'create_group: when max_groups groups exist', client: LI, topic: 'chat/group/create', payload: '{"member":{}}', expect: 'limit_exceeded', detail: 'max_groups' },
  { name: 'create_group: group spam, naming a user others put in max_groups_added_by_others groups', client: LI, topic: 'chat/group/create', payload: '{"member":{"{otherUid}":"x"}}', expect: 'limit_exceeded', detail: 'max_groups_added_by_others' },
  { name: 'message: costing more than delivery_burst (bytes x copies)', client: LI, topic: 'chat/msg/{gid}', payload: `{"message":"${'a'.repeat(8192)}"}`, expect: 'rate_limited', detail: 'delivery_burst' },

  // --- room topics ---
  { name: 'subscribe chat/room/<otherGid> (a group it is not in)', client: LI, op: 'subscribe', topic: 'chat/room/{otherGid}', expect: 'denied' },
  { name: 'subscribe chat/room/+ before login', client: NL, op: 'subscribe', topic: 'chat/room/+', expect: 'denied' },
  { name: 'subscribe chat/room/#', client: LI, op: 'subscribe', topic: 'chat/room/#', expect: 'denied' },
  { name: 'subscribe chat/room/<uid> (a user id)', client: LI, op: 'subscribe', topic: 'chat/room/{uid}', expect: 'denied' },
  { name: 'subscribe $share/g/chat/room/+', client: LI, op: 'subscribe', topic: '$share/g/chat/room/+', expect: 'denied' },
  { name: 'subscribe chat/room/+ (rooms of groups it is not in)', client: LI, op: 'subscribe', topic: 'chat/room/+', expect: 'filtered' },
  { name: 'subscribe +/room/+ (room topics of others)', client: LI, op: 'subscribe', topic: '+/room/+', expect: 'filtered' },

  // --- history requests (chat/history) and message cids ---
  { name: 'history: limit 0', client: LI, topic: 'chat/history', payload: '{"room":"{gid}","limit":0,"qid":"h-1"}', expect: 'invalid_request', qid: 'h-1' },
  { name: 'history: limit 101', client: LI, topic: 'chat/history', payload: '{"room":"{gid}","limit":101}', expect: 'invalid_request' },
  { name: 'history: limit -1', client: LI, topic: 'chat/history', payload: '{"room":"{gid}","limit":-1}', expect: 'invalid_request' },
  { name: 'history: limit 2.5', client: LI, topic: 'chat/history', payload: '{"room":"{gid}","limit":2.5}', expect: 'invalid_request' },
  { name: 'history: limit is a string', client: LI, topic: 'chat/history', payload: '{"room":"{gid}","limit":"5"}', expect: 'invalid_request' },
  { name: 'history: before is not decimal', client: LI, topic: 'chat/history', payload: '{"room":"{gid}","before":"12x"}', expect: 'invalid_request' },
  { name: 'history: before with a leading zero', client: LI, topic: 'chat/history', payload: '{"room":"{gid}","before":"007"}', expect: 'invalid_request' },
  { name: 'history: after of 23 digits', client: LI, topic: 'chat/history', payload: '{"room":"{gid}","after":"99999999999999999999999"}', expect: 'invalid_request' },
  { name: 'history: after is a number', client: LI, topic: 'chat/history', payload: '{"room":"{gid}","after":12}', expect: 'invalid_request' },
  { name: 'history: after -1 as a string', client: LI, topic: 'chat/history', payload: '{"room":"{gid}","after":"-1"}', expect: 'invalid_request' },
  { name: 'history: after not smaller than before', client: LI, topic: 'chat/history', payload: '{"room":"{gid}","after":"9","before":"9","qid":"h-2"}', expect: 'invalid_request', qid: 'h-2' },
  { name: 'history: before without a room', client: LI, topic: 'chat/history', payload: '{"before":"5"}', expect: 'invalid_request' },
  { name: 'history: room is a number', client: LI, topic: 'chat/history', payload: '{"room":11}', expect: 'invalid_request' },
  { name: 'history: room is an array', client: LI, topic: 'chat/history', payload: '{"room":["{gid}"]}', expect: 'invalid_request' },
  { name: 'history: room "#"', client: LI, topic: 'chat/history', payload: '{"room":"#"}', expect: 'unknown_room' },
  { name: 'history: an unknown group', client: LI, topic: 'chat/history', payload: '{"room":"999999991"}', expect: 'unknown_room' },
  { name: 'history: a group it is not in', client: LI, topic: 'chat/history', payload: '{"room":"{otherGid}","qid":"h-3"}', expect: 'not_a_member', qid: 'h-3' },
  { name: 'history: qid is a number', client: LI, topic: 'chat/history', payload: '{"room":"{gid}","qid":7}', expect: 'invalid_request' },
  { name: 'history: qid of 129 bytes', client: LI, topic: 'chat/history', payload: `{"room":"{gid}","qid":"${'q'.repeat(129)}"}`, expect: 'invalid_request' },
  { name: 'history: a 1 MB qid (over the 64 KiB request limit)', client: LI, topic: 'chat/history', payload: `{"room":"{gid}","qid":"${'q'.repeat(MB)}"}`, expect: 'invalid_request' },
  { name: 'history: 1000-deep room', client: LI, topic: 'chat/history', payload: `{"room":${deep(1000, '[', ']', '"1"')}}`, expect: 'invalid_request' },
  { name: 'history before login', client: NL, topic: 'chat/history', payload: '{"qid":"h-4"}', expect: 'not_logged_in', qid: 'h-4' },
  { name: 'history: spoofed sender', client: LI, topic: 'chat/history', payload: '{"room":"{otherUid}","sender":"{otherUid}"}', expect: 'sender_mismatch' },
  { name: 'message: cid is a number', client: LI, topic: 'chat/msg/{gid}', payload: '{"message":"hi","cid":5}', expect: 'invalid_request' },
  { name: 'message: cid is an empty string', client: LI, topic: 'chat/msg/{gid}', payload: '{"message":"hi","cid":""}', expect: 'invalid_request' },
  { name: 'message: cid of 65 bytes', client: LI, topic: 'chat/msg/{gid}', payload: `{"message":"hi","cid":"${'c'.repeat(65)}"}`, expect: 'invalid_request' },
  { name: 'message: cid is an object', client: LI, topic: 'chat/msg/{gid}', payload: '{"message":"hi","cid":{"id":1}}', expect: 'invalid_request' },
  { name: 'message: invalid UTF-8 in cid', client: LI, topic: 'chat/msg/{gid}', payload: bytes('{"message":"hi","cid":"a', [0xff], '"}'), expect: 'invalid_request' },

  // --- empty payloads on every request topic ---
  { name: 'login: empty payload', client: NL, topic: 'chat/login', payload: '', expect: 'invalid_request' },
  { name: 'logout: empty payload', client: LI, topic: 'chat/logout', payload: '', expect: 'invalid_request' },
  { name: 'message: empty payload', client: LI, topic: 'chat/msg/{gid}', payload: '', expect: 'invalid_request' },
  { name: 'create_group: empty payload', client: LI, topic: 'chat/group/create', payload: '', expect: 'invalid_request' },
  { name: 'join_group: empty payload', client: LI, topic: 'chat/group/join', payload: '', expect: 'invalid_request' },
  { name: 'leave_group: empty payload', client: LI, topic: 'chat/group/leave', payload: '', expect: 'invalid_request' },
  { name: 'history: empty payload', client: LI, topic: 'chat/history', payload: '', expect: 'invalid_request' },
];

// ------------------------------------------------------------------------------------------
// The table as Markdown (for the README)
// ------------------------------------------------------------------------------------------

/** A short, printable rendering of a payload: non-ASCII bytes as \xNN, long ones cut. */
function showPayload(payload) {
  if (payload === undefined || payload === null) return '—';
  const buf = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.replace(/\{(\w+)\}/g, '<$1>'));
  if (buf.length === 0) return '(empty)';
  let text = '';
  let shown = 0;
  for (const b of buf) {
    if (buf.length > 72 && text.length >= 40) break;
    text += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
    shown += 1;
  }
  text = `\`${text.replace(/\|/g, '\\|')}\``;
  if (shown < buf.length) {
    const size = buf.length >= MB ? `${(buf.length / MB).toFixed(buf.length % MB ? 2 : 0)} MB` : `${buf.length} bytes`;
    text += ` … (${size})`;
  }
  return text;
}

function showExpect(expect, op) {
  if (expect === 'denied') return op === 'subscribe' ? 'refused by the ACL (SUBACK failure)' : 'denied by the ACL (MQTT 5: PUBACK 0x87), no delivery';
  if (expect === 'filtered') return 'granted; only its own inbox and the directory arrive';
  if (expect === 'ignored') return 'ignored: no reply, one warning in the log';
  return (Array.isArray(expect) ? expect : [expect]).map((c) => `\`${c}\``).join(' or ');
}

/** The table as a Markdown document. */
export function rowsMarkdown() {
  const lines = [
    '| # | Hostile input | Client | Operation | Payload | Outcome |',
    '|---|---|---|---|---|---|',
  ];
  const placeholder = (t) => t.replace(/\{(\w+)\}/g, '<$1>');
  rows.forEach((r, i) => {
    const op = `${r.op === 'subscribe' ? 'SUBSCRIBE' : 'PUBLISH'}${r.retain ? ' (retain)' : ''} \`${placeholder(r.topic).replace(/\|/g, '\\|')}\``;
    const name = r.name.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    lines.push(`| ${i + 1} | ${name} | ${r.client} | ${op} | ${r.op === 'subscribe' ? '—' : showPayload(r.payload)} | ${showExpect(r.expect, r.op)}${r.detail ? ` (detail: \`${r.detail}\`)` : ''}${r.qid ? ' (its `qid` echoed)' : ''} |`);
  });
  return `${lines.join('\n')}\n\n`
    + 'After every row the directory (`chat/contacts`, `chat/users/+`, `chat/groups/+`) is unchanged, no other '
    + 'client received anything, the broker is alive and the sender still connected '
    + '(`tests/integration/hostile_table.test.js`).\n';
}

// ------------------------------------------------------------------------------------------
// A flood of history requests
// ------------------------------------------------------------------------------------------

/**
 * `flooder` publishes `n` history requests of `room` at once (QoS 0, qid f<i>) while `innocent`
 * asks for its own history. Asserts that every request gets exactly one answer — a history reply
 * or a rate_limited error — and that the innocent request is answered with history. Answers carry
 * their request's qid, except rate_limited errors of request_rate, which refuses a request
 * without reading it (docs/protocol.md §4.11). Resolves with the counts.
 */
export async function historyFlood(broker, flooder, innocent, room, n) {
  const reply = flooder.inbox('history');
  const error = flooder.inbox('error');
  const isAnswer = (m) => (m.topic === reply && /^f\d+$/.test(m.json?.qid ?? ''))
    || (m.topic === error && m.json?.action === 'history');
  flooder.drain();
  for (let i = 0; i < n; i++) {
    flooder.client.publish('chat/history', JSON.stringify({ room, limit: 100, qid: `f${i}` }), { qos: 0 });
  }
  await innocent.publish('chat/history', { qid: 'innocent' });
  const mine = await innocent.next(innocent.inbox('history'), (m) => m.json?.qid === 'innocent', 10000);
  assert.ok(Array.isArray(mine.json.messages), `the innocent client's summary: ${mine.text}`);
  const qids = new Set();
  let replies = 0;
  let limited = 0;
  let unread = 0;
  while (replies + limited < n) {
    const m = await flooder.nextWhere(isAnswer, `answers to all ${n} requests (have ${replies + limited})`, 10000);
    if (m.json.qid !== undefined) {
      assert.ok(!qids.has(m.json.qid), `one answer per request; ${m.json.qid} twice`);
      qids.add(m.json.qid);
    }
    if (m.topic === reply) {
      assert.ok(Array.isArray(m.json.messages) && m.json.room === room, `a history reply: ${m.text.slice(0, 200)}`);
      replies += 1;
    } else {
      assert.equal(m.json.error, 'rate_limited', `the only refusal is rate_limited: ${m.text}`);
      limited += 1;
      if (m.json.qid === undefined) unread += 1;
    }
  }
  await quietFor(200);
  assert.deepEqual(flooder.drain().filter(isAnswer).map((m) => m.text.slice(0, 80)), [], 'no request is answered twice');
  return { replies, limited, unread };
}

// ------------------------------------------------------------------------------------------
// The test
// ------------------------------------------------------------------------------------------

const isMain = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) registerTests();

function actionOf(topic) {
  if (topic === 'chat/login') return 'login';
  if (topic === 'chat/logout') return 'logout';
  if (topic === 'chat/history') return 'history';
  if (topic.startsWith('chat/msg/')) return 'message';
  return { 'chat/group/create': 'create_group', 'chat/group/join': 'join_group', 'chat/group/leave': 'leave_group' }[topic];
}

function registerTests() {
  let broker;
  let watcher;       // a logged-in user following the directory: probes reach it after any directory change
  let innocent; let friend; let hostile; let anon;
  let roomie;        // a member of otherGid reading it through chat/room/+: room traffic for the wildcard rows
  let gid; let otherGid;
  const bad = {};
  const everyone = () => [innocent, friend, hostile, anon, watcher, roomie, ...Object.values(bad)];
  const directory = new Map(); // topic -> parsed value (null: cleared)

  const isDirectory = (t) => t === 'chat/contacts' || /^chat\/(users|groups)\/[^/]+$/.test(t);
  const valueOf = (m) => (m.text.length ? (m.json ?? m.text) : null);

  /** Takes the watcher's directory messages into `directory`; returns those that changed a value. */
  function absorb() {
    const changes = [];
    const taken = watcher.received.filter((x) => isDirectory(x.topic));
    watcher.received = watcher.received.filter((x) => !isDirectory(x.topic));
    for (const m of taken) {
      const before = directory.has(m.topic) ? directory.get(m.topic) : null;
      const after = valueOf(m);
      if (!isDeepStrictEqual(before, after)) changes.push({ topic: m.topic, before, after });
      directory.set(m.topic, after);
    }
    return changes;
  }

  before(async () => {
    const buildDir = process.env.CHAT_BUILD_DIR || path.join(repoRoot, 'build');
    mkdirSync(buildDir, { recursive: true });
    writeFileSync(path.join(buildDir, 'hostile-inputs.md'), rowsMarkdown());

    // No rate limit: the probes after each row would otherwise run into it. The chat-wide and
    // per-user limits are as small as the set-up below allows, so that rows can hit them.
    broker = await startBroker({
      persistence: true,
      options: {
        request_rate: 0, max_users: 5, max_groups: 2, max_groups_added_by_others: 1, delivery_budget: 1048576, delivery_burst: 8192,
      },
    });
    watcher = await loggedIn(broker, uniqueId('watcher'));
    for (const f of ['chat/contacts', 'chat/users/+', 'chat/groups/+']) await watcher.subscribe(f, 1);
    innocent = await loggedIn(broker, uniqueId('innocent'), { protocolVersion: 5 });
    friend = await loggedIn(broker, uniqueId('friend'));
    hostile = await loggedIn(broker, uniqueId('hostile'), { protocolVersion: 5 });
    anon = await connect(broker, { protocolVersion: 5 });
    await anon.subscribeInbox();
    gid = (await hostile.createGroup([innocent])).groupid;
    otherGid = (await innocent.createGroup([friend])).groupid;
    roomie = await loggedIn(broker, uniqueId('roomie'));
    await roomie.joinGroup(otherGid);
    assert.equal(await roomie.trySubscribe('chat/room/+', 1), 1, 'roomie reads its groups through the room topics');
    bad[BAD_PLUS] = await connect(broker, { clientId: 'a+b' });
    bad[BAD_DOLLAR] = await connect(broker, { clientId: '$x', protocolVersion: 5 });
    bad[BAD_LONG] = await connect(broker, { clientId: 'l'.repeat(129) });
    for (const c of Object.values(bad)) await c.subscribe('#', 1);
    const deadline = Date.now() + 3000;
    for (;;) {
      absorb();
      const contacts = directory.get('chat/contacts');
      if (contacts?.group?.[gid] && Object.keys(contacts.group[otherGid] ?? {}).length === 3 && contacts.person?.[anon.clientId] === undefined
        && directory.get(`chat/groups/${otherGid}`) && directory.get(`chat/users/${hostile.userid}`)) break;
      assert.ok(Date.now() < deadline, `set-up in the directory: ${JSON.stringify([...directory])}`);
      await quietFor(50);
    }
    await quietFor(200);
    absorb();
  });
  after(async () => {
    await Promise.all(everyone().filter(Boolean).map((c) => c.end(true)));
    await broker?.stop();
    broker?.cleanup();
  });

  function clientFor(kind) {
    if (kind === LI) return hostile;
    if (kind === NL) return anon;
    return bad[kind];
  }

  function fill(text, self) {
    const values = {
      gid, otherGid, uid: hostile.userid, otherUid: innocent.userid, otherName: innocent.username,
      other: innocent.clientId, self: self.clientId,
    };
    return text.replace(/\{(\w+)\}/g, (m, k) => (k in values ? values[k] : m));
  }

  /**
   * Sends a probe direct message to every logged-in client (the innocent one sends, to itself as
   * well). A client's deliveries arrive in order, and the plugin's publishes go out in the order
   * it made them, so once a probe is in, anything the row caused for that client (directory
   * changes included, for the watcher) has arrived too.
   */
  let probeCount = 0;
  async function probe() {
    probeCount += 1;
    const tag = `probe ${probeCount}`;
    const targets = [innocent, friend, hostile, watcher, roomie];
    for (const t of targets) await innocent.send(t.userid, tag);
    for (const t of targets) await t.next(t.inbox('message'), (m) => m.json?.message === tag && m.json.sender === innocent.userid);
  }

  describe('each hostile input', () => {
    rows.forEach((row, i) => {
      test(`${i + 1}. ${row.name} [${row.client}] -> ${Array.isArray(row.expect) ? row.expect.join('|') : row.expect}`, async () => {
        const client = clientFor(row.client);
        const topic = fill(row.topic, client);
        const payload = typeof row.payload === 'string' ? fill(row.payload, client) : row.payload;
        assert.deepEqual(absorb(), [], 'the directory is quiet before the row');
        for (const c of everyone()) c.drain();
        const expected = [];

        if (row.op === 'subscribe') {
          const code = await client.trySubscribe(topic, 1);
          if (row.expect === 'denied') {
            assert.ok(code >= 0x80, `SUBSCRIBE ${topic} must be refused, got SUBACK ${code}`);
          } else {
            assert.equal(row.expect, 'filtered');
            assert.equal(code, 1, `SUBSCRIBE ${topic} is granted (filtered per delivery), got SUBACK ${code}`);
            // Traffic between the others while the wildcard is in place.
            await innocent.send(otherGid, 'traffic in a group');
            await friend.send(innocent.userid, 'traffic reply');
            expected.push(await friend.next(friend.inbox('message'), (m) => m.json?.message === 'traffic in a group'));
            expected.push(await roomie.next(`chat/room/${otherGid}`, (m) => m.json?.message === 'traffic in a group'));
            expected.push(await innocent.next(innocent.inbox('message'), (m) => m.json?.message === 'traffic reply'));
            if (client !== anon) {
              await anon.publish('chat/logout', 'x'); // an error delivery for someone else
              expected.push(await anon.next(anon.inbox('error')));
            }
          }
        } else {
          let pubErr = null;
          try {
            await client.publish(topic, payload, { qos: 1, retain: !!row.retain });
          } catch (err) { pubErr = err; }
          if (row.expect === 'denied') {
            assert.equal(client.client.options.protocolVersion, 5, 'denied rows use MQTT 5 clients');
            assert.equal(pubErr?.code, 0x87, `PUBLISH ${topic} must be refused with PUBACK 0x87, got ${pubErr ? pubErr.code ?? pubErr.message : 'success'}`);
          } else {
            assert.equal(pubErr, null, `PUBLISH ${topic} must be accepted by the broker: ${pubErr?.message}`);
          }
          if (!['denied', 'ignored'].includes(row.expect)) {
            const codes = Array.isArray(row.expect) ? row.expect : [row.expect];
            const action = actionOf(topic);
            const err = await client.next(client.inbox('error'));
            // A history request's error echoes its qid (`qid` of the row), and only then has one.
            const fields = row.qid !== undefined ? 4 : 3;
            assert.ok(err.json && codes.includes(err.json.error) && err.json.action === action
              && typeof err.json.detail === 'string' && Object.keys(err.json).length === fields
              && err.json.qid === row.qid,
            `expected {action:${action}, error:${codes.join('|')}, detail${row.qid ? `, qid:${row.qid}` : ''}}, got ${err.text}`);
            if (row.detail) {
              assert.ok(err.json.detail.startsWith(`${row.detail}:`), `the detail names ${row.detail}: ${err.json.detail}`);
            }
            expected.push(err);
            if (action === 'login') {
              const lr = await client.next(client.inbox('login-response'));
              assert.equal(lr.json?.result, err.json.error, `login-response carries the same code: ${lr.text}`);
              expected.push(lr);
            }
          }
        }

        await probe();
        await quietFor(100); // for the clients that no probe can reach (not logged in, bad ids)
        assert.deepEqual(absorb(), [], 'the directory must not change');
        const stray = everyone().flatMap((c) => c.drain()
          .filter((m) => !expected.includes(m) && !isDirectory(m.topic))
          .map((m) => `${c.clientId.slice(0, 24)} <- ${m.topic} ${m.text.slice(0, 100)}`));
        assert.deepEqual(stray, [], 'nothing else may be delivered to anyone');
        if (row.op === 'subscribe' && row.expect === 'filtered') {
          await client.client.unsubscribeAsync(topic);
        }
        assert.equal(broker.exited, null, `the broker is alive: ${JSON.stringify(broker.exited)}`);
        assert.ok(everyone().every((c) => c.connected), 'everyone, the sender too, stays connected');

        if (row.retain) {
          // A later subscriber (to # and to the topic itself) finds nothing retained on it.
          const later = await connect(broker, { protocolVersion: 5 });
          try {
            await later.subscribe('#', 1);
            await later.trySubscribe(topic, 1);
            await quietFor(300);
            const got = later.drain();
            const onTopic = got.filter((m) => m.topic === topic).map(valueOf);
            if (isDirectory(topic)) {
              // still the plugin's own record (once per matching subscription), or none if there is none
              const own = directory.get(topic) ?? null;
              assert.ok(onTopic.every((v) => isDeepStrictEqual(v, own)) && (own === null ? onTopic.length === 0 : onTopic.length > 0),
                `retained ${topic} must still be the plugin's: ${JSON.stringify(onTopic)} vs ${JSON.stringify(own)}`);
            } else {
              assert.deepEqual(onTopic, [], `nothing retained on ${topic}`);
            }
            assert.deepEqual(got.filter((m) => !isDirectory(m.topic)).map((m) => m.topic), [], 'only directory topics are retained');
          } finally { await later.end(true); }
        }
      });
    });
  });

  test('1000 history requests in a second: each answered once (history or rate_limited), the broker healthy, an innocent client answered', async (t) => {
    const r = await historyFlood(broker, hostile, innocent, gid, 1000);
    t.diagnostic(`history replies ${r.replies}, rate_limited ${r.limited} (at most 8 waiting per session)`);
    assert.equal(r.unread, 0, 'without request_rate every answer carries its qid');
    await probe();
    assert.equal(broker.exited, null, 'the broker is alive');
    assert.ok(everyone().every((c) => c.connected), 'everyone, the flooder too, stays connected');
    assert.deepEqual(absorb(), [], 'the directory did not change');
  });

  test('1000 history requests in a second with request_rate 50 and request_burst 100: rate_limited for the excess, the broker healthy, an innocent client answered', async (t) => {
    const b = await startBroker({ options: { request_rate: 50, request_burst: 100 } });
    const users = [];
    try {
      const flooder = await loggedIn(b, uniqueId('flooder'));
      const bystander = await loggedIn(b, uniqueId('bystander'));
      users.push(flooder, bystander);
      const room = (await flooder.createGroup([bystander])).groupid;
      await flooder.send(room, 'something to read');
      const r = await historyFlood(b, flooder, bystander, room, 1000);
      t.diagnostic(`history replies ${r.replies}, rate_limited ${r.limited} (${r.unread} by request_rate)`);
      assert.ok(r.unread > 0, 'more requests than request_burst + request_rate allow are refused');
      assert.equal(b.exited, null, 'the broker is alive');
      assert.ok(users.every((c) => c.connected), 'both stay connected');
      await bystander.send(flooder.userid, 'still there?');
      await flooder.next(flooder.inbox('message'), (m) => m.json?.message === 'still there?');
    } finally {
      await Promise.all(users.map((c) => c.end(true)));
      await b.stop();
      b.cleanup();
    }
  });

  test('each unusable client id was warned about once', async () => {
    const log = broker.log();
    for (const id of ['a+b', '$x', 'l'.repeat(129)]) {
      const n = log.split('\n').filter((l) => l.includes(`ignoring chat requests from client '${id}'`)).length;
      assert.equal(n, 1, `one warning for client id ${id.slice(0, 20)}, got ${n}`);
    }
  });

  test('the broker\'s retained store holds exactly the directory (read back by a plain mosquitto)', async () => {
    absorb();
    const expected = new Map([...directory].filter(([, v]) => v !== null));
    // Stopped first: a shutdown does not log anyone out, so the store is the directory as it is.
    await broker.stop();
    await Promise.all(everyone().map((c) => c.end(true)));
    const plain = await startBroker({ dir: broker.dir, persistence: true, plugin: false });
    try {
      const c = await connect(plain);
      await c.subscribe('#', 1);
      await quietFor(500);
      const got = c.drain().filter((m) => m.retain);
      await c.end(true);
      const retainedTopics = new Map(got.map((m) => [m.topic, valueOf(m)]));
      for (const [t, v] of retainedTopics) {
        assert.ok(isDirectory(t), `a non-directory topic is retained: ${t} ${JSON.stringify(v).slice(0, 80)}`);
        assert.deepEqual(v, expected.get(t), `retained ${t}`);
      }
      assert.deepEqual([...retainedTopics.keys()].sort(), [...expected.keys()].sort(), 'every directory record is retained');
    } finally {
      await plain.stop();
    }
  });
}
