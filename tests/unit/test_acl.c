/* Unit tests of access decisions (docs/protocol.md §5). */
#include "check.h"
#include "fake_broker.h"

static struct fake_broker fb;

#define ALLOW CHAT_ACL_ALLOW
#define DENY CHAT_ACL_DENY
#define DEFER CHAT_ACL_DEFER

static enum chat_acl_result check(struct chat *chat, const char *clientid, enum chat_access access,
	const char *topic)
{
	struct chat_conn conn = { .clientid = clientid, .clean = true };
	return chat_acl_check(chat, &conn, access, topic, 1, false, 0);
}

TEST_CASE(read)
{
	struct chat *chat = fake_chat(&fb, NULL);
	CHECK_INT(ALLOW, check(chat, "alice", CHAT_ACCESS_READ, "chat/inbox/alice/message"));
	CHECK_INT(DENY, check(chat, "bob", CHAT_ACCESS_READ, "chat/inbox/alice/message"));
	CHECK_INT(DENY, check(chat, "ali", CHAT_ACCESS_READ, "chat/inbox/alice/message"));
	CHECK_INT(DENY, check(chat, "alice", CHAT_ACCESS_READ, "chat/inbox/alice"));
	CHECK_INT(ALLOW, check(chat, "bob", CHAT_ACCESS_READ, "chat/contacts"));
	CHECK_INT(ALLOW, check(chat, "bob", CHAT_ACCESS_READ, "chat/users/10"));
	CHECK_INT(ALLOW, check(chat, "bob", CHAT_ACCESS_READ, "chat/groups/11"));
	CHECK_INT(DENY, check(chat, "bob", CHAT_ACCESS_READ, "chat/groups/11/x"));
	CHECK_INT(DENY, check(chat, "bob", CHAT_ACCESS_READ, "chat/login"));
	CHECK_INT(DENY, check(chat, "bob", CHAT_ACCESS_READ, "chat/msg/10"));
	CHECK_INT(DENY, check(chat, "bob", CHAT_ACCESS_READ, "chat/other"));
	CHECK_INT(DENY, check(chat, NULL, CHAT_ACCESS_READ, "chat/contacts"));
	CHECK_INT(ALLOW, check(chat, "bob", CHAT_ACCESS_READ, "sensors/t1"));
	chat_free(chat);
}

TEST_CASE(write)
{
	struct chat *chat = fake_chat(&fb, NULL);
	const char *requests[] = { "chat/login", "chat/logout", "chat/msg/10", "chat/msg/",
		"chat/msg/a/b", "chat/group/create", "chat/group/join", "chat/group/leave" };
	for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
		CHECK_INT(ALLOW, check(chat, "alice", CHAT_ACCESS_WRITE, requests[i]));
	}
	const char *denied[] = { "chat/inbox/alice/message", "chat/inbox/bob/error",
		"chat/contacts", "chat/users/10", "chat/groups/11", "chat/group/delete", "chat/msg",
		"chat/login/x", "chat/" };
	for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
		CHECK_INT(DENY, check(chat, "alice", CHAT_ACCESS_WRITE, denied[i]));
	}
	CHECK_INT(ALLOW, check(chat, "alice", CHAT_ACCESS_WRITE, "sensors/t1"));
	chat_free(chat);
}

TEST_CASE(subscribe)
{
	struct chat *chat = fake_chat(&fb, NULL);
	const char *granted[] = { "#", "chat/#", "chat/+/#", "chat/inbox/alice/#",
		"chat/inbox/alice/message", "chat/inbox/+/message", "chat/inbox/#", "chat/contacts",
		"chat/users/+", "chat/users/10", "chat/groups/#", "chat/+", "+/inbox/alice/error",
		"chat/+/+" };
	for (size_t i = 0; i < sizeof granted / sizeof granted[0]; i++) {
		CHECK_INT(ALLOW, check(chat, "alice", CHAT_ACCESS_SUBSCRIBE, granted[i]));
	}
	const char *refused[] = { "chat/inbox/bob/#", "chat/inbox/bob/message", "chat/login",
		"chat/msg/#", "chat/msg/10", "chat/group/+", "chat/users/10/x", "chat/inbox/alice",
		"chat/other/#", "chat/inbox/+" };
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		enum chat_acl_result r = check(chat, "alice", CHAT_ACCESS_SUBSCRIBE, refused[i]);
		if (r != DENY) {
			fprintf(stderr, "subscription to %s should be refused\n", refused[i]);
		}
		CHECK_INT(DENY, r);
	}
	/* A client id unusable as a topic level has no inbox to subscribe to. */
	CHECK_INT(DENY, check(chat, "a+b", CHAT_ACCESS_SUBSCRIBE, "chat/inbox/a+b/#"));
	CHECK_INT(ALLOW, check(chat, "a+b", CHAT_ACCESS_SUBSCRIBE, "chat/contacts"));
	CHECK_INT(ALLOW, check(chat, "alice", CHAT_ACCESS_UNSUBSCRIBE, "chat/login"));
	chat_free(chat);
}

TEST_CASE(outside_chat_defer)
{
	struct chat_config config;
	chat_config_defaults(&config);
	config.outside_chat = CHAT_OUTSIDE_DEFER;
	struct chat *chat = fake_chat(&fb, &config);
	CHECK_INT(DEFER, check(chat, "alice", CHAT_ACCESS_WRITE, "sensors/t1"));
	CHECK_INT(DEFER, check(chat, "alice", CHAT_ACCESS_SUBSCRIBE, "#"));
	CHECK_INT(DEFER, check(chat, "alice", CHAT_ACCESS_READ, "$SYS/broker/uptime"));
	CHECK_INT(DEFER, check(chat, "alice", CHAT_ACCESS_READ, "chat"));
	CHECK_INT(ALLOW, check(chat, "alice", CHAT_ACCESS_READ, "chat/contacts"));
	CHECK_INT(DENY, check(chat, "alice", CHAT_ACCESS_WRITE, "chat/contacts"));
	chat_free(chat);
}

CHECK_MAIN("test_acl")
