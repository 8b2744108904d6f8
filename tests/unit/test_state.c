/*
 * Unit tests of the records (state.h): memberships on both sides, groups never left empty,
 * logging out, the change record the directory and the saver read, and that the type API
 * never publishes.
 */
#include "check.h"
#include "fake_state.h"
#include "fake_broker.h"
#include "state.h"

static struct fake_broker fb;

static struct chat_group *add_group(struct chat *chat, const char *id)
{
	struct chat_group *group = state_group_add(chat, id);
	if (group == NULL) {
		abort();
	}
	return group;
}

static bool changed(struct chat *chat, const char *id)
{
	struct changed_id *entry = NULL;
	HASH_FIND_STR(chat->changes.ids, id, entry);
	return entry != NULL;
}

static size_t changed_count(struct chat *chat)
{
	return HASH_CNT(hh, chat->changes.ids);
}

TEST_CASE(membership_both_sides)
{
	struct chat *chat = fake_chat(&fb, NULL);
	struct chat_user *alice = fake_user(chat, "a", "10", "alice");
	struct chat_user *bob = fake_user(chat, "b", "20", "bob");
	struct chat_group *group = add_group(chat, "11");

	CHECK(state_member_add(chat, group, alice));
	CHECK(state_member_add(chat, group, bob));
	CHECK_INT(2, group->member_count);
	CHECK_INT(2, HASH_CNT(hh_group, group->members));
	CHECK_INT(1, HASH_CNT(hh_user, alice->groups));
	CHECK_INT(1, HASH_CNT(hh_user, bob->groups));
	CHECK_INT(2, chat->membership_count);

	/* One record, reachable from both sides. */
	struct chat_member *from_group = state_member_find(group, alice);
	struct chat_member *from_user = NULL;
	HASH_FIND(hh_user, alice->groups, "11", 2, from_user);
	CHECK(from_group != NULL);
	CHECK(from_group == from_user);
	CHECK(from_group != NULL && from_group->user == alice && from_group->group == group);

	state_member_remove(chat, state_member_find(group, alice));
	CHECK(state_member_find(group, alice) == NULL);
	from_user = NULL;
	HASH_FIND(hh_user, alice->groups, "11", 2, from_user);
	CHECK(from_user == NULL);
	CHECK_INT(0, HASH_CNT(hh_user, alice->groups));
	CHECK_INT(1, group->member_count);
	CHECK_INT(1, HASH_CNT(hh_group, group->members));
	CHECK_INT(1, chat->membership_count);
	CHECK(state_member_find(group, bob) != NULL);
	CHECK(state_group_find(chat, "11") == group);
	chat_free(chat);
}

TEST_CASE(empty_group_removed)
{
	struct chat *chat = fake_chat(&fb, NULL);
	struct chat_user *alice = fake_user(chat, "a", "10", "alice");
	struct chat_user *bob = fake_user(chat, "b", "20", "bob");
	struct chat_group *group = add_group(chat, "11");
	CHECK(state_member_add(chat, group, alice));
	CHECK(state_member_add(chat, group, bob));

	state_member_remove(chat, state_member_find(group, alice));
	CHECK(state_group_find(chat, "11") != NULL);
	state_member_remove(chat, state_member_find(group, bob));
	CHECK(state_group_find(chat, "11") == NULL);
	CHECK_INT(0, HASH_CNT(hh, chat->groups));
	CHECK_INT(0, chat->membership_count);
	CHECK_INT(0, HASH_CNT(hh_user, bob->groups));

	/* Deleting a group outright takes its memberships off the users' side too. */
	struct chat_group *other = add_group(chat, "21");
	CHECK(state_member_add(chat, other, alice));
	CHECK(state_member_add(chat, other, bob));
	state_group_delete(chat, other);
	CHECK(state_group_find(chat, "21") == NULL);
	CHECK_INT(0, HASH_CNT(hh_user, alice->groups));
	CHECK_INT(0, HASH_CNT(hh_user, bob->groups));
	CHECK_INT(0, chat->membership_count);
	chat_free(chat);
}

TEST_CASE(user_remove_leaves_groups)
{
	struct chat *chat = fake_chat(&fb, NULL);
	struct chat_user *alice = fake_user(chat, "a", "10", "alice");
	struct chat_user *bob = fake_user(chat, "b", "20", "bob");
	struct chat_group *shared = add_group(chat, "11");
	struct chat_group *alone = add_group(chat, "21");
	CHECK(state_member_add(chat, shared, alice));
	CHECK(state_member_add(chat, shared, bob));
	CHECK(state_member_add(chat, alone, alice));
	struct chat_session *session = alice->sessions;

	state_user_remove(chat, alice);
	CHECK(state_user_find(chat, "10") == NULL);
	CHECK(state_user_find_by_key(chat, "alice", 5) == NULL);
	CHECK(state_group_find(chat, "21") == NULL); /* left empty: deleted */
	CHECK(state_group_find(chat, "11") == shared);
	CHECK_INT(1, shared->member_count);
	CHECK(state_member_find(shared, bob) != NULL);
	CHECK_INT(1, chat->membership_count);

	/* The session stays, unbound, for the client to log in again. */
	CHECK(state_session_find(chat, "a") == session);
	CHECK(session->user == NULL);
	CHECK(state_session_find(chat, "b")->user == bob);

	/* A user in grace no longer counts once removed. */
	state_session_set_presence(chat, bob->sessions, PRESENCE_GRACE, 5000, 0);
	CHECK_INT(1, chat->grace_sessions);
	state_user_remove(chat, bob);
	CHECK_INT(0, chat->grace_sessions);
	CHECK_INT(0, HASH_CNT(hh, chat->groups));
	CHECK_INT(0, chat->membership_count);
	chat_free(chat);
}

TEST_CASE(change_noted)
{
	struct chat *chat = fake_chat(&fb, NULL);
	uint64_t count = chat->changes.count;
	CHECK_INT(0, changed_count(chat));

	/* A session alone is not in the directory: no change. */
	struct chat_session *session = state_session_get(chat, "a");
	CHECK_INT(count, chat->changes.count);

	struct chat_user *alice = state_user_add(chat, session, "10", "alice", 5, "alice", 5);
	CHECK(chat->changes.count > count);
	CHECK(changed(chat, "10"));
	count = chat->changes.count;

	state_changes_clear(chat);
	CHECK_INT(0, changed_count(chat));
	CHECK_INT(count, chat->changes.count); /* the counter stays */

	struct chat_group *group = state_group_add(chat, "11");
	CHECK(chat->changes.count > count);
	CHECK(changed(chat, "11"));
	CHECK(!changed(chat, "10"));
	state_changes_clear(chat);
	count = chat->changes.count;

	CHECK(state_member_add(chat, group, alice));
	CHECK(chat->changes.count > count);
	CHECK(changed(chat, "11"));
	state_changes_clear(chat);
	count = chat->changes.count;

	/* Presence: only a change of online-ness is a change of the directory. */
	state_session_set_presence(chat, alice->sessions, PRESENCE_ONLINE, 0, 0);
	CHECK_INT(count, chat->changes.count);
	CHECK_INT(0, changed_count(chat));
	state_session_set_presence(chat, alice->sessions, PRESENCE_OFFLINE, 1000, 0);
	CHECK_INT(count + 1, chat->changes.count);
	CHECK(changed(chat, "10"));
	state_changes_clear(chat);
	count = chat->changes.count;
	state_session_set_presence(chat, alice->sessions, PRESENCE_GRACE, 2000, 0);
	CHECK_INT(count, chat->changes.count);
	CHECK_INT(0, changed_count(chat));
	CHECK_INT(2000, alice->sessions->offline_deadline);
	state_session_set_presence(chat, alice->sessions, PRESENCE_ONLINE, 0, 0);
	CHECK_INT(count + 1, chat->changes.count);
	CHECK(changed(chat, "10"));
	state_changes_clear(chat);
	count = chat->changes.count;

	/* A second member, then the removals: each names the group. */
	struct chat_user *bob = fake_user(chat, "b", "20", "bob");
	CHECK(state_member_add(chat, group, bob));
	state_changes_clear(chat);
	count = chat->changes.count;
	state_member_remove(chat, state_member_find(group, bob));
	CHECK(chat->changes.count > count);
	CHECK(changed(chat, "11"));
	CHECK_INT(1, changed_count(chat));
	state_changes_clear(chat);
	count = chat->changes.count;

	/* Logging out names the user and the group it left empty (which is gone). */
	state_user_remove(chat, alice);
	CHECK(chat->changes.count > count);
	CHECK(changed(chat, "10"));
	CHECK(changed(chat, "11"));
	CHECK_INT(2, changed_count(chat));
	state_changes_clear(chat);
	count = chat->changes.count;

	struct chat_group *other = add_group(chat, "21");
	CHECK(state_member_add(chat, other, bob));
	state_changes_clear(chat);
	count = chat->changes.count;
	state_group_delete(chat, other);
	CHECK(chat->changes.count > count);
	CHECK(changed(chat, "21"));
	state_changes_clear(chat);
	count = chat->changes.count;

	/* Noting an id by hand, twice, keeps one entry but counts both. */
	state_note_changed(chat, "990");
	state_note_changed(chat, "990");
	CHECK_INT(count + 2, chat->changes.count);
	CHECK_INT(1, changed_count(chat));
	CHECK(changed(chat, "990"));
	chat_free(chat);
}

TEST_CASE(no_publish_from_type_api)
{
	struct chat *chat = fake_chat(&fb, NULL);
	struct chat_user *alice = fake_user(chat, "a", "10", "alice");
	struct chat_user *bob = fake_user(chat, "b", "20", "bob");
	struct chat_user *carol = fake_user(chat, "c", "30", "carol");
	struct chat_group *group = add_group(chat, "11");
	CHECK(state_member_add(chat, group, alice));
	CHECK(state_member_add(chat, group, bob));
	CHECK(state_member_add(chat, group, carol));
	state_session_set_presence(chat, bob->sessions, PRESENCE_OFFLINE, 0, 0);
	state_member_remove(chat, state_member_find(group, carol));
	state_user_remove(chat, carol);
	struct chat_group *other = add_group(chat, "21");
	CHECK(state_member_add(chat, other, alice));
	state_group_delete(chat, other);
	state_note_changed(chat, "40");
	state_session_delete(chat, state_session_find(chat, "c"));
	CHECK_INT(0, fb.count);
	CHECK_INT(0, fb.logs);

	/* The tick is where the directory reads the changes and publishes them. */
	chat_on_tick(chat, 1000);
	CHECK(fake_find(&fb, "chat/contacts") != NULL);
	CHECK(fake_find(&fb, "chat/users/10") != NULL);
	CHECK(fake_find(&fb, "chat/groups/11") != NULL);
	CHECK(fake_find(&fb, "chat/groups/21") != NULL);
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(clear_frees_everything)
{
	/* Run under the sanitizer build, LeakSanitizer fails this case if anything is left. */
	struct chat *chat = fake_chat(&fb, NULL);
	char clientid[16], id[CHAT_ID_BUF], name[16];
	struct chat_group *group = add_group(chat, "11");
	for (unsigned i = 1; i <= 50; i++) {
		snprintf(clientid, sizeof clientid, "c%u", i);
		ids_format_user(i, id);
		snprintf(name, sizeof name, "user%u", i);
		struct chat_user *user = fake_user(chat, clientid, id, name);
		CHECK(state_member_add(chat, group, user));
		if (i % 3 == 0) {
			state_session_set_presence(chat, user->sessions, PRESENCE_GRACE, 1000, 0);
		}
	}
	CHECK(state_session_get(chat, "no-user") != NULL);
	uint64_t count = chat->changes.count;

	state_clear(chat);
	struct chat_stats stats;
	state_stats(chat, &stats);
	CHECK_INT(0, stats.users);
	CHECK_INT(0, stats.groups);
	CHECK_INT(0, stats.memberships);
	CHECK_INT(0, stats.sessions);
	CHECK(chat->users_by_name == NULL);
	CHECK_INT(0, chat->grace_sessions);
	CHECK_INT(0, changed_count(chat));
	CHECK_INT(count, chat->changes.count); /* the counter stays */

	/* The cleared core is usable again. */
	fake_user(chat, "a", "10", "alice");
	state_stats(chat, &stats);
	CHECK_INT(1, stats.users);
	chat_free(chat);
}

TEST_CASE(stats)
{
	struct chat *chat = fake_chat(&fb, NULL);
	struct chat_stats stats;
	state_stats(chat, &stats);
	CHECK_INT(0, stats.users);
	CHECK_INT(0, stats.users_online);
	CHECK_INT(0, stats.groups);
	CHECK_INT(0, stats.memberships);
	CHECK_INT(0, stats.sessions);

	struct chat_user *alice = fake_user(chat, "a", "10", "alice");
	struct chat_user *bob = fake_user(chat, "b", "20", "bob");
	struct chat_user *carol = fake_user(chat, "c", "30", "carol");
	CHECK(state_session_get(chat, "d") != NULL); /* a session without a user */
	struct chat_group *one = add_group(chat, "11");
	struct chat_group *two = add_group(chat, "21");
	CHECK(state_member_add(chat, one, alice));
	CHECK(state_member_add(chat, one, bob));
	CHECK(state_member_add(chat, two, alice));
	state_session_set_presence(chat, bob->sessions, PRESENCE_OFFLINE, 0, 0);
	state_session_set_presence(chat, carol->sessions, PRESENCE_GRACE, 100, 0);

	state_stats(chat, &stats);
	CHECK_INT(3, stats.users);
	CHECK_INT(1, stats.users_online);
	CHECK_INT(2, stats.groups);
	CHECK_INT(3, stats.memberships);
	CHECK_INT(4, stats.sessions);

	/* chat_get_stats reports the same counts. */
	struct chat_stats via_chat;
	chat_get_stats(chat, &via_chat);
	CHECK_INT(stats.users, via_chat.users);
	CHECK_INT(stats.users_online, via_chat.users_online);
	CHECK_INT(stats.groups, via_chat.groups);
	CHECK_INT(stats.memberships, via_chat.memberships);
	CHECK_INT(stats.sessions, via_chat.sessions);
	chat_free(chat);
}

CHECK_MAIN("test_state")
