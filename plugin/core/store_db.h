/*
 * The store's worker thread and what travels between it and the broker thread (store.h says
 * how the two meet). The worker owns the SQLite connection: it opens and reads the database at
 * start-up, commits the broker thread's batches as transactions, answers history queries and
 * prunes history; it never reads the core's records, calls a hook (and so a mosquitto
 * function) or uses cJSON, whose allocator the adapter points at mosquitto_malloc.
 *
 * Everything in these structures is owned by whoever holds it: an op or a completion belongs
 * to the queue it is in, and to the thread that took it out; strings in them are their own
 * allocations (malloc), freed with them.
 */
#ifndef CHAT_STORE_DB_H
#define CHAT_STORE_DB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_config.h"
#include "chat_error.h"
#include "chat_types.h"
#include "ids.h"
#include "tokens.h"

struct sqlite3;

enum op_kind {
	OP_USER_PUT,    /* s[0] id, s[1] username, hash when has_hash */
	OP_USER_DEL,    /* s[0] id */
	OP_SESSION_PUT, /* s[0] clientid, s[1] user id, num[0] persistent, num[1] qos, num[2] pos */
	OP_ROOM_PUT,    /* s[0] clientid, s[1] room subscription filter, num[0] qos */
	OP_GROUP_PUT,   /* s[0] id: the group exists, its member rows follow */
	OP_MEMBER_PUT, /* s[0] group id, s[1] user id, num[0] since, num[1] position, num[2] added */
	OP_GROUP_DEL,  /* s[0] id: the group, its members and its history go */
	OP_MESSAGE,    /* num[0] id, num[1] ts, s[0] room key, s[1]/s[2] participants, text */
	OP_COUNTERS,   /* num[0..2] next, num[3..5] reserved (user, group, message), num[6] clean */
	OP_QUERY,      /* a history query: query */
	OP_LOAD,       /* read the whole state for start-up */
};

/* A copy of a history query with what the broker thread knew of the requester's rooms. */
struct store_db_query {
	char *clientid;
	char *room;     /* NULL: every room */
	char *room_key; /* NULL: every room */
	char *userid;
	char *qid;
	uint64_t since, before, after;
	int limit;
	bool gone_peer;  /* store_query's gone_peer */
	int64_t min_ts;  /* ms since the epoch: older messages are past history_days */
	size_t n_groups; /* for every-room queries: the requester's groups and visibility */
	char **group_keys;
	uint64_t *group_since;
};

struct store_op {
	struct store_op *next;
	enum op_kind kind;
	char *s[3];
	int64_t num[7];
	char *text;
	size_t text_len;
	bool has_hash;
	uint8_t hash[TOKENS_HASH_SIZE];
	struct store_db_query *query;
};

/* A row of the state as loaded, handed to the broker thread at start-up. */
struct store_row {
	struct store_row *next;
	char *s[3];
	int64_t num[3];
	bool has_hash;
	uint8_t hash[TOKENS_HASH_SIZE];
};

enum done_kind {
	DONE_REPLY,     /* a history reply (or error) for clientid: rows of message texts */
	DONE_LOG,       /* a log line */
	DONE_COMMITTED, /* a batch is committed: num[0..2] reserved counters */
	DONE_LOADED,    /* the state is read: rows */
	DONE_UNSAVED,   /* a commit failed: rows of user and group ids to write again; num[0]
	                   non-zero when the counters must be reserved again */
};

struct store_done {
	struct store_done *next;
	enum done_kind kind;
	char *clientid;
	char *userid; /* DONE_REPLY: the user who asked */
	char *room;
	char *qid;
	enum chat_err err; /* DONE_REPLY: CHAT_OK or the error to answer */
	bool complete;
	int level;
	char *text; /* DONE_LOG: the line; DONE_REPLY error: the detail */
	struct store_row *rows;
	int64_t num[6];
};

/* What the worker read at start-up. */
struct store_loaded {
	bool ok;    /* the database is open */
	bool fresh; /* it holds no state yet */
	bool reset; /* ids it may have issued are unknown: it was moved aside, or was there
	               without any state (an emptied file); counters start from the clock */
	bool clean; /* the last run shut down cleanly */
	int64_t next[3], reserved[3];
	struct store_row *users, *sessions, *rooms, *groups, *members;
	struct store_row
		*cids; /* sender, cid, receiver, id, ts of messages of the last STATE_CID_MS */
};

struct store {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t work_ready; /* the worker waits on it */
	pthread_cond_t done_ready; /* the broker thread waits on it, at start and stop only */

	/* Under lock. */
	struct store_op *work, **work_tail;
	struct store_done *done, **done_tail;
	size_t queued_messages; /* the broker thread keeps its last reading in queued_seen */
	size_t queued_queries;
	int64_t wall_ms; /* the chat's wall clock at the last hand-over (the hooks' clock) */
	bool stopping;
	bool failing; /* the last commit (or the open) failed */

	/* The broker thread's. */
	struct store_op *pending, **pending_tail; /* messages since the last batch */
	size_t pending_messages;
	int64_t next_batch_at;
	uint64_t requested[3]; /* reservations asked for, per counter */
	bool reserve_again;    /* a batch with a reservation failed: ask for one again */
	bool overloaded;       /* a message was not kept: logged once until the queue drains */
	size_t queued_seen;    /* queued_messages as the last hand-over read it */
	bool stopped;

	/* The worker's; settings copied at start. */
	struct sqlite3 *db;
	struct store_op *retry,
		**retry_tail; /* messages of failed commits, committed with the next */
	char path[CHAT_PATH_MAX];
	char why[256];    /* the last error of opening the database */
	int64_t per_room; /* history_per_room; 0: no cap */
	int64_t days;     /* history_days; 0: no cap */
	int64_t cid_ms;   /* how long a cid is remembered (state.h STATE_CID_MS) */
	int64_t next_prune_at;
	struct store_loaded loaded;
};

/* True for the op that writes (or deletes) a user or group as a whole, named by s[0]. */
static inline bool store_op_is_record(const struct store_op *op)
{
	return op->kind == OP_USER_PUT || op->kind == OP_USER_DEL || op->kind == OP_GROUP_PUT ||
		op->kind == OP_GROUP_DEL;
}

/* The worker thread's body: runs until store->stopping and nothing is left to commit. */
void *store_db_worker(void *arg);

/* A copy of `s` (malloc), or NULL for NULL or on no memory. */
char *store_db_dup(const char *s);

/* Free a list of rows, a query copy, an op, a list of ops, a completion. Each accepts NULL. */
void store_db_rows_free(struct store_row *row);
void store_db_query_free(struct store_db_query *q);
void store_db_op_free(struct store_op *op);
void store_db_ops_free(struct store_op *op);
void store_db_done_free(struct store_done *d);

/* Frees what the worker read at start-up and empties it. */
void store_db_loaded_clear(struct store_loaded *ld);

/* The names of the id counters in the meta table: user, group, message. */
extern const char *const store_db_counter_names[3];

#endif
