#define _GNU_SOURCE /* strdup */
#include "store_db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

/* The schema; user_version says which one a database file has. */
#define SCHEMA_VERSION 1
/* History queries the worker answers between two commits. */
#define QUERIES_PER_PASS 32
/* Pruning by age looks at this many of the oldest messages each time. */
#define PRUNE_ROWS 20000
/* Pruning by age runs this often (ms). */
#define PRUNE_INTERVAL_MS 60000

const char *const store_db_counter_names[3] = { "user", "group", "message" };

char *store_db_dup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

void store_db_rows_free(struct store_row *row)
{
	while (row != NULL) {
		struct store_row *next = row->next;
		for (int i = 0; i < 3; i++) {
			free(row->s[i]);
		}
		free(row);
		row = next;
	}
}

void store_db_query_free(struct store_db_query *q)
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

void store_db_op_free(struct store_op *op)
{
	for (int i = 0; i < 3; i++) {
		free(op->s[i]);
	}
	free(op->text);
	store_db_query_free(op->query);
	free(op);
}

void store_db_done_free(struct store_done *d)
{
	free(d->clientid);
	free(d->userid);
	free(d->room);
	free(d->qid);
	free(d->text);
	store_db_rows_free(d->rows);
	free(d);
}

void store_db_ops_free(struct store_op *op)
{
	while (op != NULL) {
		struct store_op *next = op->next;
		store_db_op_free(op);
		op = next;
	}
}

void store_db_loaded_clear(struct store_loaded *ld)
{
	store_db_rows_free(ld->users);
	store_db_rows_free(ld->sessions);
	store_db_rows_free(ld->rooms);
	store_db_rows_free(ld->cids);
	store_db_rows_free(ld->groups);
	store_db_rows_free(ld->members);
	*ld = (struct store_loaded){ 0 };
}

/* ===================================================================================== */
/* The worker thread                                                                     */
/* ===================================================================================== */

/* Posts a completion; the worker calls it with the lock not held. */
static void post(struct store *store, struct store_done *d)
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
	struct store_done *d = calloc(1, sizeof *d);
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
	struct store_row **out)
{
	sqlite3_stmt *st = NULL;
	struct store_row **tail = out;
	if (sqlite3_prepare_v2(store->db, sql, -1, &st, NULL) != SQLITE_OK) {
		return false;
	}
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_row *row = calloc(1, sizeof *row);
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

/*
 * The cids of the messages accepted in the last STATE_CID_MS (by the chat's clock at the load),
 * so that a resend across a restart is still recognised (docs/protocol.md §4.4).
 */
static bool read_recent_cids(struct store *store, struct store_loaded *ld)
{
	pthread_mutex_lock(&store->lock);
	int64_t since = store->wall_ms - store->cid_ms;
	pthread_mutex_unlock(&store->lock);
	char sql[320];
	snprintf(sql, sizeof sql,
		"SELECT json_extract(body, '$.sender'), json_extract(body, '$.cid'), "
		"json_extract(body, '$.receiver'), id, ts FROM messages WHERE ts >= %lld AND "
		"json_extract(body, '$.cid') IS NOT NULL ORDER BY id",
		(long long)since);
	return read_rows(store, sql, 3, 2, false, &ld->cids);
}

static bool read_state(struct store *store, struct store_loaded *ld)
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
			snprintf(name, sizeof name, "next_%s", store_db_counter_names[i]);
			if (key != NULL && strcmp(key, name) == 0) {
				ld->next[i] = value;
				found++;
			}
			snprintf(name, sizeof name, "reserved_%s", store_db_counter_names[i]);
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
	struct store_row *over = NULL;
	sqlite3_stmt *cut = NULL;
	if (read_rows(store, sql, 1, 1, false, &over) && over != NULL &&
		exec(store, "BEGIN IMMEDIATE")) {
		if (sqlite3_prepare_v2(store->db,
			    "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE "
			    "room = ?1 ORDER BY id LIMIT ?2)",
			    -1, &cut, NULL) == SQLITE_OK) {
			for (const struct store_row *r = over; r != NULL; r = r->next) {
				int64_t excess = r->num[0] - store->per_room;
				(void)run(cut, r->s[0], NULL, &excess, 1, 2);
			}
		}
		sqlite3_finalize(cut);
		if (!exec(store, "COMMIT")) {
			(void)exec(store, "ROLLBACK");
		}
	}
	store_db_rows_free(over);
}

/* Opens the database and reads it. */
static enum db_state open_and_read(struct store *store, struct store_loaded *ld, const char **why)
{
	enum db_state state = open_db(store, why);
	if (state == DB_OK && !read_state(store, ld)) {
		state = classify(store, why);
		close_db(store);
	}
	if (state != DB_OK) {
		store_db_loaded_clear(ld);
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
	struct store_loaded *ld = &store->loaded;
	store_db_loaded_clear(ld);
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

static bool apply_message(struct store *store, sqlite3_stmt **st, const struct store_op *op)
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

static bool apply_counters(sqlite3_stmt **st, const struct store_op *op)
{
	char key[32];
	for (int i = 0; i < 3; i++) {
		snprintf(key, sizeof key, "next_%s", store_db_counter_names[i]);
		if (!run(st[ST_META_PUT], key, NULL, &op->num[i], 1, 2)) {
			return false;
		}
		snprintf(key, sizeof key, "reserved_%s", store_db_counter_names[i]);
		if (!run(st[ST_META_PUT], key, NULL, &op->num[3 + i], 1, 2)) {
			return false;
		}
	}
	return run(st[ST_META_PUT], "clean_shutdown", NULL, &op->num[6], 1, 2);
}

static bool apply(struct store *store, sqlite3_stmt **st, const struct store_op *op)
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
static bool commit_batch(struct store *store, struct store_op *ops)
{
	bool any = false;
	const struct store_op *counters = NULL;
	for (const struct store_op *op = ops; op != NULL; op = op->next) {
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
	const struct store_op *op;
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
		struct store_done *d = calloc(1, sizeof *d);
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
static void keep_failed(struct store *store, struct store_op **ops)
{
	struct store_done *d = calloc(1, sizeof *d);
	struct store_row **rows = d != NULL ? &d->rows : NULL;
	struct store_op **p = ops;
	while (*p != NULL) {
		struct store_op *op = *p;
		if (op->kind == OP_MESSAGE) {
			*p = op->next; /* moved to the retry list, in order */
			op->next = NULL;
			*store->retry_tail = op;
			store->retry_tail = &op->next;
			continue;
		}
		if (d != NULL && store_op_is_record(op)) {
			struct store_row *row = calloc(1, sizeof *row);
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
	/*
	 * Messages are stored in id order, which is their ts order but for a clock set back: the
	 * oldest PRUNE_ROWS ids are looked at, so a minute's pruning costs a bounded index walk,
	 * not a scan of the table; every query also filters by age (a message a clock set back
	 * left behind is never shown, only kept a little longer).
	 */
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(store->db,
		    "DELETE FROM messages WHERE id IN (SELECT id FROM (SELECT id, ts FROM messages "
		    "ORDER BY id LIMIT ?2) WHERE ts < ?1)",
		    -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, now - store->days * 86400000);
		sqlite3_bind_int64(st, 2, PRUNE_ROWS);
		if (sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(store->db) == PRUNE_ROWS) {
			store->next_prune_at = now + 1000; /* more to prune: again in a second */
		}
	}
	sqlite3_finalize(st);
}

/* Appends message texts of `st`'s rows (column 0) to *tail; returns how many. */
static int collect(sqlite3_stmt *st, struct store_row ***tail, bool *err)
{
	int n = 0, rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_row *row = calloc(1, sizeof *row);
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
static struct store_row *reverse(struct store_row *row)
{
	struct store_row *out = NULL;
	while (row != NULL) {
		struct store_row *next = row->next;
		row->next = out;
		out = row;
		row = next;
	}
	return out;
}

/* Fills the requester's rooms into the temporary table q (room, since). */
static bool fill_rooms(struct store *store, const struct store_db_query *q)
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
static bool has_conversation(struct store *store, const struct store_db_query *q)
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
	const struct store_row *x = *(const struct store_row *const *)a,
			       *y = *(const struct store_row *const *)b;
	return x->num[0] < y->num[0] ? -1 : x->num[0] > y->num[0];
}

/*
 * Catch-up: the oldest `limit` visible messages after the cursor over every room of the
 * requester (the temporary table q). Each room gives at most `limit` of its own through its
 * index, and those are merged by id, so the cost follows the requester's rooms and the page,
 * never the size of the whole table. Returns how many rows *out holds.
 */
static int catch_up(struct store *store, const struct store_db_query *q, int64_t limit,
	struct store_row **out, bool *err)
{
	struct store_row *rooms = NULL, *found = NULL, **tail = &found;
	sqlite3_stmt *st = NULL;
	int n = 0;
	*err = !read_rows(store, "SELECT room, since FROM q", 1, 1, false, &rooms) ||
		sqlite3_prepare_v2(store->db,
			"SELECT body, id FROM messages WHERE room = ?1 AND id > ?2 AND id >= ?3 AND "
			"ts >= ?4 ORDER BY id LIMIT ?5",
			-1, &st, NULL) != SQLITE_OK;
	for (const struct store_row *r = rooms; !*err && r != NULL; r = r->next) {
		int64_t nums[4] = { (int64_t)q->after, r->num[0], q->min_ts, limit };
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, r->s[0], -1, SQLITE_STATIC);
		for (int i = 0; i < 4; i++) {
			sqlite3_bind_int64(st, 2 + i, nums[i]);
		}
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			struct store_row *row = calloc(1, sizeof *row);
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
	store_db_rows_free(rooms);
	struct store_row **all = *err || n == 0 ? NULL : calloc((size_t)n, sizeof *all);
	if (all == NULL) {
		store_db_rows_free(found);
		*err = *err || n > 0;
		return 0;
	}
	int i = 0;
	for (struct store_row *r = found; r != NULL; r = r->next) {
		all[i++] = r;
	}
	qsort(all, (size_t)n, sizeof *all, row_by_id);
	int keep = n < limit ? n : (int)limit;
	for (i = 0; i < n; i++) {
		all[i]->next = i + 1 < keep ? all[i + 1] : NULL;
		if (i >= keep) {
			all[i]->next = NULL;
			store_db_rows_free(all[i]);
		}
	}
	*out = all[0];
	free(all);
	return n < limit ? n : (int)limit;
}

/* Runs a history query; the reply carries the message texts, oldest first. */
static void answer(struct store *store, struct store_db_query *q)
{
	struct store_done *d = calloc(1, sizeof *d);
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
	struct store_row **tail = &d->rows;
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
		struct store_row **p = &d->rows;
		while ((*p)->next != NULL) {
			p = &(*p)->next;
		}
		store_db_rows_free(*p);
		*p = NULL;
	}
	d->complete = n <= q->limit;
	if (newest_first) {
		d->rows = reverse(d->rows);
	}
	if (err) {
		store_db_rows_free(d->rows);
		d->rows = NULL;
		d->err = CHAT_ERR_HISTORY_UNAVAILABLE;
		d->text = strdup(store->db == NULL ? "the chat has no usable database"
				: failing          ? "the chat's database is failing; try later"
						   : "the database could not answer");
	}
	post(store, d);
}

void *store_db_worker(void *arg)
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
		struct store_op *ops = store->work;
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
		for (const struct store_op *op = ops; op != NULL; op = op->next) {
			if (op->kind == OP_LOAD) {
				reload = true;
				reset = reset || op->num[0] != 0;
			}
		}
		if (reload) {
			load(store, reset);
			struct store_done *d = calloc(1, sizeof *d);
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
				for (struct store_op *m = store->retry; m != NULL; m = m->next) {
					lost++;
				}
				if (lost > 0) {
					post_log(store, CHAT_LOG_ERR,
						"chat: %zu messages could not be written to the database "
						"before the stop",
						lost);
				}
				while (store->retry != NULL) {
					struct store_op *m = store->retry;
					store->retry = m->next;
					store_db_op_free(m);
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
		struct store_op *deferred = NULL, **deferred_tail = &deferred;
		struct store_op *op = ops;
		while (op != NULL) {
			struct store_op *next = op->next;
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
			store_db_op_free(op);
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
