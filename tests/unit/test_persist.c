/*
 * Unit tests of the snapshot loader (persist.h): what it restores, what it refuses as a whole,
 * the counters after a clean and an unclean stop, and importing a state file of an earlier
 * release.
 */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fake_broker.h"
#include "persist.h"

static struct fake_broker fb;
static char dir[] = "/tmp/chat-persist-XXXXXX";
static char path[256];

static void login(struct chat *chat, const char *clientid, const char *name, bool persistent)
{
	char payload[64];
	snprintf(payload, sizeof payload, "{\"username\":\"%s\"}", name);
	struct chat_conn conn = { .clientid = clientid, .clean = !persistent };
	chat_on_publish(chat, &conn, "chat/login", payload, strlen(payload), 0);
}

/* A request from a persistent connection. */
static void preq(struct chat *chat, const char *clientid, const char *topic, const char *payload)
{
	struct chat_conn conn = { .clientid = clientid, .clean = false };
	chat_on_publish(chat, &conn, topic, payload, strlen(payload), 0);
}

static enum chat_err parse(struct chat *chat, const char *text)
{
	char err[160];
	return persist_parse(chat, text, strlen(text), 0, err, sizeof err);
}

TEST_CASE(round_trip)
{
	struct chat *chat = fake_chat(&fb, NULL);
	login(chat, "a", "alice", true);
	login(chat, "b", "bob", true);
	login(chat, "c", "carol", false);
	preq(chat, "a", "chat/group/create", "{\"member\":{\"20\":\"bob\",\"30\":\"carol\"}}");
	preq(chat, "b", "chat/msg/11", "{\"message\":\"m\"}");
	login(chat, "d", "dave", true);
	preq(chat, "d", "chat/group/join", "{\"groupid\":\"11\"}"); /* visible from message 2 */
	size_t len = 0;
	char *text = persist_render(chat, true, &len);
	CHECK(text != NULL && strstr(text, "\"since\":[1,1,1,2]") != NULL);

	struct chat *copy = fake_chat(&fb, NULL);
	CHECK_INT(CHAT_OK, parse(copy, text));
	struct chat_stats stats;
	chat_get_stats(copy, &stats);
	CHECK_INT(3, stats.users); /* carol's clean session is not restored */
	CHECK_INT(1, stats.groups);
	CHECK_INT(3, stats.memberships);
	size_t len2 = 0;
	char *text2 = persist_render(copy, true, &len2);
	/* What was restored renders as it was, but for carol. */
	CHECK(text2 != NULL && strstr(text2, "carol") == NULL);
	CHECK(text2 != NULL && strstr(text2, "\"since\":[1,1,2]") != NULL);
	persist_render_free(text);
	persist_render_free(text2);
	chat_free(chat);
	chat_free(copy);
}

TEST_CASE(counters_after_a_clean_and_an_unclean_stop)
{
	char text[400];
	for (int clean = 0; clean <= 1; clean++) {
		snprintf(text, sizeof text,
			"{\"version\":3,\"clean_shutdown\":%s,\"next_user\":3,\"reserved_user\":"
			"1003,\"next_group\":2,\"reserved_group\":1002,\"next_message\":5,"
			"\"reserved_message\":1000005,\"users\":[],\"groups\":[]}",
			clean ? "true" : "false");
		struct chat *chat = fake_chat(&fb, NULL);
		CHECK_INT(CHAT_OK, parse(chat, text));
		/* After a crash ids up to the reservation may have been issued: continue beyond. */
		CHECK_INT(clean ? 3 : 1003, chat->ids.user.next);
		CHECK_INT(clean ? 2 : 1002, chat->ids.group.next);
		CHECK_INT(clean ? 5 : 1000005, chat->ids.message.next);
		chat_free(chat);
	}
}

TEST_CASE(refused_documents)
{
#define COUNTERS                                                                                   \
	"\"clean_shutdown\":true,\"next_user\":3,\"reserved_user\":3,\"next_group\":2,"            \
	"\"reserved_group\":2,\"next_message\":4,\"reserved_message\":4"
#define USER(id, name, client)                                                                     \
	"{\"id\":\"" id "\",\"username\":\"" name "\",\"sessions\":[{\"clientid\":\"" client       \
	"\",\"persistent\":true,\"qos\":1}]}"
	const char *bad[] = {
		"[]",
		"{\"version\":1,\"next_user\":5,\"users\":[",
		"{\"version\":9," COUNTERS ",\"users\":[],\"groups\":[]}",
		/* a user id beyond the counter */
		"{\"version\":3," COUNTERS ",\"users\":[" USER("90", "x", "x") "],\"groups\":[]}",
		/* one username twice */
		"{\"version\":3," COUNTERS
		",\"users\":[" USER("10", "x", "x") "," USER("20", "x", "y") "],\"groups\":[]}",
		/* a member list without its visibility starts, or with one beyond the counter */
		"{\"version\":3," COUNTERS ",\"users\":[" USER("10", "x",
			"x") "],\"groups\":[{\"id\":\"11\",\"member\":[\"10\"]}]}",
		"{\"version\":3," COUNTERS ",\"users\":[" USER("10", "x",
			"x") "],\"groups\":[{\"id\":\"11\",\"member\":[\"10\"],\"since\":[9]}]}",
		/* a token hash that is not 64 hex digits */
		"{\"version\":3," COUNTERS ",\"users\":[{\"id\":\"10\",\"username\":\"x\","
		"\"token_hash\":\"x\",\"sessions\":[{\"clientid\":\"x\",\"persistent\":true,"
		"\"qos\":1}]}],\"groups\":[]}",
		/* a counter that is not a whole number, and a reserve below its counter */
		"{\"version\":3,\"clean_shutdown\":true,\"next_user\":1.5,\"reserved_user\":3,"
		"\"next_group\":2,\"reserved_group\":2,\"next_message\":1,\"reserved_message\":1,"
		"\"users\":[],\"groups\":[]}",
		"{\"version\":3,\"clean_shutdown\":true,\"next_user\":5,\"reserved_user\":3,"
		"\"next_group\":2,\"reserved_group\":2,\"next_message\":1,\"reserved_message\":1,"
		"\"users\":[],\"groups\":[]}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct chat *chat = fake_chat(&fb, NULL);
		CHECK_INT(CHAT_ERR_BAD_STATE_FILE, parse(chat, bad[i]));
		struct chat_stats stats;
		chat_get_stats(chat, &stats);
		CHECK_INT(0, stats.users); /* refused as a whole: nothing half-restored */
		CHECK_INT(1, chat->ids.user.next);
		chat_free(chat);
	}
	/* The same user record, well-formed, is accepted. */
	struct chat *chat = fake_chat(&fb, NULL);
	CHECK_INT(CHAT_OK,
		parse(chat,
			"{\"version\":3," COUNTERS ",\"users\":[" USER("10", "x",
				"x") "],\"groups\":[{\"id\":\"11\",\"member\":[\"10\"],\"since\":[3]}]}"));
	chat_free(chat);
}

TEST_CASE(version_1_look_alikes_are_skipped)
{
	/* Version 1 allowed Bob and bob, and names with edge spaces; the rest of the file loads. */
	struct chat *chat = fake_chat(&fb, NULL);
	CHECK_INT(CHAT_OK,
		parse(chat,
			"{\"version\":1,\"clean_shutdown\":true,\"next_user\":4,"
			"\"reserved_user\":4,\"next_group\":1,\"reserved_group\":1,"
			"\"next_message\":1,\"reserved_message\":1,\"users\":[{\"id\":\"10\","
			"\"username\":\"Bob\",\"clientid\":\"a\",\"persistent\":true,\"qos\":1},"
			"{\"id\":\"20\",\"username\":\"bob\",\"clientid\":\"b\",\"persistent\":"
			"true,\"qos\":1},{\"id\":\"30\",\"username\":\"eve \",\"clientid\":\"c\","
			"\"persistent\":true,\"qos\":1}],\"groups\":[]}"));
	struct chat_stats stats;
	chat_get_stats(chat, &stats);
	CHECK_INT(1, stats.users);
	login(chat, "a", "Bob", true);
	CHECK_STR("10", fake_field(&fb, "chat/inbox/a/login-response", "userid"));
	chat_free(chat);
}

TEST_CASE(import_renames_the_state_file)
{
	struct chat_config config;
	chat_config_defaults(&config);
	snprintf(config.state_file, sizeof config.state_file, "%s", path);
	FILE *f = fopen(path, "w");
	fputs("{\"version\":2,\"clean_shutdown\":true,\"next_user\":2,\"reserved_user\":2,"
	      "\"next_group\":1,\"reserved_group\":1,\"next_message\":1,\"reserved_message\":1,"
	      "\"users\":[{\"id\":\"10\",\"username\":\"olga\",\"sessions\":[{\"clientid\":\"o\","
	      "\"persistent\":true,\"qos\":1}]}],\"groups\":[]}",
		f);
	fclose(f);
	struct chat *chat = fake_chat(&fb, &config);
	CHECK(persist_import(chat, 0));
	struct chat_stats stats;
	chat_get_stats(chat, &stats);
	CHECK_INT(1, stats.users);
	char moved[300];
	snprintf(moved, sizeof moved, "%s.imported", path);
	CHECK(access(path, F_OK) != 0 && access(moved, F_OK) == 0);
	/* Imported once: there is nothing left to import. */
	CHECK(!persist_import(chat, 0));
	chat_free(chat);

	/* A file that cannot be imported is kept as PATH.corrupt and the chat starts empty. */
	f = fopen(path, "w");
	fputs("{\"version\":2", f);
	fclose(f);
	chat = fake_chat(&fb, &config);
	CHECK(!persist_import(chat, 0));
	chat_get_stats(chat, &stats);
	CHECK_INT(0, stats.users);
	snprintf(moved, sizeof moved, "%s.corrupt", path);
	CHECK(access(path, F_OK) != 0 && access(moved, F_OK) == 0);
	chat_free(chat);
}

/* Every case gets a fresh directory of its own. */
static int fresh_dir(void)
{
	snprintf(dir, sizeof dir, "/tmp/chat-persist-XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return -1;
	}
	snprintf(path, sizeof path, "%s/state.json", dir);
	return 0;
}

static void remove_dir(void)
{
	fake_clear(&fb);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0) {
		check_count++;
		check_failures++;
		fprintf(stderr, "[%s] could not remove %s\n", check_case_name, dir);
	}
}

CHECK_MAIN_FIXTURE("test_persist", fresh_dir, remove_dir)
