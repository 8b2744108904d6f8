/*
 * The store: the broker thread's side (batches, queries, completions) and the worker thread's
 * side (SQLite), in two bannered halves. store.h says how they meet; nothing in the worker's
 * half reads the core's records, calls a hook (and so a mosquitto function) or uses cJSON,
 * whose allocator the adapter points at mosquitto_malloc.
 */
#define _GNU_SOURCE /* strdup */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "budget.h"
#include "codec.h"
#include "log.h"
#include "outbox.h"
#include "persist.h"
#include "tokens.h"

/* The schema; user_version says which one a database file has. */
#define SCHEMA_VERSION 1
/* History queries the worker answers between two commits. */
#define QUERIES_PER_PASS 32
/* Pruning by age runs this often (ms). */
#define PRUNE_INTERVAL_MS 60000

/* ===================================================================================== */
/* What travels between the threads                                                      */
/* ===================================================================================== */

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
struct query {
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

struct op {
	struct op *next;
	enum op_kind kind;
	char *s[3];
	int64_t num[7];
	char *text;
	size_t text_len;
	bool has_hash;
	uint8_t hash[TOKENS_HASH_SIZE];
	struct query *query;
};

/* A row of the state as loaded, handed to the broker thread at start-up. */
struct row {
	struct row *next;
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

struct done {
	struct done *next;
	enum done_kind kind;
	char *clientid;
	char *userid; /* DONE_REPLY: the user who asked */
	char *room;
	char *qid;
	enum chat_err err; /* DONE_REPLY: CHAT_OK or the error to answer */
	bool complete;
	int level;
	char *text; /* DONE_LOG: the line; DONE_REPLY error: the detail */
	struct row *rows;
	int64_t num[6];
};

/* What the worker read at start-up. */
struct loaded {
	bool ok;    /* the database is open */
	bool fresh; /* it holds no state yet */
	bool reset; /* ids it may have issued are unknown: it was moved aside, or was there
	               without any state (an emptied file); counters start from the clock */
	bool clean; /* the last run shut down cleanly */
	int64_t next[3], reserved[3];
	struct row *users, *sessions, *rooms, *groups, *members;
	struct row *cids; /* sender, cid, receiver, id, ts of messages of the last STATE_CID_MS */
};

struct store {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t work_ready; /* the worker waits on it */
	pthread_cond_t done_ready; /* the broker thread waits on it, at start and stop only */

	/* Under lock. */
	struct op *work, **work_tail;
	struct done *done, **done_tail;
	size_t queued_messages;
	size_t queued_queries;
	int64_t wall_ms; /* the chat's wall clock at the last hand-over (the hooks' clock) */
	bool stopping;
	bool failing; /* the last commit (or the open) failed */

	/* The broker thread's. */
	struct op *pending, **pending_tail; /* messages since the last batch */
	size_t pending_messages;
	int64_t next_batch_at;
	uint64_t requested[3]; /* reservations asked for, per counter */
	bool reserve_again;    /* a batch with a reservation failed: ask for one again */
	bool overloaded;       /* a message was not kept: logged once until the queue drains */
	bool stopped;

	/* The worker's; settings copied at start. */
	sqlite3 *db;
	struct op *retry, **retry_tail; /* messages of failed commits, committed with the next */
	char path[CHAT_PATH_MAX];
	char why[256];    /* the last error of opening the database */
	int64_t per_room; /* history_per_room; 0: no cap */
	int64_t days;     /* history_days; 0: no cap */
	int64_t next_prune_at;
	struct loaded loaded;
	bool load_requested;
};

/* ===================================================================================== */
/* Small helpers for both threads                                                        */
/* ===================================================================================== */

static char *dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static void rows_free(struct row *row)
{
	while (row != NULL) {
		struct row *next = row->next;
		for (int i = 0; i < 3; i++) {
			free(row->s[i]);
		}
		free(row);
		row = next;
	}
}

static void query_free(struct query *q)
{
	if (q == NULL) {
		return;
	}
	free(q->clientid);
	free(q->room);
	free(q->room_key);
	free(q->userid);
	free(q->qid);
	for (size_t i = 0; i < q->n_groups; i++) {
		free(q->group_keys[i]);
	}
	free(q->group_keys);
	free(q->group_since);
	free(q);
}

static void op_free(struct op *op)
{
	for (int i = 0; i < 3; i++) {
		free(op->s[i]);
	}
	free(op->text);
	query_free(op->query);
	free(op);
}

static void done_free(struct done *d)
{
	free(d->clientid);
	free(d->userid);
	free(d->room);
	free(d->qid);
	free(d->text);
	rows_free(d->rows);
	free(d);
}

void store_direct_key(const char *a, const char *b, char out[STORE_ROOM_KEY_MAX])
{
	/* The smaller id first, by number: ids have no leading zeros. */
	size_t la = strlen(a), lb = strlen(b);
	bool a_first = la < lb || (la == lb && strcmp(a, b) <= 0);
	snprintf(out, STORE_ROOM_KEY_MAX, "d:%s:%s", a_first ? a : b, a_first ? b : a);
}

/* ===================================================================================== */
/* The worker thread                                                                     */
/* ===================================================================================== */

/* Posts a completion; the worker calls it with the lock not held. */
static void post(struct store *store, struct done *d)
{
	pthread_mutex_lock(&store->lock);
	*store->done_tail = d;
	store->done_tail = &d->next;
	pthread_cond_signal(&store->done_ready);
	pthread_mutex_unlock(&store->lock);
}

static void post_log(struct store *store, enum chat_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void post_log(struct store *store, enum chat_log_level level, const char *fmt, ...)
{
	struct done *d = calloc(1, sizeof *d);
	if (d == NULL) {
		return;
	}
	d->kind = DONE_LOG;
	d->level = (int)level;
	d->text = malloc(512);
	if (d->text == NULL) {
		free(d);
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->text, 512, fmt, ap);
	va_end(ap);
	post(store, d);
}

static bool exec(struct store *store, const char *sql)
{
	char *err = NULL;
	if (sqlite3_exec(store->db, sql, NULL, NULL, &err) != SQLITE_OK) {
		post_log(store, CHAT_LOG_ERR, "chat: database %s: %s", store->path,
			err != NULL ? err : "error");
		sqlite3_free(err);
		return false;
	}
	return true;
}

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS users(id TEXT PRIMARY KEY, username TEXT NOT NULL,"
	" token_hash BLOB);"
	"CREATE TABLE IF NOT EXISTS sessions(clientid TEXT PRIMARY KEY, userid TEXT NOT NULL,"
	" persistent INTEGER NOT NULL, qos INTEGER NOT NULL, position INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS sessions_user ON sessions(userid);"
	"CREATE TABLE IF NOT EXISTS session_rooms(clientid TEXT NOT NULL, filter TEXT NOT NULL,"
	" qos INTEGER NOT NULL, PRIMARY KEY(clientid, filter)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS groups(id TEXT PRIMARY KEY);"
	"CREATE TABLE IF NOT EXISTS members(groupid TEXT NOT NULL, userid TEXT NOT NULL,"
	" since INTEGER NOT NULL, position INTEGER NOT NULL, added INTEGER NOT NULL,"
	" PRIMARY KEY(groupid, userid))"
	" WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS members_user ON members(userid);"
	"CREATE TABLE IF NOT EXISTS messages(id INTEGER PRIMARY KEY, room TEXT NOT NULL,"
	" ts INTEGER NOT NULL, body TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS messages_room ON messages(room, id);"
	"CREATE TABLE IF NOT EXISTS rooms(room TEXT PRIMARY KEY, count INTEGER NOT NULL)"
	" WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS conversations(userid TEXT NOT NULL, room TEXT NOT NULL,"
	" PRIMARY KEY(userid, room)) WITHOUT ROWID;"
	/* Every room's message count follows its messages, whoever deletes them. */
	"CREATE TRIGGER IF NOT EXISTS messages_in AFTER INSERT ON messages BEGIN"
	" INSERT INTO rooms(room, count) VALUES(new.room, 1)"
	" ON CONFLICT(room) DO UPDATE SET count = count + 1; END;"
	"CREATE TRIGGER IF NOT EXISTS messages_out AFTER DELETE ON messages BEGIN"
	" UPDATE rooms SET count = count - 1 WHERE room = old.room; END;";

/* Creates `path` with mode 0600 if it is missing, and makes it 0600 if it is not. */
static bool make_private(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		return errno == ENOENT; /* a -wal or -shm that is not there is fine */
	}
	bool ok = fchmod(fd, 0600) == 0;
	close(fd);
	return ok;
}

static void close_db(struct store *store)
{
	if (store->db != NULL) {
		sqlite3_close_v2(store->db);
		store->db = NULL;
	}
}

/* What opening or reading the database came to. */
enum db_state {
	DB_OK,
	DB_CORRUPT, /* not a database of ours (or damaged): moved aside, a new one made */
	DB_FAILED,  /* usable perhaps, but not now (locked, full, read-only, I/O): left alone */
};

/*
 * How to take the error SQLite reported last: a locked, full, read-only or unreadable file is
 * left where it is (it may well be intact); anything else says the file is not a database of
 * ours, or a damaged one.
 */
static enum db_state classify(struct store *store, const char **why)
{
	int rc = store->db != NULL ? sqlite3_errcode(store->db) & 0xff : SQLITE_CANTOPEN;
	snprintf(store->why, sizeof store->why, "%s",
		store->db != NULL ? sqlite3_errmsg(store->db) : "it cannot be opened");
	*why = store->why;
	switch (rc) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_FULL:
	case SQLITE_READONLY:
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
	case SQLITE_NOMEM:
	case SQLITE_AUTH:
	case SQLITE_NOLFS:
		return DB_FAILED;
	default:
		return DB_CORRUPT;
	}
}

/* Opens the database and checks that it is one of ours; anything but DB_OK leaves it closed. */
static enum db_state open_db(struct store *store, const char **why)
{
	char side[CHAT_PATH_MAX + 8];
	if (!make_private(store->path)) {
		snprintf(store->why, sizeof store->why, "it cannot be created: %s",
			strerror(errno));
		*why = store->why;
		return DB_FAILED;
	}
	/* SQLite gives the -wal and -shm files the mode of the database; fix older ones. */
	snprintf(side, sizeof side, "%s-wal", store->path);
	chmod(side, 0600);
	snprintf(side, sizeof side, "%s-shm", store->path);
	chmod(side, 0600);
	if (sqlite3_open_v2(store->path, &store->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
		    NULL) != SQLITE_OK) {
		enum db_state state = classify(store, why);
		close_db(store);
		return state;
	}
	sqlite3_busy_timeout(store->db, 5000);
	enum db_state state = DB_OK;
	sqlite3_stmt *st = NULL;
	int version = -1;
	if (sqlite3_prepare_v2(store->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
		sqlite3_step(st) == SQLITE_ROW) {
		version = sqlite3_column_int(st, 0);
	}
	/* Finished before anything else runs: an open statement would hold a transaction. */
	sqlite3_finalize(st);
	if (version < 0) {
		state = classify(store, why);
	} else if (version != 0 && version != SCHEMA_VERSION) {
		/* A later release's database, perhaps: not ours to move. */
		*why = "it has a schema version this release does not know";
		state = DB_FAILED;
	} else if (!exec(store,
			   "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
			   "PRAGMA temp_store=MEMORY;") ||
		!exec(store, schema) || !exec(store, "PRAGMA user_version=1")) {
		/* WAL with synchronous NORMAL: a commit survives kill -9 (not power loss). */
		state = classify(store, why);
	}
	if (state != DB_OK) {
		close_db(store);
	}
	return state;
}

/* Moves the database and its -wal and -shm aside (PATH.corrupt-<time>). */
static void move_aside(struct store *store, const char *why)
{
	char aside[CHAT_PATH_MAX + 48], from[CHAT_PATH_MAX + 8], to[CHAT_PATH_MAX + 56];
	long long stamp = (long long)time(NULL);
	snprintf(aside, sizeof aside, "%s.corrupt-%lld", store->path, stamp);
	for (int n = 1; access(aside, F_OK) == 0 && n < 1000; n++) {
		snprintf(aside, sizeof aside, "%s.corrupt-%lld-%d", store->path, stamp, n);
	}
	bool moved = rename(store->path, aside) == 0;
	for (int i = 0; i < 2; i++) {
		const char *suffix = i == 0 ? "-wal" : "-shm";
		snprintf(from, sizeof from, "%s%s", store->path, suffix);
		snprintf(to, sizeof to, "%s%s", aside, suffix);
		if (rename(from, to) != 0) {
			unlink(from);
		}
	}
	post_log(store, CHAT_LOG_ERR,
		"chat: the database %s is unusable (%s); %s and starting with an empty chat",
		store->path, why, moved ? "moved it aside" : "could not move it aside");
	if (moved) {
		post_log(store, CHAT_LOG_ERR, "chat: the unusable database is now %s", aside);
	}
}

static char *column_text(sqlite3_stmt *st, int col)
{
	const unsigned char *text = sqlite3_column_text(st, col);
	return text != NULL ? strdup((const char *)text) : NULL;
}

/*
 * Reads rows of `sql` into a list: text columns `texts` (up to 3) first, then integer columns
 * (up to 3), then for users the token hash. False on a read error.
 */
static bool read_rows(struct store *store, const char *sql, int texts, int nums, bool hash,
	struct row **out)
{
	sqlite3_stmt *st = NULL;
	struct row **tail = out;
	if (sqlite3_prepare_v2(store->db, sql, -1, &st, NULL) != SQLITE_OK) {
		return false;
	}
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct row *row = calloc(1, sizeof *row);
		if (row == NULL) {
			sqlite3_finalize(st);
			return false;
		}
		*tail = row;
		tail = &row->next;
		for (int i = 0; i < texts; i++) {
			row->s[i] = column_text(st, i);
		}
		for (int i = 0; i < nums; i++) {
			row->num[i] = sqlite3_column_int64(st, texts + i);
		}
		if (hash && sqlite3_column_type(st, texts + nums) == SQLITE_BLOB) {
			if (sqlite3_column_bytes(st, texts + nums) != TOKENS_HASH_SIZE) {
				row->s[2] = strdup("bad hash"); /* refused by the loader */
			} else {
				row->has_hash = true;
				memcpy(row->hash, sqlite3_column_blob(st, texts + nums),
					TOKENS_HASH_SIZE);
			}
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE;
}

static const char *const counter_names[3] = { "user", "group", "message" };

/*
 * The cids of the messages accepted in the last STATE_CID_MS (by the chat's clock at the load),
 * so that a resend across a restart is still recognised (docs/protocol.md §4.4).
 */
static bool read_recent_cids(struct store *store, struct loaded *ld)
{
	pthread_mutex_lock(&store->lock);
	int64_t since = store->wall_ms - STATE_CID_MS;
	pthread_mutex_unlock(&store->lock);
	char sql[320];
	snprintf(sql, sizeof sql,
		"SELECT json_extract(body, '$.sender'), json_extract(body, '$.cid'), "
		"json_extract(body, '$.receiver'), id, ts FROM messages WHERE ts >= %lld AND "
		"json_extract(body, '$.cid') IS NOT NULL ORDER BY id",
		(long long)since);
	return read_rows(store, sql, 3, 2, false, &ld->cids);
}

static bool read_state(struct store *store, struct loaded *ld)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(store->db, "SELECT key, value FROM meta", -1, &st, NULL) !=
		SQLITE_OK) {
		return false;
	}
	int rc, found = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *key = (const char *)sqlite3_column_text(st, 0);
		int64_t value = sqlite3_column_int64(st, 1);
		char name[32];
		for (int i = 0; i < 3; i++) {
			snprintf(name, sizeof name, "next_%s", counter_names[i]);
			if (key != NULL && strcmp(key, name) == 0) {
				ld->next[i] = value;
				found++;
			}
			snprintf(name, sizeof name, "reserved_%s", counter_names[i]);
			if (key != NULL && strcmp(key, name) == 0) {
				ld->reserved[i] = value;
				found++;
			}
		}
		if (key != NULL && strcmp(key, "clean_shutdown") == 0) {
			ld->clean = value != 0;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		return false;
	}
	ld->fresh = found == 0;
	return read_rows(store, "SELECT id, username, token_hash FROM users ORDER BY rowid", 2, 0,
		       true, &ld->users) &&
		read_rows(store,
			"SELECT clientid, userid, persistent, qos FROM sessions ORDER BY userid, "
			"position",
			2, 2, false, &ld->sessions) &&
		read_rows(store, "SELECT clientid, filter, qos FROM session_rooms", 2, 1, false,
			&ld->rooms) &&
		read_recent_cids(store, ld) &&
		read_rows(store, "SELECT id FROM groups ORDER BY rowid", 1, 0, false,
			&ld->groups) &&
		read_rows(store,
			"SELECT groupid, userid, since, added FROM members ORDER BY groupid, "
			"position",
			2, 2, false, &ld->members);
}

static void loaded_clear(struct loaded *ld)
{
	rows_free(ld->users);
	rows_free(ld->sessions);
	rows_free(ld->rooms);
	rows_free(ld->cids);
	rows_free(ld->groups);
	rows_free(ld->members);
	*ld = (struct loaded){ 0 };
}

/* Runs a prepared statement with text and integer parameters; false on an error. */
static bool run(sqlite3_stmt *st, const char *t1, const char *t2, const int64_t *nums, int n_nums,
	int first_num)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (t1 != NULL) {
		sqlite3_bind_text(st, 1, t1, -1, SQLITE_STATIC);
	}
	if (t2 != NULL) {
		sqlite3_bind_text(st, 2, t2, -1, SQLITE_STATIC);
	}
	for (int i = 0; i < n_nums; i++) {
		sqlite3_bind_int64(st, first_num + i, nums[i]);
	}
	int rc = sqlite3_step(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW;
}

/*
 * Brings every room down to history_per_room, for a cap lowered since the last run (inserts
 * keep rooms at the cap from then on). Best effort: on an error the rooms are pruned by their
 * next messages.
 */
static void prune_rooms(struct store *store)
{
	if (store->per_room <= 0) {
		return;
	}
	/* The rooms over the cap first: the deletes change the rooms table as they go. */
	char sql[96];
	snprintf(sql, sizeof sql, "SELECT room, count FROM rooms WHERE count > %lld",
		(long long)store->per_room);
	struct row *over = NULL;
	sqlite3_stmt *cut = NULL;
	if (read_rows(store, sql, 1, 1, false, &over) && over != NULL &&
		exec(store, "BEGIN IMMEDIATE")) {
		if (sqlite3_prepare_v2(store->db,
			    "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE "
			    "room = ?1 ORDER BY id LIMIT ?2)",
			    -1, &cut, NULL) == SQLITE_OK) {
			for (const struct row *r = over; r != NULL; r = r->next) {
				int64_t excess = r->num[0] - store->per_room;
				(void)run(cut, r->s[0], NULL, &excess, 1, 2);
			}
		}
		sqlite3_finalize(cut);
		if (!exec(store, "COMMIT")) {
			(void)exec(store, "ROLLBACK");
		}
	}
	rows_free(over);
}

/* Opens the database and reads it. */
static enum db_state open_and_read(struct store *store, struct loaded *ld, const char **why)
{
	enum db_state state = open_db(store, why);
	if (state == DB_OK && !read_state(store, ld)) {
		state = classify(store, why);
		close_db(store);
	}
	if (state != DB_OK) {
		loaded_clear(ld);
	}
	return state;
}

/*
 * Opens the database and reads it (`reset`: after moving it aside, since its records broke the
 * rules). A damaged file or one that is not ours is moved aside and a new database made; one
 * that cannot be used now (locked, disk full, read-only) is left as it is and this run keeps
 * no history.
 */
static void load(struct store *store, bool reset)
{
	struct loaded *ld = &store->loaded;
	loaded_clear(ld);
	close_db(store);
	if (reset) {
		move_aside(store, "its records are inconsistent");
	}
	/* A file that is there may have held ids already, also when it is empty now. */
	bool existed = access(store->path, F_OK) == 0;
	const char *why = NULL;
	enum db_state state = open_and_read(store, ld, &why);
	if (state == DB_CORRUPT && existed && !reset) {
		move_aside(store, why);
		reset = true;
		state = open_and_read(store, ld, &why);
	}
	if (state != DB_OK) {
		post_log(store, CHAT_LOG_ERR,
			"chat: cannot use the database %s (%s); it is left as it is, and this run "
			"keeps no history",
			store->path, why);
		return;
	}
	ld->ok = true;
	ld->reset = reset || (existed && ld->fresh);
	prune_rooms(store);
}

/* Prepared statements of a batch, made once per transaction. */
enum stmt {
	ST_USER_PUT,
	ST_USER_DEL,
	ST_USER_ROOMS_DEL,
	ST_USER_SESSIONS_DEL,
	ST_USER_MEMBERS_DEL,
	ST_SESSION_PUT,
	ST_ROOM_PUT,
	ST_GROUP_PUT,
	ST_GROUP_MEMBERS_DEL,
	ST_MEMBER_PUT,
	ST_GROUP_DEL,
	ST_GROUP_MESSAGES_DEL,
	ST_GROUP_ROOM_DEL,
	ST_MESSAGE_PUT,
	ST_ROOM_COUNT,
	ST_ROOM_OLDEST_DEL,
	ST_CONVERSATION_PUT,
	ST_META_PUT,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_USER_PUT] = "INSERT INTO users(id, username, token_hash) VALUES(?1, ?2, ?3) "
			"ON CONFLICT(id) DO UPDATE SET username = excluded.username, "
			"token_hash = excluded.token_hash",
	[ST_USER_DEL] = "DELETE FROM users WHERE id = ?1",
	[ST_USER_ROOMS_DEL] = "DELETE FROM session_rooms WHERE clientid IN (SELECT clientid FROM "
			      "sessions WHERE userid = ?1)",
	[ST_USER_SESSIONS_DEL] = "DELETE FROM sessions WHERE userid = ?1",
	[ST_USER_MEMBERS_DEL] = "DELETE FROM members WHERE userid = ?1",
	[ST_SESSION_PUT] = "INSERT OR REPLACE INTO sessions(clientid, userid, persistent, qos, "
			   "position) VALUES(?1, ?2, ?3, ?4, ?5)",
	[ST_ROOM_PUT] =
		"INSERT OR REPLACE INTO session_rooms(clientid, filter, qos) VALUES(?1, ?2, "
		"?3)",
	[ST_GROUP_PUT] = "INSERT OR IGNORE INTO groups(id) VALUES(?1)",
	[ST_GROUP_MEMBERS_DEL] = "DELETE FROM members WHERE groupid = ?1",
	[ST_MEMBER_PUT] = "INSERT OR REPLACE INTO members(groupid, userid, since, position, added) "
			  "VALUES(?1, ?2, ?3, ?4, ?5)",
	[ST_GROUP_DEL] = "DELETE FROM groups WHERE id = ?1",
	[ST_GROUP_MESSAGES_DEL] = "DELETE FROM messages WHERE room = ?1",
	[ST_GROUP_ROOM_DEL] = "DELETE FROM rooms WHERE room = ?1",
	[ST_MESSAGE_PUT] = "INSERT OR IGNORE INTO messages(id, room, ts, body) VALUES(?1, ?2, ?3, "
			   "?4)",
	[ST_ROOM_COUNT] = "SELECT count FROM rooms WHERE room = ?1",
	[ST_ROOM_OLDEST_DEL] = "DELETE FROM messages WHERE id = (SELECT min(id) FROM messages "
			       "WHERE room = ?1)",
	[ST_CONVERSATION_PUT] = "INSERT OR IGNORE INTO conversations(userid, room) VALUES(?1, ?2)",
	[ST_META_PUT] = "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)",
};

static bool apply_message(struct store *store, sqlite3_stmt **st, const struct op *op)
{
	sqlite3_stmt *put = st[ST_MESSAGE_PUT];
	sqlite3_reset(put);
	sqlite3_bind_int64(put, 1, op->num[0]);
	sqlite3_bind_text(put, 2, op->s[0], -1, SQLITE_STATIC);
	sqlite3_bind_int64(put, 3, op->num[1]);
	sqlite3_bind_text(put, 4, op->text, (int)op->text_len, SQLITE_STATIC);
	if (sqlite3_step(put) != SQLITE_DONE) {
		return false;
	}
	for (int i = 1; i <= 2; i++) {
		if (op->s[i] != NULL &&
			!run(st[ST_CONVERSATION_PUT], op->s[i], op->s[0], NULL, 0, 0)) {
			return false;
		}
	}
	if (store->per_room > 0) {
		/* Keep the room at its cap in the same transaction (oldest first). */
		sqlite3_stmt *count = st[ST_ROOM_COUNT];
		sqlite3_reset(count);
		sqlite3_bind_text(count, 1, op->s[0], -1, SQLITE_STATIC);
		int64_t n = sqlite3_step(count) == SQLITE_ROW ? sqlite3_column_int64(count, 0) : 0;
		sqlite3_reset(count);
		for (; n > store->per_room; n--) {
			if (!run(st[ST_ROOM_OLDEST_DEL], op->s[0], NULL, NULL, 0, 0)) {
				return false;
			}
		}
	}
	return true;
}

static bool apply_counters(sqlite3_stmt **st, const struct op *op)
{
	char key[32];
	for (int i = 0; i < 3; i++) {
		snprintf(key, sizeof key, "next_%s", counter_names[i]);
		if (!run(st[ST_META_PUT], key, NULL, &op->num[i], 1, 2)) {
			return false;
		}
		snprintf(key, sizeof key, "reserved_%s", counter_names[i]);
		if (!run(st[ST_META_PUT], key, NULL, &op->num[3 + i], 1, 2)) {
			return false;
		}
	}
	return run(st[ST_META_PUT], "clean_shutdown", NULL, &op->num[6], 1, 2);
}

static bool apply(struct store *store, sqlite3_stmt **st, const struct op *op)
{
	switch (op->kind) {
	case OP_USER_PUT: {
		sqlite3_stmt *put = st[ST_USER_PUT];
		sqlite3_reset(put);
		sqlite3_clear_bindings(put);
		sqlite3_bind_text(put, 1, op->s[0], -1, SQLITE_STATIC);
		sqlite3_bind_text(put, 2, op->s[1], -1, SQLITE_STATIC);
		if (op->has_hash) {
			sqlite3_bind_blob(put, 3, op->hash, (int)sizeof op->hash, SQLITE_STATIC);
		}
		return sqlite3_step(put) == SQLITE_DONE &&
			run(st[ST_USER_ROOMS_DEL], op->s[0], NULL, NULL, 0, 0) &&
			run(st[ST_USER_SESSIONS_DEL], op->s[0], NULL, NULL, 0, 0);
	}
	case OP_USER_DEL:
		return run(st[ST_USER_ROOMS_DEL], op->s[0], NULL, NULL, 0, 0) &&
			run(st[ST_USER_SESSIONS_DEL], op->s[0], NULL, NULL, 0, 0) &&
			run(st[ST_USER_MEMBERS_DEL], op->s[0], NULL, NULL, 0, 0) &&
			run(st[ST_USER_DEL], op->s[0], NULL, NULL, 0, 0);
	case OP_SESSION_PUT:
		return run(st[ST_SESSION_PUT], op->s[0], op->s[1], op->num, 3, 3);
	case OP_ROOM_PUT:
		return run(st[ST_ROOM_PUT], op->s[0], op->s[1], op->num, 1, 3);
	case OP_GROUP_PUT:
		return run(st[ST_GROUP_PUT], op->s[0], NULL, NULL, 0, 0) &&
			run(st[ST_GROUP_MEMBERS_DEL], op->s[0], NULL, NULL, 0, 0);
	case OP_MEMBER_PUT:
		return run(st[ST_MEMBER_PUT], op->s[0], op->s[1], op->num, 3, 3);
	case OP_GROUP_DEL:
		return run(st[ST_GROUP_MEMBERS_DEL], op->s[0], NULL, NULL, 0, 0) &&
			run(st[ST_GROUP_DEL], op->s[0], NULL, NULL, 0, 0) &&
			run(st[ST_GROUP_MESSAGES_DEL], op->s[0], NULL, NULL, 0, 0) &&
			run(st[ST_GROUP_ROOM_DEL], op->s[0], NULL, NULL, 0, 0);
	case OP_MESSAGE:
		return apply_message(store, st, op);
	case OP_COUNTERS:
		return apply_counters(st, op);
	case OP_QUERY:
	case OP_LOAD:
		break;
	}
	return true;
}

/*
 * Commits every record and message op of `ops` as one transaction; queries are skipped. False
 * when it failed (rolled back, logged once until a commit succeeds again).
 */
static bool commit_batch(struct store *store, struct op *ops)
{
	bool any = false;
	const struct op *counters = NULL;
	for (const struct op *op = ops; op != NULL; op = op->next) {
		if (op->kind != OP_QUERY && op->kind != OP_LOAD) {
			any = true;
		}
		if (op->kind == OP_COUNTERS) {
			counters = op;
		}
	}
	if (!any || store->db == NULL) {
		return true;
	}
	sqlite3_stmt *st[ST_COUNT] = { 0 };
	bool ok = exec(store, "BEGIN IMMEDIATE");
	for (int i = 0; ok && i < ST_COUNT; i++) {
		ok = sqlite3_prepare_v2(store->db, stmt_sql[i], -1, &st[i], NULL) == SQLITE_OK;
	}
	const struct op *op;
	for (op = ops; ok && op != NULL; op = op->next) {
		ok = apply(store, st, op);
	}
	const char *why = ok ? NULL : sqlite3_errmsg(store->db);
	char reason[200] = "";
	if (why != NULL) {
		snprintf(reason, sizeof reason, "%s", why);
	}
	for (int i = 0; i < ST_COUNT; i++) {
		sqlite3_finalize(st[i]);
	}
	ok = ok && exec(store, "COMMIT");
	if (!ok && !sqlite3_get_autocommit(store->db)) {
		(void)sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
	}
	pthread_mutex_lock(&store->lock);
	bool was_failing = store->failing;
	store->failing = !ok;
	pthread_mutex_unlock(&store->lock);
	if (!ok && !was_failing) {
		post_log(store, CHAT_LOG_ERR,
			"chat: could not write to the database %s (%s); history is unavailable "
			"until a write succeeds",
			store->path, reason[0] != '\0' ? reason : "commit failed");
	} else if (ok && was_failing) {
		post_log(store, CHAT_LOG_NOTICE, "chat: the database %s is written again",
			store->path);
	}
	if (ok && counters != NULL) {
		struct done *d = calloc(1, sizeof *d);
		if (d != NULL) {
			d->kind = DONE_COMMITTED;
			memcpy(d->num, &counters->num[3], 3 * sizeof d->num[0]);
			post(store, d);
		}
	}
	return ok;
}

/*
 * After a failed commit nothing of it is lost: its messages are kept to be committed with the
 * next batch (the worker's retry list; they still count in the queue, which bounds them), and
 * the broker thread is told which users and groups to write again (it writes them as they are
 * then) and that the counters' reservation must be asked for again.
 */
static void keep_failed(struct store *store, struct op **ops)
{
	struct done *d = calloc(1, sizeof *d);
	struct row **rows = d != NULL ? &d->rows : NULL;
	struct op **p = ops;
	while (*p != NULL) {
		struct op *op = *p;
		if (op->kind == OP_MESSAGE) {
			*p = op->next; /* moved to the retry list, in order */
			op->next = NULL;
			*store->retry_tail = op;
			store->retry_tail = &op->next;
			continue;
		}
		bool record = op->kind == OP_USER_PUT || op->kind == OP_USER_DEL ||
			op->kind == OP_GROUP_PUT || op->kind == OP_GROUP_DEL;
		if (d != NULL && record) {
			struct row *row = calloc(1, sizeof *row);
			if (row != NULL && (row->s[0] = strdup(op->s[0])) != NULL) {
				*rows = row;
				rows = &row->next;
			} else {
				free(row);
			}
		}
		if (d != NULL && op->kind == OP_COUNTERS) {
			d->num[0] = 1;
		}
		p = &op->next;
	}
	if (d != NULL) {
		d->kind = DONE_UNSAVED;
		post(store, d);
	}
}

static void prune_by_age(struct store *store)
{
	if (store->days <= 0 || store->db == NULL) {
		return;
	}
	/* The chat's clock, as the broker thread read it, so that queries and pruning agree. */
	pthread_mutex_lock(&store->lock);
	int64_t now = store->wall_ms;
	pthread_mutex_unlock(&store->lock);
	if (now < store->next_prune_at) {
		return;
	}
	store->next_prune_at = now + PRUNE_INTERVAL_MS;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(store->db, "DELETE FROM messages WHERE ts < ?1", -1, &st, NULL) ==
		SQLITE_OK) {
		sqlite3_bind_int64(st, 1, now - store->days * 86400000);
		(void)sqlite3_step(st);
	}
	sqlite3_finalize(st);
}

/* Appends message texts of `st`'s rows (column 0) to *tail; returns how many. */
static int collect(sqlite3_stmt *st, struct row ***tail, bool *err)
{
	int n = 0, rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct row *row = calloc(1, sizeof *row);
		if (row == NULL || (row->s[0] = column_text(st, 0)) == NULL) {
			free(row);
			*err = true;
			break;
		}
		**tail = row;
		*tail = &row->next;
		n++;
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		*err = true;
	}
	return n;
}

/* Reverses a list of rows (queries that read newest first answer oldest first). */
static struct row *reverse(struct row *row)
{
	struct row *out = NULL;
	while (row != NULL) {
		struct row *next = row->next;
		row->next = out;
		out = row;
		row = next;
	}
	return out;
}

/* Fills the requester's rooms into the temporary table q (room, since). */
static bool fill_rooms(struct store *store, const struct query *q)
{
	if (!exec(store,
		    "CREATE TEMP TABLE IF NOT EXISTS q(room TEXT PRIMARY KEY, since INTEGER)"
		    " WITHOUT ROWID; DELETE FROM q;")) {
		return false;
	}
	sqlite3_stmt *st = NULL;
	bool ok = sqlite3_prepare_v2(store->db, "INSERT OR REPLACE INTO q VALUES(?1, ?2)", -1, &st,
			  NULL) == SQLITE_OK;
	for (size_t i = 0; ok && i < q->n_groups; i++) {
		int64_t since = (int64_t)q->group_since[i];
		ok = run(st, q->group_keys[i], NULL, &since, 1, 2);
	}
	sqlite3_finalize(st);
	st = NULL;
	ok = ok &&
		sqlite3_prepare_v2(store->db,
			"INSERT OR IGNORE INTO q SELECT room, 0 FROM conversations WHERE userid = ?1",
			-1, &st, NULL) == SQLITE_OK &&
		run(st, q->userid, NULL, NULL, 0, 0);
	sqlite3_finalize(st);
	return ok;
}

/* True when the requester of `q` has a direct conversation in the room of `q`. */
static bool has_conversation(struct store *store, const struct query *q)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(store->db,
		    "SELECT 1 FROM conversations WHERE userid = ?1 AND room = ?2", -1, &st,
		    NULL) != SQLITE_OK) {
		return false;
	}
	sqlite3_bind_text(st, 1, q->userid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, q->room_key, -1, SQLITE_STATIC);
	bool found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return found;
}

static int row_by_id(const void *a, const void *b)
{
	const struct row *x = *(const struct row *const *)a, *y = *(const struct row *const *)b;
	return x->num[0] < y->num[0] ? -1 : x->num[0] > y->num[0];
}

/*
 * Catch-up: the oldest `limit` visible messages after the cursor over every room of the
 * requester (the temporary table q). Each room gives at most `limit` of its own through its
 * index, and those are merged by id, so the cost follows the requester's rooms and the page,
 * never the size of the whole table. Returns how many rows *out holds.
 */
static int catch_up(struct store *store, const struct query *q, int64_t limit, struct row **out,
	bool *err)
{
	struct row *rooms = NULL, *found = NULL, **tail = &found;
	sqlite3_stmt *st = NULL;
	int n = 0;
	*err = !read_rows(store, "SELECT room, since FROM q", 1, 1, false, &rooms) ||
		sqlite3_prepare_v2(store->db,
			"SELECT body, id FROM messages WHERE room = ?1 AND id > ?2 AND id >= ?3 AND "
			"ts >= ?4 ORDER BY id LIMIT ?5",
			-1, &st, NULL) != SQLITE_OK;
	for (const struct row *r = rooms; !*err && r != NULL; r = r->next) {
		int64_t nums[4] = { (int64_t)q->after, r->num[0], q->min_ts, limit };
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, r->s[0], -1, SQLITE_STATIC);
		for (int i = 0; i < 4; i++) {
			sqlite3_bind_int64(st, 2 + i, nums[i]);
		}
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			struct row *row = calloc(1, sizeof *row);
			if (row == NULL || (row->s[0] = column_text(st, 0)) == NULL) {
				free(row);
				*err = true;
				break;
			}
			row->num[0] = sqlite3_column_int64(st, 1);
			*tail = row;
			tail = &row->next;
			n++;
		}
		*err = *err || rc != SQLITE_DONE;
	}
	sqlite3_finalize(st);
	rows_free(rooms);
	struct row **all = *err || n == 0 ? NULL : calloc((size_t)n, sizeof *all);
	if (all == NULL) {
		rows_free(found);
		*err = *err || n > 0;
		return 0;
	}
	int i = 0;
	for (struct row *r = found; r != NULL; r = r->next) {
		all[i++] = r;
	}
	qsort(all, (size_t)n, sizeof *all, row_by_id);
	int keep = n < limit ? n : (int)limit;
	for (i = 0; i < n; i++) {
		all[i]->next = i + 1 < keep ? all[i + 1] : NULL;
		if (i >= keep) {
			all[i]->next = NULL;
			rows_free(all[i]);
		}
	}
	*out = all[0];
	free(all);
	return n < limit ? n : (int)limit;
}

/* Runs a history query; the reply carries the message texts, oldest first. */
static void answer(struct store *store, struct query *q)
{
	struct done *d = calloc(1, sizeof *d);
	if (d == NULL) {
		return;
	}
	d->kind = DONE_REPLY;
	d->clientid = q->clientid;
	d->userid = strdup(q->userid); /* the query goes on using its own */
	d->room = q->room;
	d->qid = q->qid;
	q->clientid = q->room = q->qid = NULL;

	bool err = false;
	int n = 0;
	struct row **tail = &d->rows;
	sqlite3_stmt *st = NULL;
	int64_t limit = q->limit + 1; /* one more tells whether the direction is complete */
	bool newest_first = false;
	const char *sql;
	pthread_mutex_lock(&store->lock);
	bool failing = store->failing;
	pthread_mutex_unlock(&store->lock);
	if (store->db == NULL || failing) {
		/* While commits fail, what is in the database is not what was delivered. */
		err = true;
	} else if (q->gone_peer && !has_conversation(store, q)) {
		/* Not a user now, and never one this requester wrote with (§4.11). */
		d->err = CHAT_ERR_UNKNOWN_ROOM;
		d->text = malloc(CHAT_ID_BUF + 32);
		if (d->text != NULL) {
			snprintf(d->text, CHAT_ID_BUF + 32, "there is no user %s", d->room);
		}
		post(store, d);
		return;
	} else if (q->room_key != NULL) {
		if (q->before != 0 && q->after != 0) {
			sql = "SELECT body FROM messages WHERE room = ?1 AND id >= ?2 AND ts >= ?3 "
			      "AND id > ?5 AND id < ?4 ORDER BY id LIMIT ?6";
		} else if (q->after != 0) {
			sql = "SELECT body FROM messages WHERE room = ?1 AND id >= ?2 AND ts >= ?3 "
			      "AND id > ?5 ORDER BY id LIMIT ?6";
		} else {
			sql = "SELECT body FROM messages WHERE room = ?1 AND id >= ?2 AND ts >= ?3 "
			      "AND id < ?4 ORDER BY id DESC LIMIT ?6";
			newest_first = true;
		}
		int64_t nums[5] = { (int64_t)q->since, q->min_ts,
			q->before != 0 ? (int64_t)q->before : INT64_MAX, (int64_t)q->after, limit };
		err = sqlite3_prepare_v2(store->db, sql, -1, &st, NULL) != SQLITE_OK;
		if (!err) {
			sqlite3_bind_text(st, 1, q->room_key, -1, SQLITE_STATIC);
			for (int i = 0; i < 5; i++) {
				sqlite3_bind_int64(st, 2 + i, nums[i]);
			}
			n = collect(st, &tail, &err);
		}
	} else if (!fill_rooms(store, q)) {
		err = true;
	} else if (q->after != 0) {
		n = catch_up(store, q, limit, &d->rows, &err);
	} else {
		/* Summary: the newest visible message of each room, newest first. */
		sql = "SELECT m.body FROM (SELECT (SELECT max(id) FROM messages WHERE room = q.room "
		      "AND id >= q.since AND ts >= ?1) AS last FROM q) AS r JOIN messages m ON "
		      "m.id = r.last ORDER BY m.id DESC LIMIT ?2";
		err = sqlite3_prepare_v2(store->db, sql, -1, &st, NULL) != SQLITE_OK;
		if (!err) {
			sqlite3_bind_int64(st, 1, q->min_ts);
			sqlite3_bind_int64(st, 2, limit);
			n = collect(st, &tail, &err);
		}
	}
	sqlite3_finalize(st);
	if (!err && n > q->limit) {
		/* Drop the extra row: the last one read, which is the farthest from the cursor. */
		struct row **p = &d->rows;
		while ((*p)->next != NULL) {
			p = &(*p)->next;
		}
		rows_free(*p);
		*p = NULL;
	}
	d->complete = n <= q->limit;
	if (newest_first) {
		d->rows = reverse(d->rows);
	}
	if (err) {
		rows_free(d->rows);
		d->rows = NULL;
		d->err = CHAT_ERR_HISTORY_UNAVAILABLE;
		d->text = strdup(store->db == NULL ? "the chat has no usable database"
				: failing          ? "the chat's database is failing; try later"
						   : "the database could not answer");
	}
	post(store, d);
}

static void *worker(void *arg)
{
	struct store *store = arg;
	for (;;) {
		pthread_mutex_lock(&store->lock);
		while (store->work == NULL && !store->stopping && store->retry == NULL) {
			pthread_cond_wait(&store->work_ready, &store->lock);
		}
		if (store->work == NULL && !store->stopping) {
			/* Only failed messages wait: try them again in a second. */
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 1;
			(void)pthread_cond_timedwait(&store->work_ready, &store->lock, &until);
		}
		struct op *ops = store->work;
		store->work = NULL;
		store->work_tail = &store->work;
		bool stopping = store->stopping;
		pthread_mutex_unlock(&store->lock);
		if (ops == NULL && stopping && store->retry == NULL) {
			break;
		}
		if (store->retry != NULL) {
			/* The messages of a failed commit go first, in their order. */
			*store->retry_tail = ops;
			ops = store->retry;
			store->retry = NULL;
			store->retry_tail = &store->retry;
		}

		size_t messages = 0, queries = 0;
		bool reload = false, reset = false;
		for (const struct op *op = ops; op != NULL; op = op->next) {
			if (op->kind == OP_LOAD) {
				reload = true;
				reset = reset || op->num[0] != 0;
			}
		}
		if (reload) {
			load(store, reset);
			struct done *d = calloc(1, sizeof *d);
			if (d != NULL) {
				d->kind = DONE_LOADED;
				post(store, d);
			}
		}
		if (!commit_batch(store, ops)) {
			keep_failed(store, &ops);
			if (stopping) {
				/* A clean stop cannot wait for the disk for ever: say what is lost. */
				size_t lost = 0;
				for (struct op *m = store->retry; m != NULL; m = m->next) {
					lost++;
				}
				if (lost > 0) {
					post_log(store, CHAT_LOG_ERR,
						"chat: %zu messages could not be written to the database "
						"before the stop",
						lost);
				}
				while (store->retry != NULL) {
					struct op *m = store->retry;
					store->retry = m->next;
					op_free(m);
				}
				store->retry_tail = &store->retry;
			}
		} else {
			prune_by_age(store);
		}
		/*
		 * At most QUERIES_PER_PASS queries are answered before the next batch is committed:
		 * the others wait at the front of the queue, so a storm of history requests delays
		 * other answers a little, never the commits.
		 */
		struct op *deferred = NULL, **deferred_tail = &deferred;
		struct op *op = ops;
		while (op != NULL) {
			struct op *next = op->next;
			if (op->kind == OP_QUERY && queries == QUERIES_PER_PASS) {
				op->next = NULL;
				*deferred_tail = op;
				deferred_tail = &op->next;
				op = next;
				continue;
			}
			if (op->kind == OP_MESSAGE) {
				messages++;
			} else if (op->kind == OP_QUERY) {
				queries++;
				if (!stopping) { /* at a stop nobody can be answered any more */
					answer(store, op->query);
				}
			}
			op_free(op);
			op = next;
		}
		pthread_mutex_lock(&store->lock);
		store->queued_messages -= messages;
		store->queued_queries -= queries;
		if (deferred != NULL) {
			*deferred_tail = store->work;
			if (store->work == NULL) {
				store->work_tail = deferred_tail;
			}
			store->work = deferred;
		}
		pthread_mutex_unlock(&store->lock);
	}
	if (store->db != NULL) {
		(void)exec(store, "PRAGMA wal_checkpoint(TRUNCATE)");
	}
	close_db(store);
	return NULL;
}

/* ===================================================================================== */
/* The broker thread                                                                     */
/* ===================================================================================== */

static struct id_counter *counter_at(struct chat *chat, int i)
{
	return i == 0 ? &chat->ids.user : i == 1 ? &chat->ids.group : &chat->ids.message;
}

static const uint64_t counter_blocks[3] = { STORE_ID_BLOCK, STORE_ID_BLOCK, STORE_MESSAGE_BLOCK };

/* Hands `ops` to the worker (the lock not held). */
static void enqueue(struct store *store, int64_t wall, struct op *ops, size_t messages,
	size_t queries)
{
	if (ops == NULL) {
		return;
	}
	struct op *last = ops;
	while (last->next != NULL) {
		last = last->next;
	}
	pthread_mutex_lock(&store->lock);
	store->wall_ms = wall;
	*store->work_tail = ops;
	store->work_tail = &last->next;
	store->queued_messages += messages;
	store->queued_queries += queries;
	pthread_cond_signal(&store->work_ready);
	pthread_mutex_unlock(&store->lock);
}

static struct op *op_new(enum op_kind kind, const char *s0, const char *s1)
{
	struct op *op = calloc(1, sizeof *op);
	if (op == NULL) {
		return NULL;
	}
	op->kind = kind;
	op->s[0] = dup_or_null(s0);
	op->s[1] = dup_or_null(s1);
	if ((s0 != NULL && op->s[0] == NULL) || (s1 != NULL && op->s[1] == NULL)) {
		op_free(op);
		return NULL;
	}
	return op;
}

/* Appends to a list being built; false (and the list freed by the caller) on no memory. */
static bool push(struct op ***tail, struct op *op)
{
	if (op == NULL) {
		return false;
	}
	**tail = op;
	*tail = &op->next;
	return true;
}

static void ops_free(struct op *op)
{
	while (op != NULL) {
		struct op *next = op->next;
		op_free(op);
		op = next;
	}
}

struct room_ops {
	const struct chat_session *session;
	struct op ***tail;
	bool ok;
};

static void room_op(void *ctx, const char *filter, int qos)
{
	struct room_ops *r = ctx;
	struct op *op = r->ok ? op_new(OP_ROOM_PUT, r->session->clientid, filter) : NULL;
	if (op != NULL) {
		op->num[0] = qos;
	}
	r->ok = r->ok && push(r->tail, op);
}

/*
 * The room subscriptions of a persistent session: the broker keeps its subscriptions across a
 * restart (with persistence), so the chat keeps what it knows of them (docs/protocol.md §3.5).
 */
static bool room_ops(const struct chat_session *session, struct op ***tail)
{
	struct room_ops r = { .session = session, .tail = tail, .ok = true };
	state_session_rooms_each(session, room_op, &r);
	return r.ok;
}

/* The ops that write one changed user or group as it is now (or delete it). */
static bool record_ops(struct chat *chat, const char *id, struct op ***tail)
{
	if (ids_is_user(id)) {
		struct chat_user *user = state_user_find(chat, id);
		if (user == NULL) {
			return push(tail, op_new(OP_USER_DEL, id, NULL));
		}
		struct op *op = op_new(OP_USER_PUT, id, user->username);
		if (op != NULL && user->has_token) {
			op->has_hash = true;
			memcpy(op->hash, user->token_hash, sizeof op->hash);
		}
		if (!push(tail, op)) {
			return false;
		}
		int64_t position = 0;
		const struct chat_session *s;
		for (s = user->sessions; s != NULL; s = s->next_of_user) {
			op = op_new(OP_SESSION_PUT, s->clientid, id);
			if (!push(tail, op)) {
				return false;
			}
			op->num[0] = s->persistent;
			op->num[1] = s->inbox_qos;
			op->num[2] = position++;
			if (s->persistent && !room_ops(s, tail)) {
				return false;
			}
		}
		return true;
	}
	struct chat_group *group = state_group_find(chat, id);
	if (group == NULL) {
		return push(tail, op_new(OP_GROUP_DEL, id, NULL));
	}
	if (!push(tail, op_new(OP_GROUP_PUT, id, NULL))) {
		return false;
	}
	int64_t position = 0;
	const struct chat_member *m;
	for (m = group->members; m != NULL; m = m->hh_group.next) {
		struct op *op = op_new(OP_MEMBER_PUT, id, m->user->id);
		if (!push(tail, op)) {
			return false;
		}
		op->num[0] = (int64_t)m->since;
		op->num[1] = position++;
		op->num[2] = m->added;
	}
	return true;
}

/*
 * The counters op: where each counter is and what is reserved; moves a reservation a block
 * ahead when less than half a block is left (`force`: every counter). NULL: nothing to write.
 */
static struct op *counters_op(struct chat *chat, bool force, bool clean)
{
	struct store *store = chat->store;
	bool any = force || clean;
	for (int i = 0; i < 3; i++) {
		struct id_counter *c = counter_at(chat, i);
		if (force || c->next + counter_blocks[i] / 2 >= store->requested[i]) {
			store->requested[i] = c->next + counter_blocks[i];
			any = true;
		}
	}
	if (!any) {
		return NULL;
	}
	struct op *op = op_new(OP_COUNTERS, NULL, NULL);
	if (op == NULL) {
		return NULL;
	}
	for (int i = 0; i < 3; i++) {
		op->num[i] = (int64_t)counter_at(chat, i)->next;
		op->num[3 + i] = (int64_t)store->requested[i];
	}
	op->num[6] = clean;
	return op;
}

/* Builds the batch of everything changed since the last one and hands it over. */
static void hand_over(struct chat *chat, bool force_counters, bool clean)
{
	struct store *store = chat->store;
	struct op *ops = NULL, **tail = &ops;
	bool ok = true;
	/*
	 * Copying records costs the broker thread about a microsecond an op, so a batch takes at
	 * most STORE_OPS_PER_BATCH of them; what is left goes with the next batches (the first
	 * batch and the last one take everything).
	 */
	bool everything = force_counters || clean;
	size_t count = 0;
	struct changed_id *c, *tmp;
	HASH_ITER(hh, chat->changes.unsaved, c, tmp) {
		if (!everything && count >= STORE_OPS_PER_BATCH) {
			break;
		}
		struct op **from = tail;
		if (!(ok = record_ops(chat, c->id, &tail))) {
			break;
		}
		for (const struct op *op = *from; op != NULL; op = op->next) {
			count++;
		}
		state_unsaved_forget(chat, c);
	}
	struct op *counters =
		ok ? counters_op(chat, force_counters || store->reserve_again, clean) : NULL;
	store->reserve_again = store->reserve_again && counters == NULL;
	if (counters != NULL) {
		*tail = counters;
		tail = &counters->next;
	}
	if (!ok) {
		/* Out of memory: what was taken is written with the next batch. */
		for (const struct op *op = ops; op != NULL; op = op->next) {
			if (op->kind == OP_USER_PUT || op->kind == OP_USER_DEL ||
				op->kind == OP_GROUP_PUT || op->kind == OP_GROUP_DEL) {
				state_note_unsaved(chat, op->s[0]);
			}
		}
		ops_free(ops);
		return;
	}
	*tail = store->pending;
	size_t messages = store->pending_messages;
	store->pending = NULL;
	store->pending_tail = &store->pending;
	store->pending_messages = 0;
	enqueue(store, chat->hooks.wall_ms(chat->hooks.ctx), ops, messages, 0);
}

/* Waits (start-up and shutdown only) until the worker posts a completion of `kind`. */
static void wait_for(struct chat *chat, enum done_kind kind);

/* The reply document of a finished query. */
static cJSON *history_doc(const struct done *d)
{
	size_t n = 0;
	for (const struct row *row = d->rows; row != NULL; row = row->next) {
		n++;
	}
	const char **texts = calloc(n + 1, sizeof *texts);
	if (texts == NULL) {
		return NULL;
	}
	n = 0;
	for (const struct row *row = d->rows; row != NULL; row = row->next) {
		texts[n++] = row->s[0];
	}
	cJSON *doc = codec_history(d->qid, d->room, texts, n, d->complete);
	free(texts);
	return doc;
}

/*
 * Delivers a finished query's answer to the session that asked, if it is still that user's. A
 * reply costs its bytes from the user's delivery budget like a message (budget.h), or one user
 * could make the broker queue gigabytes of history for a session that never reads.
 */
static size_t deliver_reply(struct chat *chat, struct done *d, int64_t now_ms)
{
	struct chat_session *session = state_session_find(chat, d->clientid);
	if (session == NULL) {
		return 0; /* the session is gone: nobody to answer */
	}
	if (session->history_waiting > 0) {
		session->history_waiting--;
	}
	if (session->user == NULL || strcmp(session->user->id, d->userid) != 0) {
		return 0; /* the session ended, and may be another user's by now */
	}
	cJSON *doc = d->err == CHAT_OK ? history_doc(d) : NULL;
	size_t len = 0;
	char *text = doc != NULL ? codec_render(doc, &len) : NULL;
	cJSON_Delete(doc);
	char detail[320];
	if (text != NULL &&
		!budget_charge(chat, session->user, len, now_ms, detail, sizeof detail)) {
		codec_free(text);
		text = NULL;
		d->err = CHAT_ERR_RATE_LIMITED;
		free(d->text);
		d->text = strdup(detail);
	}
	if (d->err != CHAT_OK) {
		doc = codec_error_qid("history", chat_err_str(d->err),
			d->text != NULL ? d->text : chat_err_str(d->err), d->qid);
		text = doc != NULL ? codec_render(doc, &len) : NULL;
		cJSON_Delete(doc);
	}
	/*
	 * Delivered like any inbox delivery, not as a reply by client id: with bind_mqtt_username
	 * another MQTT user may hold the client id by now, and the READ check then keeps the
	 * user's history from it (outbox.h).
	 */
	enum chat_err rc = text != NULL
		? outbox_deliver(chat, session, d->err == CHAT_OK ? "history" : "error", text, len)
		: CHAT_ERR_INTERNAL;
	codec_free(text);
	if (rc != CHAT_OK) {
		log_printf(&chat->hooks, CHAT_LOG_ERR,
			"chat: could not answer a history request of %s", d->clientid);
	}
	return len;
}

/*
 * Takes in what the worker finished. History answers are rendered and published here, on the
 * broker thread, so at most `reply_bytes` of them per call; the answers past that are returned,
 * in order, for the next tick.
 */
static struct done *take_completions(struct chat *chat, struct done *d, int64_t now_ms,
	size_t reply_bytes)
{
	struct done *rest = NULL, **rest_tail = &rest;
	size_t sent = 0;
	while (d != NULL) {
		struct done *next = d->next;
		if (d->kind == DONE_REPLY && sent >= reply_bytes) {
			d->next = NULL;
			*rest_tail = d;
			rest_tail = &d->next;
			d = next;
			continue;
		}
		switch (d->kind) {
		case DONE_LOG:
			log_printf(&chat->hooks, (enum chat_log_level)d->level, "%s", d->text);
			break;
		case DONE_COMMITTED:
			for (int i = 0; i < 3; i++) {
				struct id_counter *c = counter_at(chat, i);
				if ((uint64_t)d->num[i] > c->reserved) {
					c->reserved = (uint64_t)d->num[i];
				}
			}
			break;
		case DONE_REPLY:
			sent += deliver_reply(chat, d, now_ms);
			break;
		case DONE_UNSAVED:
			for (const struct row *r = d->rows; r != NULL; r = r->next) {
				state_note_unsaved(chat, r->s[0]);
			}
			chat->store->reserve_again = chat->store->reserve_again || d->num[0] != 0;
			break;
		case DONE_LOADED:
			break;
		}
		done_free(d);
		d = next;
	}
	return rest;
}

static struct done *take_done(struct store *store)
{
	pthread_mutex_lock(&store->lock);
	struct done *d = store->done;
	store->done = NULL;
	store->done_tail = &store->done;
	pthread_mutex_unlock(&store->lock);
	return d;
}

static void wait_for(struct chat *chat, enum done_kind kind)
{
	struct store *store = chat->store;
	for (;;) {
		pthread_mutex_lock(&store->lock);
		while (store->done == NULL) {
			pthread_cond_wait(&store->done_ready, &store->lock);
		}
		struct done *d = store->done;
		store->done = NULL;
		store->done_tail = &store->done;
		pthread_mutex_unlock(&store->lock);
		bool found = false;
		for (struct done *p = d; p != NULL; p = p->next) {
			found = found || p->kind == kind;
		}
		(void)take_completions(chat, d, 0, SIZE_MAX);
		if (found) {
			return;
		}
	}
}

/* Counters without a store: the wall clock in microseconds, so ids grow across restarts. */
static void seed_from_clock(struct chat *chat)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	for (int i = 0; i < 3; i++) {
		struct id_counter *c = counter_at(chat, i);
		if (c->next < us) {
			c->next = us;
		}
		c->reserved = UINT64_MAX;
	}
}

/* The "rooms" of the session `clientid` in a snapshot, from the rows of session_rooms. */
static bool snapshot_rooms(cJSON *item, const char *clientid, const struct row *rooms)
{
	cJSON *list = NULL;
	for (const struct row *r = rooms; r != NULL; r = r->next) {
		if (clientid == NULL || r->s[0] == NULL || strcmp(r->s[0], clientid) != 0) {
			continue;
		}
		if (list == NULL && (list = cJSON_AddArrayToObject(item, "rooms")) == NULL) {
			return false;
		}
		cJSON *room = cJSON_CreateObject();
		if (room == NULL || !cJSON_AddItemToArray(list, room) ||
			cJSON_AddStringToObject(room, "filter", r->s[1] ? r->s[1] : "") == NULL ||
			cJSON_AddNumberToObject(room, "qos", (double)r->num[0]) == NULL) {
			return false;
		}
	}
	return true;
}

/* Builds the snapshot document persist_parse reads from the rows the worker read. */
static cJSON *snapshot_of(const struct loaded *ld)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *users = cJSON_AddArrayToObject(doc, "users");
	cJSON *groups = cJSON_AddArrayToObject(doc, "groups");
	if (doc == NULL || users == NULL || groups == NULL ||
		cJSON_AddNumberToObject(doc, "version", 3) == NULL ||
		cJSON_AddBoolToObject(doc, "clean_shutdown", ld->clean) == NULL) {
		goto error;
	}
	char key[32];
	for (int i = 0; i < 3; i++) {
		snprintf(key, sizeof key, "next_%s", counter_names[i]);
		if (cJSON_AddNumberToObject(doc, key, (double)ld->next[i]) == NULL) {
			goto error;
		}
		snprintf(key, sizeof key, "reserved_%s", counter_names[i]);
		if (cJSON_AddNumberToObject(doc, key, (double)ld->reserved[i]) == NULL) {
			goto error;
		}
	}
	for (const struct row *u = ld->users; u != NULL; u = u->next) {
		cJSON *entry = cJSON_CreateObject();
		cJSON *sessions = NULL;
		if (entry == NULL || !cJSON_AddItemToArray(users, entry) ||
			cJSON_AddStringToObject(entry, "id", u->s[0] ? u->s[0] : "") == NULL ||
			cJSON_AddStringToObject(entry, "username", u->s[1] ? u->s[1] : "") ==
				NULL ||
			(sessions = cJSON_AddArrayToObject(entry, "sessions")) == NULL) {
			cJSON_Delete(entry);
			goto error;
		}
		if (u->has_hash || u->s[2] != NULL) {
			char hex[TOKENS_HASH_HEX_LEN + 1] = "x";
			if (u->has_hash) {
				tokens_hash_to_hex(u->hash, hex);
			}
			if (cJSON_AddStringToObject(entry, "token_hash", hex) == NULL) {
				goto error;
			}
		}
		for (const struct row *s = ld->sessions; s != NULL; s = s->next) {
			if (s->s[1] == NULL || u->s[0] == NULL || strcmp(s->s[1], u->s[0]) != 0) {
				continue;
			}
			cJSON *item = cJSON_CreateObject();
			if (item == NULL || !cJSON_AddItemToArray(sessions, item) ||
				cJSON_AddStringToObject(item, "clientid", s->s[0] ? s->s[0] : "") ==
					NULL ||
				cJSON_AddBoolToObject(item, "persistent", s->num[0] != 0) == NULL ||
				cJSON_AddNumberToObject(item, "qos", (double)s->num[1]) == NULL ||
				!snapshot_rooms(item, s->s[0], ld->rooms)) {
				cJSON_Delete(item);
				goto error;
			}
		}
	}
	for (const struct row *g = ld->groups; g != NULL; g = g->next) {
		cJSON *entry = cJSON_CreateObject();
		cJSON *members = NULL, *since = NULL;
		if (entry == NULL || !cJSON_AddItemToArray(groups, entry) ||
			cJSON_AddStringToObject(entry, "id", g->s[0] ? g->s[0] : "") == NULL ||
			(members = cJSON_AddArrayToObject(entry, "member")) == NULL ||
			(since = cJSON_AddArrayToObject(entry, "since")) == NULL) {
			cJSON_Delete(entry);
			goto error;
		}
		for (const struct row *m = ld->members; m != NULL; m = m->next) {
			if (m->s[0] == NULL || g->s[0] == NULL || strcmp(m->s[0], g->s[0]) != 0) {
				continue;
			}
			cJSON *uid = cJSON_CreateString(m->s[1] ? m->s[1] : "");
			cJSON *n = cJSON_CreateNumber((double)m->num[0]);
			if (uid == NULL || n == NULL) {
				cJSON_Delete(uid);
				cJSON_Delete(n);
				goto error;
			}
			cJSON_AddItemToArray(members, uid);
			cJSON_AddItemToArray(since, n);
			cJSON *added = cJSON_GetObjectItemCaseSensitive(entry, "added");
			if (m->num[1] != 0 &&
				((added == NULL &&
					 (added = cJSON_AddArrayToObject(entry, "added")) ==
						 NULL) ||
					!cJSON_AddItemToArray(added,
						cJSON_CreateString(m->s[1] ? m->s[1] : "")))) {
				goto error;
			}
		}
	}
	return doc;
error:
	cJSON_Delete(doc);
	return NULL;
}

/* The restored users remember the cids of their messages of the last minutes (§4.4). */
static void remember_cids(struct chat *chat, const struct row *rows, int64_t now_ms)
{
	int64_t wall = chat->hooks.wall_ms(chat->hooks.ctx);
	for (const struct row *r = rows; r != NULL; r = r->next) {
		struct chat_user *user = r->s[0] != NULL ? state_user_find(chat, r->s[0]) : NULL;
		if (user == NULL || r->s[1] == NULL || r->s[2] == NULL || r->num[0] <= 0 ||
			strlen(r->s[1]) > STATE_CID_MAX || strlen(r->s[2]) >= CHAT_ID_BUF) {
			continue; /* its sender is gone, or the row is not one the chat wrote */
		}
		char id[CHAT_ID_BUF];
		ids_format_message((uint64_t)r->num[0], id);
		(void)state_cid_add(user, r->s[1], id, r->num[1], r->s[2],
			now_ms - (wall - r->num[1]));
	}
}

/* Asks the worker to (re)load and waits for it. */
static void load_now(struct chat *chat, bool reset)
{
	struct op *op = op_new(OP_LOAD, NULL, NULL);
	if (op == NULL) {
		return;
	}
	op->num[0] = reset;
	enqueue(chat->store, chat->hooks.wall_ms(chat->hooks.ctx), op, 0, 0);
	wait_for(chat, DONE_LOADED);
}

/* Restores the chat from what the worker read; false when the records are inconsistent. */
static bool restore(struct chat *chat, int64_t now_ms, char *err, size_t err_len)
{
	const struct loaded *ld = &chat->store->loaded;
	if (ld->fresh) {
		return true;
	}
	cJSON *doc = snapshot_of(ld);
	char *text = doc != NULL ? cJSON_PrintUnformatted(doc) : NULL;
	cJSON_Delete(doc);
	if (text == NULL) {
		snprintf(err, err_len, "out of memory");
		return false;
	}
	enum chat_err rc = persist_parse(chat, text, strlen(text), now_ms, err, err_len);
	cJSON_free(text);
	return rc == CHAT_OK;
}

enum chat_err store_start(struct chat *chat, int64_t now_ms)
{
	if (chat->config.database[0] == '\0') {
		seed_from_clock(chat);
		return CHAT_OK;
	}
	struct store *store = calloc(1, sizeof *store);
	if (store == NULL) {
		return CHAT_ERR_INTERNAL;
	}
	store->work_tail = &store->work;
	store->done_tail = &store->done;
	store->pending_tail = &store->pending;
	store->retry_tail = &store->retry;
	snprintf(store->path, sizeof store->path, "%s", chat->config.database);
	store->per_room = chat->config.history_per_room;
	store->days = chat->config.history_days;
	pthread_mutex_init(&store->lock, NULL);
	pthread_cond_init(&store->work_ready, NULL);
	pthread_cond_init(&store->done_ready, NULL);
	if (pthread_create(&store->thread, NULL, worker, store) != 0) {
		pthread_mutex_destroy(&store->lock);
		pthread_cond_destroy(&store->work_ready);
		pthread_cond_destroy(&store->done_ready);
		free(store);
		return CHAT_ERR_INTERNAL;
	}
	chat->store = store;

	load_now(chat, false);
	char err[160] = "";
	if (store->loaded.ok && !restore(chat, now_ms, err, sizeof err)) {
		log_printf(&chat->hooks, CHAT_LOG_ERR, "chat: the database %s: %s", store->path,
			err);
		load_now(chat, true);
	}
	const struct loaded *ld = &store->loaded;
	if (!ld->ok) {
		store->failing = true;
		seed_from_clock(chat);
	} else if (ld->reset) {
		seed_from_clock(chat); /* ids of the database moved aside must not come back */
	}
	if (ld->ok && !ld->fresh) {
		remember_cids(chat, ld->cids, now_ms);
	}
	if (ld->ok && ld->fresh && chat->config.state_file[0] != '\0') {
		persist_import(chat, now_ms);
	}
	if (ld->ok) {
		struct chat_stats stats;
		state_stats(chat, &stats);
		log_printf(&chat->hooks, CHAT_LOG_INFO,
			"chat: restored %zu users and %zu groups from the database %s", stats.users,
			stats.groups, store->path);
		/* The first batch reserves ids and records that this run has not shut down yet. */
		hand_over(chat, true, false);
		wait_for(chat, DONE_COMMITTED);
	}
	pthread_mutex_lock(&store->lock);
	loaded_clear(&store->loaded);
	pthread_mutex_unlock(&store->lock);
	if (!store_available(chat)) {
		seed_from_clock(chat);
	}
	store->next_batch_at = now_ms + STORE_BATCH_MS;
	return CHAT_OK;
}

bool store_available(const struct chat *chat)
{
	struct store *store = chat->store;
	if (store == NULL || store->stopped) {
		return false;
	}
	pthread_mutex_lock(&store->lock);
	bool ok = !store->failing;
	pthread_mutex_unlock(&store->lock);
	return ok;
}

bool store_id_ready(const struct chat *chat, const struct id_counter *counter)
{
	return !ids_reserve_exhausted(counter) || chat->store == NULL;
}

void store_tick(struct chat *chat, int64_t now_ms)
{
	struct store *store = chat->store;
	if (store == NULL || store->stopped) {
		return;
	}
	struct done *rest =
		take_completions(chat, take_done(store), now_ms, STORE_REPLY_BYTES_PER_TICK);
	if (rest != NULL) {
		/* Answers past this tick's share go first in the next one. */
		struct done *last = rest;
		while (last->next != NULL) {
			last = last->next;
		}
		pthread_mutex_lock(&store->lock);
		last->next = store->done;
		if (store->done == NULL) {
			store->done_tail = &last->next;
		}
		store->done = rest;
		pthread_mutex_unlock(&store->lock);
	}
	if (now_ms < store->next_batch_at) {
		return;
	}
	store->next_batch_at = now_ms + STORE_BATCH_MS;
	hand_over(chat, false, false);
	pthread_mutex_lock(&store->lock);
	bool drained = store->queued_messages < STORE_QUEUE_MESSAGES / 2;
	pthread_mutex_unlock(&store->lock);
	if (store->overloaded && drained) {
		store->overloaded = false;
	}
}

void store_stop(struct chat *chat)
{
	struct store *store = chat->store;
	if (store == NULL || store->stopped) {
		return;
	}
	hand_over(chat, false, true);
	pthread_mutex_lock(&store->lock);
	store->stopping = true;
	pthread_cond_signal(&store->work_ready);
	pthread_mutex_unlock(&store->lock);
	pthread_join(store->thread, NULL);
	store->stopped = true;
	(void)take_completions(chat, take_done(store), 0, SIZE_MAX); /* no answers at a stop */
	ops_free(store->pending);
	ops_free(store->work);
	pthread_mutex_destroy(&store->lock);
	pthread_cond_destroy(&store->work_ready);
	pthread_cond_destroy(&store->done_ready);
	free(store);
	chat->store = NULL;
}

void store_message(struct chat *chat, uint64_t id, const char *room_key, const char *a,
	const char *b, int64_t ts, const char *text, size_t len)
{
	struct store *store = chat->store;
	if (store == NULL || store->stopped) {
		return;
	}
	pthread_mutex_lock(&store->lock);
	bool full = store->queued_messages + store->pending_messages >= STORE_QUEUE_MESSAGES;
	pthread_mutex_unlock(&store->lock);
	struct op *op = full ? NULL : op_new(OP_MESSAGE, room_key, a);
	if (op != NULL) {
		op->s[2] = dup_or_null(b);
		op->text = malloc(len + 1);
	}
	if (op == NULL || op->text == NULL || (b != NULL && op->s[2] == NULL)) {
		if (op != NULL) {
			op_free(op);
		}
		if (!store->overloaded) {
			store->overloaded = true;
			log_printf(&chat->hooks, CHAT_LOG_WARNING,
				"chat: the database %s is behind; messages are delivered but not kept "
				"in history until it catches up",
				store->path);
		}
		return;
	}
	memcpy(op->text, text, len);
	op->text[len] = '\0';
	op->text_len = len;
	op->num[0] = (int64_t)id;
	op->num[1] = ts;
	*store->pending_tail = op;
	store->pending_tail = &op->next;
	store->pending_messages++;
}

enum chat_err store_query(struct chat *chat, struct chat_session *session,
	const struct store_query *query)
{
	struct store *store = chat->store;
	if (!store_available(chat)) {
		return CHAT_ERR_HISTORY_UNAVAILABLE;
	}
	if (session->history_waiting >= STORE_QUERIES_PER_SESSION) {
		return CHAT_ERR_RATE_LIMITED;
	}
	pthread_mutex_lock(&store->lock);
	bool full = store->queued_queries >= STORE_QUEUE_QUERIES;
	pthread_mutex_unlock(&store->lock);
	if (full) {
		return CHAT_ERR_HISTORY_UNAVAILABLE;
	}
	struct chat_user *user = session->user;
	struct op *op = op_new(OP_QUERY, NULL, NULL);
	struct query *q = op != NULL ? calloc(1, sizeof *q) : NULL;
	if (q == NULL) {
		free(op);
		return CHAT_ERR_INTERNAL;
	}
	op->query = q;
	q->clientid = strdup(session->clientid);
	q->userid = strdup(user->id);
	q->room = dup_or_null(query->room);
	q->room_key = dup_or_null(query->room_key);
	q->qid = dup_or_null(query->qid);
	q->since = query->since;
	q->before = query->before;
	q->after = query->after;
	q->limit = query->limit;
	q->gone_peer = query->gone_peer;
	q->min_ts = chat->config.history_days > 0
		? chat->hooks.wall_ms(chat->hooks.ctx) - chat->config.history_days * 86400000
		: INT64_MIN;
	bool ok = q->clientid != NULL && q->userid != NULL &&
		(query->room == NULL || q->room != NULL) &&
		(query->room_key == NULL || q->room_key != NULL) &&
		(query->qid == NULL || q->qid != NULL);
	if (ok && query->room_key == NULL) {
		size_t n = HASH_CNT(hh_user, user->groups);
		q->group_keys = calloc(n + 1, sizeof *q->group_keys);
		q->group_since = calloc(n + 1, sizeof *q->group_since);
		ok = q->group_keys != NULL && q->group_since != NULL;
		const struct chat_member *m;
		for (m = user->groups; ok && m != NULL; m = m->hh_user.next) {
			q->group_keys[q->n_groups] = strdup(m->group->id);
			q->group_since[q->n_groups] =
				chat->config.history_visibility_shared ? 0 : m->since;
			ok = q->group_keys[q->n_groups++] != NULL;
		}
	}
	if (!ok) {
		op_free(op);
		return CHAT_ERR_INTERNAL;
	}
	session->history_waiting++;
	/* What was sent before the query is handed over first, so the answer includes it. */
	hand_over(chat, false, false);
	enqueue(store, chat->hooks.wall_ms(chat->hooks.ctx), op, 0, 1);
	return CHAT_OK;
}
