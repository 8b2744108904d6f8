/*
 * The store, the broker thread's side: batches of changed records and accepted messages handed
 * to the worker (store_db.h) on TICK, history queries, and what the worker finished, published
 * here. store.h says how the two threads meet.
 */
#define _GNU_SOURCE /* strdup */
#include "store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "budget.h"
#include "codec.h"
#include "log.h"
#include "outbox.h"
#include "persist.h"
#include "store_db.h"
#include "tokens.h"

void store_direct_key(const char *a, const char *b, char out[STORE_ROOM_KEY_MAX])
{
	/* The smaller id first, by number: ids have no leading zeros. */
	size_t la = strlen(a), lb = strlen(b);
	bool a_first = la < lb || (la == lb && strcmp(a, b) <= 0);
	snprintf(out, STORE_ROOM_KEY_MAX, "d:%s:%s", a_first ? a : b, a_first ? b : a);
}

static struct id_counter *counter_at(struct chat *chat, int i)
{
	return i == 0 ? &chat->ids.user : i == 1 ? &chat->ids.group : &chat->ids.message;
}

static const uint64_t counter_blocks[3] = { STORE_ID_BLOCK, STORE_ID_BLOCK, STORE_MESSAGE_BLOCK };

/* Hands `ops` to the worker (the lock not held). */
static void enqueue(struct store *store, int64_t wall, struct store_op *ops, size_t messages,
	size_t queries)
{
	if (ops == NULL) {
		return;
	}
	struct store_op *last = ops;
	while (last->next != NULL) {
		last = last->next;
	}
	pthread_mutex_lock(&store->lock);
	store->wall_ms = wall;
	*store->work_tail = ops;
	store->work_tail = &last->next;
	store->queued_messages += messages;
	store->queued_queries += queries;
	store->queued_seen = store->queued_messages;
	pthread_cond_signal(&store->work_ready);
	pthread_mutex_unlock(&store->lock);
}

static struct store_op *op_new(enum op_kind kind, const char *s0, const char *s1)
{
	struct store_op *op = calloc(1, sizeof *op);
	if (op == NULL) {
		return NULL;
	}
	op->kind = kind;
	op->s[0] = store_db_dup(s0);
	op->s[1] = store_db_dup(s1);
	if ((s0 != NULL && op->s[0] == NULL) || (s1 != NULL && op->s[1] == NULL)) {
		store_db_op_free(op);
		return NULL;
	}
	return op;
}

/* Appends to a list being built; false (and the list freed by the caller) on no memory. */
static bool push(struct store_op ***tail, struct store_op *op)
{
	if (op == NULL) {
		return false;
	}
	**tail = op;
	*tail = &op->next;
	return true;
}

struct room_ops {
	const struct chat_session *session;
	struct store_op ***tail;
	bool ok;
};

static void room_op(void *ctx, const char *filter, int qos)
{
	struct room_ops *r = ctx;
	struct store_op *op = r->ok ? op_new(OP_ROOM_PUT, r->session->clientid, filter) : NULL;
	if (op != NULL) {
		op->num[0] = qos;
	}
	r->ok = r->ok && push(r->tail, op);
}

/*
 * The room subscriptions of a persistent session: the broker keeps its subscriptions across a
 * restart (with persistence), so the chat keeps what it knows of them (docs/protocol.md §3.5).
 */
static bool room_ops(const struct chat_session *session, struct store_op ***tail)
{
	struct room_ops r = { .session = session, .tail = tail, .ok = true };
	state_session_rooms_each(session, room_op, &r);
	return r.ok;
}

/* The ops that write one changed user or group as it is now (or delete it). */
static bool record_ops(struct chat *chat, const char *id, struct store_op ***tail)
{
	if (ids_is_user(id)) {
		struct chat_user *user = state_user_find(chat, id);
		if (user == NULL) {
			return push(tail, op_new(OP_USER_DEL, id, NULL));
		}
		struct store_op *op = op_new(OP_USER_PUT, id, user->username);
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
		struct store_op *op = op_new(OP_MEMBER_PUT, id, m->user->id);
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
static struct store_op *counters_op(struct chat *chat, bool force, bool clean)
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
	struct store_op *op = op_new(OP_COUNTERS, NULL, NULL);
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
	struct store_op *ops = NULL, **tail = &ops;
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
		struct store_op **from = tail;
		if (!(ok = record_ops(chat, c->id, &tail))) {
			break;
		}
		for (const struct store_op *op = *from; op != NULL; op = op->next) {
			count++;
		}
		state_unsaved_forget(chat, c);
	}
	struct store_op *counters =
		ok ? counters_op(chat, force_counters || store->reserve_again, clean) : NULL;
	store->reserve_again = store->reserve_again && counters == NULL;
	if (counters != NULL) {
		*tail = counters;
		tail = &counters->next;
	}
	if (!ok) {
		/* Out of memory: what was taken is written with the next batch. */
		for (const struct store_op *op = ops; op != NULL; op = op->next) {
			if (store_op_is_record(op)) {
				state_note_unsaved(chat, op->s[0]);
			}
		}
		store_db_ops_free(ops);
		return;
	}
	*tail = store->pending;
	size_t messages = store->pending_messages;
	store->pending = NULL;
	store->pending_tail = &store->pending;
	store->pending_messages = 0;
	enqueue(store, chat->hooks.wall_ms(chat->hooks.ctx), ops, messages, 0);
}

/*
 * Waits (start-up only) until the worker posts a completion of `kind` or of `or_kind`, taking in
 * everything it posted meanwhile.
 */
static void wait_for(struct chat *chat, enum done_kind kind, enum done_kind or_kind);

/* The reply document of a finished query. */
static cJSON *history_doc(const struct store_done *d)
{
	size_t n = 0;
	for (const struct store_row *row = d->rows; row != NULL; row = row->next) {
		n++;
	}
	const char **texts = calloc(n + 1, sizeof *texts);
	if (texts == NULL) {
		return NULL;
	}
	n = 0;
	for (const struct store_row *row = d->rows; row != NULL; row = row->next) {
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
static size_t deliver_reply(struct chat *chat, struct store_done *d, int64_t now_ms)
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
static struct store_done *take_completions(struct chat *chat, struct store_done *d, int64_t now_ms,
	size_t reply_bytes)
{
	struct store_done *rest = NULL, **rest_tail = &rest;
	size_t sent = 0;
	while (d != NULL) {
		struct store_done *next = d->next;
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
			for (const struct store_row *r = d->rows; r != NULL; r = r->next) {
				state_note_unsaved(chat, r->s[0]);
			}
			chat->store->reserve_again = chat->store->reserve_again || d->num[0] != 0;
			break;
		case DONE_LOADED:
			break;
		}
		store_db_done_free(d);
		d = next;
	}
	return rest;
}

/* Takes what the worker finished, and reads how long its queue of messages is now (each tick). */
static struct store_done *take_done(struct store *store)
{
	pthread_mutex_lock(&store->lock);
	struct store_done *d = store->done;
	store->done = NULL;
	store->done_tail = &store->done;
	store->queued_seen = store->queued_messages;
	pthread_mutex_unlock(&store->lock);
	return d;
}

static void wait_for(struct chat *chat, enum done_kind kind, enum done_kind or_kind)
{
	struct store *store = chat->store;
	for (;;) {
		pthread_mutex_lock(&store->lock);
		while (store->done == NULL) {
			pthread_cond_wait(&store->done_ready, &store->lock);
		}
		struct store_done *d = store->done;
		store->done = NULL;
		store->done_tail = &store->done;
		pthread_mutex_unlock(&store->lock);
		bool found = false;
		for (struct store_done *p = d; p != NULL; p = p->next) {
			found = found || p->kind == kind || p->kind == or_kind;
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
static bool snapshot_rooms(cJSON *item, const char *clientid, const struct store_row *rooms)
{
	cJSON *list = NULL;
	for (const struct store_row *r = rooms; r != NULL; r = r->next) {
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
static cJSON *snapshot_of(const struct store_loaded *ld)
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
		snprintf(key, sizeof key, "next_%s", store_db_counter_names[i]);
		if (cJSON_AddNumberToObject(doc, key, (double)ld->next[i]) == NULL) {
			goto error;
		}
		snprintf(key, sizeof key, "reserved_%s", store_db_counter_names[i]);
		if (cJSON_AddNumberToObject(doc, key, (double)ld->reserved[i]) == NULL) {
			goto error;
		}
	}
	for (const struct store_row *u = ld->users; u != NULL; u = u->next) {
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
		for (const struct store_row *s = ld->sessions; s != NULL; s = s->next) {
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
	for (const struct store_row *g = ld->groups; g != NULL; g = g->next) {
		cJSON *entry = cJSON_CreateObject();
		cJSON *members = NULL, *since = NULL;
		if (entry == NULL || !cJSON_AddItemToArray(groups, entry) ||
			cJSON_AddStringToObject(entry, "id", g->s[0] ? g->s[0] : "") == NULL ||
			(members = cJSON_AddArrayToObject(entry, "member")) == NULL ||
			(since = cJSON_AddArrayToObject(entry, "since")) == NULL) {
			cJSON_Delete(entry);
			goto error;
		}
		for (const struct store_row *m = ld->members; m != NULL; m = m->next) {
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
static void remember_cids(struct chat *chat, const struct store_row *rows, int64_t now_ms)
{
	int64_t wall = chat->hooks.wall_ms(chat->hooks.ctx);
	for (const struct store_row *r = rows; r != NULL; r = r->next) {
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
	struct store_op *op = op_new(OP_LOAD, NULL, NULL);
	if (op == NULL) {
		return;
	}
	op->num[0] = reset;
	enqueue(chat->store, chat->hooks.wall_ms(chat->hooks.ctx), op, 0, 0);
	wait_for(chat, DONE_LOADED, DONE_LOADED);
}

/* Restores the chat from what the worker read; false when the records are inconsistent. */
static bool restore(struct chat *chat, int64_t now_ms, char *err, size_t err_len)
{
	const struct store_loaded *ld = &chat->store->loaded;
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
	store->cid_ms = STATE_CID_MS;
	pthread_mutex_init(&store->lock, NULL);
	pthread_cond_init(&store->work_ready, NULL);
	pthread_cond_init(&store->done_ready, NULL);
	if (pthread_create(&store->thread, NULL, store_db_worker, store) != 0) {
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
	const struct store_loaded *ld = &store->loaded;
	if (!ld->ok) {
		pthread_mutex_lock(&store->lock);
		store->failing = true;
		pthread_mutex_unlock(&store->lock);
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
		/*
		 * The first batch reserves ids and records that this run has not shut down yet. If
		 * it cannot be written (a full disk), the store is failing and ids come from the
		 * clock below, so that they still only grow.
		 */
		hand_over(chat, true, false);
		wait_for(chat, DONE_COMMITTED, DONE_UNSAVED);
	}
	pthread_mutex_lock(&store->lock);
	store_db_loaded_clear(&store->loaded);
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
		/* Nothing writes the changed records: the set must not grow for ever. */
		state_unsaved_clear(chat);
		return;
	}
	struct store_done *rest =
		take_completions(chat, take_done(store), now_ms, STORE_REPLY_BYTES_PER_TICK);
	if (rest != NULL) {
		/* Answers past this tick's share go first in the next one. */
		struct store_done *last = rest;
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
	if (store->overloaded && store->queued_seen < STORE_QUEUE_MESSAGES / 2) {
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
	store_db_ops_free(store->pending);
	store_db_ops_free(store->work);
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
	/*
	 * On the MESSAGE path: the queue's length as read at the last hand-over (at most 100 ms
	 * old, and the worker only shortens it) plus what waits here, without taking the lock.
	 */
	bool full = store->queued_seen + store->pending_messages >= STORE_QUEUE_MESSAGES;
	struct store_op *op = full ? NULL : op_new(OP_MESSAGE, room_key, a);
	if (op != NULL) {
		op->s[2] = store_db_dup(b);
		op->text = malloc(len + 1);
	}
	if (op == NULL || op->text == NULL || (b != NULL && op->s[2] == NULL)) {
		if (op != NULL) {
			store_db_op_free(op);
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
	struct store_op *op = op_new(OP_QUERY, NULL, NULL);
	struct store_db_query *q = op != NULL ? calloc(1, sizeof *q) : NULL;
	if (q == NULL) {
		free(op);
		return CHAT_ERR_INTERNAL;
	}
	op->query = q;
	q->clientid = strdup(session->clientid);
	q->userid = strdup(user->id);
	q->room = store_db_dup(query->room);
	q->room_key = store_db_dup(query->room_key);
	q->qid = store_db_dup(query->qid);
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
		store_db_op_free(op);
		return CHAT_ERR_INTERNAL;
	}
	session->history_waiting++;
	/* What was sent before the query is handed over first, so the answer includes it. */
	hand_over(chat, false, false);
	enqueue(store, chat->hooks.wall_ms(chat->hooks.ctx), op, 0, 1);
	return CHAT_OK;
}
