/*
 * The chat's data: sessions (one per client id), users, groups and memberships, in uthash
 * tables, and the pure operations on them (the "type API"). Nothing here parses requests,
 * builds replies, publishes or touches the disk; requests.c does the first three on top of
 * these operations, store.c (through its worker thread) the last.
 *
 * Always true of the data:
 *  - A user has 1 to max_sessions_per_user sessions, linked from user->sessions through
 *    session->next_of_user; each of them has session->user pointing back. A session without a
 *    user (session->user NULL) is a client the chat remembers something of (its inbox QoS, its
 *    warnings) while it may come back. The last session of a user ending logs the user out.
 *  - user->online_count is the number of its sessions whose presence is PRESENCE_ONLINE; the
 *    user is online (directory, docs/protocol.md §3.4) while it is above 0.
 *  - A membership record is in both its group's table and its user's table.
 *  - Every group in `groups` has at least one member once the operation that made it returns.
 *  - Each record is one allocation with its key inside it.
 *  - Every operation that changes what the directory shows or the database holds bumps
 *    `changes.count` and puts the id of the user or group it changed into `changes.ids` (as
 *    redis's commands bump server.dirty). The type API records changes and announces nothing:
 *    the directory compares the counter with what it last saw, on TICK; the store takes the
 *    ids from `changes.unsaved`.
 */
#ifndef CHAT_STATE_H
#define CHAT_STATE_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Every user and every group has a small table of its memberships; uthash's default of 32
 * buckets would cost ~500 bytes each before the first member. Tables grow as they fill (the
 * macros are read where the hash operations expand, so redefining them here is enough).
 */
#include <uthash.h>
#undef HASH_INITIAL_NUM_BUCKETS
#undef HASH_INITIAL_NUM_BUCKETS_LOG2
#define HASH_INITIAL_NUM_BUCKETS 4U
#define HASH_INITIAL_NUM_BUCKETS_LOG2 2U

#include "chat_config.h"
#include "chat_error.h"
#include "chat_types.h"
#include "ids.h"
#include "topics.h"
#include "validate.h"

struct names;
struct store;
struct room_post;

/* Where a session's connection is. */
enum presence {
	PRESENCE_ONLINE,
	PRESENCE_OFFLINE, /* persistent session away: deliveries queue in the broker */
	PRESENCE_GRACE,   /* clean disconnect without subscriptions: maybe a takeover */
};

/* Kinds of warning logged at most once per client. */
enum warn_kind {
	WARN_BAD_CLIENTID = 1u << 0,
	WARN_BAD_REQUEST = 1u << 1,
	WARN_DENIED = 1u << 2,
	WARN_RATE = 1u << 3,
	WARN_QUEUE_FULL = 1u << 4,
	WARN_BUDGET = 1u << 5,
};

struct chat_member;

/*
 * A message a user sent with a client-chosen id (`cid`, docs/protocol.md §4.4): a repeat of the
 * cid within STATE_CID_MS is answered with the same id and not delivered again. A user keeps at
 * most STATE_CIDS_PER_USER of them (the oldest go first).
 */
#define STATE_CID_MS (10 * 60 * 1000)
#define STATE_CIDS_PER_USER 10000
#define STATE_CID_MAX 64 /* bytes */
struct sent_cid {
	UT_hash_handle hh; /* user->cids, key cid, in insertion order */
	int64_t at_ms;     /* monotonic ms it was accepted */
	int64_t ts;        /* the message's ts */
	char id[CHAT_ID_BUF];
	char receiver[CHAT_ID_BUF];
	char cid[];
};

struct chat_user {
	UT_hash_handle hh_id;          /* chat->users_by_id, key id */
	UT_hash_handle hh_name;        /* chat->users_by_name, key `key` */
	const char *key;               /* the name's uniqueness key (names.h), inside this record */
	struct chat_session *sessions; /* newest first, through session->next_of_user */
	unsigned session_count;
	unsigned online_count;      /* sessions in PRESENCE_ONLINE */
	struct chat_member *groups; /* this user's memberships, by group id (hh_user) */
	struct sent_cid *cids;      /* cids of its recent messages */
	unsigned added_groups;      /* memberships others gave it (create_group naming it) */
	bool has_token;             /* anonymous mode: token_hash proves the user (tokens.h) */
	bool budget_started;        /* budget.c: the delivery budget below has been used */
	double budget;              /* budget.c: bytes of deliveries it may still cause now */
	int64_t budget_at;          /* budget.c: monotonic ms of the budget's last refill */
	uint8_t token_hash[32];
	char id[CHAT_ID_BUF];
	char username[]; /* the user's own spelling, in NFC; then the key */
};

struct chat_group {
	UT_hash_handle hh;           /* chat->groups, key id */
	struct chat_member *members; /* by user id (hh_group), in joining order */
	unsigned member_count;
	char id[CHAT_ID_BUF];
};

struct chat_member {
	UT_hash_handle hh_group; /* in group->members, key user->id */
	UT_hash_handle hh_user;  /* in user->groups, key group->id */
	struct chat_user *user;
	struct chat_group *group;
	uint64_t since; /* the first message id this membership may read in history (§9.3) */
	bool added;     /* another user's create_group made it (counts against
	               max_groups_added_by_others, not max_groups_per_user) */
};

/*
 * A subscription filter of a session that can match its inbox, with its QoS. The session's
 * inbox QoS is the highest among them (docs/protocol.md §3): a QoS 0 `chat/#` after a QoS 1
 * `chat/inbox/C/#` must not make deliveries QoS 0.
 */
struct inbox_filter {
	UT_hash_handle hh; /* session->inbox_filters, key filter */
	uint8_t qos;
	char filter[];
};

/* A session tracks at most this many inbox filters; beyond them only the highest QoS counts. */
#define STATE_INBOX_FILTERS_MAX 32

/*
 * A subscription filter of a session that can match room topics (topics.h): a room
 * subscription (chat/room/<gid>, chat/room/+) or another filter that overlaps them (#, chat/#,
 * $share/g/chat/room/+ ...). The session holds a room subscription for group G while exactly
 * one of its filters can match chat/room/G and that filter is a room subscription
 * (docs/protocol.md §3.5): the broker would deliver a room message once per matching filter,
 * so with an overlapping filter the session reads the group through its inbox instead.
 */
struct room_filter {
	UT_hash_handle hh; /* session->rooms, key filter (as subscribed, $share/ prefix included) */
	uint8_t qos;
	uint8_t kind; /* enum topics_room_filter: ONE, ALL or OVERLAP */
	char filter[];
};

/* A session tracks at most this many room subscriptions and this many overlapping filters. */
#define STATE_ROOM_FILTERS_MAX 1024
#define STATE_ROOM_OVERLAPS_MAX 32
/* Longer filters that overlap the room topics are refused rather than tracked. */
#define STATE_ROOM_FILTER_BYTES 256

struct chat_session {
	UT_hash_handle hh; /* chat->sessions, key clientid */
	struct chat_user *user;
	struct chat_session *next_of_user;
	struct inbox_filter *inbox_filters;
	struct room_filter
		*rooms;           /* filters that can match room topics, as the broker holds them */
	unsigned room_subs;       /* of them, room subscriptions (ONE and ALL) */
	unsigned room_overlaps;   /* of them, overlapping filters (OVERLAP) */
	bool room_all;            /* one of them is chat/room/+ */
	enum presence presence;   /* while it has a user */
	int64_t offline_deadline; /* monotonic ms; the session ends when reached (0: never) */
	int64_t offline_since;    /* monotonic ms it went away (to choose whom to make room for) */
	int64_t expires_at;       /* monotonic ms when a user-less, disconnected session goes; 0 */
	bool disconnected;   /* its connection ended and nothing came from it since: a WRITE check
	                        now is its will (docs/protocol.md §5.3) */
	bool holder_ok;      /* with bind_mqtt_username: the connection that holds this client id
	                        now is the user's (its MQTT username is the user's name) */
	bool foreign_holder; /* with bind_mqtt_username: a check came from another MQTT user's
	                        connection holding this client id since the user's own last one */
	unsigned warned;     /* enum warn_kind bits already logged */
	double tokens;       /* requests it may still send now (token bucket) */
	int64_t refilled_at; /* monotonic ms of the bucket's last refill */
	int64_t queued;      /* deliveries handed to the broker while its user was away */
	unsigned history_waiting; /* its history requests the store has not answered yet */
	uint8_t inbox_qos;
	bool valid_id;
	bool persistent; /* its last connection asked for a persistent session */
	char clientid[];
};

/* The id of a user or group whose record changed since the directory last published it. */
struct changed_id {
	UT_hash_handle hh;
	char id[CHAT_ID_BUF];
};

struct chat {
	/* Settings (chat.c at creation): read by every module, never changed after start-up. */
	struct chat_config config;
	struct chat_hooks hooks;
	struct names *names; /* the username rules (names.h), opened once */

	/* Records (state.c). */
	struct chat_session *sessions;
	struct chat_user *users_by_id;
	struct chat_user *users_by_name;
	struct chat_group *groups;
	size_t membership_count;
	size_t grace_sessions; /* sessions in PRESENCE_GRACE: while 0, no check looks them up */

	/* Changes (state.c records them; directory.c and store.c read them on TICK). */
	struct {
		uint64_t count;         /* bumped by every change of a user, group or membership */
		struct changed_id *ids; /* users and groups changed since directory.c took them */
		struct changed_id *unsaved; /* users (with their sessions) and groups changed since
		                               store.c last wrote them */
	} changes;

	/* Ids (ids.c; requests.c takes them, store.c reserves them). */
	struct chat_ids ids;

	/* The retained directory (directory.c). */
	struct {
		uint64_t changes_seen; /* changes.count the last flush saw */
		bool contacts_dirty;   /* the chat/contacts snapshot is behind */
		int64_t changed_at;    /* monotonic ms of the flush that saw the last change */
		bool stale;            /* a change is waiting for the snapshot, ... */
		int64_t stale_since;   /* ... since the flush that saw it (monotonic ms) */
	} directory;

	/* The database and its worker thread (store.c); NULL without plugin_opt_database. */
	struct store *store;

	/* Group messages accepted in this loop pass, delivered on TICK (rooms.c). */
	struct room_post *room_posts;
	struct room_post **room_posts_tail;

	/* Lifecycle (chat.c). */
	bool started;             /* the first tick has run */
	int64_t next_expiry_scan; /* monotonic ms of the next look at offline users */
};

/* ===================================================================================== */
/* Sessions                                                                              */
/* ===================================================================================== */

/* The session of `clientid`, or NULL. */
struct chat_session *state_session_find(struct chat *chat, const char *clientid);

/* The session of `clientid`, created (QoS 1, a full request bucket) if missing. NULL: no memory. */
struct chat_session *state_session_get(struct chat *chat, const char *clientid);

/* Removes and frees a session that has no user. */
void state_session_delete(struct chat *chat, struct chat_session *session);

/*
 * Records that the session subscribed `filter` (which can match its inbox) at `qos` 0-2 and
 * sets its inbox QoS to the highest of its inbox filters. `filter` is copied. Returns false on
 * no memory (the QoS is still raised when `qos` is higher).
 */
bool state_session_inbox_subscribe(struct chat *chat, struct chat_session *session,
	const char *filter, int qos);

/*
 * Records that the session unsubscribed `filter`; its inbox QoS becomes the highest of the
 * filters left, or 1 (the QoS of a client that has not subscribed) when none is left.
 */
void state_session_inbox_unsubscribe(struct chat *chat, struct chat_session *session,
	const char *filter);

/*
 * Something came from the session's connection (a request, or an access check other than a
 * WRITE, which may be its will): it is live, and with bind_mqtt_username it holds the client id
 * for the session's user when `username` (its MQTT username, may be NULL) is the user's name.
 */
void state_session_seen(struct chat *chat, struct chat_session *session, const char *username);

/*
 * Like state_session_seen, for a check or request of a connection whose clean flag is `clean`:
 * the first thing from a clean connection after the session's last connection ended means the
 * broker dropped the session's subscriptions (clean start), so its room filters go too.
 */
void state_session_seen_conn(struct chat *chat, struct chat_session *session, const char *username,
	bool clean);

/* Records a change of what the store keeps of a session (persistence, inbox QoS). */
void state_note_session_changed(struct chat *chat, const struct chat_session *session);

/* Forgets every inbox filter (its connection ended with a clean session); inbox QoS back to 1. */
void state_session_inbox_clear(struct chat_session *session);

/*
 * Room subscriptions (docs/protocol.md §3.5). The set mirrors the session's filters in the
 * broker that can match room topics; acl.c keeps it from SUBSCRIBE and UNSUBSCRIBE checks, and
 * a store restores it with state_session_room_add from what state_session_rooms_each listed.
 *
 * Records that the session holds `filter` (as subscribed, copied; topics_room_filter must not
 * say TOPICS_ROOM_NONE) at `qos`; a repeated filter only takes the new QoS. Returns false,
 * changing nothing, when the session already tracks the most filters of that kind, when an
 * overlapping filter is longer than STATE_ROOM_FILTER_BYTES, or on no memory: the caller then
 * refuses the subscription, since an untracked filter could make a delivery arrive twice.
 */
bool state_session_room_add(struct chat *chat, struct chat_session *session, const char *filter,
	int qos);

/* Records that the session unsubscribed `filter` (nothing happens if it was not tracked). */
void state_session_room_remove(struct chat *chat, struct chat_session *session, const char *filter);

/* Forgets every room filter (the broker dropped the session's subscriptions). */
void state_session_rooms_clear(struct chat *chat, struct chat_session *session);

/*
 * The QoS of the session's room subscription for group `groupid`, or -1 when it holds none
 * that counts: none matches chat/room/<groupid>, or more than one filter does.
 */
int state_session_room_qos(const struct chat_session *session, const char *groupid);

/* Calls `fn` with every tracked filter (borrowed) and its QoS, for the store. */
void state_session_rooms_each(const struct chat_session *session,
	void (*fn)(void *ctx, const char *filter, int qos), void *ctx);

/* ===================================================================================== */
/* Users                                                                                 */
/* ===================================================================================== */

struct chat_user *state_user_find(struct chat *chat, const char *userid);
/* The user whose name has the uniqueness key `key` (`len` bytes, names.h), or NULL. */
struct chat_user *state_user_find_by_key(struct chat *chat, const char *key, size_t len);

/*
 * Creates a user with id `id` (a user id not in use, see ids.h) named `username` (`len` bytes,
 * NFC, checked by the caller) whose uniqueness key `key` (`key_len` bytes) is not in use, with
 * `session` (which has no user) as its first session, online. The strings are copied. Returns
 * NULL on no memory, changing nothing. Records a change.
 */
struct chat_user *state_user_add(struct chat *chat, struct chat_session *session, const char *id,
	const char *username, size_t len, const char *key, size_t key_len);

/* Makes `session` (which has no user) another session of `user`, online. Records a change. */
void state_session_attach(struct chat *chat, struct chat_user *user, struct chat_session *session);

/*
 * Sets a session's presence; `deadline` (monotonic ms, 0: never) is when an away session ends,
 * `now_ms` when it went away. Records a change when its user comes online or goes offline.
 */
void state_session_set_presence(struct chat *chat, struct chat_session *session,
	enum presence presence, int64_t deadline, int64_t now_ms);

/*
 * Ends a session's part in its user: unbinds it (the session record stays, without a user)
 * and, when it was the user's last session, logs the user out (state_user_remove).
 */
void state_session_end(struct chat *chat, struct chat_session *session);

/*
 * Logs the user out: unbinds every session, leaves every group (deleting groups left empty)
 * and frees the user. Records the changes.
 */
void state_user_remove(struct chat *chat, struct chat_user *user);

/*
 * The user's message with client id `cid` accepted in the last STATE_CID_MS, or NULL; forgets
 * older ones.
 */
const struct sent_cid *state_cid_find(struct chat_user *user, const char *cid, int64_t now_ms);

/* Remembers that the user's message `cid` got id `id` and `ts`. False on no memory. */
bool state_cid_add(struct chat_user *user, const char *cid, const char *id, int64_t ts,
	const char *receiver, int64_t now_ms);

/* True while any of the user's sessions is online. */
bool state_user_online(const struct chat_user *user);

/* ===================================================================================== */
/* Groups and membership                                                                 */
/* ===================================================================================== */

struct chat_group *state_group_find(struct chat *chat, const char *groupid);

/*
 * Creates an empty group with id `id` (a group id not in use). NULL on no memory. The caller
 * adds its members before it returns to the broker (a group is never left empty).
 */
struct chat_group *state_group_add(struct chat *chat, const char *id);

struct chat_member *state_member_find(struct chat_group *group, const struct chat_user *user);

/* The user's membership of group `groupid`, or NULL (a look-up in the user's own table). */
struct chat_member *state_user_membership(const struct chat_user *user, const char *groupid);

/*
 * Adds `user` to `group` (not already a member), visible in history from the next message id
 * on. Returns the membership, or NULL on no memory, changing nothing.
 */
struct chat_member *state_member_add(struct chat *chat, struct chat_group *group,
	struct chat_user *user);

/* The same for a user another user adds (create_group naming it): counted in added_groups. */
struct chat_member *state_member_add_by_other(struct chat *chat, struct chat_group *group,
	struct chat_user *user);

/* The groups the user created or joined itself (max_groups_per_user counts these). */
unsigned state_user_own_groups(const struct chat_user *user);

/* Removes a membership; deletes the group if it is left empty. Records the changes. */
void state_member_remove(struct chat *chat, struct chat_member *member);

/* Deletes a group and its memberships. Records the change. */
void state_group_delete(struct chat *chat, struct chat_group *group);

/* ===================================================================================== */
/* Changes and the whole                                                                 */
/* ===================================================================================== */

/*
 * Records that the record of user or group `id` changed (or is gone) without changing it: used
 * when restoring, for ids whose retained directory topics must be cleared.
 */
void state_note_changed(struct chat *chat, const char *id);

/* Forgets the changed ids (directory.c, after publishing them). The counter stays. */
void state_changes_clear(struct chat *chat);

/* Marks user or group `id` to be written by the store again (a commit of it failed). */
void state_note_unsaved(struct chat *chat, const char *id);

/* Forgets one unsaved id (store.c, after handing its record to its worker). */
void state_unsaved_forget(struct chat *chat, struct changed_id *changed);

/* Forgets the unsaved ids. */
void state_unsaved_clear(struct chat *chat);

/* Frees every record and the changed ids; the counter stays (used by chat_free and loading). */
void state_clear(struct chat *chat);

/* Counts the records. */
void state_stats(const struct chat *chat, struct chat_stats *out);

#endif
