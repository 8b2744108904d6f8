/* Unit tests of the state file: save, restore, id counters, corrupt files set aside. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fake_broker.h"

static struct fake_broker fb;
static char dir[] = "/tmp/chat-persist-XXXXXX";
static char path[256];

static struct chat *with_state_file(void)
{
	struct chat_config config;
	chat_config_defaults(&config);
	config.request_rate = 0;
	snprintf(config.state_file, sizeof config.state_file, "%s", path);
	struct chat *chat = fake_chat(&fb, &config);
	CHECK_INT(CHAT_OK, chat_state_load(chat, 0));
	return chat;
}

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

TEST_CASE(round_trip)
{
	struct chat *chat = with_state_file();
	login(chat, "a", "alice", true);
	login(chat, "b", "bob", true);
	login(chat, "c", "carol", false);
	preq(chat, "a", "chat/group/create", "{\"member\":{\"20\":\"bob\",\"30\":\"carol\"}}");
	req(chat, "c", "chat/group/create", "{\"member\":{}}"); /* 21: carol alone */
	preq(chat, "b", "chat/msg/11", "{\"message\":\"m\"}");
	chat_on_tick(chat, 5000); /* saves */
	fake_clear(&fb);
	CHECK(access(path, F_OK) == 0);
	CHECK_INT(CHAT_OK, chat_state_save(chat)); /* a graceful stop */
	chat_free(chat);
	if (getenv("CHAT_TEST_LOG") != NULL) {
		char cmd[300];
		snprintf(cmd, sizeof cmd, "cat %s >&2", path);
		(void)!system(cmd);
	}

	chat = with_state_file();
	struct chat_stats stats;
	chat_get_stats(chat, &stats);
	CHECK_INT(2, stats.users);        /* carol's clean session did not survive */
	CHECK_INT(0, stats.users_online); /* restored users are offline until they log in */
	CHECK_INT(1, stats.groups);       /* group 21 had only carol */
	CHECK_INT(2, stats.memberships);

	/* The first ticks publish the restored directory and clear what is gone. */
	chat_on_tick(chat, 0);
	CHECK(fake_find(&fb, "chat/users/10") != NULL && fake_find(&fb, "chat/users/10")->len > 0);
	CHECK(fake_find(&fb, "chat/users/30") != NULL && fake_find(&fb, "chat/users/30")->len == 0);
	CHECK(fake_find(&fb, "chat/groups/21") != NULL &&
		fake_find(&fb, "chat/groups/21")->len == 0);
	CHECK_STR("{\"person\":{\"10\":{\"10\":\"alice\"},\"20\":{\"20\":\"bob\"}},"
		  "\"group\":{\"11\":{\"10\":\"alice\",\"20\":\"bob\"}}}",
		fake_find(&fb, "chat/contacts")->payload);
	fake_clear(&fb);

	/* alice resumes her id; after a graceful stop all ids continue exactly where they were. */
	login(chat, "a", "alice", true);
	CHECK_STR("10", fake_field(&fb, "chat/inbox/a/login-response", "userid"));
	login(chat, "d", "dave", true);
	CHECK_STR("40", fake_field(&fb, "chat/inbox/d/login-response", "userid"));
	preq(chat, "a", "chat/group/create", "{\"member\":{}}");
	CHECK_STR("31", fake_field(&fb, "chat/inbox/a/new_group", "groupid"));
	preq(chat, "a", "chat/msg/11", "{\"message\":\"again\"}");
	chat_on_tick(chat, 6000); /* group messages are delivered on the tick */
	const char *id = fake_field(&fb, "chat/inbox/b/message", "id");
	CHECK_STR("2", id); /* the one message before the restart was 1 */
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(crash_and_clean_shutdown)
{
	remove(path);
	struct chat *chat = with_state_file();
	login(chat, "a", "alice", true);
	chat_on_tick(chat, 10000);     /* saved */
	login(chat, "b", "bob", true); /* issued after the last save ... */
	preq(chat, "a", "chat/group/create", "{\"member\":{}}");
	fake_clear(&fb);
	chat_free(chat); /* ... and the broker dies without saving again */

	chat = with_state_file();
	struct chat_stats stats;
	chat_get_stats(chat, &stats);
	CHECK_INT(1, stats.users); /* as of the last save */
	login(chat, "c", "carol", true);
	const char *id = fake_field(&fb, "chat/inbox/c/login-response", "userid");
	unsigned long long carol = id != NULL ? strtoull(id, NULL, 10) : 0;
	CHECK(carol > 20); /* never bob's 20 again */
	preq(chat, "c", "chat/group/create", "{\"member\":{}}");
	const char *gid = fake_field(&fb, "chat/inbox/c/new_group", "groupid");
	CHECK(gid != NULL && strtoull(gid, NULL, 10) > 11);
	fake_clear(&fb);
	CHECK_INT(CHAT_OK, chat_state_save(chat)); /* a graceful stop */
	chat_free(chat);

	/* After a clean shutdown the counters continue exactly. */
	chat = with_state_file();
	login(chat, "d", "dave", true);
	id = fake_field(&fb, "chat/inbox/d/login-response", "userid");
	CHECK_INT(carol + 10, id != NULL ? strtoull(id, NULL, 10) : 0);
	fake_clear(&fb);
	chat_free(chat);
	remove(path);
}

TEST_CASE(corrupt_files_set_aside)
{
	FILE *f = fopen(path, "w");
	fputs("{\"version\":1,\"next_user\":5,\"users\":[", f);
	fclose(f);
	struct chat *chat = with_state_file();
	struct chat_stats stats;
	chat_get_stats(chat, &stats);
	CHECK_INT(0, stats.users);
	CHECK(access(path, F_OK) != 0); /* moved aside, never overwritten */
	char cmd[300];
	snprintf(cmd, sizeof cmd, "ls %s | grep -q 'state.json.corrupt-'", dir);
	CHECK_INT(0, system(cmd));
	login(chat, "a", "alice", true);
	CHECK_STR("10", fake_field(&fb, "chat/inbox/a/login-response", "userid"));
	fake_clear(&fb);
	chat_on_tick(chat, 5000);
	CHECK(access(path, F_OK) == 0); /* a new file is written */
	chat_free(chat);

	/* Well-formed JSON that breaks the rules is refused as a whole. */
#define COUNTERS                                                                                   \
	"\"clean_shutdown\":true,\"next_user\":3,\"reserved_user\":3,\"next_group\":2,"            \
	"\"reserved_group\":2,\"next_message\":1,\"reserved_message\":1"
	const char *bad[] = {
		"[]",
		"{\"version\":3," COUNTERS ",\"users\":[],\"groups\":[]}",
		/* a user id beyond the counter */
		"{\"version\":1," COUNTERS ",\"users\":[{\"id\":\"90\",\"username\":\"x\","
		"\"clientid\":\"x\",\"persistent\":true,\"qos\":1}],\"groups\":[]}",
		/* one username twice */
		"{\"version\":1," COUNTERS ",\"users\":[{\"id\":\"10\",\"username\":\"x\","
		"\"clientid\":\"x\",\"persistent\":true,\"qos\":1},{\"id\":\"20\",\"username\":\"x\","
		"\"clientid\":\"y\",\"persistent\":true,\"qos\":1}],\"groups\":[]}",
		/* a counter that is not a whole number, and a reserve below its counter */
		"{\"version\":1,\"clean_shutdown\":true,\"next_user\":1.5,\"reserved_user\":3,"
		"\"next_group\":2,\"reserved_group\":2,\"next_message\":1,\"reserved_message\":1,"
		"\"users\":[],\"groups\":[]}",
		"{\"version\":1,\"clean_shutdown\":true,\"next_user\":5,\"reserved_user\":3,"
		"\"next_group\":2,\"reserved_group\":2,\"next_message\":1,\"reserved_message\":1,"
		"\"users\":[],\"groups\":[]}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		f = fopen(path, "w");
		fputs(bad[i], f);
		fclose(f);
		chat = with_state_file();
		chat_get_stats(chat, &stats);
		CHECK_INT(0, stats.users);
		CHECK(access(path, F_OK) != 0);
		chat_free(chat);
	}
	/* Every unusable file is still there, under its own name. */
	snprintf(cmd, sizeof cmd, "test $(ls %s | grep -c 'state.json.corrupt-') -eq 7", dir);
	CHECK_INT(0, system(cmd));
}

TEST_CASE(version_1_look_alikes_are_skipped)
{
	/* Version 1 allowed Bob and bob, and names with edge spaces; the rest of the file loads. */
	FILE *f = fopen(path, "w");
	fputs("{\"version\":1,\"clean_shutdown\":true,\"next_user\":4,\"reserved_user\":4,"
	      "\"next_group\":1,\"reserved_group\":1,\"next_message\":1,\"reserved_message\":1,"
	      "\"users\":[{\"id\":\"10\",\"username\":\"Bob\",\"clientid\":\"a\","
	      "\"persistent\":true,\"qos\":1},{\"id\":\"20\",\"username\":\"bob\",\"clientid\":"
	      "\"b\",\"persistent\":true,\"qos\":1},{\"id\":\"30\",\"username\":\"eve \","
	      "\"clientid\":\"c\",\"persistent\":true,\"qos\":1}],\"groups\":[]}",
		f);
	fclose(f);
	struct chat *chat = with_state_file();
	struct chat_stats stats;
	chat_get_stats(chat, &stats);
	CHECK_INT(1, stats.users);
	CHECK(access(path, F_OK) == 0); /* not set aside */
	login(chat, "a", "Bob", true);
	CHECK_STR("10", fake_field(&fb, "chat/inbox/a/login-response", "userid"));
	fake_clear(&fb);
	chat_free(chat);
}

/* Every case gets a fresh directory of its own, so it finds no state file it did not write. */
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

CHECK_MAIN_FIXTURE("test_persist", fresh_dir, remove_dir)
