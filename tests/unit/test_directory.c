/*
 * Unit tests of the retained directory (directory.h): when the chat/contacts snapshot goes out
 * (at once for a small chat; after a pause, or when stale by 1 ms per user, for a big one), the
 * per-entity topics on every tick, a failed snapshot retried.
 */
#include "check.h"
#include "fake_state.h"
#include "directory.h"
#include "fake_broker.h"
#include "topics.h"

static struct fake_broker fb;

/* Users n = first .. first + count - 1 (ids n * 10), online, through the type API. */
static void add_users(struct chat *chat, unsigned first, unsigned count)
{
	char clientid[32], id[CHAT_ID_BUF], name[32];
	for (unsigned n = first; n < first + count; n++) {
		snprintf(clientid, sizeof clientid, "c%u", n);
		snprintf(name, sizeof name, "user%u", n);
		ids_format_user(n, id);
		fake_user(chat, clientid, id, name);
	}
}

/* One change of the directory: user 10 goes offline or comes back. */
static void toggle(struct chat *chat)
{
	struct chat_user *user = state_user_find(chat, "10");
	state_session_set_presence(chat, user->sessions,
		user->sessions->presence == PRESENCE_ONLINE ? PRESENCE_OFFLINE : PRESENCE_ONLINE, 0,
		0);
}

/* Ticks at `now` and returns how many snapshots went out; clears the recorded publishes. */
static size_t tick_snapshots(struct chat *chat, int64_t now)
{
	chat_on_tick(chat, now);
	size_t n = fake_count(&fb, TOPICS_CONTACTS);
	fake_clear(&fb);
	return n;
}

TEST_CASE(small_chat_snapshot_on_next_tick)
{
	struct chat *chat = fake_chat(&fb, NULL);
	CHECK_INT(1, tick_snapshots(chat, 0)); /* the first tick replaces what a last run left */
	CHECK_INT(0, tick_snapshots(chat, 10));

	req(chat, "a", "chat/login", "{\"username\":\"alice\"}");
	CHECK_INT(0, fake_count(&fb, TOPICS_CONTACTS)); /* not from the request itself */
	fake_clear(&fb);
	chat_on_tick(chat, 20);
	CHECK_INT(1, fake_count(&fb, TOPICS_CONTACTS));
	CHECK_STR("{\"person\":{\"10\":{\"10\":\"alice\"}},\"group\":{}}",
		fake_find(&fb, TOPICS_CONTACTS)->payload);
	struct fake_publish *p = fake_find(&fb, TOPICS_CONTACTS);
	CHECK(p->retain);
	CHECK(p->broadcast);
	CHECK_INT(1, p->qos);
	fake_clear(&fb);
	CHECK_INT(0, tick_snapshots(chat, 30));

	/* Just below the threshold, every change still goes out on the next tick. */
	chat->ids.user.next = 1000; /* the type API below uses ids 20 .. 1990 */
	add_users(chat, 2, DIRECTORY_DEBOUNCE_USERS - 2);
	CHECK_INT(DIRECTORY_DEBOUNCE_USERS - 1, HASH_CNT(hh_id, chat->users_by_id));
	CHECK_INT(1, tick_snapshots(chat, 40));
	toggle(chat);
	CHECK_INT(1, tick_snapshots(chat, 41));
	toggle(chat);
	CHECK_INT(1, tick_snapshots(chat, 42));
	CHECK_INT(0, tick_snapshots(chat, 43));
	chat_free(chat);
}

TEST_CASE(large_chat_snapshot_after_quiet)
{
	struct chat *chat = fake_chat(&fb, NULL);
	add_users(chat, 1, DIRECTORY_DEBOUNCE_USERS);
	/* The first tick sees the logins and waits for them to pause. */
	CHECK_INT(0, tick_snapshots(chat, 1000));
	CHECK_INT(0, tick_snapshots(chat, 1000 + DIRECTORY_QUIET_MS - 1));
	CHECK_INT(1, tick_snapshots(chat, 1000 + DIRECTORY_QUIET_MS));
	CHECK_INT(0, tick_snapshots(chat, 1000 + DIRECTORY_QUIET_MS + 1));

	/* One change, then quiet: out DIRECTORY_QUIET_MS after the tick that saw it. */
	toggle(chat);
	CHECK_INT(0, tick_snapshots(chat, 5000));
	CHECK_INT(0, tick_snapshots(chat, 5050));
	CHECK_INT(0, tick_snapshots(chat, 5000 + DIRECTORY_QUIET_MS - 1));
	CHECK_INT(1, tick_snapshots(chat, 5000 + DIRECTORY_QUIET_MS));

	/* A change during the wait restarts the quiet period. */
	toggle(chat);
	CHECK_INT(0, tick_snapshots(chat, 6000));
	toggle(chat);
	CHECK_INT(0, tick_snapshots(chat, 6060));
	CHECK_INT(0, tick_snapshots(chat, 6120));
	CHECK_INT(0, tick_snapshots(chat, 6060 + DIRECTORY_QUIET_MS - 1));
	CHECK_INT(1, tick_snapshots(chat, 6060 + DIRECTORY_QUIET_MS));
	chat_free(chat);
}

TEST_CASE(large_chat_snapshot_when_stale_by_user_count)
{
	struct chat *chat = fake_chat(&fb, NULL);
	unsigned users = 300; /* a wait of at most 300 ms */
	add_users(chat, 1, users);
	CHECK_INT(0, tick_snapshots(chat, 1000));
	CHECK_INT(1, tick_snapshots(chat, 1000 + DIRECTORY_QUIET_MS));

	/* Changes every 50 ms never leave a pause; the snapshot goes when 300 ms stale. */
	int64_t start = 2000;
	for (int64_t now = start; now <= start + 450; now += 50) {
		toggle(chat);
		size_t expected = now == start + (int64_t)users ? 1 : 0;
		size_t sent = tick_snapshots(chat, now);
		if (sent != expected) {
			fprintf(stderr, "at %lld ms (%lld after the first change):\n",
				(long long)now, (long long)(now - start));
		}
		CHECK_INT(expected, sent);
	}
	chat_free(chat);
}

TEST_CASE(large_chat_wait_capped)
{
	struct chat *chat = fake_chat(&fb, NULL);
	/* More users than DIRECTORY_MAX_WAIT_MS: the wait stops at the cap, not at 1 ms per user. */
	unsigned users = DIRECTORY_MAX_WAIT_MS + 2000;
	add_users(chat, 1, users);
	state_changes_clear(chat); /* only the snapshot is of interest here */
	CHECK_INT(0, tick_snapshots(chat, 1000));
	CHECK_INT(1, tick_snapshots(chat, 1000 + DIRECTORY_QUIET_MS));

	int64_t start = 100000;
	size_t early = 0, at_cap = 0;
	for (int64_t now = start; now < start + DIRECTORY_MAX_WAIT_MS; now += 50) {
		toggle(chat);
		early += tick_snapshots(chat, now);
	}
	toggle(chat);
	at_cap = tick_snapshots(chat, start + DIRECTORY_MAX_WAIT_MS);
	CHECK_INT(0, early);
	CHECK_INT(1, at_cap);
	chat_free(chat);
}

TEST_CASE(entities_every_tick)
{
	struct chat *chat = fake_chat(&fb, NULL);
	/* A big chat (still after one logout), so the snapshot waits while the entities do not. */
	add_users(chat, 1, DIRECTORY_DEBOUNCE_USERS + 1);
	chat_on_tick(chat, 1000);
	CHECK_INT(DIRECTORY_DEBOUNCE_USERS + 1,
		fb.count); /* every new user's record, no snapshot */
	struct fake_publish *p = fake_find(&fb, "chat/users/10");
	CHECK(p != NULL);
	CHECK_STR("{\"userid\":\"10\",\"username\":\"user1\",\"online\":true}", p->payload);
	CHECK(p->retain);
	CHECK(p->broadcast);
	CHECK_INT(1, p->qos);
	fake_clear(&fb);

	struct chat_group *group = state_group_add(chat, "11");
	CHECK(state_member_add(chat, group, state_user_find(chat, "10")));
	CHECK(state_member_add(chat, group, state_user_find(chat, "20")));
	toggle(chat);
	chat_on_tick(chat, 1010);
	CHECK_INT(2, fb.count);
	CHECK_STR("{\"groupid\":\"11\",\"member\":{\"10\":\"user1\",\"20\":\"user2\"}}",
		fake_find(&fb, "chat/groups/11") ? fake_find(&fb, "chat/groups/11")->payload
						 : NULL);
	CHECK_STR("{\"userid\":\"10\",\"username\":\"user1\",\"online\":false}",
		fake_find(&fb, "chat/users/10") ? fake_find(&fb, "chat/users/10")->payload : NULL);
	fake_clear(&fb);

	/* Nothing changed: nothing goes out but the snapshot, once its quiet period is over. */
	chat_on_tick(chat, 1020);
	CHECK_INT(0, fb.count);
	chat_on_tick(chat, 1010 + DIRECTORY_QUIET_MS);
	CHECK_INT(1, fb.count);
	CHECK_INT(1, fake_count(&fb, TOPICS_CONTACTS));
	fake_clear(&fb);

	/* Gone: an empty retained payload clears the topic. */
	state_user_remove(chat, state_user_find(chat, "20"));
	state_group_delete(chat, group);
	chat_on_tick(chat, 2000);
	CHECK_INT(2, fb.count);
	p = fake_find(&fb, "chat/users/20");
	CHECK(p != NULL && p->len == 0 && p->retain && p->broadcast && p->qos == 1);
	p = fake_find(&fb, "chat/groups/11");
	CHECK(p != NULL && p->len == 0 && p->retain && p->broadcast && p->qos == 1);
	fake_clear(&fb);
	chat_on_tick(chat, 2010);
	CHECK_INT(0, fake_count(&fb, "chat/users/20"));
	CHECK_INT(0, fake_count(&fb, "chat/groups/11"));
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(failed_snapshot_retried)
{
	struct chat *chat = fake_chat(&fb, NULL);
	CHECK_INT(1, tick_snapshots(chat, 0));
	req(chat, "a", "chat/login", "{\"username\":\"alice\"}");
	fake_clear(&fb);

	fb.fail_topic = TOPICS_CONTACTS;
	fb.fail_count = 1;
	int logs = fb.logs;
	chat_on_tick(chat, 10);
	CHECK_INT(0, fb.fail_count); /* the snapshot was tried, and failed */
	CHECK_INT(0, fake_count(&fb, TOPICS_CONTACTS));
	CHECK_INT(1, fake_count(&fb, "chat/users/10")); /* the entity went out */
	CHECK_INT(logs + 1, fb.logs);
	CHECK_INT(CHAT_LOG_ERR, fb.last_level);
	CHECK(strstr(fb.last_log, "chat/contacts") != NULL);
	fake_clear(&fb);

	/* Nothing changed since, and still the snapshot goes out on the next tick. */
	chat_on_tick(chat, 20);
	CHECK_INT(1, fake_count(&fb, TOPICS_CONTACTS));
	CHECK_INT(0, fake_count(&fb, "chat/users/10"));
	CHECK_STR("{\"person\":{\"10\":{\"10\":\"alice\"}},\"group\":{}}",
		fake_find(&fb, TOPICS_CONTACTS) ? fake_find(&fb, TOPICS_CONTACTS)->payload : NULL);
	fake_clear(&fb);
	CHECK_INT(0, tick_snapshots(chat, 30));
	chat_free(chat);
}

CHECK_MAIN("test_directory")
