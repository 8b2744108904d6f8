/*
 * Unit tests of the store (store.h) on a real SQLite file: restoring the chat across a clean
 * stop, an unusable database moved aside, history queries in every mode, visibility, retention,
 * idempotent sends. The worker thread answers asynchronously, so a test ticks the core until the
 * answer is published (bounded, a few seconds at most; never a timing assertion).
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fake_broker.h"
#include "store.h"

static struct fake_broker fb;
static char dir[] = "/tmp/chat-store-XXXXXX";
static char path[256];
static int64_t now_ms;

static struct chat *open_chat(struct chat_config *config)
{
	struct chat_config c;
	if (config == NULL) {
		chat_config_defaults(&c);
		config = &c;
	}
	config->request_rate = 0;
	snprintf(config->database, sizeof config->database, "%s", path);
	struct chat *chat = fake_chat(&fb, config);
	CHECK_INT(CHAT_OK, chat_state_load(chat, now_ms));
	return chat;
}

static void login(struct chat *chat, const char *clientid, const char *name, bool persistent)
{
	char payload[64];
	snprintf(payload, sizeof payload, "{\"username\":\"%s\"}", name);
	struct chat_conn conn = { .clientid = clientid, .clean = !persistent };
	chat_on_publish(chat, &conn, "chat/login", payload, strlen(payload), now_ms);
}

/* A request from a persistent connection. */
static void preq(struct chat *chat, const char *clientid, const char *topic, const char *payload)
{
	struct chat_conn conn = { .clientid = clientid, .clean = false };
	chat_on_publish(chat, &conn, topic, payload, strlen(payload), now_ms);
}

/* Ticks (100 ms of the core's clock each) until `topic` was published `n` times, up to ~5 s. */
static void tick_once(struct chat *chat)
{
	now_ms += 100;
	chat_on_tick(chat, now_ms);
	nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
}

static bool tick_until(struct chat *chat, const char *topic, size_t n)
{
	for (int i = 0; i < 500 && fake_count(&fb, topic) < n; i++) {
		tick_once(chat);
	}
	return fake_count(&fb, topic) >= n;
}

/* The publishes on `topic`, parsed; the caller deletes each. */
static cJSON *nth(const char *topic, size_t n)
{
	for (size_t i = 0; i < fb.count; i++) {
		if (strcmp(fb.sent[i].topic, topic) == 0 && n-- == 0) {
			return cJSON_Parse(fb.sent[i].payload);
		}
	}
	return NULL;
}

/*
 * Asks a history query of client "a" and writes the texts of the messages of the answer, joined
 * by ',' (or "error:<code>") into `out`; *complete gets the answer's `complete`.
 */
static const char *history(struct chat *chat, const char *clientid, const char *request,
	bool *complete)
{
	static char out[1024];
	char inbox[128], errors[128];
	snprintf(inbox, sizeof inbox, "chat/inbox/%s/history", clientid);
	snprintf(errors, sizeof errors, "chat/inbox/%s/error", clientid);
	fake_clear(&fb);
	preq(chat, clientid, "chat/history", request);
	/* Refused at once, or answered (with messages or an error) by the worker later. */
	for (int i = 0; i < 500 && fake_count(&fb, errors) == 0 && fake_count(&fb, inbox) == 0;
		i++) {
		tick_once(chat);
	}
	if (fake_count(&fb, errors) == 0 && fake_count(&fb, inbox) == 0) {
		return "no answer";
	}
	bool is_error = fake_count(&fb, errors) > 0;
	cJSON *doc = nth(is_error ? errors : inbox, 0);
	out[0] = '\0';
	if (is_error) {
		snprintf(out, sizeof out, "error:%s",
			cJSON_GetObjectItemCaseSensitive(doc, "error")->valuestring);
	} else {
		const cJSON *m;
		cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(doc, "messages")) {
			const cJSON *text = cJSON_GetObjectItemCaseSensitive(m, "message");
			size_t used = strlen(out);
			snprintf(out + used, sizeof out - used, "%s%s", used > 0 ? "," : "",
				cJSON_IsString(text) ? text->valuestring : "?");
		}
		if (complete != NULL) {
			*complete = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "complete"));
		}
	}
	cJSON_Delete(doc);
	return out;
}

static char ids[16][CHAT_ID_BUF];

/* Sends m1..mn from `clientid` to `room`, keeping their ids in ids[1..n] (seen by `reader`). */
static void send_numbered(struct chat *chat, const char *clientid, const char *room, int from,
	int to, const char *reader)
{
	char topic[64], payload[64], inbox[128];
	snprintf(topic, sizeof topic, "chat/msg/%s", room);
	snprintf(inbox, sizeof inbox, "chat/inbox/%s/message", reader);
	for (int i = from; i <= to; i++) {
		fake_clear(&fb);
		snprintf(payload, sizeof payload, "{\"message\":\"m%d\"}", i);
		preq(chat, clientid, topic, payload);
		chat_on_tick(chat, now_ms); /* group messages are delivered on the tick (rooms.h) */
		const char *id = fake_field(&fb, inbox, "id");
		size_t len = id != NULL ? strlen(id) : 0;
		memcpy(ids[i], id != NULL && len < CHAT_ID_BUF ? id : "?",
			len < CHAT_ID_BUF ? len + 1 : 2);
	}
}

TEST_CASE(restores_across_a_clean_stop)
{
	struct chat *chat = open_chat(NULL);
	login(chat, "a", "alice", true);
	login(chat, "b", "bob", true);
	login(chat, "c", "carol", false);
	preq(chat, "a", "chat/group/create", "{\"member\":{\"20\":\"bob\",\"30\":\"carol\"}}");
	req(chat, "c", "chat/group/create", "{\"member\":{}}"); /* 21: carol alone */
	preq(chat, "b", "chat/msg/11", "{\"message\":\"m\"}");
	CHECK_INT(CHAT_OK, chat_state_save(chat)); /* a graceful stop: the last batch commits */
	chat_free(chat);
	struct stat st;
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);

	chat = open_chat(NULL);
	struct chat_stats stats;
	chat_get_stats(chat, &stats);
	CHECK_INT(2, stats.users);        /* carol's clean session did not survive */
	CHECK_INT(0, stats.users_online); /* restored users are offline until they log in */
	CHECK_INT(1, stats.groups);       /* group 21 had only carol */
	CHECK_INT(2, stats.memberships);
	CHECK(strstr(fb.last_log, "restored 2 users and 1 groups") != NULL);

	/* The first tick publishes the restored directory and clears what is gone. */
	chat_on_tick(chat, now_ms);
	CHECK(fake_find(&fb, "chat/users/10") != NULL && fake_find(&fb, "chat/users/10")->len > 0);
	CHECK(fake_find(&fb, "chat/users/30") != NULL && fake_find(&fb, "chat/users/30")->len == 0);
	CHECK(fake_find(&fb, "chat/groups/21") != NULL &&
		fake_find(&fb, "chat/groups/21")->len == 0);
	fake_clear(&fb);

	/* alice resumes her id; after a graceful stop the ids continue where they were. */
	login(chat, "a", "alice", true);
	CHECK_STR("10", fake_field(&fb, "chat/inbox/a/login-response", "userid"));
	login(chat, "d", "dave", true);
	CHECK_STR("40", fake_field(&fb, "chat/inbox/d/login-response", "userid"));
	preq(chat, "a", "chat/group/create", "{\"member\":{}}");
	CHECK_STR("31", fake_field(&fb, "chat/inbox/a/new_group", "groupid"));
	preq(chat, "a", "chat/msg/11", "{\"message\":\"again\"}");
	chat_on_tick(chat, now_ms);
	CHECK_STR("2", fake_field(&fb, "chat/inbox/b/message", "id"));
	/* The history of the group outlived the restart; both members read it. */
	CHECK_STR("m,again", history(chat, "a", "{\"room\":\"11\"}", NULL));
	chat_free(chat);
}

TEST_CASE(room_subscriptions_and_added_members_survive)
{
	struct chat *chat = open_chat(NULL);
	login(chat, "a", "alice", true);
	login(chat, "b", "bob", true);
	preq(chat, "a", "chat/group/create", "{\"member\":{\"20\":\"bob\"}}"); /* bob added */
	struct chat_conn conn = { .clientid = "b", .username = "b", .clean = false };
	CHECK_INT(CHAT_ACL_ALLOW,
		chat_acl_check(chat, &conn, CHAT_ACCESS_SUBSCRIBE, "chat/room/11", 1, false, 0));
	CHECK_INT(CHAT_OK, chat_state_save(chat));
	chat_free(chat);

	chat = open_chat(NULL);
	const struct chat_session *b = state_session_find(chat, "b");
	CHECK(b != NULL && state_session_room_qos(b, "11") == 1);
	const struct chat_user *bob = state_user_find(chat, "20");
	CHECK(bob != NULL && bob->added_groups == 1 && state_user_own_groups(bob) == 0);
	chat_free(chat);
}

TEST_CASE(unusable_database_is_moved_aside)
{
	FILE *f = fopen(path, "w");
	fputs("this is not a database, and it is long enough to be read as one by SQLite...", f);
	fclose(f);
	struct chat *chat = open_chat(NULL);
	struct chat_stats stats;
	chat_get_stats(chat, &stats);
	CHECK_INT(0, stats.users);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "ls %s | grep -q '^chat.db.corrupt-'", dir);
	CHECK_INT(0, system(cmd));
	/* Ids of the database moved aside must not come back: they continue from the clock. */
	login(chat, "a", "alice", true);
	const char *id = fake_field(&fb, "chat/inbox/a/login-response", "userid");
	CHECK(id != NULL && strlen(id) >= 16);
	/* History works on the new database. */
	login(chat, "b", "bob", true);
	char room[64];
	snprintf(room, sizeof room, "chat/msg/%s", id);
	preq(chat, "b", room, "{\"message\":\"hi\"}");
	char request[64];
	snprintf(request, sizeof request, "{\"room\":\"%s\"}",
		fake_field(&fb, "chat/inbox/b/login-response", "userid"));
	CHECK_STR("hi", history(chat, "a", request, NULL));
	chat_free(chat);
}

TEST_CASE(a_locked_database_is_left_alone)
{
	struct chat *chat = open_chat(NULL);
	login(chat, "a", "alice", true);
	CHECK_INT(CHAT_OK, chat_state_save(chat));
	chat_free(chat);

	/* Another program holds the database for longer than the store waits (5 s). */
	sqlite3 *other = NULL;
	CHECK_INT(SQLITE_OK, sqlite3_open(path, &other));
	CHECK_INT(SQLITE_OK, sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL));
	chat = open_chat(NULL);
	CHECK(strstr(fb.last_log, "it is left as it is") != NULL);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "ls %s | grep -q corrupt", dir);
	CHECK(system(cmd) != 0); /* not moved aside: it is intact */
	login(chat, "b", "bob", true);
	const char *id = fake_field(&fb, "chat/inbox/b/login-response", "userid");
	CHECK(id != NULL && strlen(id) >= 16); /* no reservation: ids from the clock */
	fake_clear(&fb);
	preq(chat, "b", "chat/history", "{}");
	CHECK_STR("history_unavailable", fake_field(&fb, "chat/inbox/b/error", "error"));
	chat_free(chat);
	sqlite3_exec(other, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(other);

	/* Released: the next start has alice back. */
	chat = open_chat(NULL);
	struct chat_stats stats;
	chat_get_stats(chat, &stats);
	CHECK_INT(1, stats.users);
	chat_free(chat);
}

TEST_CASE(a_failed_commit_loses_nothing)
{
	struct chat *chat = open_chat(NULL);
	login(chat, "a", "alice", true);
	/* Another program holds the database longer than a commit waits (5 s) ... */
	sqlite3 *other = NULL;
	CHECK_INT(SQLITE_OK, sqlite3_open(path, &other));
	CHECK_INT(SQLITE_OK, sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL));
	login(chat, "b", "bob", true);
	preq(chat, "a", "chat/group/create", "{\"member\":{\"20\":\"bob\"}}");
	send_numbered(chat, "b", "11", 1, 1, "a");
	/* ... so that the batch with bob, the group and m1 fails (the store says so) ... */
	for (int i = 0; i < 800 && strstr(fb.last_log, "could not write") == NULL; i++) {
		tick_once(chat);
	}
	CHECK(strstr(fb.last_log, "could not write") != NULL);
	CHECK_STR("error:history_unavailable", history(chat, "a", "{\"room\":\"11\"}", NULL));
	/* ... and once it is free again, the next commits write all of it. */
	sqlite3_exec(other, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(other);
	for (int i = 0; i < 800 && strstr(fb.last_log, "written again") == NULL; i++) {
		tick_once(chat);
	}
	CHECK(strstr(fb.last_log, "written again") != NULL);
	CHECK_STR("m1", history(chat, "a", "{\"room\":\"11\"}", NULL));
	CHECK_INT(CHAT_OK, chat_state_save(chat));
	chat_free(chat);

	chat = open_chat(NULL);
	struct chat_stats stats;
	chat_get_stats(chat, &stats);
	CHECK_INT(2, stats.users);
	CHECK_INT(1, stats.groups);
	login(chat, "a", "alice", true);
	CHECK_STR("m1", history(chat, "a", "{\"room\":\"11\"}", NULL));
	chat_free(chat);
}

TEST_CASE(an_emptied_database_does_not_reuse_ids)
{
	FILE *f = fopen(path, "w"); /* e.g. truncated to 0 bytes, or made by a failed start */
	fclose(f);
	struct chat *chat = open_chat(NULL);
	login(chat, "a", "alice", true);
	const char *id = fake_field(&fb, "chat/inbox/a/login-response", "userid");
	CHECK(id != NULL && strlen(id) >= 16);
	chat_free(chat);
}

TEST_CASE(history_pages_in_both_directions)
{
	struct chat *chat = open_chat(NULL);
	login(chat, "a", "alice", true);
	login(chat, "b", "bob", true);
	preq(chat, "a", "chat/group/create", "{\"member\":{\"20\":\"bob\"}}");
	send_numbered(chat, "b", "11", 1, 5, "a");
	bool complete = true;
	char request[600];

	/* Neither cursor: the newest, oldest first. */
	CHECK_STR("m4,m5", history(chat, "a", "{\"room\":\"11\",\"limit\":2}", &complete));
	CHECK(!complete);
	CHECK_STR("m1,m2,m3,m4,m5", history(chat, "a", "{\"room\":\"11\"}", &complete));
	CHECK(complete);
	/* before: the newest older ones; after: the oldest newer ones; both: between. */
	snprintf(request, sizeof request, "{\"room\":\"11\",\"before\":\"%s\",\"limit\":2}",
		ids[4]);
	CHECK_STR("m2,m3", history(chat, "a", request, &complete));
	CHECK(!complete);
	snprintf(request, sizeof request, "{\"room\":\"11\",\"before\":\"%s\",\"limit\":2}",
		ids[3]);
	CHECK_STR("m1,m2", history(chat, "a", request, &complete));
	CHECK(complete);
	snprintf(request, sizeof request, "{\"room\":\"11\",\"after\":\"%s\",\"limit\":2}", ids[2]);
	CHECK_STR("m3,m4", history(chat, "a", request, &complete));
	CHECK(!complete);
	snprintf(request, sizeof request, "{\"room\":\"11\",\"after\":\"%s\"}", ids[5]);
	CHECK_STR("", history(chat, "a", request, &complete));
	CHECK(complete);
	snprintf(request, sizeof request, "{\"room\":\"11\",\"after\":\"%s\",\"before\":\"%s\"}",
		ids[1], ids[5]);
	CHECK_STR("m2,m3,m4", history(chat, "a", request, &complete));
	CHECK(complete);

	/* The answer echoes qid and names the room; its messages are message deliveries. */
	fake_clear(&fb);
	preq(chat, "a", "chat/history", "{\"room\":\"11\",\"limit\":1,\"qid\":\"q-7\"}");
	CHECK(tick_until(chat, "chat/inbox/a/history", 1));
	CHECK_STR("q-7", fake_field(&fb, "chat/inbox/a/history", "qid"));
	CHECK_STR("11", fake_field(&fb, "chat/inbox/a/history", "room"));
	cJSON *doc = nth("chat/inbox/a/history", 0);
	const cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "messages"), 0);
	CHECK_STR("20", cJSON_GetObjectItemCaseSensitive(m, "sender")->valuestring);
	CHECK_STR("11", cJSON_GetObjectItemCaseSensitive(m, "receiver")->valuestring);
	CHECK_STR(ids[5], cJSON_GetObjectItemCaseSensitive(m, "id")->valuestring);
	CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(m, "ts")));
	cJSON_Delete(doc);

	/* A direct conversation is readable by both of its users. */
	send_numbered(chat, "a", "20", 6, 7, "b");
	CHECK_STR("m6,m7", history(chat, "a", "{\"room\":\"20\"}", NULL));
	CHECK_STR("m6,m7", history(chat, "b", "{\"room\":\"10\"}", NULL));
	/* ... also after the other user is gone; a user id never written with is unknown. */
	preq(chat, "b", "chat/logout", "{}");
	CHECK_STR("m6,m7", history(chat, "a", "{\"room\":\"20\"}", NULL));
	CHECK_STR("error:unknown_room", history(chat, "a", "{\"room\":\"990\"}", NULL));
	chat_free(chat);
}

TEST_CASE(bad_history_requests_are_refused)
{
	struct chat *chat = open_chat(NULL);
	login(chat, "a", "alice", true);
	login(chat, "b", "bob", true);
	login(chat, "c", "carol", true);
	preq(chat, "a", "chat/group/create", "{\"member\":{\"20\":\"bob\"}}");
	const char *cases[][2] = {
		{ "{\"room\":\"11\",\"limit\":0}", "error:invalid_request" },
		{ "{\"room\":\"11\",\"limit\":101}", "error:invalid_request" },
		{ "{\"room\":\"11\",\"limit\":-1}", "error:invalid_request" },
		{ "{\"room\":\"11\",\"limit\":2.5}", "error:invalid_request" },
		{ "{\"room\":\"11\",\"limit\":\"5\"}", "error:invalid_request" },
		{ "{\"room\":\"11\",\"before\":\"12x\"}", "error:invalid_request" },
		{ "{\"room\":\"11\",\"before\":\"0012\"}", "error:invalid_request" },
		{ "{\"room\":\"11\",\"after\":\"99999999999999999999999\"}",
			"error:invalid_request" },
		{ "{\"room\":\"11\",\"after\":12}", "error:invalid_request" },
		{ "{\"room\":\"11\",\"after\":\"9\",\"before\":\"5\"}", "error:invalid_request" },
		{ "{\"before\":\"5\"}", "error:invalid_request" },
		{ "{\"room\":11}", "error:invalid_request" },
		{ "{\"room\":\"11\",\"qid\":7}", "error:invalid_request" },
		{ "{\"room\":\"91\"}", "error:unknown_room" },
		{ "{\"room\":\"abc\"}", "error:unknown_room" },
		{ "[]", "error:invalid_request" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		CHECK_STR(cases[i][1], history(chat, "a", cases[i][0], NULL));
	}
	/* A group one is not in. */
	CHECK_STR("error:not_a_member", history(chat, "c", "{\"room\":\"11\"}", NULL));
	/* The error of a request with a qid echoes it. */
	fake_clear(&fb);
	preq(chat, "c", "chat/history", "{\"room\":\"11\",\"qid\":\"x1\"}");
	CHECK_STR("x1", fake_field(&fb, "chat/inbox/c/error", "qid"));
	CHECK_STR("history", fake_field(&fb, "chat/inbox/c/error", "action"));
	/* Not logged in. */
	fake_clear(&fb);
	preq(chat, "z", "chat/history", "{\"qid\":\"z1\"}");
	CHECK_STR("not_logged_in", fake_field(&fb, "chat/inbox/z/error", "error"));
	/* Errors of the checks every request goes through echo the qid too. */
	CHECK_STR("z1", fake_field(&fb, "chat/inbox/z/error", "qid"));
	fake_clear(&fb);
	preq(chat, "a", "chat/history", "{\"sender\":\"20\",\"qid\":\"s1\"}");
	CHECK_STR("sender_mismatch", fake_field(&fb, "chat/inbox/a/error", "error"));
	CHECK_STR("s1", fake_field(&fb, "chat/inbox/a/error", "qid"));
	/* More than STORE_QUERIES_PER_SESSION waiting at once. */
	fake_clear(&fb);
	for (int i = 0; i <= STORE_QUERIES_PER_SESSION; i++) {
		preq(chat, "a", "chat/history", "{\"room\":\"11\"}");
	}
	CHECK_STR("rate_limited", fake_field(&fb, "chat/inbox/a/error", "error"));
	CHECK(tick_until(chat, "chat/inbox/a/history", STORE_QUERIES_PER_SESSION));
	chat_free(chat);
}

TEST_CASE(visibility_joined_and_shared)
{
	for (int shared = 0; shared <= 1; shared++) {
		remove(path);
		struct chat_config config;
		chat_config_defaults(&config);
		config.history_visibility_shared = shared;
		struct chat *chat = open_chat(&config);
		login(chat, "a", "alice", true);
		login(chat, "c", "carol", true);
		preq(chat, "a", "chat/group/create", "{\"member\":{}}");
		send_numbered(chat, "a", "11", 1, 2, "a");
		preq(chat, "c", "chat/group/join", "{\"groupid\":\"11\"}");
		send_numbered(chat, "a", "11", 3, 3, "c");
		preq(chat, "c", "chat/group/leave", "{\"groupid\":\"11\"}");
		send_numbered(chat, "a", "11", 4, 4, "a");
		preq(chat, "c", "chat/group/join", "{\"groupid\":\"11\"}");
		send_numbered(chat, "a", "11", 5, 5, "c");
		/* joined: re-joining starts a new membership; shared: the whole history. */
		CHECK_STR(shared ? "m1,m2,m3,m4,m5" : "m5",
			history(chat, "c", "{\"room\":\"11\"}", NULL));
		CHECK_STR("m1,m2,m3,m4,m5", history(chat, "a", "{\"room\":\"11\"}", NULL));
		chat_free(chat);
	}
}

TEST_CASE(a_member_who_joins_before_the_tick_does_not_get_the_message)
{
	struct chat *chat = open_chat(NULL);
	login(chat, "a", "alice", true);
	login(chat, "c", "carol", true);
	preq(chat, "a", "chat/group/create", "{\"member\":{}}");
	fake_clear(&fb);
	preq(chat, "a", "chat/msg/11", "{\"message\":\"before carol\"}");
	preq(chat, "c", "chat/group/join", "{\"groupid\":\"11\"}"); /* same loop pass */
	chat_on_tick(chat, now_ms);                                 /* deliveries go out */
	CHECK_INT(0, fake_count(&fb, "chat/inbox/c/message"));
	CHECK_STR("", history(chat, "c", "{\"room\":\"11\"}", NULL)); /* and history agrees */
	chat_free(chat);
}

TEST_CASE(catch_up_and_summary_cover_every_room)
{
	struct chat *chat = open_chat(NULL);
	login(chat, "a", "alice", true);
	login(chat, "b", "bob", true);
	login(chat, "c", "carol", true);
	preq(chat, "a", "chat/group/create", "{\"member\":{\"20\":\"bob\"}}"); /* 11 */
	preq(chat, "c", "chat/group/create", "{\"member\":{}}");               /* 21: not a's */
	send_numbered(chat, "b", "11", 1, 1, "a");
	send_numbered(chat, "b", "10", 2, 2, "a");
	send_numbered(chat, "c", "21", 3, 3, "c");
	send_numbered(chat, "c", "10", 4, 4, "a");
	send_numbered(chat, "b", "11", 5, 5, "a");
	bool complete = false;
	char request[600];
	snprintf(request, sizeof request, "{\"after\":\"%s\"}", ids[1]);
	CHECK_STR("m2,m4,m5", history(chat, "a", request, &complete));
	CHECK(complete);
	snprintf(request, sizeof request, "{\"after\":\"%s\",\"limit\":2}", ids[1]);
	CHECK_STR("m2,m4", history(chat, "a", request, &complete));
	CHECK(!complete);
	CHECK(fake_field(&fb, "chat/inbox/a/history", "room") == NULL); /* a catch-up names none */
	/* The summary: the newest message of each of a's rooms, newest first. */
	CHECK_STR("m5,m4,m2", history(chat, "a", "{}", &complete));
	CHECK(complete);
	CHECK_STR("m5,m4", history(chat, "a", "{\"limit\":2}", &complete));
	CHECK(!complete);
	chat_free(chat);
}

/* Counts the messages of `room` in the database file. */
static int stored_in(const char *room)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int n = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
		sqlite3_prepare_v2(db, "SELECT count(*) FROM messages WHERE room = ?1", -1, &st,
			NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, room, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			n = sqlite3_column_int(st, 0);
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

TEST_CASE(retention_by_room_and_by_age)
{
	struct chat_config config;
	chat_config_defaults(&config);
	config.history_per_room = 3;
	config.history_days = 30;
	struct chat *chat = open_chat(&config);
	login(chat, "a", "alice", true);
	preq(chat, "a", "chat/group/create", "{\"member\":{}}");
	fb.wall -= 31LL * 86400000; /* a month and a day ago */
	send_numbered(chat, "a", "11", 1, 1, "a");
	fb.wall += 31LL * 86400000;
	send_numbered(chat, "a", "11", 2, 6, "a");
	CHECK_STR("m4,m5,m6", history(chat, "a", "{\"room\":\"11\"}", NULL));
	CHECK_INT(3, stored_in("11"));
	/* A cap lowered between two runs applies from the start of the next one. */
	CHECK_INT(CHAT_OK, chat_state_save(chat));
	chat_free(chat);
	config.history_per_room = 2;
	chat = open_chat(&config);
	login(chat, "a", "alice", true);
	CHECK_INT(2, stored_in("11"));
	CHECK_STR("m5,m6", history(chat, "a", "{\"room\":\"11\"}", NULL));
	preq(chat, "a", "chat/group/create", "{\"member\":{}}"); /* 21 */
	fb.wall -= 31LL * 86400000;
	send_numbered(chat, "a", "21", 7, 7, "a");
	fb.wall += 31LL * 86400000;
	send_numbered(chat, "a", "21", 8, 8, "a");
	/* Whenever pruning by age runs, a query never shows what is older than history_days. */
	CHECK_STR("m8", history(chat, "a", "{\"room\":\"21\"}", NULL));
	chat_free(chat);
}

TEST_CASE(a_deleted_group_takes_its_history)
{
	struct chat *chat = open_chat(NULL);
	login(chat, "a", "alice", true);
	preq(chat, "a", "chat/group/create", "{\"member\":{}}");
	send_numbered(chat, "a", "11", 1, 2, "a");
	CHECK_STR("m1,m2", history(chat, "a", "{\"room\":\"11\"}", NULL));
	CHECK_INT(2, stored_in("11"));
	preq(chat, "a", "chat/group/leave", "{\"groupid\":\"11\"}"); /* the last member: deleted */
	CHECK_INT(CHAT_OK, chat_state_save(chat));
	CHECK_INT(0, stored_in("11"));
	chat_free(chat);
}

TEST_CASE(a_repeated_cid_is_acknowledged_not_delivered)
{
	struct chat *chat = open_chat(NULL);
	login(chat, "a", "alice", true);
	login(chat, "b", "bob", true);
	fake_clear(&fb);
	preq(chat, "b", "chat/msg/10", "{\"message\":\"once\",\"cid\":\"c-1\"}");
	CHECK_INT(1, fake_count(&fb, "chat/inbox/a/message"));
	CHECK_STR("c-1", fake_field(&fb, "chat/inbox/a/message", "cid"));
	CHECK_STR("c-1", fake_field(&fb, "chat/inbox/b/sent", "cid"));
	CHECK_STR("10", fake_field(&fb, "chat/inbox/b/sent", "receiver"));
	char id[256];
	snprintf(id, sizeof id, "%s", fake_field(&fb, "chat/inbox/b/sent", "id"));
	CHECK_STR(id, fake_field(&fb, "chat/inbox/a/message", "id"));
	/* A retransmission (QoS 2 DUP, or a resend after a reconnect): acknowledged again only. */
	fake_clear(&fb);
	preq(chat, "b", "chat/msg/10", "{\"message\":\"once\",\"cid\":\"c-1\"}");
	CHECK_INT(0, fake_count(&fb, "chat/inbox/a/message"));
	CHECK_STR(id, fake_field(&fb, "chat/inbox/b/sent", "id"));
	/* Another cid is another message; a message without one gets no sent. */
	fake_clear(&fb);
	preq(chat, "b", "chat/msg/10", "{\"message\":\"twice\",\"cid\":\"c-2\"}");
	preq(chat, "b", "chat/msg/10", "{\"message\":\"plain\"}");
	CHECK_INT(2, fake_count(&fb, "chat/inbox/a/message"));
	CHECK_INT(1, fake_count(&fb, "chat/inbox/b/sent"));
	/* A cid that is not a short string is refused. */
	fake_clear(&fb);
	preq(chat, "b", "chat/msg/10", "{\"message\":\"x\",\"cid\":7}");
	preq(chat, "b", "chat/msg/10",
		"{\"message\":\"x\",\"cid\":\"0123456789012345678901234567890123456789012345678901"
		"2345678901234\"}"); /* 65 bytes */
	preq(chat, "b", "chat/msg/10", "{\"message\":\"x\",\"cid\":\"\"}");
	CHECK_INT(3, fake_count(&fb, "chat/inbox/b/error"));
	CHECK_INT(0, fake_count(&fb, "chat/inbox/a/message"));
	/* After ten minutes a cid is forgotten. */
	now_ms += STATE_CID_MS + 1;
	fake_clear(&fb);
	preq(chat, "b", "chat/msg/10", "{\"message\":\"once\",\"cid\":\"c-1\"}");
	CHECK_INT(1, fake_count(&fb, "chat/inbox/a/message"));
	chat_free(chat);
}

TEST_CASE(a_cid_is_remembered_across_a_restart)
{
	struct chat *chat = open_chat(NULL);
	login(chat, "a", "alice", true);
	login(chat, "b", "bob", true);
	fake_clear(&fb);
	preq(chat, "b", "chat/msg/10", "{\"message\":\"once\",\"cid\":\"r-1\"}");
	char id[256];
	snprintf(id, sizeof id, "%s", fake_field(&fb, "chat/inbox/b/sent", "id"));
	CHECK_INT(CHAT_OK, chat_state_save(chat));
	chat_free(chat);

	chat = open_chat(NULL);
	login(chat, "a", "alice", true);
	login(chat, "b", "bob", true);
	fake_clear(&fb);
	preq(chat, "b", "chat/msg/10", "{\"message\":\"once\",\"cid\":\"r-1\"}");
	CHECK_INT(0, fake_count(&fb, "chat/inbox/a/message"));
	CHECK_STR(id, fake_field(&fb, "chat/inbox/b/sent", "id"));
	chat_free(chat);
}

TEST_CASE(no_database_no_history)
{
	struct chat_config config;
	chat_config_defaults(&config);
	struct chat *chat = fake_chat(&fb, &config);
	CHECK_INT(CHAT_OK, chat_state_load(chat, 0));
	login(chat, "a", "alice", true);
	/* Without a database ids still grow across restarts: they start from the clock. */
	const char *id = fake_field(&fb, "chat/inbox/a/login-response", "userid");
	CHECK(id != NULL && strlen(id) >= 16);
	fake_clear(&fb);
	preq(chat, "a", "chat/history", "{}");
	CHECK_STR("history_unavailable", fake_field(&fb, "chat/inbox/a/error", "error"));
	/* Nothing keeps the changed records for a store that is not there. */
	chat_on_tick(chat, 100);
	CHECK(chat->changes.unsaved == NULL);
	chat_free(chat);
}

/* Every case gets a fresh directory of its own. */
static int fresh_dir(void)
{
	snprintf(dir, sizeof dir, "/tmp/chat-store-XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return -1;
	}
	snprintf(path, sizeof path, "%s/chat.db", dir);
	now_ms = 0;
	return 0;
}

/* KEEP=1 leaves the directories for a look at the files. */
static void remove_dir(void)
{
	fake_clear(&fb);
	if (getenv("KEEP") != NULL) {
		fprintf(stderr, "[%s] kept %s\n", check_case_name, dir);
		return;
	}
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0) {
		check_count++;
		check_failures++;
		fprintf(stderr, "[%s] could not remove %s\n", check_case_name, dir);
	}
}

CHECK_MAIN_FIXTURE("test_store", fresh_dir, remove_dir)
