/*
 * Access decisions for chat/ topics (DESIGN.md section 5).
 *
 * Readable by client C: its own inbox chat/inbox/C/..., and the directory (chat/contacts,
 * chat/users/<id>, chat/groups/<id>). Writable by everyone: the request topics, which the core
 * then authorises request by request. Nothing else under chat/ is readable or writable. A
 * subscription is granted when its filter can match at least one topic the client may read;
 * deliveries are still checked one by one, so `#` receives only what its subscriber may read.
 */
#include <string.h>

#include "state.h"

/* Copies the next level's bounds; returns false when there are no more levels. */
static bool next_level(const char **cursor, const char **start, size_t *len)
{
	if (*cursor == NULL) {
		return false;
	}
	const char *slash = strchr(*cursor, '/');
	*start = *cursor;
	if (slash == NULL) {
		*len = strlen(*cursor);
		*cursor = NULL;
	} else {
		*len = (size_t)(slash - *cursor);
		*cursor = slash + 1;
	}
	return true;
}

static bool level_is(const char *start, size_t len, const char *word)
{
	return strlen(word) == len && memcmp(start, word, len) == 0;
}

/*
 * True when some topic matches both `filter` and `pattern` (both may hold + and #). `pattern`'s
 * literal levels are given separately from the final one so that a client id can be spliced in
 * without building a string.
 */
static bool filters_intersect(const char *filter, const char *const *pattern, size_t count)
{
	const char *cursor = filter;
	for (size_t i = 0; i < count; i++) {
		const char *start;
		size_t len;
		if (!next_level(&cursor, &start, &len)) {
			/* The filter ended first: "a/b" meets "a/b/#" (# matches the parent too). */
			return strcmp(pattern[i], "#") == 0;
		}
		if (level_is(start, len, "#") || strcmp(pattern[i], "#") == 0) {
			return true;
		}
		if (!level_is(start, len, "+") && strcmp(pattern[i], "+") != 0 &&
			!level_is(start, len, pattern[i])) {
			return false;
		}
	}
	const char *start;
	size_t len;
	if (!next_level(&cursor, &start, &len)) {
		return true;
	}
	/* The pattern ended first: only a trailing "#" in the filter can still match it. */
	return level_is(start, len, "#") && cursor == NULL;
}

static bool is_directory_topic(const char *topic)
{
	if (strcmp(topic, "chat/contacts") == 0) {
		return true;
	}
	const char *rest = NULL;
	if (strncmp(topic, "chat/users/", 11) == 0) {
		rest = topic + 11;
	} else if (strncmp(topic, "chat/groups/", 12) == 0) {
		rest = topic + 12;
	}
	return rest != NULL && *rest != '\0' && strchr(rest, '/') == NULL;
}

/* True when `topic` is inside chat/inbox/<clientid>/. */
static bool is_own_inbox(const char *topic, const char *clientid)
{
	if (strncmp(topic, "chat/inbox/", 11) != 0) {
		return false;
	}
	size_t len = strlen(clientid);
	return strncmp(topic + 11, clientid, len) == 0 && topic[11 + len] == '/';
}

bool chat_topic_is_request(const char *topic)
{
	return strcmp(topic, "chat/login") == 0 || strcmp(topic, "chat/logout") == 0 ||
		strncmp(topic, "chat/msg/", 9) == 0 || strcmp(topic, "chat/group/create") == 0 ||
		strcmp(topic, "chat/group/join") == 0 || strcmp(topic, "chat/group/leave") == 0;
}

/* Whether a subscription to `filter` can deliver anything the client may read. */
static bool subscribe_allowed(const char *filter, const char *clientid, bool valid_id,
	bool *covers_inbox)
{
	static const char *const contacts[] = { "chat", "contacts" };
	static const char *const users[] = { "chat", "users", "+" };
	static const char *const groups[] = { "chat", "groups", "+" };
	/* Readable inbox topics have at least one level after the client id. */
	const char *inbox[] = { "chat", "inbox", clientid, "+", "#" };

	*covers_inbox = valid_id && filters_intersect(filter, inbox, 5);
	return *covers_inbox || filters_intersect(filter, contacts, 2) ||
		filters_intersect(filter, users, 3) || filters_intersect(filter, groups, 3);
}

/* Brings back a user whose connection ended without subscriptions: it was a takeover. */
static void revive(struct chat *chat, struct chat_session *session)
{
	if (session != NULL && session->user != NULL && session->user->presence == PRESENCE_GRACE) {
		user_set_presence(chat, session->user, PRESENCE_ONLINE, 0);
		chat_logf(chat, CHAT_LOG_DEBUG, "chat: client %s is back; user %s continues",
			session->clientid, session->user->id);
	}
	if (session != NULL) {
		session->expires_at = 0;
	}
}

static enum chat_acl_result deny(struct chat *chat, const char *clientid, const char *what,
	const char *topic)
{
	struct chat_session *session = session_find(chat, clientid);
	if (session == NULL || !(session->warned & WARN_DENIED)) {
		chat_logf(chat, CHAT_LOG_NOTICE, "chat: denied %s of %s by client %s", what, topic,
			clientid);
		if (session != NULL) {
			session->warned |= WARN_DENIED;
		}
	}
	return CHAT_ACL_DENY;
}

enum chat_acl_result chat_acl_check(struct chat *chat, const char *clientid,
	enum chat_access access, const char *topic, int qos, int64_t now_ms)
{
	(void)now_ms;
	/*
	 * A client whose connection ended without subscriptions is back if any check comes from its
	 * client id: Mosquitto 2.0 reports a takeover as such an end. Only looked up while someone
	 * is in that state, so ordinary traffic pays nothing.
	 */
	if (chat->grace_users > 0 && clientid != NULL) {
		revive(chat, session_find(chat, clientid));
	}
	if (topic == NULL || strncmp(topic, "chat/", 5) != 0) {
		return chat->config.outside_chat == CHAT_OUTSIDE_ALLOW ? CHAT_ACL_ALLOW
								       : CHAT_ACL_DEFER;
	}
	if (clientid == NULL) {
		return CHAT_ACL_DENY;
	}

	switch (access) {
	case CHAT_ACCESS_READ:
		/* Runs for every delivery, also to offline persistent sessions: never changes state. */
		if (is_directory_topic(topic) ||
			(chat_clientid_valid(clientid) && is_own_inbox(topic, clientid))) {
			return CHAT_ACL_ALLOW;
		}
		return CHAT_ACL_DENY;

	case CHAT_ACCESS_WRITE:
		if (chat_topic_is_request(topic)) {
			revive(chat, session_find(chat, clientid));
			return CHAT_ACL_ALLOW;
		}
		return deny(chat, clientid, "publish", topic);

	case CHAT_ACCESS_SUBSCRIBE: {
		bool valid_id = chat_clientid_valid(clientid);
		bool covers_inbox = false;
		if (!subscribe_allowed(topic, clientid, valid_id, &covers_inbox)) {
			return deny(chat, clientid, "subscription", topic);
		}
		struct chat_session *session =
			covers_inbox ? session_get(chat, clientid) : session_find(chat, clientid);
		if (session != NULL && covers_inbox) {
			session->inbox_qos = (uint8_t)(qos >= 2 ? 2 : (qos < 0 ? 0 : qos));
		}
		revive(chat, session);
		return CHAT_ACL_ALLOW;
	}

	case CHAT_ACCESS_UNSUBSCRIBE:
		return CHAT_ACL_ALLOW;
	}
	return CHAT_ACL_DENY;
}
