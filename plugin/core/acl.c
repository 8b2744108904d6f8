/*
 * Access decisions for chat/ topics (docs/protocol.md §5).
 *
 * Readable by client C: its own inbox chat/inbox/C/..., and the directory (chat/contacts,
 * chat/users/<id>, chat/groups/<id>). Writable by everyone: the request topics, which the core
 * then authorises request by request. Nothing else under chat/ is readable or writable. A
 * subscription is granted when its filter can match at least one topic the client may read;
 * deliveries are still checked one by one, so `#` receives only what its subscriber may read.
 */
#include <string.h>

#include "chat.h"
#include "log.h"
#include "state.h"
#include "topics.h"

/* Brings back a user whose connection ended without subscriptions: it was a takeover. */
static void revive(struct chat *chat, struct chat_session *session)
{
	if (session != NULL && session->user != NULL && session->user->presence == PRESENCE_GRACE) {
		state_user_set_presence(chat, session->user, PRESENCE_ONLINE, 0);
		log_printf(&chat->hooks, CHAT_LOG_DEBUG, "chat: client %s is back; user %s continues",
			session->clientid, session->user->id);
	}
	if (session != NULL) {
		session->expires_at = 0;
	}
}

/*
 * Denies, logging the first denial of each client only. A client without a chat session gets a
 * session record for that, which goes when its connection ends like any other.
 */
static enum chat_acl_result deny(struct chat *chat, const char *clientid, const char *what,
	const char *topic)
{
	struct chat_session *session = state_session_get(chat, clientid);
	if (session == NULL || !(session->warned & WARN_DENIED)) {
		log_printf(&chat->hooks, CHAT_LOG_NOTICE,
			"chat: denied %s of %s by client %s; further denials for this client are not "
			"logged",
			what, topic, clientid);
		if (session != NULL) {
			session->warned |= WARN_DENIED;
		}
	}
	return CHAT_ACL_DENY;
}

/*
 * Outside chat/. With defer every topic goes to the broker's other mechanisms. With allow the
 * plugin answers as a broker without access control would, except for `$` topics: it never
 * decides $CONTROL/ (dynamic security's) or any other `$` topic, and allows only reading
 * $SYS/, which a broker without access control lets everyone read (Mosquitto itself refuses
 * writes to $SYS/ before any plugin is asked, security.c acl__check_dollar).
 */
static enum chat_acl_result outside_chat(const struct chat *chat, enum chat_access access,
	const char *topic)
{
	if (chat->config.outside_chat != CHAT_OUTSIDE_ALLOW) {
		return CHAT_ACL_DEFER;
	}
	if (topic != NULL && topic[0] == '$') {
		bool reading = access == CHAT_ACCESS_READ || access == CHAT_ACCESS_SUBSCRIBE ||
			access == CHAT_ACCESS_UNSUBSCRIBE;
		return reading && strncmp(topic, "$SYS/", 5) == 0 ? CHAT_ACL_ALLOW : CHAT_ACL_DEFER;
	}
	return CHAT_ACL_ALLOW;
}

enum chat_acl_result chat_acl_check(struct chat *chat, const char *clientid,
	enum chat_access access, const char *topic, int qos)
{
	/*
	 * A client whose connection ended without subscriptions is back if any check comes from its
	 * client id: Mosquitto 2.0 reports a takeover as such an end. Only looked up while someone
	 * is in that state, so ordinary traffic pays nothing.
	 */
	if (chat->grace_users > 0 && clientid != NULL) {
		revive(chat, state_session_find(chat, clientid));
	}
	if (topic != NULL && (access == CHAT_ACCESS_SUBSCRIBE || access == CHAT_ACCESS_UNSUBSCRIBE)) {
		/* $share/<group>/<filter> is judged by its <filter> (MQTT 5 §4.8.2). */
		topic = topics_unshare(topic);
	}
	if (!topics_is_chat(topic)) {
		return outside_chat(chat, access, topic);
	}
	if (clientid == NULL) {
		return CHAT_ACL_DENY;
	}

	switch (access) {
	case CHAT_ACCESS_READ:
		/* Runs for every delivery, also to offline persistent sessions: never changes state. */
		if (topics_is_directory(topic) ||
			(validate_clientid(clientid) && topics_is_own_inbox(topic, clientid))) {
			return CHAT_ACL_ALLOW;
		}
		return CHAT_ACL_DENY;

	case CHAT_ACCESS_WRITE:
		if (topics_is_request(topic)) {
			revive(chat, state_session_find(chat, clientid));
			return CHAT_ACL_ALLOW;
		}
		return deny(chat, clientid, "publish", topic);

	case CHAT_ACCESS_SUBSCRIBE: {
		bool covers_inbox =
			validate_clientid(clientid) && topics_filter_meets_inbox(topic, clientid);
		if (!covers_inbox && !topics_filter_meets_directory(topic)) {
			return deny(chat, clientid, "subscription", topic);
		}
		struct chat_session *session =
			covers_inbox ? state_session_get(chat, clientid) : state_session_find(chat, clientid);
		if (session != NULL && covers_inbox) {
			(void)state_session_inbox_subscribe(session, topic, qos);
		}
		revive(chat, session);
		return CHAT_ACL_ALLOW;
	}

	case CHAT_ACCESS_UNSUBSCRIBE: {
		struct chat_session *session = state_session_find(chat, clientid);
		if (session != NULL) {
			state_session_inbox_unsubscribe(session, topic);
		}
		return CHAT_ACL_ALLOW;
	}
	}
	return CHAT_ACL_DENY;
}
