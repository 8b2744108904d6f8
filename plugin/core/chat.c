/*
 * The core's lifecycle and its reactions to the broker's clock and to connections ending.
 * Requests are in requests.c, access decisions in acl.c, the directory in directory.c.
 */
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "directory.h"
#include "log.h"
#include "names.h"
#include "rooms.h"
#include "state.h"
#include "store.h"
#include "topics.h"

/* Offline users and idle sessions are looked at once a second, not on every tick. */
#define EXPIRY_SCAN_INTERVAL_MS 1000

enum chat_err chat_new(const struct chat_config *config, const struct chat_hooks *hooks,
	struct chat **out)
{
	struct chat *chat = calloc(1, sizeof *chat);
	if (chat == NULL) {
		return CHAT_ERR_INTERNAL;
	}
	chat->config = *config;
	chat->hooks = *hooks;
	if (names_new(&chat->names) != CHAT_OK) {
		free(chat);
		return CHAT_ERR_INTERNAL;
	}
	ids_init(&chat->ids);
	*out = chat;
	return CHAT_OK;
}

void chat_free(struct chat *chat)
{
	if (chat == NULL) {
		return;
	}
	store_stop(chat);
	rooms_free(chat);
	state_clear(chat);
	names_free(chat->names);
	free(chat);
}

bool chat_topic_is_chat(const char *topic)
{
	return topics_is_chat(topic);
}

/* When a session that goes away at `now_ms` ends: after offline_expiry, or never (0). */
static int64_t away_deadline(const struct chat *chat, int64_t now_ms)
{
	int64_t expiry_ms = chat->config.offline_expiry_s * 1000;
	return expiry_ms == 0 ? 0 : now_ms + expiry_ms;
}

void chat_on_disconnect(struct chat *chat, const char *clientid, bool clean, int sub_count,
	int64_t now_ms)
{
	if (clientid == NULL) {
		return; /* a connection that never got as far as a client id */
	}
	int64_t grace_ms = chat->config.reconnect_grace_s * 1000;
	int64_t expiry_ms = chat->config.offline_expiry_s * 1000;
	/*
	 * Remember every client id that disconnects for a while, also one the chat knew nothing
	 * of: Mosquitto publishes a connection's will after this event, and a WRITE check from a
	 * session marked disconnected is that will (docs/protocol.md §5.3).
	 */
	struct chat_session *session = state_session_get(chat, clientid);
	if (session == NULL) {
		return;
	}
	session->disconnected = true;
	session->holder_ok = !chat->config.bind_mqtt_username;
	struct chat_user *user = session->user;

	if (user == NULL) {
		/* Keep what we learned of the client (its inbox QoS) while it may come back. */
		if (clean && sub_count > 0) {
			session->expires_at = now_ms + grace_ms; /* only to recognise its will */
			state_session_inbox_clear(session);
			state_session_rooms_clear(chat, session);
		} else {
			session->expires_at =
				now_ms + (clean || expiry_ms == 0 ? grace_ms : expiry_ms);
		}
		return;
	}
	if (session->presence != PRESENCE_ONLINE) {
		/* The stale old connection of a reconnect or takeover: the session is already away. */
		return;
	}
	if (!clean) {
		state_session_set_presence(chat, session, PRESENCE_OFFLINE,
			away_deadline(chat, now_ms), now_ms);
	} else if (sub_count == 0) {
		/* Mosquitto 2.0 reports a takeover like this: wait to see if the client id is back. */
		state_session_set_presence(chat, session, PRESENCE_GRACE, now_ms + grace_ms,
			now_ms);
	} else {
		/* A clean session's connection ended: the session ends (its user, if it was the last). */
		state_session_end(chat, session);
		session->expires_at = now_ms + grace_ms;
		state_session_inbox_clear(session);
		state_session_rooms_clear(chat, session);
	}
}

static void expire(struct chat *chat, int64_t now_ms)
{
	struct chat_session *session, *stmp;
	HASH_ITER(hh, chat->sessions, session, stmp) {
		if (session->user != NULL) {
			if (session->presence == PRESENCE_ONLINE ||
				session->offline_deadline == 0 ||
				now_ms < session->offline_deadline) {
				continue;
			}
			if (session->presence == PRESENCE_GRACE && session->foreign_holder) {
				/*
				 * Another MQTT user's connection holds the client id (bind_mqtt_username):
				 * the user did not leave, it was pushed out. Its session waits as an away
				 * one; the other account cannot log it out (docs/protocol.md §2.5).
				 */
				state_session_set_presence(chat, session, PRESENCE_OFFLINE,
					away_deadline(chat, now_ms), session->offline_since);
				continue;
			}
			log_printf(&chat->hooks, CHAT_LOG_INFO,
				"chat: session %s of user %s ends after %s", session->clientid,
				session->user->id,
				session->presence == PRESENCE_GRACE ? "its connection ended"
								    : "being offline too long");
			state_session_end(chat, session);
			state_session_delete(chat, session);
		} else if (session->expires_at != 0 && now_ms >= session->expires_at) {
			state_session_delete(chat, session);
		}
	}
}

void chat_on_tick(struct chat *chat, int64_t now_ms)
{
	/* First, while the plugin's view of the subscriptions is the broker's (rooms.h). */
	rooms_flush(chat);
	if (!chat->started) {
		/* Replace whatever snapshot a previous run left retained. */
		chat->started = true;
		chat->directory.contacts_dirty = true;
		chat->next_expiry_scan = now_ms + EXPIRY_SCAN_INTERVAL_MS;
	}
	if (now_ms >= chat->next_expiry_scan) {
		expire(chat, now_ms);
		chat->next_expiry_scan = now_ms + EXPIRY_SCAN_INTERVAL_MS;
	}
	directory_flush(chat, now_ms);
	store_tick(chat, now_ms);
}

enum chat_err chat_state_load(struct chat *chat, int64_t now_ms)
{
	return store_start(chat, now_ms);
}

enum chat_err chat_state_save(struct chat *chat)
{
	store_stop(chat);
	return CHAT_OK;
}

void chat_get_stats(const struct chat *chat, struct chat_stats *out)
{
	state_stats(chat, out);
}
