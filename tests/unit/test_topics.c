/* Unit tests of the chat's topic names and of filter matching (topics.h). */
#include "check.h"
#include "topics.h"

/* The kind topics_classify finds for `topic`, or -1 when it is not a request. */
static int kind_of(const char *topic)
{
	enum request_kind kind;
	const char *room = "unset";
	if (!topics_classify(topic, &kind, &room)) {
		return -1;
	}
	return (int)kind;
}

/* The room topics_classify finds for `topic`, "(null)" for requests without one. */
static const char *room_of(const char *topic)
{
	enum request_kind kind;
	const char *room = "unset";
	if (!topics_classify(topic, &kind, &room)) {
		return "(not a request)";
	}
	return room != NULL ? room : "(null)";
}

TEST_CASE(classify_request_topics)
{
	CHECK_INT(REQ_LOGIN, kind_of("chat/login"));
	CHECK_INT(REQ_LOGOUT, kind_of("chat/logout"));
	CHECK_INT(REQ_CREATE_GROUP, kind_of("chat/group/create"));
	CHECK_INT(REQ_JOIN_GROUP, kind_of("chat/group/join"));
	CHECK_INT(REQ_LEAVE_GROUP, kind_of("chat/group/leave"));
	CHECK_STR("(null)", room_of("chat/login"));
	CHECK_STR("(null)", room_of("chat/group/leave"));

	/* Everything under chat/msg/ is a message request; the room is the rest. */
	CHECK_INT(REQ_MESSAGE, kind_of("chat/msg/20"));
	CHECK_STR("20", room_of("chat/msg/20"));
	CHECK_INT(REQ_MESSAGE, kind_of("chat/msg/"));
	CHECK_STR("", room_of("chat/msg/"));
	CHECK_INT(REQ_MESSAGE, kind_of("chat/msg/a/b/c"));
	CHECK_STR("a/b/c", room_of("chat/msg/a/b/c"));

	/* Near misses are not requests. */
	CHECK_INT(-1, kind_of("chat/msg"));
	CHECK_INT(-1, kind_of("chat/login/"));
	CHECK_INT(-1, kind_of("chat/login/x"));
	CHECK_INT(-1, kind_of("chat/Login"));
	CHECK_INT(-1, kind_of("chat/group"));
	CHECK_INT(-1, kind_of("chat/group/delete"));
	CHECK_INT(-1, kind_of("chat/contacts"));
	CHECK_INT(-1, kind_of("chat/inbox/a/message"));
	CHECK_INT(-1, kind_of("login"));
	CHECK_INT(-1, kind_of(""));
	CHECK_INT(-1, kind_of("xchat/login"));
}

TEST_CASE(is_request)
{
	const char *requests[] = { "chat/login", "chat/logout", "chat/msg/10", "chat/msg/",
		"chat/msg/a/b", "chat/group/create", "chat/group/join", "chat/group/leave" };
	for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
		if (!topics_is_request(requests[i])) {
			fprintf(stderr, "expected a request: %s\n", requests[i]);
		}
		CHECK(topics_is_request(requests[i]));
	}
	const char *others[] = { "chat/contacts", "chat/users/10", "chat/inbox/a/message",
		"chat/msg", "chat/other", "sensors/t1", "chat/group/create/x" };
	for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
		if (topics_is_request(others[i])) {
			fprintf(stderr, "expected no request: %s\n", others[i]);
		}
		CHECK(!topics_is_request(others[i]));
	}
}

TEST_CASE(is_chat)
{
	CHECK(topics_is_chat("chat/login"));
	CHECK(topics_is_chat("chat/"));
	CHECK(!topics_is_chat("chat"));
	CHECK(!topics_is_chat("chatter/x"));
	CHECK(!topics_is_chat("sensors/chat/x"));
	CHECK(!topics_is_chat(NULL));
}

TEST_CASE(action_names)
{
	/* The seed's event names, used as `action` in errors. */
	CHECK_STR("login", topics_action(REQ_LOGIN));
	CHECK_STR("logout", topics_action(REQ_LOGOUT));
	CHECK_STR("message", topics_action(REQ_MESSAGE));
	CHECK_STR("create_group", topics_action(REQ_CREATE_GROUP));
	CHECK_STR("join_group", topics_action(REQ_JOIN_GROUP));
	CHECK_STR("leave_group", topics_action(REQ_LEAVE_GROUP));
}

TEST_CASE(inbox_and_directory_forms)
{
	char inbox[TOPICS_INBOX_MAX];
	topics_inbox(inbox, "alice-phone", "message");
	CHECK_STR("chat/inbox/alice-phone/message", inbox);
	topics_inbox(inbox, "a", "login-response");
	CHECK_STR("chat/inbox/a/login-response", inbox);

	/* The longest client id and kind still fit. */
	char longest[CHAT_CLIENTID_MAX + 1];
	memset(longest, 'x', CHAT_CLIENTID_MAX);
	longest[CHAT_CLIENTID_MAX] = '\0';
	topics_inbox(inbox, longest, "login-response");
	CHECK_INT(strlen("chat/inbox//login-response") + CHAT_CLIENTID_MAX, strlen(inbox));

	char directory[TOPICS_DIRECTORY_MAX];
	topics_directory(directory, "10");
	CHECK_STR("chat/users/10", directory);
	topics_directory(directory, "121");
	CHECK_STR("chat/groups/121", directory);
	topics_directory(directory, "12345678901234567890");
	CHECK_STR("chat/users/12345678901234567890", directory);
	topics_directory(directory, "12345678901234567891");
	CHECK_STR("chat/groups/12345678901234567891", directory);
	CHECK_STR("chat/contacts", TOPICS_CONTACTS);
}

TEST_CASE(is_directory)
{
	CHECK(topics_is_directory("chat/contacts"));
	CHECK(topics_is_directory("chat/users/10"));
	CHECK(topics_is_directory("chat/groups/11"));
	CHECK(!topics_is_directory("chat/users/"));
	CHECK(!topics_is_directory("chat/users"));
	CHECK(!topics_is_directory("chat/groups/11/x"));
	CHECK(!topics_is_directory("chat/contacts/x"));
	CHECK(!topics_is_directory("chat/contact"));
	CHECK(!topics_is_directory("chat/inbox/a/message"));
	CHECK(!topics_is_directory("chat/login"));
}

TEST_CASE(own_inbox)
{
	CHECK(topics_is_own_inbox("chat/inbox/a/message", "a"));
	CHECK(topics_is_own_inbox("chat/inbox/a/x/y", "a"));
	CHECK(!topics_is_own_inbox("chat/inbox/a", "a"));          /* at least one level below it */
	CHECK(!topics_is_own_inbox("chat/inbox/ab/message", "a")); /* a prefix is not the id */
	CHECK(!topics_is_own_inbox("chat/inbox/a/message", "ab"));
	CHECK(topics_is_own_inbox("chat/inbox/ab/message", "ab"));
	CHECK(!topics_is_own_inbox("chat/inbox/b/message", "a"));
	CHECK(!topics_is_own_inbox("chat/inboxa/message", "a"));
	CHECK(!topics_is_own_inbox("chat/users/a/message", "a"));
}

TEST_CASE(filter_meets_inbox)
{
	const char *meets[] = { "chat/inbox/a/message", "chat/inbox/a/+", "chat/inbox/a/#",
		"chat/inbox/+/message", "chat/inbox/+/#", "chat/inbox/#", "chat/#", "#", "+/+/+/+",
		"+/inbox/a/error", "chat/+/a/#", "chat/inbox/a/x/y", "chat/inbox/a/message/+/x/#" };
	for (size_t i = 0; i < sizeof meets / sizeof meets[0]; i++) {
		if (!topics_filter_meets_inbox(meets[i], "a")) {
			fprintf(stderr, "expected \"%s\" to meet a's inbox\n", meets[i]);
		}
		CHECK(topics_filter_meets_inbox(meets[i], "a"));
	}
	const char *misses[] = { "chat/inbox/b/message", "chat/inbox/b/#", "chat/inbox/ab/#",
		"chat/inbox/a", "chat/inbox/+", "chat/inbox", "+/+/+", "chat/contacts",
		"chat/users/#", "other/#" };
	for (size_t i = 0; i < sizeof misses / sizeof misses[0]; i++) {
		if (topics_filter_meets_inbox(misses[i], "a")) {
			fprintf(stderr, "expected \"%s\" to miss a's inbox\n", misses[i]);
		}
		CHECK(!topics_filter_meets_inbox(misses[i], "a"));
	}
	/* Another client's inbox, and a client id that is a prefix of another. */
	CHECK(topics_filter_meets_inbox("chat/inbox/ab/#", "ab"));
	CHECK(!topics_filter_meets_inbox("chat/inbox/ab/#", "a"));
	CHECK(!topics_filter_meets_inbox("chat/inbox/a/#", "ab"));
}

TEST_CASE(filter_meets_directory)
{
	const char *meets[] = { "chat/contacts", "chat/users/10", "chat/groups/11", "chat/users/+",
		"chat/groups/+", "chat/users/#", "chat/groups/#", "chat/#", "#", "+/+", "+/+/+",
		"chat/+", "chat/+/10", "+/contacts", "chat/contacts/#" };
	for (size_t i = 0; i < sizeof meets / sizeof meets[0]; i++) {
		if (!topics_filter_meets_directory(meets[i])) {
			fprintf(stderr, "expected \"%s\" to meet the directory\n", meets[i]);
		}
		CHECK(topics_filter_meets_directory(meets[i]));
	}
	const char *misses[] = { "chat/users", "chat/groups", "chat/users/10/x", "chat/users/+/+",
		"chat/inbox/a/#", "chat/inbox/+/+", "chat/login", "chat/msg/#", "+", "+/+/+/+",
		"chat/contacts/x", "other/#" };
	for (size_t i = 0; i < sizeof misses / sizeof misses[0]; i++) {
		if (topics_filter_meets_directory(misses[i])) {
			fprintf(stderr, "expected \"%s\" to miss the directory\n", misses[i]);
		}
		CHECK(!topics_filter_meets_directory(misses[i]));
	}
}

CHECK_MAIN("test_topics")
