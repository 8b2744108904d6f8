/* Unit tests of request handling: login, messages, groups, errors, sessions and the directory. */
#include "check.h"
#include "fake_broker.h"

static struct fake_broker fb;

static const char *error_of(const char *clientid)
{
	char topic[200];
	snprintf(topic, sizeof topic, "chat/inbox/%s/error", clientid);
	return fake_field(&fb, topic, "error");
}

static struct chat *two_users(void)
{
	struct chat *chat = fake_chat(&fb, NULL);
	req(chat, "a", "chat/login", "{\"username\":\"alice\"}");
	req(chat, "b", "chat/login", "{\"username\":\"bob\"}");
	fake_clear(&fb);
	return chat;
}

TEST_CASE(login)
{
	struct chat *chat = fake_chat(&fb, NULL);
	req(chat, "a", "chat/login", "{\"username\":\"alice\"}");
	CHECK_STR("success", fake_field(&fb, "chat/inbox/a/login-response", "result"));
	CHECK_STR("10", fake_field(&fb, "chat/inbox/a/login-response", "userid"));
	CHECK_STR("alice", fake_field(&fb, "chat/inbox/a/login-response", "username"));
	CHECK_INT(1, fake_find(&fb, "chat/inbox/a/login-response")->qos);
	fake_clear(&fb);

	/* The same login again keeps the id; another name is refused. */
	req(chat, "a", "chat/login", "{\"username\":\"alice\"}");
	CHECK_STR("10", fake_field(&fb, "chat/inbox/a/login-response", "userid"));
	fake_clear(&fb);
	req(chat, "a", "chat/login", "{\"username\":\"alicia\"}");
	CHECK_STR("already_logged_in", fake_field(&fb, "chat/inbox/a/login-response", "result"));
	CHECK_STR("already_logged_in", error_of("a"));
	CHECK_STR("login", fake_field(&fb, "chat/inbox/a/error", "action"));
	fake_clear(&fb);

	req(chat, "b", "chat/login", "{\"username\":\"alice\"}");
	CHECK_STR("username_taken", fake_field(&fb, "chat/inbox/b/login-response", "result"));
	fake_clear(&fb);
	req(chat, "b", "chat/login", "{\"username\":\"\"}");
	CHECK_STR("invalid_username", error_of("b"));
	fake_clear(&fb);
	req(chat, "b", "chat/login", "{\"username\":\"a\\u0007b\"}");
	CHECK_STR("invalid_username", error_of("b"));
	fake_clear(&fb);
	req(chat, "b", "chat/login", "{\"username\":5}");
	CHECK_STR("invalid_request", error_of("b"));
	fake_clear(&fb);
	req(chat, "b", "chat/login", "{\"username\":\"bob\"}");
	CHECK_STR("20", fake_field(&fb, "chat/inbox/b/login-response", "userid"));

	struct chat_stats stats;
	chat_get_stats(chat, &stats);
	CHECK_INT(2, stats.users);
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(malformed_payloads)
{
	struct chat *chat = two_users();
	const char *bad[] = { "", "not json", "[1,2]", "\"str\"", "{\"message\":", "null",
		"{\"message\":\"x\"} trailing", "{\"message\":\"x\"}{}" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		req(chat, "a", "chat/msg/20", bad[i]);
		CHECK_STR("invalid_request", error_of("a"));
		CHECK_STR("message", fake_field(&fb, "chat/inbox/a/error", "action"));
		CHECK(fake_find(&fb, "chat/inbox/b/message") == NULL);
		fake_clear(&fb);
	}
	/* A NUL inside the payload, raw or escaped, would cut a string short. */
	struct chat_conn conn = { .clientid = "a", .clean = true };
	chat_on_publish(chat, &conn, "chat/msg/20", "{\"message\":\"a\0b\"}", 17, 0);
	CHECK_STR("invalid_request", error_of("a"));
	fake_clear(&fb);
	req(chat, "a", "chat/msg/20", "{\"message\":\"a\\u0000b\"}");
	CHECK_STR("invalid_message", error_of("a"));
	fake_clear(&fb);
	req(chat, "c", "chat/login", "{\"username\":\"a\\u0000b\"}");
	CHECK_STR("invalid_username", error_of("c"));
	fake_clear(&fb);

	/* Nesting deeper than cJSON's limit is refused, not recursed into. */
	size_t depth = 5000;
	char *deep = malloc(depth * 2 + 1);
	memset(deep, '[', depth);
	memset(deep + depth, ']', depth);
	deep[depth * 2] = '\0';
	req(chat, "a", "chat/group/create", deep);
	CHECK_STR("invalid_request", error_of("a"));
	free(deep);
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(messages)
{
	struct chat *chat = two_users();
	req(chat, "a", "chat/msg/20", "{\"message\":\"hi bob\"}");
	CHECK_INT(1, fb.count);
	CHECK_STR("10", fake_field(&fb, "chat/inbox/b/message", "sender"));
	CHECK_STR("20", fake_field(&fb, "chat/inbox/b/message", "receiver"));
	CHECK_STR("hi bob", fake_field(&fb, "chat/inbox/b/message", "message"));
	CHECK_STR("1", fake_field(&fb, "chat/inbox/b/message", "id"));
	CHECK(strstr(fake_find(&fb, "chat/inbox/b/message")->payload, "\"ts\":1700000000000") !=
		NULL);
	fake_clear(&fb);

	/* Seed objects: matching sender and receiver pass, others are refused. */
	req(chat, "a", "chat/msg/20",
		"{\"action\":\"message\",\"sender\":\"10\",\"receiver\":\"20\",\"message\":\"x\"}");
	CHECK_STR("2", fake_field(&fb, "chat/inbox/b/message", "id"));
	fake_clear(&fb);
	req(chat, "a", "chat/msg/20", "{\"sender\":\"20\",\"message\":\"x\"}");
	CHECK_STR("sender_mismatch", error_of("a"));
	CHECK_INT(1, fb.count);
	fake_clear(&fb);
	req(chat, "a", "chat/msg/20", "{\"receiver\":\"30\",\"message\":\"x\"}");
	CHECK_STR("invalid_request", error_of("a"));
	fake_clear(&fb);
	req(chat, "a", "chat/msg/20", "{\"sender\":null,\"receiver\":null,\"message\":\"x\"}");
	CHECK(fake_find(&fb, "chat/inbox/b/message") != NULL);
	fake_clear(&fb);

	/* Bad text. */
	req(chat, "a", "chat/msg/20", "{\"message\":\"\"}");
	CHECK_STR("invalid_message", error_of("a"));
	fake_clear(&fb);
	req(chat, "a", "chat/msg/20", "{\"message\":{}}");
	CHECK_STR("invalid_message", error_of("a"));
	fake_clear(&fb);
	req(chat, "a", "chat/msg/20", "{\"message\":\"\xff\xfe\"}");
	CHECK_STR("invalid_message", error_of("a"));
	fake_clear(&fb);
	char big[9000 + 32];
	strcpy(big, "{\"message\":\"");
	memset(big + 12, 'x', 8193);
	strcpy(big + 12 + 8193, "\"}");
	req(chat, "a", "chat/msg/20", big);
	CHECK_STR("message_too_large", error_of("a"));
	fake_clear(&fb);

	/* Bad rooms. */
	const char *rooms[] = { "chat/msg/", "chat/msg/30", "chat/msg/21", "chat/msg/20/x",
		"chat/msg/abc" };
	for (size_t i = 0; i < sizeof rooms / sizeof rooms[0]; i++) {
		req(chat, "a", rooms[i], "{\"message\":\"x\"}");
		CHECK_STR("unknown_room", error_of("a"));
		fake_clear(&fb);
	}

	/* Before login. */
	req(chat, "c", "chat/msg/20", "{\"message\":\"x\"}");
	CHECK_STR("not_logged_in", error_of("c"));
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(groups)
{
	struct chat *chat = two_users();
	req(chat, "c", "chat/login", "{\"username\":\"carol\"}");
	fake_clear(&fb);

	/* All or nothing: one unknown member creates no group. */
	req(chat, "a", "chat/group/create", "{\"member\":{\"20\":\"bob\",\"90\":\"nobody\"}}");
	CHECK_STR("unknown_user", error_of("a"));
	CHECK_STR("create_group", fake_field(&fb, "chat/inbox/a/error", "action"));
	struct chat_stats stats;
	chat_get_stats(chat, &stats);
	CHECK_INT(0, stats.groups);
	fake_clear(&fb);
	req(chat, "a", "chat/group/create", "{\"member\":[]}");
	CHECK_STR("invalid_request", error_of("a"));
	fake_clear(&fb);

	req(chat, "a", "chat/group/create", "{\"member\":{\"20\":\"bob\"}}");
	CHECK_STR("11", fake_field(&fb, "chat/inbox/a/new_group", "groupid"));
	CHECK_STR("11", fake_field(&fb, "chat/inbox/b/new_group", "groupid"));
	CHECK(fake_find(&fb, "chat/inbox/c/new_group") == NULL);
	fake_clear(&fb);

	/* Group messages reach every member but the sender, on the tick that ends the loop pass. */
	req(chat, "a", "chat/msg/11", "{\"message\":\"hello group\"}");
	CHECK_INT(0, fb.count);
	chat_on_tick(chat, 0);
	fake_clear(&fb);
	req(chat, "a", "chat/msg/11", "{\"message\":\"hello group\"}");
	chat_on_tick(chat, 0);
	CHECK_INT(1, fb.count);
	CHECK_STR("11", fake_field(&fb, "chat/inbox/b/message", "receiver"));
	fake_clear(&fb);
	req(chat, "c", "chat/msg/11", "{\"message\":\"let me in\"}");
	CHECK_STR("not_a_member", error_of("c"));
	fake_clear(&fb);

	req(chat, "c", "chat/group/join", "{\"groupid\":\"11\"}");
	CHECK_INT(3,
		fake_count(&fb, "chat/inbox/a/new_group") +
			fake_count(&fb, "chat/inbox/b/new_group") +
			fake_count(&fb, "chat/inbox/c/new_group"));
	fake_clear(&fb);
	req(chat, "c", "chat/group/join", "{\"groupid\":\"11\"}");
	CHECK_INT(1, fb.count);
	CHECK(fake_find(&fb, "chat/inbox/c/new_group") != NULL);
	fake_clear(&fb);
	req(chat, "c", "chat/group/join", "{\"groupid\":\"31\"}");
	CHECK_STR("unknown_room", error_of("c"));
	fake_clear(&fb);
	req(chat, "c", "chat/group/join", "{\"groupid\":11}");
	CHECK_STR("invalid_request", error_of("c"));
	fake_clear(&fb);

	req(chat, "a", "chat/group/leave", "{\"groupid\":\"11\"}");
	CHECK_INT(0, fb.count);
	req(chat, "a", "chat/group/leave", "{\"groupid\":\"11\"}");
	CHECK_STR("not_a_member", error_of("a"));
	fake_clear(&fb);
	req(chat, "b", "chat/group/leave", "{\"groupid\":\"11\"}");
	req(chat, "c", "chat/group/leave", "{\"groupid\":\"11\"}");
	chat_get_stats(chat, &stats);
	CHECK_INT(0, stats.groups);
	CHECK_INT(0, stats.memberships);

	/* The directory publishes the deleted group as an empty retained payload. */
	fake_clear(&fb);
	chat_on_tick(chat, 0);
	struct fake_publish *gone = fake_find(&fb, "chat/groups/11");
	CHECK(gone != NULL && gone->len == 0 && gone->retain && gone->broadcast);
	CHECK(fake_find(&fb, "chat/contacts") != NULL);
	fake_clear(&fb);

	/* Ids are not reused. */
	req(chat, "a", "chat/group/create", "{\"member\":{}}");
	CHECK_STR("21", fake_field(&fb, "chat/inbox/a/new_group", "groupid"));
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(logout_and_directory)
{
	struct chat *chat = two_users();
	req(chat, "a", "chat/group/create", "{\"member\":{\"20\":\"bob\"}}");
	chat_on_tick(chat, 0);
	CHECK_STR("{\"person\":{\"10\":{\"10\":\"alice\"},\"20\":{\"20\":\"bob\"}},"
		  "\"group\":{\"11\":{\"10\":\"alice\",\"20\":\"bob\"}}}",
		fake_find(&fb, "chat/contacts")->payload);
	CHECK_STR("{\"userid\":\"10\",\"username\":\"alice\",\"online\":true}",
		fake_find(&fb, "chat/users/10")->payload);
	fake_clear(&fb);

	/* Nothing changed: nothing is republished. */
	chat_on_tick(chat, 100);
	CHECK_INT(0, fb.count);

	req(chat, "b", "chat/logout", "{\"username\":\"alice\"}");
	CHECK_STR("username_mismatch", error_of("b"));
	fake_clear(&fb);
	req(chat, "b", "chat/logout", "{\"username\":\"bob\"}");
	CHECK_INT(0, fb.count);
	chat_on_tick(chat, 200);
	CHECK_STR("{\"person\":{\"10\":{\"10\":\"alice\"}},\"group\":{\"11\":{\"10\":\"alice\"}}}",
		fake_find(&fb, "chat/contacts")->payload);
	CHECK_INT(0, fake_find(&fb, "chat/users/20")->len);
	CHECK_INT(1, fake_count(&fb, "chat/contacts"));
	fake_clear(&fb);

	req(chat, "b", "chat/logout", "{}");
	CHECK_STR("not_logged_in", error_of("b"));
	CHECK_STR("logout", fake_field(&fb, "chat/inbox/b/error", "action"));
	fake_clear(&fb);
	req(chat, "b", "chat/login", "{\"username\":\"bob\"}");
	CHECK_STR("30", fake_field(&fb, "chat/inbox/b/login-response", "userid"));
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(sessions)
{
	struct chat_config config;
	chat_config_defaults(&config);
	config.reconnect_grace_s = 2;
	config.offline_expiry_s = 10;
	struct chat *chat = fake_chat(&fb, &config);
	struct chat_stats stats;

	req(chat, "a", "chat/login", "{\"username\":\"alice\"}");
	req(chat, "b", "chat/login", "{\"username\":\"bob\"}");

	/* A persistent session's disconnect keeps the user, offline; the duplicate is ignored. */
	chat_on_disconnect(chat, "a", false, 1, 1000);
	chat_on_disconnect(chat, "a", true, 0, 1100);
	chat_on_disconnect(chat, NULL, true, 0, 1100);
	fake_clear(&fb);
	chat_on_tick(chat, 1200);
	CHECK_STR("{\"userid\":\"10\",\"username\":\"alice\",\"online\":false}",
		fake_find(&fb, "chat/users/10")->payload);
	fake_clear(&fb);
	chat_on_tick(chat, 5000);
	chat_get_stats(chat, &stats);
	CHECK_INT(2, stats.users);
	CHECK_INT(1, stats.users_online);

	/* Deliveries to the offline user are still handed to the broker to queue. */
	req(chat, "b", "chat/msg/10", "{\"message\":\"while away\"}");
	CHECK(fake_find(&fb, "chat/inbox/a/message") != NULL);
	fake_clear(&fb);

	/* Logging in again resumes the same id. */
	req(chat, "a", "chat/login", "{\"username\":\"alice\"}");
	CHECK_STR("10", fake_field(&fb, "chat/inbox/a/login-response", "userid"));
	chat_get_stats(chat, &stats);
	CHECK_INT(2, stats.users_online);
	fake_clear(&fb);

	/* A takeover (clean, no subscriptions) waits for the grace period. */
	chat_on_disconnect(chat, "b", true, 0, 6000);
	chat_on_tick(chat, 7000);
	chat_get_stats(chat, &stats);
	CHECK_INT(2, stats.users);
	/* A WRITE check may be the old connection's will: it brings nothing back. */
	CHECK(acl_check(chat, "b", NULL, CHAT_ACCESS_WRITE, "sensors/t", 0, false) ==
		CHAT_ACL_ALLOW);
	chat_get_stats(chat, &stats);
	CHECK_INT(1, stats.users_online);
	/* Any other check from the client id brings it back, even on a topic outside chat/. */
	CHECK(acl_check(chat, "b", NULL, CHAT_ACCESS_SUBSCRIBE, "sensors/t", 0, false) ==
		CHAT_ACL_ALLOW);
	chat_get_stats(chat, &stats);
	CHECK_INT(2, stats.users_online);
	CHECK(acl_check(chat, "b", NULL, CHAT_ACCESS_SUBSCRIBE, "chat/inbox/b/#", 0, false) ==
		CHAT_ACL_ALLOW);
	chat_on_tick(chat, 20000);
	chat_get_stats(chat, &stats);
	CHECK_INT(2, stats.users_online);
	/* ... and the subscription's QoS is the QoS of its deliveries from now on. */
	fake_clear(&fb);
	req(chat, "a", "chat/msg/20", "{\"message\":\"qos 0 please\"}");
	CHECK_INT(0, fake_find(&fb, "chat/inbox/b/message")->qos);
	fake_clear(&fb);

	/* Without a comeback the user is logged out after the grace period. */
	chat_on_disconnect(chat, "b", true, 0, 21000);
	chat_on_tick(chat, 22500);
	chat_get_stats(chat, &stats);
	CHECK_INT(2, stats.users);
	chat_on_tick(chat, 24000);
	chat_get_stats(chat, &stats);
	CHECK_INT(1, stats.users);

	/* A clean disconnect with subscriptions logs out at once. */
	chat_on_disconnect(chat, "a", true, 1, 25000);
	chat_get_stats(chat, &stats);
	CHECK_INT(0, stats.users);
	/* Its record stays for the grace period only, to recognise its will. */
	chat_on_tick(chat, 25000 + 61000);
	chat_get_stats(chat, &stats);
	CHECK_INT(0, stats.sessions);

	/* Offline users expire. */
	req(chat, "c", "chat/login", "{\"username\":\"carol\"}");
	chat_on_disconnect(chat, "c", false, 1, 100000);
	chat_on_tick(chat, 105000);
	chat_get_stats(chat, &stats);
	CHECK_INT(1, stats.users);
	chat_on_tick(chat, 111000);
	chat_get_stats(chat, &stats);
	CHECK_INT(0, stats.users);
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(takeover_login)
{
	struct chat *chat = two_users();
	/* alice's persistent session is away; a new person on that client id logs in as dave. */
	chat_on_disconnect(chat, "a", false, 1, 1000);
	req(chat, "a", "chat/login", "{\"username\":\"bob\"}");
	CHECK_STR("username_taken", fake_field(&fb, "chat/inbox/a/login-response", "result"));
	fake_clear(&fb);
	req(chat, "a", "chat/login", "{\"username\":\"dave\"}");
	CHECK_STR("30", fake_field(&fb, "chat/inbox/a/login-response", "userid"));
	struct chat_stats stats;
	chat_get_stats(chat, &stats);
	CHECK_INT(2, stats.users);
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(bad_clientid_ignored)
{
	struct chat *chat = fake_chat(&fb, NULL);
	req(chat, "a+b", "chat/login", "{\"username\":\"x\"}");
	req(chat, "$x", "chat/login", "{\"username\":\"y\"}");
	req(chat, NULL, "chat/login", "{\"username\":\"z\"}");
	CHECK_INT(0, fb.count);
	struct chat_stats stats;
	chat_get_stats(chat, &stats);
	CHECK_INT(0, stats.users);
	chat_free(chat);
}

TEST_CASE(snapshot_throttle)
{
	struct chat *chat = fake_chat(&fb, NULL);
	char clientid[16], login[64];
	for (int i = 0; i < 2000; i++) {
		snprintf(clientid, sizeof clientid, "u%d", i);
		snprintf(login, sizeof login, "{\"username\":\"user%d\"}", i);
		req(chat, clientid, "chat/login", login);
		fake_clear(&fb);
	}
	/* Changes keep coming: the snapshot waits for a 100 ms pause ... */
	chat_on_tick(chat, 1000);
	CHECK_INT(0, fake_count(&fb, "chat/contacts"));
	CHECK_INT(1, fake_count(&fb, "chat/users/20000")); /* per-entity topics do not wait */
	fake_clear(&fb);
	chat_on_tick(chat, 1050);
	CHECK_INT(0, fake_count(&fb, "chat/contacts"));
	chat_on_tick(chat, 1100);
	CHECK_INT(1, fake_count(&fb, "chat/contacts"));
	fake_clear(&fb);

	/* ... or, with 2000-odd users, until it is ~2 s stale (1 ms per user), however busy the chat. */
	int64_t now = 2000;
	for (int i = 0; i < 45; i++, now += 50) {
		snprintf(clientid, sizeof clientid, "late%d", i);
		snprintf(login, sizeof login, "{\"username\":\"late%d\"}", i);
		req(chat, clientid, "chat/login", login);
		chat_on_tick(chat, now);
		CHECK_INT(now == 4050 ? 1 : 0, fake_count(&fb, "chat/contacts"));
		fake_clear(&fb);
	}
	chat_free(chat);
}

TEST_CASE(group_limits)
{
	struct chat_config config;
	chat_config_defaults(&config);
	config.max_groups_per_user = 2;
	config.max_group_members = 3;
	config.request_rate = 0;
	struct chat *chat = fake_chat(&fb, &config);
	req(chat, "a", "chat/login", "{\"username\":\"alice\"}");
	req(chat, "b", "chat/login", "{\"username\":\"bob\"}");
	req(chat, "c", "chat/login", "{\"username\":\"carol\"}");
	req(chat, "d", "chat/login", "{\"username\":\"dave\"}");
	fake_clear(&fb);
	req(chat, "a", "chat/group/create", "{\"member\":{\"20\":\"\",\"30\":\"\",\"40\":\"\"}}");
	CHECK_STR("limit_exceeded", error_of("a"));
	fake_clear(&fb);
	req(chat, "a", "chat/group/create", "{\"member\":{\"20\":\"\",\"30\":\"\"}}"); /* 11 */
	req(chat, "d", "chat/group/join", "{\"groupid\":\"11\"}");
	CHECK_STR("limit_exceeded", error_of("d"));
	fake_clear(&fb);
	req(chat, "a", "chat/group/create", "{\"member\":{}}"); /* 21: alice made two groups */
	req(chat, "a", "chat/group/create", "{\"member\":{}}");
	CHECK_STR("limit_exceeded", error_of("a"));
	fake_clear(&fb);
	/* Others may still add alice: that has its own cap (max_groups_added_by_others). */
	req(chat, "d", "chat/group/create", "{\"member\":{\"10\":\"alice\"}}"); /* 31 */
	CHECK_STR("31", fake_field(&fb, "chat/inbox/a/new_group", "groupid"));
	struct chat_stats stats;
	chat_get_stats(chat, &stats);
	CHECK_INT(3, stats.groups);
	fake_clear(&fb);
	chat_free(chat);
}

/* Groups others create naming a user never lock it out of creating or joining its own. */
TEST_CASE(group_spam)
{
	struct chat_config config;
	chat_config_defaults(&config);
	config.max_groups_per_user = 2;
	config.max_groups_added_by_others = 3;
	config.request_rate = 0;
	struct chat *chat = fake_chat(&fb, &config);
	req(chat, "m", "chat/login", "{\"username\":\"mallory\"}"); /* 10 */
	req(chat, "v", "chat/login", "{\"username\":\"victim\"}");  /* 20 */
	req(chat, "o", "chat/login", "{\"username\":\"olivia\"}");  /* 30 */
	/* mallory's own limit is 2, so two users (m, o) spam the victim with 3 groups. */
	req(chat, "m", "chat/group/create", "{\"member\":{\"20\":\"\"}}");
	req(chat, "m", "chat/group/create", "{\"member\":{\"20\":\"\"}}");
	req(chat, "o", "chat/group/create", "{\"member\":{\"20\":\"\"}}");
	fake_clear(&fb);
	req(chat, "o", "chat/group/create", "{\"member\":{\"20\":\"\"}}");
	CHECK_STR("limit_exceeded", error_of("o"));
	CHECK(strstr(fake_find(&fb, "chat/inbox/o/error")->payload, "max_groups_added_by_others") !=
		NULL);
	CHECK(fake_find(&fb, "chat/inbox/v/new_group") == NULL);
	fake_clear(&fb);
	/* The victim, in 3 groups, still creates and joins its own two. */
	req(chat, "v", "chat/group/create", "{\"member\":{}}");
	CHECK(fake_find(&fb, "chat/inbox/v/new_group") != NULL);
	CHECK(error_of("v") == NULL);
	fake_clear(&fb);
	req(chat, "o", "chat/group/leave", "{\"groupid\":\"31\"}"); /* olivia's group: o left */
	req(chat, "o", "chat/group/create", "{\"member\":{}}");     /* 51 */
	fake_clear(&fb);
	req(chat, "v", "chat/group/join", "{\"groupid\":\"51\"}");
	CHECK(error_of("v") == NULL);
	CHECK(fake_find(&fb, "chat/inbox/v/new_group") != NULL);
	fake_clear(&fb);
	req(chat, "v", "chat/group/create", "{\"member\":{}}");
	CHECK_STR("limit_exceeded", error_of("v"));
	CHECK(strstr(fake_find(&fb, "chat/inbox/v/error")->payload, "max_groups_per_user") != NULL);
	fake_clear(&fb);
	/* Leaving a spam group frees a place under the cap for others. */
	req(chat, "v", "chat/group/leave", "{\"groupid\":\"11\"}");
	req(chat, "o", "chat/group/create", "{\"member\":{\"20\":\"\"}}");
	CHECK(error_of("o") == NULL);
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(global_limits)
{
	struct chat_config config;
	chat_config_defaults(&config);
	config.max_users = 2;
	config.max_groups = 1;
	config.request_rate = 0;
	struct chat *chat = fake_chat(&fb, &config);
	req(chat, "a", "chat/login", "{\"username\":\"alice\"}");
	const char *token = fake_field(&fb, "chat/inbox/a/login-response", "token");
	char login2[400];
	snprintf(login2, sizeof login2, "{\"username\":\"alice\",\"token\":\"%s\"}", token);
	req(chat, "b", "chat/login", "{\"username\":\"bob\"}");
	fake_clear(&fb);
	req(chat, "c", "chat/login", "{\"username\":\"carol\"}");
	CHECK_STR("limit_exceeded", fake_field(&fb, "chat/inbox/c/login-response", "result"));
	CHECK(strstr(fake_find(&fb, "chat/inbox/c/error")->payload, "max_users") != NULL);
	struct chat_stats stats;
	chat_get_stats(chat, &stats);
	CHECK_INT(2, stats.users);
	fake_clear(&fb);
	/* An existing user still logs in, also as a new session, and again from its client id. */
	req(chat, "a2", "chat/login", login2);
	CHECK_STR("success", fake_field(&fb, "chat/inbox/a2/login-response", "result"));
	req(chat, "a", "chat/login", "{\"username\":\"alice\"}");
	CHECK_STR("success", fake_field(&fb, "chat/inbox/a/login-response", "result"));
	fake_clear(&fb);
	/* A user gone frees its place. */
	req(chat, "b", "chat/logout", "{}");
	req(chat, "c", "chat/login", "{\"username\":\"carol\"}");
	CHECK_STR("success", fake_field(&fb, "chat/inbox/c/login-response", "result"));
	fake_clear(&fb);

	req(chat, "a", "chat/group/create", "{\"member\":{}}");
	CHECK(fake_find(&fb, "chat/inbox/a/new_group") != NULL);
	fake_clear(&fb);
	req(chat, "c", "chat/group/create", "{\"member\":{}}");
	CHECK_STR("limit_exceeded", error_of("c"));
	CHECK(strstr(fake_find(&fb, "chat/inbox/c/error")->payload, "max_groups") != NULL);
	chat_get_stats(chat, &stats);
	CHECK_INT(1, stats.groups);
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(rate_limit)
{
	struct chat_config config;
	chat_config_defaults(&config);
	config.request_rate = 10;
	config.request_burst = 5;
	struct chat *chat = fake_chat(&fb, &config);
	struct chat_conn conn = { .clientid = "a", .clean = true };
	const char *login = "{\"username\":\"alice\"}";
	int refused = 0;
	for (int i = 0; i < 8; i++) {
		chat_on_publish(chat, &conn, "chat/login", login, strlen(login), 1000);
	}
	for (size_t i = 0; i < fb.count; i++) {
		refused += strstr(fb.sent[i].payload, "rate_limited") != NULL &&
			strstr(fb.sent[i].topic, "/error") != NULL;
	}
	CHECK_INT(3, refused);
	fake_clear(&fb);
	/* 10 a second: 200 ms later two more are allowed. */
	for (int i = 0; i < 3; i++) {
		chat_on_publish(chat, &conn, "chat/login", login, strlen(login), 1200);
	}
	CHECK_INT(2,
		fake_count(&fb, "chat/inbox/a/login-response") -
			fake_count(&fb, "chat/inbox/a/error"));
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(bind_mqtt_username)
{
	struct chat_config config;
	chat_config_defaults(&config);
	config.bind_mqtt_username = true;
	struct chat *chat = fake_chat(&fb, &config);
	struct chat_conn conn = { .clientid = "a", .username = "alice", .clean = true };
	const char *as_bob = "{\"username\":\"bob\"}";
	const char *as_alice = "{\"username\":\"alice\"}";
	chat_on_publish(chat, &conn, "chat/login", as_bob, strlen(as_bob), 0);
	CHECK_STR("username_mismatch", fake_field(&fb, "chat/inbox/a/login-response", "result"));
	fake_clear(&fb);
	chat_on_publish(chat, &conn, "chat/login", as_alice, strlen(as_alice), 0);
	CHECK_STR("success", fake_field(&fb, "chat/inbox/a/login-response", "result"));
	fake_clear(&fb);
	conn = (struct chat_conn){ .clientid = "anon", .username = NULL, .clean = true };
	chat_on_publish(chat, &conn, "chat/login", as_bob, strlen(as_bob), 0);
	CHECK_STR("username_mismatch", fake_field(&fb, "chat/inbox/anon/login-response", "result"));
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(dropped_while_away)
{
	struct chat_config config;
	chat_config_defaults(&config);
	config.offline_queue = 3;
	config.request_rate = 0;
	struct chat *chat = fake_chat(&fb, &config);
	req(chat, "a", "chat/login", "{\"username\":\"alice\"}");
	req(chat, "b", "chat/login", "{\"username\":\"bob\"}");
	chat_on_disconnect(chat, "a", false, 1, 0);
	for (int i = 0; i < 5; i++) {
		req(chat, "b", "chat/msg/10", "{\"message\":\"x\"}");
	}
	fake_clear(&fb);
	req(chat, "a", "chat/login", "{\"username\":\"alice\"}");
	CHECK(strstr(fake_find(&fb, "chat/inbox/a/login-response")->payload, "\"dropped\":2") !=
		NULL);
	fake_clear(&fb);
	req(chat, "a", "chat/login", "{\"username\":\"alice\"}");
	CHECK(strstr(fake_find(&fb, "chat/inbox/a/login-response")->payload, "dropped") == NULL);
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(sessions_of_one_user)
{
	struct chat *chat = fake_chat(&fb, NULL);
	req(chat, "phone", "chat/login", "{\"username\":\"alice\"}");
	const char *token = fake_field(&fb, "chat/inbox/phone/login-response", "token");
	CHECK(token != NULL && strlen(token) == 32);
	char with_token[512];
	snprintf(with_token, sizeof with_token, "{\"username\":\"alice\",\"token\":\"%s\"}",
		token != NULL ? token : "");
	fake_clear(&fb);

	/* Without the token, or with another, the name is taken; with it, a second session. */
	req(chat, "laptop", "chat/login", "{\"username\":\"alice\"}");
	CHECK_STR("username_taken", fake_field(&fb, "chat/inbox/laptop/login-response", "result"));
	fake_clear(&fb);
	req(chat, "laptop", "chat/login", "{\"username\":\"ALICE\",\"token\":\"00\"}");
	CHECK_STR("username_taken", fake_field(&fb, "chat/inbox/laptop/login-response", "result"));
	fake_clear(&fb);
	req(chat, "laptop", "chat/login", with_token);
	CHECK_STR("10", fake_field(&fb, "chat/inbox/laptop/login-response", "userid"));
	CHECK(fake_field(&fb, "chat/inbox/laptop/login-response", "token") == NULL);
	fake_clear(&fb);

	/* A message to alice reaches both; what one sends reaches the other, not itself. */
	req(chat, "b", "chat/login", "{\"username\":\"bob\"}");
	req(chat, "b", "chat/msg/10", "{\"message\":\"hi\"}");
	CHECK_STR("hi", fake_field(&fb, "chat/inbox/phone/message", "message"));
	CHECK_STR("hi", fake_field(&fb, "chat/inbox/laptop/message", "message"));
	fake_clear(&fb);
	req(chat, "phone", "chat/msg/20", "{\"message\":\"yo\"}");
	CHECK_STR("yo", fake_field(&fb, "chat/inbox/b/message", "message"));
	CHECK_STR("yo", fake_field(&fb, "chat/inbox/laptop/message", "message"));
	CHECK(fake_find(&fb, "chat/inbox/phone/message") == NULL);
	fake_clear(&fb);

	/* Presence: online while either is connected; logout {} ends one, the user stays. */
	struct chat_stats stats;
	chat_on_disconnect(chat, "phone", true, 1, 1000);
	chat_get_stats(chat, &stats);
	CHECK_INT(2, stats.users_online);
	req(chat, "laptop", "chat/logout", "{}");
	chat_get_stats(chat, &stats);
	CHECK_INT(1, stats.users);
	req(chat, "phone", "chat/login", "{\"username\":\"carol\"}");
	req(chat, "x", "chat/login", "{\"username\":\"carol\"}");
	CHECK_STR("username_taken", fake_field(&fb, "chat/inbox/x/login-response", "result"));
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(logout_all_ends_every_session)
{
	struct chat *chat = fake_chat(&fb, NULL);
	req(chat, "p", "chat/login", "{\"username\":\"dora\"}");
	char with_token[512];
	snprintf(with_token, sizeof with_token, "{\"username\":\"dora\",\"token\":\"%s\"}",
		fake_field(&fb, "chat/inbox/p/login-response", "token"));
	req(chat, "q", "chat/login", with_token);
	fake_clear(&fb);
	req(chat, "q", "chat/logout", "{\"all\":1}");
	CHECK_STR("invalid_request", fake_field(&fb, "chat/inbox/q/error", "error"));
	req(chat, "q", "chat/logout", "{\"all\":true}");
	struct chat_stats stats;
	chat_get_stats(chat, &stats);
	CHECK_INT(0, stats.users);
	fake_clear(&fb);
	req(chat, "p", "chat/msg/10", "{\"message\":\"x\"}");
	CHECK_STR("not_logged_in", fake_field(&fb, "chat/inbox/p/error", "error"));
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(bind_mode_takeover_is_refused_everything)
{
	struct chat_config config;
	chat_config_defaults(&config);
	config.bind_mqtt_username = true;
	struct chat *chat = fake_chat(&fb, &config);
	struct chat_conn alice = { .clientid = "a", .username = "alice", .clean = false };
	struct chat_conn mallory = { .clientid = "a", .username = "mallory", .clean = false };
	const char *login = "{\"username\":\"alice\"}";
	chat_on_publish(chat, &alice, "chat/login", login, strlen(login), 0);
	CHECK(fake_field(&fb, "chat/inbox/a/login-response", "token") == NULL);
	fake_clear(&fb);
	chat_on_disconnect(chat, "a", false, 1, 100);
	/* mallory's requests: username_mismatch, answered to her connection by client id. */
	const char *logout = "{\"all\":true}";
	chat_on_publish(chat, &mallory, "chat/logout", logout, strlen(logout), 200);
	CHECK_STR("username_mismatch", fake_field(&fb, "chat/inbox/a/error", "error"));
	CHECK(!fake_find(&fb, "chat/inbox/a/error")->broadcast);
	fake_clear(&fb);
	struct chat_stats stats;
	chat_get_stats(chat, &stats);
	CHECK_INT(1, stats.users);
	/* READ of alice's inbox: her own connection only. */
	CHECK(acl_check(chat, "a", "mallory", CHAT_ACCESS_READ, "chat/inbox/a/message", 1, false) ==
		CHAT_ACL_DENY);
	CHECK(acl_check(chat, "a", "alice", CHAT_ACCESS_READ, "chat/inbox/a/message", 1, false) ==
		CHAT_ACL_ALLOW);
	/* A delivery to alice while mallory holds the client id goes through the fan-out. */
	struct chat_conn bob = { .clientid = "b", .username = "bob", .clean = true };
	const char *as_bob = "{\"username\":\"bob\"}";
	chat_on_publish(chat, &bob, "chat/login", as_bob, strlen(as_bob), 300);
	const char *hi = "{\"message\":\"hi\"}";
	chat_on_publish(chat, &bob, "chat/msg/10", hi, strlen(hi), 400);
	CHECK(fake_find(&fb, "chat/inbox/a/message") != NULL &&
		fake_find(&fb, "chat/inbox/a/message")->broadcast);
	fake_clear(&fb);
	chat_free(chat);
}

CHECK_MAIN("test_requests")
