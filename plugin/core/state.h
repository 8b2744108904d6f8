/*
 * The chat's data: sessions (one per client id), users, groups and memberships, in uthash
 * tables, and the pure operations on them ("type API"). Nothing here parses requests, builds
 * replies or publishes; requests.c does that on top of these operations.
 *
 * Always true of the data:
 *  - session->user and user->session point at each other, or session->user is NULL.
 *  - A membership record is in both its group's table and its user's table.
 *  - Every group in `groups` has at least one member once the operation that made it returns.
 *  - Each record is one allocation with its key inside it.
 * Changes that the directory must republish are recorded with directory_mark (directory.h).
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

#include "chat.h"
#include "validate.h"

#define CHAT_ID_BUF (CHAT_ID_MAX + 1)

enum presence {
	PRESENCE_ONLINE,
	PRESENCE_OFFLINE,       /* persistent session away: membership kept, deliveries queue */
	PRESENCE_GRACE,         /* clean disconnect without subscriptions: maybe a takeover */
};

/* Kinds of warning logged at most once per client. */
enum warn_kind {
	WARN_BAD_CLIENTID = 1u << 0,
	WARN_BAD_REQUEST = 1u << 1,
	WARN_DENIED = 1u << 2,
	WARN_RATE = 1u << 3,
	WARN_QUEUE_FULL = 1u << 4,
};

struct chat_member;

struct chat_user {
	UT_hash_handle hh_id;        /* chat->users_by_id, key id */
	UT_hash_handle hh_name;      /* chat->users_by_name, key username */
	struct chat_session *session;
	struct chat_member *groups;  /* this user's memberships, by group id (hh_user) */
	enum presence presence;
	int64_t offline_deadline;    /* monotonic ms; logout when reached (0: never) */
	char id[CHAT_ID_BUF];
	char username[];
};

struct chat_group {
	UT_hash_handle hh;           /* chat->groups, key id */
	struct chat_member *members; /* by user id (hh_group), in joining order */
	unsigned member_count;
	char id[CHAT_ID_BUF];
};

struct chat_member {
	UT_hash_handle hh_group;     /* in group->members, key user->id */
	UT_hash_handle hh_user;      /* in user->groups, key group->id */
	struct chat_user *user;
	struct chat_group *group;
};

struct chat_session {
	UT_hash_handle hh;           /* chat->sessions, key clientid */
	struct chat_user *user;
	int64_t expires_at;          /* monotonic ms when a user-less, disconnected session goes; 0 */
	unsigned warned;             /* enum warn_kind bits already logged */
	double tokens;               /* requests it may still send now (token bucket) */
	int64_t refilled_at;         /* monotonic ms of the bucket's last refill */
	int64_t queued;              /* deliveries handed to the broker while its user was away */
	uint8_t inbox_qos;
	bool valid_id;
	bool persistent;             /* its last connection asked for a persistent session */
	char clientid[];
};

/*
 * A source of ids that are never reused. With a state file, the file records `reserved`: no id
 * at or above it has been issued, so a restart after a crash continues from there.
 */
struct id_counter {
	uint64_t next;
	uint64_t reserved;
};

/* A pending directory change: an id whose retained topic must be republished. */
struct dirty_id {
	UT_hash_handle hh;
	char id[CHAT_ID_BUF];
};

struct chat {
	struct chat_config config;
	struct chat_hooks hooks;
	struct chat_session *sessions;
	struct chat_user *users_by_id;
	struct chat_user *users_by_name;
	struct chat_group *groups;
	struct dirty_id *dirty;       /* users and groups to republish */
	bool contacts_dirty;
	uint64_t contacts_changes;     /* counts directory changes, ... */
	uint64_t contacts_changes_seen; /* ... up to the one the last tick saw */
	int64_t contacts_changed_at;  /* monotonic ms of the tick that saw the last change */
	bool contacts_stale;          /* a change is waiting for the snapshot, ... */
	int64_t contacts_stale_since; /* ... since the tick that saw it (monotonic ms) */
	bool started;                 /* the first tick has run */
	struct id_counter user_ids;   /* user ids are n * 10 */
	struct id_counter group_ids;  /* group ids are n * 10 + 1 */
	struct id_counter message_ids;
	bool state_dirty;             /* the state file is behind */
	int64_t next_save_at;         /* monotonic ms before which the state file is not written */
	bool save_failing;            /* the last save failed (logged once until one succeeds) */
	uint64_t sweep_user;          /* restored: user ids below user_ids.next still to clear */
	uint64_t sweep_group;         /* ... and group ids below group_ids.next */
	int64_t next_expiry_scan;
	size_t membership_count;
	size_t grace_users;           /* users in PRESENCE_GRACE: while 0, no check looks them up */
};

/* --- sessions --- */

/* The session of `clientid`, or NULL. */
struct chat_session *session_find(struct chat *chat, const char *clientid);

/* The session of `clientid`, created (connected, QoS 1) if missing. NULL only on no memory. */
struct chat_session *session_get(struct chat *chat, const char *clientid);

/* Removes and frees a session that has no user. */
void session_delete(struct chat *chat, struct chat_session *session);

/* --- users --- */

struct chat_user *user_find(struct chat *chat, const char *userid);
struct chat_user *user_find_by_name(struct chat *chat, const char *username, size_t len);

/*
 * Creates a user named `username` (validated by the caller) bound to `session`, online, with
 * the next user id. Returns NULL on no memory, changing nothing.
 */
struct chat_user *user_create(struct chat *chat, struct chat_session *session,
	const char *username, size_t len);

/* As user_create, with a given id (restoring saved state); the counter is not touched. */
struct chat_user *user_insert(struct chat *chat, struct chat_session *session, const char *id,
	const char *username, size_t len);

/* Sets the user's presence and marks the directory. */
void user_set_presence(struct chat *chat, struct chat_user *user, enum presence presence,
	int64_t deadline);

/*
 * Logs the user out: leaves every group (deleting groups left empty), unbinds the session and
 * frees the user. Marks the directory.
 */
void user_remove(struct chat *chat, struct chat_user *user);

/* --- groups and membership --- */

struct chat_group *group_find(struct chat *chat, const char *groupid);

/* Creates an empty group with the next group id; NULL on no memory. Add members at once. */
struct chat_group *group_create(struct chat *chat);

/* As group_create, with a given id (restoring saved state). */
struct chat_group *group_insert(struct chat *chat, const char *id);

struct chat_member *member_find(struct chat_group *group, const struct chat_user *user);

/* Adds `user` to `group` (not already a member). Returns false on no memory, changing nothing. */
bool member_add(struct chat *chat, struct chat_group *group, struct chat_user *user);

/* Removes a membership; deletes the group if it is left empty. Marks the directory. */
void member_remove(struct chat *chat, struct chat_member *member);

/* Deletes a group and its memberships. Marks the directory. */
void group_delete(struct chat *chat, struct chat_group *group);

/* Frees every record without marking anything (used by chat_free). */
void state_clear(struct chat *chat);

/* The next id of `counter`, first making sure the state file reserves it (persist.c). */
uint64_t id_take(struct chat *chat, struct id_counter *counter);

/* True for the request topics (DESIGN.md section 3), which anyone may publish. */
bool chat_topic_is_request(const char *topic);

/* Logs one line through the hooks, printf-style. */
void chat_logf(struct chat *chat, enum chat_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
