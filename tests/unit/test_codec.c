/* Unit tests of the documents the chat sends (codec.h), compared as rendered text. */
#include "check.h"
#include "fake_state.h"
#include "codec.h"
#include "fake_broker.h"

static struct fake_broker fb;

/* Renders `doc` (and deletes it) into a static buffer, or says why there is no text. */
static const char *render(cJSON *doc)
{
	static char text[4096];
	if (doc == NULL) {
		return "(no document)";
	}
	size_t len = 0;
	char *rendered = codec_render(doc, &len);
	cJSON_Delete(doc);
	if (rendered == NULL) {
		return "(not rendered)";
	}
	if (len != strlen(rendered)) {
		snprintf(text, sizeof text, "(length %zu for a text of %zu bytes)", len,
			strlen(rendered));
	} else {
		snprintf(text, sizeof text, "%s", rendered);
	}
	codec_free(rendered);
	return text;
}

TEST_CASE(message)
{
	CHECK_STR("{\"sender\":\"10\",\"receiver\":\"20\",\"message\":\"hi bob\",\"id\":\"7\","
		  "\"ts\":1700000000000}",
		render(codec_message("10", "20", "hi bob", "7", 1700000000000, NULL)));
	/* Quotes, control characters and UTF-8 survive as JSON text. */
	CHECK_STR("{\"sender\":\"10\",\"receiver\":\"11\",\"message\":\"say \\\"h\xc3\xa9\\\"\\n\","
		  "\"id\":\"8\",\"ts\":0}",
		render(codec_message("10", "11", "say \"h\xc3\xa9\"\n", "8", 0, NULL)));
	/* A message sent with a cid carries it (docs/protocol.md §4.4). */
	CHECK_STR("{\"sender\":\"10\",\"receiver\":\"20\",\"message\":\"hi\",\"id\":\"9\","
		  "\"ts\":5,\"cid\":\"c-1\"}",
		render(codec_message("10", "20", "hi", "9", 5, "c-1")));
}

TEST_CASE(sent)
{
	CHECK_STR("{\"cid\":\"c-1\",\"id\":\"9\",\"ts\":5,\"receiver\":\"20\"}",
		render(codec_sent("c-1", "9", 5, "20")));
}

TEST_CASE(history)
{
	const char *messages[] = { "{\"id\":\"1\"}", "{\"id\":\"2\"}" };
	CHECK_STR("{\"qid\":\"q\",\"room\":\"11\",\"messages\":[{\"id\":\"1\"},{\"id\":\"2\"}],"
		  "\"complete\":false}",
		render(codec_history("q", "11", messages, 2, false)));
	/* A catch-up names no room; an empty page is an empty list. */
	CHECK_STR("{\"messages\":[],\"complete\":true}",
		render(codec_history(NULL, NULL, messages, 0, true)));
	CHECK_STR("{\"action\":\"history\",\"error\":\"not_a_member\",\"detail\":\"d\","
		  "\"qid\":\"q\"}",
		render(codec_error_qid("history", "not_a_member", "d", "q")));
}

TEST_CASE(error)
{
	CHECK_STR(
		"{\"action\":\"join_group\",\"error\":\"unknown_room\",\"detail\":\"no group 31\"}",
		render(codec_error("join_group", "unknown_room", "no group 31")));
}

TEST_CASE(login_success_with_and_without_dropped)
{
	struct chat *chat = fake_chat(&fb, NULL);
	struct chat_user *alice = fake_user(chat, "a", "10", "alice");
	CHECK_STR("{\"result\":\"success\",\"userid\":\"10\",\"username\":\"alice\"}",
		render(codec_login_success(alice, 0, NULL)));
	CHECK_STR(
		"{\"result\":\"success\",\"userid\":\"10\",\"username\":\"alice\",\"dropped\":42}",
		render(codec_login_success(alice, 42, NULL)));
	chat_free(chat);
}

TEST_CASE(login_failure)
{
	CHECK_STR("{\"result\":\"username_taken\",\"detail\":\"alice is taken\"}",
		render(codec_login_failure("username_taken", "alice is taken")));
}

TEST_CASE(user)
{
	struct chat *chat = fake_chat(&fb, NULL);
	struct chat_user *alice = fake_user(chat, "a", "10", "alice");
	CHECK_STR("{\"userid\":\"10\",\"username\":\"alice\",\"online\":true}",
		render(codec_user(alice)));
	state_session_set_presence(chat, alice->sessions, PRESENCE_OFFLINE, 0, 0);
	CHECK_STR("{\"userid\":\"10\",\"username\":\"alice\",\"online\":false}",
		render(codec_user(alice)));
	state_session_set_presence(chat, alice->sessions, PRESENCE_GRACE, 0, 0);
	CHECK_STR("{\"userid\":\"10\",\"username\":\"alice\",\"online\":false}",
		render(codec_user(alice)));
	chat_free(chat);
}

TEST_CASE(group_members_in_joining_order)
{
	struct chat *chat = fake_chat(&fb, NULL);
	struct chat_user *carol = fake_user(chat, "c", "30", "carol");
	struct chat_user *alice = fake_user(chat, "a", "10", "alice");
	struct chat_user *bob = fake_user(chat, "b", "20", "bob");
	struct chat_group *group = state_group_add(chat, "11");
	CHECK(state_member_add(chat, group, carol));
	CHECK(state_member_add(chat, group, alice));
	CHECK(state_member_add(chat, group, bob));
	CHECK_STR(
		"{\"groupid\":\"11\",\"member\":{\"30\":\"carol\",\"10\":\"alice\",\"20\":\"bob\"}}",
		render(codec_group(group)));
	CHECK_STR("{\"30\":\"carol\",\"10\":\"alice\",\"20\":\"bob\"}",
		render(codec_members(group)));

	/* Leaving and joining again puts a member last. */
	state_member_remove(chat, state_member_find(group, alice));
	CHECK(state_member_add(chat, group, alice));
	CHECK_STR(
		"{\"groupid\":\"11\",\"member\":{\"30\":\"carol\",\"20\":\"bob\",\"10\":\"alice\"}}",
		render(codec_group(group)));
	chat_free(chat);
}

TEST_CASE(contacts)
{
	struct chat *chat = fake_chat(&fb, NULL);
	CHECK_STR("{\"person\":{},\"group\":{}}", render(codec_contacts(chat)));

	struct chat_user *alice = fake_user(chat, "a", "10", "alice");
	struct chat_user *bob = fake_user(chat, "b", "20", "bob");
	fake_user(chat, "c", "30", "carol");
	struct chat_group *one = state_group_add(chat, "11");
	CHECK(state_member_add(chat, one, bob));
	CHECK(state_member_add(chat, one, alice));
	struct chat_group *two = state_group_add(chat, "21");
	CHECK(state_member_add(chat, two, alice));
	/* Offline users stay in the contacts (presence is on chat/users/<id>). */
	state_session_set_presence(chat, bob->sessions, PRESENCE_OFFLINE, 0, 0);
	CHECK_STR("{\"person\":{\"10\":{\"10\":\"alice\"},\"20\":{\"20\":\"bob\"},"
		  "\"30\":{\"30\":\"carol\"}},"
		  "\"group\":{\"11\":{\"20\":\"bob\",\"10\":\"alice\"},\"21\":{\"10\":\"alice\"}}}",
		render(codec_contacts(chat)));
	chat_free(chat);
}

CHECK_MAIN("test_codec")
