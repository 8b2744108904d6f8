#include "outbox.h"

#include "codec.h"
#include "log.h"
#include "topics.h"

void outbox_count_away(struct chat *chat, struct chat_session *session, int qos)
{
	if (session->user != NULL && session->presence != PRESENCE_ONLINE && qos > 0) {
		/*
		 * The broker queues this for the away client, but silently drops what exceeds its
		 * max_queued_messages; count, so the user can be told when it logs in again.
		 */
		session->queued++;
		if (chat->config.offline_queue > 0 &&
			session->queued > chat->config.offline_queue &&
			!(session->warned & WARN_QUEUE_FULL)) {
			session->warned |= WARN_QUEUE_FULL;
			log_printf(&chat->hooks, CHAT_LOG_WARNING,
				"chat: client %s is away with more than %lld queued deliveries; the broker "
				"drops the rest (max_queued_messages) and the user is told at its next login",
				session->clientid, (long long)chat->config.offline_queue);
		}
	}
}

static enum chat_err deliver(struct chat *chat, struct chat_session *session, const char *kind,
	const char *text, size_t len, bool reply)
{
	outbox_count_away(chat, session, session->inbox_qos);
	char topic[TOPICS_INBOX_MAX];
	topics_inbox(topic, session->clientid, kind);
	/*
	 * A delivery by client id goes into that client id's queue with no READ check (Mosquitto's
	 * plugin_public.c). With bind_mqtt_username, while the connection holding the client id
	 * is not known to be the user's (it is away, or another MQTT user took it over), the
	 * delivery goes through the normal fan-out instead, where the READ check of every
	 * delivery, queued ones included, admits only the user's own connection.
	 */
	const char *to = session->holder_ok || reply ? session->clientid : NULL;
	int rc = chat->hooks.publish(chat->hooks.ctx, to, topic, text, len, session->inbox_qos,
		false);
	return rc == 0 ? CHAT_OK : CHAT_ERR_INTERNAL;
}

enum chat_err outbox_deliver(struct chat *chat, struct chat_session *session, const char *kind,
	const char *text, size_t len)
{
	return deliver(chat, session, kind, text, len, false);
}

enum chat_err outbox_room(struct chat *chat, const char *groupid, const char *text, size_t len)
{
	char topic[TOPICS_ROOM_MAX];
	topics_room(topic, groupid);
	int rc = chat->hooks.publish(chat->hooks.ctx, NULL, topic, text, len, 1, false);
	return rc == 0 ? CHAT_OK : CHAT_ERR_INTERNAL;
}

enum chat_err outbox_reply_doc(struct chat *chat, struct chat_session *session, const char *kind,
	const cJSON *doc)
{
	size_t len = 0;
	char *text = codec_render(doc, &len);
	if (text == NULL) {
		return CHAT_ERR_INTERNAL;
	}
	enum chat_err rc = deliver(chat, session, kind, text, len, true);
	codec_free(text);
	return rc;
}

enum chat_err outbox_retain_doc(struct chat *chat, const char *topic, const cJSON *doc)
{
	size_t len = 0;
	char *text = codec_render(doc, &len);
	if (text == NULL) {
		return CHAT_ERR_INTERNAL;
	}
	int rc = chat->hooks.publish(chat->hooks.ctx, NULL, topic, text, len, 1, true);
	codec_free(text);
	return rc == 0 ? CHAT_OK : CHAT_ERR_INTERNAL;
}

enum chat_err outbox_retain_clear(struct chat *chat, const char *topic)
{
	int rc = chat->hooks.publish(chat->hooks.ctx, NULL, topic, "", 0, 1, true);
	return rc == 0 ? CHAT_OK : CHAT_ERR_INTERNAL;
}
