/*
 * The chat's store (plugin_opt_database, docs/protocol.md §9): one SQLite database in WAL mode
 * that keeps users, sessions, token hashes, groups, memberships, the id counters and the
 * message history across broker restarts.
 *
 * One worker thread (store_db.h) owns the database connection; it never calls a mosquitto
 * function and never touches the core's records. The broker thread talks to it through two queues under one mutex:
 *  - the work queue (bounded, never waited on): on TICK, at most every STORE_BATCH_MS, the
 *    records that changed since the last batch (state.h's store change set) and the messages
 *    accepted meanwhile, as one batch, which the worker commits as one transaction; and history
 *    queries, each with copies of what the broker thread knows about the requester's rooms;
 *  - the completion queue: history replies, committed id reservations, log lines and the
 *    store's health, taken and published by the broker thread on TICK.
 * Only at start-up (store_start) and clean shutdown (store_stop) does the broker thread wait for
 * the worker: to restore the chat before any client is served, and to commit the last batch.
 *
 * Ids: the worker commits a reservation of a block of ids of each counter before any id of the
 * block is issued, so ids are never issued twice, also after kill -9 (a restart continues after
 * the last reserved block: a gap, never a repeat). Without a database, or when the database
 * cannot be used, counters start from the wall clock in microseconds instead, so ids still grow
 * across restarts (docs/protocol.md §9.5).
 *
 * History: a message is stored under its room key (a group id, or "d:<lo>:<hi>" for the direct
 * conversation of two user ids) with its delivery text. Pruning by history_per_room runs in the
 * same transaction as the insert; pruning by history_days runs every minute and every query
 * filters by age too, so a query never returns what the caps exclude.
 */
#ifndef CHAT_STORE_H
#define CHAT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state.h"

/* How often the broker thread hands the worker a batch (and so the most a crash can lose). */
#define STORE_BATCH_MS 100
/* Ops (a record is one op, and one more per session, room subscription or member) a batch
   takes from the changed records; the rest go with the next batches. */
#define STORE_OPS_PER_BATCH 5000
/* Bytes of history answers rendered and published per tick; the rest wait for the next. */
#define STORE_REPLY_BYTES_PER_TICK (1024 * 1024)
/* Messages waiting for the worker; past it messages are delivered but not kept in history. */
#define STORE_QUEUE_MESSAGES 100000
/* History queries waiting for the worker; past it history_unavailable. */
#define STORE_QUEUE_QUERIES 20000
/* History queries one session may have waiting; past it rate_limited. */
#define STORE_QUERIES_PER_SESSION 8
/* Ids reserved per commit: user and group ids, and message ids. */
#define STORE_ID_BLOCK 10000u
#define STORE_MESSAGE_BLOCK 1000000u

/* A history request after parsing and authorising (requests.c); strings are borrowed. */
struct store_query {
	const char *room;     /* the room as the requester named it (a group or user id); NULL:
	                         catch-up (after given) or summary (no cursor) over all rooms */
	const char *room_key; /* its key in the store; NULL with room */
	uint64_t since;       /* visibility of room: the first message id the requester may see */
	uint64_t before;      /* 0: none */
	uint64_t after;       /* 0: none */
	int limit;            /* 1-100 */
	const char *qid;      /* echoed; NULL: none */
	bool gone_peer;       /* room is a user id the chat does not know (now): the answer is
	                         unknown_room unless the requester has a conversation with it */
};

/*
 * Opens the database named by the configuration on a new worker thread and restores the chat
 * from it into a new core (call once, right after chat_new), importing plugin_opt_state_file
 * once if it is set and still there. A database that cannot be read is moved aside
 * (PATH.corrupt-<time>, with its -wal and -shm) and the chat starts empty; one that cannot be
 * created either leaves the chat running without history (logged). Without a database it only
 * seeds the id counters from the clock. Returns CHAT_OK, or CHAT_ERR_INTERNAL when out of
 * memory or the thread cannot start.
 */
enum chat_err store_start(struct chat *chat, int64_t now_ms);

/*
 * On TICK: publishes what the worker finished (history replies, log lines), takes committed id
 * reservations, and hands over the next batch when STORE_BATCH_MS have passed since the last.
 */
void store_tick(struct chat *chat, int64_t now_ms);

/*
 * Clean shutdown: hands over the last batch, marks the shutdown clean, waits for the worker to
 * commit and stop, and frees the store. Safe without a store and to call twice.
 */
void store_stop(struct chat *chat);

/* True while history can be asked for: a database is open and its last commit succeeded. */
bool store_available(const struct chat *chat);

/*
 * True when `counter` may issue its next id: its block is committed (always true without a
 * database). requests.c answers rate_limited otherwise, which only a stalled disk causes.
 */
bool store_id_ready(const struct chat *chat, const struct id_counter *counter);

/*
 * Keeps an accepted message for history: message number `id`, in room `room_key`, its delivery
 * `text` (`len` bytes, copied). For a direct conversation `a` and `b` are its two user ids
 * (each user's list of conversations), NULL for a group. Never fails the message: when the
 * queue is full the message is only not kept (logged once per overload).
 */
void store_message(struct chat *chat, uint64_t id, const char *room_key, const char *a,
	const char *b, int64_t ts, const char *text, size_t len);

/*
 * Queues a history query of `session`'s user. For a query without a room the requester's
 * groups (and their visibility) are copied from the records now. Returns CHAT_OK,
 * CHAT_ERR_HISTORY_UNAVAILABLE (no database, failing, or too many queries waiting) or
 * CHAT_ERR_RATE_LIMITED (the session has STORE_QUERIES_PER_SESSION waiting).
 */
enum chat_err store_query(struct chat *chat, struct chat_session *session,
	const struct store_query *query);

/* The store key of the direct conversation of user ids `a` and `b` into `out`. */
#define STORE_ROOM_KEY_MAX (2 * CHAT_ID_BUF + 4)
void store_direct_key(const char *a, const char *b, char out[STORE_ROOM_KEY_MAX]);

#endif
