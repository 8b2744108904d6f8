/*
 * Unit tests of room topics (docs/protocol.md §3.5) and the delivery budget (§4.10): which
 * subscriptions count, room or inbox per session decided on the tick, READ checks, switching,
 * overlapping filters, leaving, disconnects, and what a message costs.
 */
#include "check.h"
#include "fake_broker.h"
#include "state.h"

static struct fake_broker fb;

static enum chat_acl_result check_as(struct chat *chat, const char *clientid, bool clean,
	enum chat_access access, const char *topic)
{
	struct chat_conn conn = { .clientid = clientid, .username = clientid, .clean = clean };
	return chat_acl_check(chat, &conn, access, topic, 1, false, 0);
}

static enum chat_acl_result sub(struct chat *chat, const char *clientid, const char *filter)
{
	return check_as(chat, clientid, true, CHAT_ACCESS_SUBSCRIBE, filter);
}

static void unsub(struct chat *chat, const char *clientid, const char *filter)
{
	CHECK_INT(CHAT_ACL_ALLOW, check_as(chat, clientid, true, CHAT_ACCESS_UNSUBSCRIBE, filter));
}

static enum chat_acl_result can_read(struct chat *chat, const char *clientid, const char *topic)
{
	return check_as(chat, clientid, true, CHAT_ACCESS_READ, topic);
}

/* alice (a, 10), bob (b, 20), carol (c, 30) in group 11; dave (d, 40) in none. */
static struct chat *three_in_a_group(const struct chat_config *config)
{
	struct chat_config c;
	chat_config_defaults(&c);
	if (config != NULL) {
		c = *config;
	}
	c.request_rate = 0;
	struct chat *chat = fake_chat(&fb, &c);
	req(chat, "a", "chat/login", "{\"username\":\"alice\"}");
	req(chat, "b", "chat/login", "{\"username\":\"bob\"}");
	req(chat, "c", "chat/login", "{\"username\":\"carol\"}");
	req(chat, "d", "chat/login", "{\"username\":\"dave\"}");
	req(chat, "a", "chat/group/create", "{\"member\":{\"20\":\"bob\",\"30\":\"carol\"}}");
	chat_on_tick(chat, 0);
	fake_clear(&fb);
	return chat;
}

/* Sends `text` from `clientid` into group 11 and runs the tick that delivers it. */
static void say(struct chat *chat, const char *clientid, const char *text)
{
	char payload[2400];
	snprintf(payload, sizeof payload, "{\"message\":\"%s\"}", text);
	req(chat, clientid, "chat/msg/11", payload);
	chat_on_tick(chat, 0);
}

/* How many publishes carry message `text` on `topic`. */
static size_t copies_on(const char *topic, const char *text)
{
	size_t n = 0;
	char needle[2400];
	snprintf(needle, sizeof needle, "\"message\":\"%s\"", text);
	for (size_t i = 0; i < fb.count; i++) {
		n += strcmp(fb.sent[i].topic, topic) == 0 &&
			strstr(fb.sent[i].payload, needle) != NULL;
	}
	return n;
}

TEST_CASE(which_subscriptions_are_granted)
{
	struct chat *chat = three_in_a_group(NULL);
	CHECK_INT(CHAT_ACL_ALLOW, sub(chat, "b", "chat/room/11"));
	CHECK_INT(CHAT_ACL_ALLOW, sub(chat, "d", "chat/room/+"));   /* filtered per delivery */
	CHECK_INT(CHAT_ACL_DENY, sub(chat, "d", "chat/room/11"));   /* not a member */
	CHECK_INT(CHAT_ACL_DENY, sub(chat, "b", "chat/room/21"));   /* no such group */
	CHECK_INT(CHAT_ACL_DENY, sub(chat, "b", "chat/room/10"));   /* a user id */
	CHECK_INT(CHAT_ACL_DENY, sub(chat, "b", "chat/room/#"));    /* only room topics */
	CHECK_INT(CHAT_ACL_DENY, sub(chat, "b", "chat/room/11/#")); /* ditto */
	CHECK_INT(CHAT_ACL_DENY, sub(chat, "b", "$share/g/chat/room/+"));
	CHECK_INT(CHAT_ACL_DENY, sub(chat, "b", "$share/g/chat/room/11"));
	CHECK_INT(CHAT_ACL_DENY, sub(chat, "x", "chat/room/+")); /* not logged in */
	CHECK_INT(CHAT_ACL_ALLOW, sub(chat, "b", "chat/#"));     /* as before: inbox, directory */
	CHECK_INT(CHAT_ACL_ALLOW, sub(chat, "b", "#"));
	/* What is tracked is what the broker holds: the granted room and overlapping filters. */
	const struct chat_session *b = state_session_find(chat, "b");
	CHECK_INT(1, b->room_subs);
	CHECK_INT(2, b->room_overlaps);
	chat_free(chat);
}

TEST_CASE(room_or_inbox_per_session)
{
	struct chat *chat = three_in_a_group(NULL);
	CHECK_INT(CHAT_ACL_ALLOW, sub(chat, "b", "chat/room/11"));
	say(chat, "a", "one");
	/* One publish on the room topic for bob, an inbox copy for carol, nothing for alice. */
	CHECK_INT(1, copies_on("chat/room/11", "one"));
	struct fake_publish *room = fake_find(&fb, "chat/room/11");
	CHECK(room->broadcast && !room->retain);
	CHECK_INT(1, room->qos);
	CHECK_INT(1, copies_on("chat/inbox/c/message", "one"));
	CHECK_INT(0, copies_on("chat/inbox/b/message", "one"));
	CHECK_INT(0, copies_on("chat/inbox/a/message", "one"));
	CHECK_STR("10", fake_field(&fb, "chat/room/11", "sender"));
	CHECK_STR("11", fake_field(&fb, "chat/room/11", "receiver"));
	/* The same id in both. */
	char id[300];
	snprintf(id, sizeof id, "%s", fake_field(&fb, "chat/room/11", "id"));
	CHECK_STR(id, fake_field(&fb, "chat/inbox/c/message", "id"));
	/* READ: bob only (carol has no room subscription, dave is no member, alice neither). */
	CHECK_INT(CHAT_ACL_ALLOW, can_read(chat, "b", "chat/room/11"));
	CHECK_INT(CHAT_ACL_DENY, can_read(chat, "c", "chat/room/11"));
	CHECK_INT(CHAT_ACL_DENY, can_read(chat, "a", "chat/room/11"));
	CHECK_INT(CHAT_ACL_DENY, can_read(chat, "d", "chat/room/11"));
	CHECK_INT(CHAT_ACL_DENY, can_read(chat, "zz", "chat/room/11"));
	fake_clear(&fb);

	/* Nobody subscribed: no room publish at all. */
	unsub(chat, "b", "chat/room/11");
	say(chat, "a", "two");
	CHECK_INT(0, copies_on("chat/room/11", "two"));
	CHECK_INT(1, copies_on("chat/inbox/b/message", "two"));
	CHECK_INT(1, copies_on("chat/inbox/c/message", "two"));
	fake_clear(&fb);

	/* The sending session, subscribed, gets its own message back on the room topic. */
	CHECK_INT(CHAT_ACL_ALLOW, sub(chat, "a", "chat/room/+"));
	say(chat, "a", "three");
	CHECK_INT(1, copies_on("chat/room/11", "three"));
	CHECK_INT(CHAT_ACL_ALLOW, can_read(chat, "a", "chat/room/11"));
	CHECK_INT(2,
		copies_on("chat/inbox/b/message", "three") +
			copies_on("chat/inbox/c/message", "three"));
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(switching_loses_and_doubles_nothing)
{
	struct chat *chat = three_in_a_group(NULL);
	/* Accepted while bob is subscribed, but bob unsubscribes in the same loop pass. */
	CHECK_INT(CHAT_ACL_ALLOW, sub(chat, "b", "chat/room/11"));
	req(chat, "a", "chat/msg/11", "{\"message\":\"m1\"}");
	unsub(chat, "b", "chat/room/11");
	chat_on_tick(chat, 0);
	CHECK_INT(1, copies_on("chat/inbox/b/message", "m1"));
	CHECK_INT(0, copies_on("chat/room/11", "m1"));
	fake_clear(&fb);
	/* Accepted before bob subscribes, in the same pass: the room, once. */
	req(chat, "a", "chat/msg/11", "{\"message\":\"m2\"}");
	CHECK_INT(CHAT_ACL_ALLOW, sub(chat, "b", "chat/room/11"));
	chat_on_tick(chat, 0);
	CHECK_INT(0, copies_on("chat/inbox/b/message", "m2"));
	CHECK_INT(1, copies_on("chat/room/11", "m2"));
	fake_clear(&fb);
	/* Several messages in one pass keep their order. */
	req(chat, "a", "chat/msg/11", "{\"message\":\"m3\"}");
	req(chat, "c", "chat/msg/11", "{\"message\":\"m4\"}");
	chat_on_tick(chat, 0);
	CHECK_INT(2, fake_count(&fb, "chat/room/11"));
	CHECK(strstr(fb.sent[0].payload, "m3") != NULL || strstr(fb.sent[1].payload, "m3") != NULL);
	size_t i3 = 0, i4 = 0;
	for (size_t i = 0; i < fb.count; i++) {
		if (strcmp(fb.sent[i].topic, "chat/room/11") == 0) {
			if (strstr(fb.sent[i].payload, "m3") != NULL) {
				i3 = i;
			} else {
				i4 = i;
			}
		}
	}
	CHECK(i3 < i4);
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(overlapping_filters_read_through_the_inbox)
{
	struct chat *chat = three_in_a_group(NULL);
	CHECK_INT(CHAT_ACL_ALLOW, sub(chat, "b", "chat/room/+"));
	CHECK_INT(CHAT_ACL_ALLOW, sub(chat, "b", "chat/#"));
	say(chat, "a", "o1");
	CHECK_INT(1, copies_on("chat/inbox/b/message", "o1"));
	CHECK_INT(0, copies_on("chat/room/11", "o1"));
	CHECK_INT(CHAT_ACL_DENY, can_read(chat, "b", "chat/room/11"));
	fake_clear(&fb);
	unsub(chat, "b", "chat/#");
	say(chat, "a", "o2");
	CHECK_INT(0, copies_on("chat/inbox/b/message", "o2"));
	CHECK_INT(1, copies_on("chat/room/11", "o2"));
	fake_clear(&fb);
	/* Two room filters matching one group: the broker would deliver twice, so the inbox. */
	CHECK_INT(CHAT_ACL_ALLOW, sub(chat, "b", "chat/room/11"));
	say(chat, "a", "o3");
	CHECK_INT(1, copies_on("chat/inbox/b/message", "o3"));
	CHECK_INT(0, copies_on("chat/room/11", "o3"));
	fake_clear(&fb);
	unsub(chat, "b", "chat/room/+");
	say(chat, "a", "o4");
	CHECK_INT(1, copies_on("chat/room/11", "o4"));
	fake_clear(&fb);
	/* Overlaps outside chat/ by their text count too, shared ones as well. */
	CHECK_INT(CHAT_ACL_ALLOW, sub(chat, "b", "+/room/+"));
	CHECK_INT(CHAT_ACL_DENY, can_read(chat, "b", "chat/room/11"));
	unsub(chat, "b", "+/room/+");
	CHECK_INT(CHAT_ACL_ALLOW, sub(chat, "b", "$share/g/chat/#"));
	CHECK_INT(CHAT_ACL_DENY, can_read(chat, "b", "chat/room/11"));
	unsub(chat, "b", "$share/g/chat/#");
	CHECK_INT(CHAT_ACL_ALLOW, can_read(chat, "b", "chat/room/11"));
	/* A filter that cannot match room topics changes nothing. */
	CHECK_INT(CHAT_ACL_ALLOW, sub(chat, "b", "chat/inbox/b/#"));
	CHECK_INT(CHAT_ACL_ALLOW, can_read(chat, "b", "chat/room/11"));
	chat_free(chat);
}

TEST_CASE(leaving_and_rejoining)
{
	struct chat *chat = three_in_a_group(NULL);
	CHECK_INT(CHAT_ACL_ALLOW, sub(chat, "b", "chat/room/11"));
	req(chat, "b", "chat/group/leave", "{\"groupid\":\"11\"}");
	CHECK_INT(CHAT_ACL_DENY, can_read(chat, "b", "chat/room/11")); /* queued ones too */
	fake_clear(&fb);
	say(chat, "a", "gone");
	CHECK_INT(0, copies_on("chat/room/11", "gone"));
	CHECK_INT(0, copies_on("chat/inbox/b/message", "gone"));
	req(chat, "b", "chat/group/join", "{\"groupid\":\"11\"}");
	CHECK_INT(CHAT_ACL_ALLOW, can_read(chat, "b", "chat/room/11"));
	fake_clear(&fb);
	say(chat, "a", "back");
	CHECK_INT(1, copies_on("chat/room/11", "back"));
	CHECK_INT(0, copies_on("chat/inbox/b/message", "back"));
	/* A message accepted before the group is deleted reaches nobody. */
	fake_clear(&fb);
	req(chat, "a", "chat/msg/11", "{\"message\":\"last\"}");
	req(chat, "a", "chat/group/leave", "{\"groupid\":\"11\"}");
	req(chat, "b", "chat/group/leave", "{\"groupid\":\"11\"}");
	req(chat, "c", "chat/group/leave", "{\"groupid\":\"11\"}");
	chat_on_tick(chat, 0);
	CHECK_INT(0, copies_on("chat/room/11", "last"));
	chat_free(chat);
}

TEST_CASE(disconnects)
{
	struct chat *chat = three_in_a_group(NULL);
	/* A persistent session keeps its room subscription while away; the broker queues. */
	CHECK_INT(CHAT_ACL_ALLOW,
		check_as(chat, "b", false, CHAT_ACCESS_SUBSCRIBE, "chat/room/11"));
	chat_on_disconnect(chat, "b", false, 2, 100);
	say(chat, "a", "away");
	CHECK_INT(1, copies_on("chat/room/11", "away"));
	CHECK_INT(1, (int)state_session_find(chat, "b")->queued);
	CHECK_INT(CHAT_ACL_ALLOW, check_as(chat, "b", false, CHAT_ACCESS_READ, "chat/room/11"));
	fake_clear(&fb);
	/* It comes back with clean start false: still subscribed. */
	CHECK_INT(CHAT_ACL_ALLOW,
		check_as(chat, "b", false, CHAT_ACCESS_SUBSCRIBE, "chat/inbox/b/#"));
	CHECK_INT(1, state_session_find(chat, "b")->room_subs);
	/* A new clean connection: the broker dropped its subscriptions, so does the plugin. */
	chat_on_disconnect(chat, "b", true, 0, 200); /* reported like a takeover */
	CHECK_INT(CHAT_ACL_ALLOW,
		check_as(chat, "b", true, CHAT_ACCESS_SUBSCRIBE, "chat/inbox/b/#"));
	CHECK_INT(0, state_session_find(chat, "b")->room_subs);
	say(chat, "a", "clean");
	CHECK_INT(1, copies_on("chat/inbox/b/message", "clean"));
	fake_clear(&fb);
	/* A clean session with subscriptions ends at its disconnect, its filters with it. */
	CHECK_INT(CHAT_ACL_ALLOW, sub(chat, "c", "chat/room/+"));
	chat_on_disconnect(chat, "c", true, 2, 300);
	const struct chat_session *c = state_session_find(chat, "c");
	CHECK(c == NULL || (c->rooms == NULL && c->room_subs == 0));
	chat_free(chat);
}

static void list_filter(void *ctx, const char *filter, int qos)
{
	char *out = ctx;
	char item[300];
	snprintf(item, sizeof item, "%s@%d ", filter, qos);
	strncat(out, item, 1000 - strlen(out) - 1);
}

TEST_CASE(list_and_restore)
{
	struct chat *chat = three_in_a_group(NULL);
	struct chat_conn conn = { .clientid = "b", .username = "b", .clean = false };
	CHECK_INT(CHAT_ACL_ALLOW,
		chat_acl_check(chat, &conn, CHAT_ACCESS_SUBSCRIBE, "chat/room/11", 2, false, 0));
	CHECK_INT(CHAT_ACL_ALLOW,
		chat_acl_check(chat, &conn, CHAT_ACCESS_SUBSCRIBE, "#", 0, false, 0));
	char listed[1000] = "";
	struct chat_session *b = state_session_find(chat, "b");
	state_session_rooms_each(b, list_filter, listed);
	CHECK(strstr(listed, "chat/room/11@2 ") != NULL);
	CHECK(strstr(listed, "#@0 ") != NULL);
	/* A store restores them with the same function the access check uses. */
	state_session_rooms_clear(chat, b);
	CHECK(b->rooms == NULL);
	CHECK(state_session_room_add(chat, b, "chat/room/11", 2));
	CHECK_INT(2, state_session_room_qos(b, "11"));
	CHECK(state_session_room_add(chat, b, "#", 0));
	CHECK_INT(-1, state_session_room_qos(b, "11"));
	CHECK(!state_session_room_add(chat, b, "sensors/x", 1)); /* not about rooms */
	chat_free(chat);
}

TEST_CASE(budget)
{
	struct chat_config config;
	chat_config_defaults(&config);
	config.delivery_budget = 1000; /* bytes a second */
	config.delivery_burst = 3000;
	struct chat *chat = three_in_a_group(&config);
	char big[1300];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	/* About 1.4 KB of delivery, two inbox copies: 2.8 KB of the 3000. */
	say(chat, "a", big);
	CHECK_INT(2,
		copies_on("chat/inbox/b/message", big) + copies_on("chat/inbox/c/message", big));
	CHECK(fake_find(&fb, "chat/inbox/a/error") == NULL);
	fake_clear(&fb);
	say(chat, "a", big);
	CHECK_STR("rate_limited", fake_field(&fb, "chat/inbox/a/error", "error"));
	CHECK(strstr(fake_field(&fb, "chat/inbox/a/error", "detail"), "delivery_budget") != NULL);
	CHECK_INT(0, copies_on("chat/inbox/b/message", big));
	fake_clear(&fb);
	/* Other users have budgets of their own. */
	say(chat, "b", big);
	CHECK_INT(2,
		copies_on("chat/inbox/a/message", big) + copies_on("chat/inbox/c/message", big));
	fake_clear(&fb);
	/* With a room subscriber the room publish counts once: bob and carol read the room. */
	CHECK_INT(CHAT_ACL_ALLOW, sub(chat, "b", "chat/room/11"));
	CHECK_INT(CHAT_ACL_ALLOW, sub(chat, "c", "chat/room/11"));
	struct chat_conn a = { .clientid = "a", .username = "a", .clean = true };
	char payload[1400];
	snprintf(payload, sizeof payload, "{\"message\":\"%s\"}", big);
	chat_on_publish(chat, &a, "chat/msg/11", payload, strlen(payload), 2000); /* 2 s later */
	chat_on_tick(chat, 2000);
	CHECK(fake_find(&fb, "chat/inbox/a/error") == NULL);
	CHECK_INT(1, copies_on("chat/room/11", big));
	fake_clear(&fb);
	/* A message costing more than the whole burst can never be sent. */
	unsub(chat, "b", "chat/room/11");
	unsub(chat, "c", "chat/room/11");
	chat_on_publish(chat, &a, "chat/msg/11", payload, strlen(payload), 100000);
	CHECK(fake_find(&fb, "chat/inbox/a/error") == NULL);
	char huge[2100];
	memset(huge, 'y', sizeof huge - 1);
	huge[sizeof huge - 1] = '\0';
	char hp[2200];
	snprintf(hp, sizeof hp, "{\"message\":\"%s\"}", huge);
	chat_on_publish(chat, &a, "chat/msg/11", hp, strlen(hp), 200000);
	CHECK_STR("rate_limited", fake_field(&fb, "chat/inbox/a/error", "error"));
	CHECK(strstr(fake_field(&fb, "chat/inbox/a/error", "detail"), "delivery_burst") != NULL);
	fake_clear(&fb);
	/* Direct messages count their copies too: dave's one session, alice's other sessions. */
	chat_on_publish(chat, &a, "chat/msg/40", hp, strlen(hp), 300000);
	CHECK(fake_find(&fb, "chat/inbox/d/message") != NULL);
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(budget_off)
{
	struct chat_config config;
	chat_config_defaults(&config);
	config.delivery_budget = 0;
	config.delivery_burst = 1;
	struct chat *chat = three_in_a_group(&config);
	for (int i = 0; i < 20; i++) {
		say(chat, "a", "free");
	}
	CHECK(fake_find(&fb, "chat/inbox/a/error") == NULL);
	CHECK_INT(40,
		copies_on("chat/inbox/b/message", "free") +
			copies_on("chat/inbox/c/message", "free"));
	fake_clear(&fb);
	chat_free(chat);
}

CHECK_MAIN("test_rooms")
