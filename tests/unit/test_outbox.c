/*
 * Unit tests of the outbox (outbox.h): deliveries by client id at the inbox QoS, counting for
 * users that are away, and the retained directory publishes.
 */
#include "check.h"
#include "fake_state.h"
#include "fake_broker.h"
#include "outbox.h"

static struct fake_broker fb;

TEST_CASE(delivery_by_clientid_at_inbox_qos)
{
	struct chat *chat = fake_chat(&fb, NULL);
	struct chat_user *alice = fake_user(chat, "alice-phone", "10", "alice");
	struct chat_session *session = alice->sessions;

	CHECK_INT(CHAT_OK, outbox_deliver(chat, session, "message", "{\"a\":1}", 7));
	CHECK_INT(1, fb.count);
	struct fake_publish *p = &fb.sent[0];
	CHECK_STR("chat/inbox/alice-phone/message", p->topic);
	CHECK_STR("alice-phone", p->clientid);
	CHECK(!p->broadcast);
	CHECK(!p->retain);
	CHECK_INT(1, p->qos); /* a new session's inbox QoS */
	CHECK_STR("{\"a\":1}", p->payload);
	CHECK_INT(7, p->len);
	fake_clear(&fb);

	for (uint8_t qos = 0; qos <= 2; qos++) {
		session->inbox_qos = qos;
		CHECK_INT(CHAT_OK, outbox_deliver(chat, session, "error", "x", 1));
		CHECK_INT(qos, fb.sent[0].qos);
		CHECK(!fb.sent[0].retain);
		fake_clear(&fb);
	}

	/* A session without a user is delivered to all the same (a failed login's answer). */
	struct chat_session *anon = state_session_get(chat, "b");
	CHECK_INT(CHAT_OK, outbox_deliver(chat, anon, "login-response", "{}", 2));
	CHECK_STR("chat/inbox/b/login-response", fb.sent[0].topic);
	CHECK_STR("b", fb.sent[0].clientid);
	CHECK_INT(0, anon->queued);
	fake_clear(&fb);

	/* A document is rendered and delivered the same way. */
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "k", "v");
	CHECK_INT(CHAT_OK, outbox_reply_doc(chat, session, "new_group", doc));
	cJSON_Delete(doc);
	CHECK_STR("chat/inbox/alice-phone/new_group", fb.sent[0].topic);
	CHECK_STR("{\"k\":\"v\"}", fb.sent[0].payload);
	CHECK_INT(strlen("{\"k\":\"v\"}"), fb.sent[0].len);
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(failed_publish_is_internal)
{
	struct chat *chat = fake_chat(&fb, NULL);
	struct chat_user *alice = fake_user(chat, "a", "10", "alice");
	fb.fail_count = 1;
	CHECK_INT(CHAT_ERR_INTERNAL, outbox_deliver(chat, alice->sessions, "message", "x", 1));
	CHECK_INT(CHAT_OK, outbox_deliver(chat, alice->sessions, "message", "x", 1));
	fb.fail_count = 2;
	CHECK_INT(CHAT_ERR_INTERNAL, outbox_retain_clear(chat, "chat/users/10"));
	cJSON *doc = cJSON_CreateObject();
	CHECK_INT(CHAT_ERR_INTERNAL, outbox_retain_doc(chat, "chat/users/10", doc));
	cJSON_Delete(doc);
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(away_user_deliveries_counted)
{
	struct chat_config config;
	chat_config_defaults(&config);
	config.offline_queue = 3;
	struct chat *chat = fake_chat(&fb, &config);
	struct chat_user *alice = fake_user(chat, "a", "10", "alice");
	struct chat_session *session = alice->sessions;

	/* Online: nothing to count. */
	CHECK_INT(CHAT_OK, outbox_deliver(chat, session, "message", "x", 1));
	CHECK_INT(0, session->queued);

	/* Away: each delivery counts; the broker still gets it, by client id. */
	state_session_set_presence(chat, alice->sessions, PRESENCE_OFFLINE, 0, 0);
	fake_clear(&fb);
	int logs = fb.logs;
	for (int i = 1; i <= 3; i++) {
		CHECK_INT(CHAT_OK, outbox_deliver(chat, session, "message", "x", 1));
		CHECK_INT(i, session->queued);
	}
	CHECK_INT(3, fb.count);
	CHECK_STR("a", fb.sent[2].clientid);
	CHECK_INT(logs, fb.logs); /* at the limit, not past it: no warning yet */

	/* Past the broker's queue: warned once, however many more come. */
	CHECK_INT(CHAT_OK, outbox_deliver(chat, session, "message", "x", 1));
	CHECK_INT(4, session->queued);
	CHECK_INT(logs + 1, fb.logs);
	CHECK_INT(CHAT_LOG_WARNING, fb.last_level);
	CHECK(strstr(fb.last_log, "client a") != NULL);
	CHECK(session->warned & WARN_QUEUE_FULL);
	for (int i = 0; i < 10; i++) {
		CHECK_INT(CHAT_OK, outbox_deliver(chat, session, "message", "x", 1));
	}
	CHECK_INT(14, session->queued);
	CHECK_INT(logs + 1, fb.logs);

	/* In grace the user is away too. */
	state_session_set_presence(chat, alice->sessions, PRESENCE_GRACE, 1000, 0);
	CHECK_INT(CHAT_OK, outbox_deliver(chat, session, "message", "x", 1));
	CHECK_INT(15, session->queued);

	/* At QoS 0 the broker queues nothing for an away client, so nothing is counted. */
	session->inbox_qos = 0;
	CHECK_INT(CHAT_OK, outbox_deliver(chat, session, "message", "x", 1));
	CHECK_INT(15, session->queued);
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(no_queue_limit_no_warning)
{
	struct chat_config config;
	chat_config_defaults(&config);
	config.offline_queue = 0;
	struct chat *chat = fake_chat(&fb, &config);
	struct chat_user *alice = fake_user(chat, "a", "10", "alice");
	state_session_set_presence(chat, alice->sessions, PRESENCE_OFFLINE, 0, 0);
	for (int i = 0; i < 50; i++) {
		CHECK_INT(CHAT_OK, outbox_deliver(chat, alice->sessions, "message", "x", 1));
	}
	CHECK_INT(50, alice->sessions->queued);
	CHECK_INT(0, fb.logs);
	fake_clear(&fb);
	chat_free(chat);
}

TEST_CASE(retained_docs)
{
	struct chat *chat = fake_chat(&fb, NULL);
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "userid", "10");
	CHECK_INT(CHAT_OK, outbox_retain_doc(chat, "chat/users/10", doc));
	cJSON_Delete(doc);
	CHECK_INT(1, fb.count);
	struct fake_publish *p = &fb.sent[0];
	CHECK_STR("chat/users/10", p->topic);
	CHECK_STR("{\"userid\":\"10\"}", p->payload);
	CHECK(p->broadcast); /* clientid NULL: the normal fan-out, with READ checks */
	CHECK(p->retain);
	CHECK_INT(1, p->qos);
	fake_clear(&fb);

	CHECK_INT(CHAT_OK, outbox_retain_clear(chat, "chat/groups/11"));
	CHECK_INT(1, fb.count);
	p = &fb.sent[0];
	CHECK_STR("chat/groups/11", p->topic);
	CHECK_INT(0, p->len);
	CHECK(p->broadcast);
	CHECK(p->retain);
	CHECK_INT(1, p->qos);
	fake_clear(&fb);
	chat_free(chat);
}

CHECK_MAIN("test_outbox")
