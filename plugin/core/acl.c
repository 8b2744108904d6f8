/*
 * Access decisions for chat/ topics (docs/protocol.md §5).
 *
 * Readable by client C: its own inbox chat/inbox/C/..., the directory (chat/contacts,
 * chat/users/<id>, chat/groups/<id>), and chat/room/<gid> while C's user is a member of the
 * group and C holds a room subscription for it (§3.5). Writable by everyone: the request
 * topics, which the core then authorises request by request. Nothing else under chat/ is
 * readable or writable. A subscription is granted when its filter can match at least one topic
 * the client may read; deliveries are still checked one by one, so `#` receives only what its
 * subscriber may read. SUBSCRIBE and UNSUBSCRIBE checks also keep the session's set of filters
 * that can match room topics (state.h), which decides between room and inbox (rooms.h).
 */
#include <string.h>

#include "chat.h"
#include "log.h"
#include "state.h"
#include "topics.h"

/*
 * A check other than a WRITE came from the session's client id, so its connection is live
 * (a will's only check is a WRITE). A session whose connection ended without subscriptions is
 * back: Mosquitto 2.0 reports a takeover as such an end. With bind_mqtt_username only a
 * connection of the session's own MQTT user brings it back.
 */
static void seen(struct chat *chat, struct chat_session *session, const struct chat_conn *conn)
{
	if (session == NULL) {
		return;
	}
	state_session_seen_conn(chat, session, conn->username, conn->clean);
	if (session->user != NULL && session->presence == PRESENCE_GRACE && session->holder_ok) {
		state_session_set_presence(chat, session, PRESENCE_ONLINE, 0, 0);
		log_printf(&chat->hooks, CHAT_LOG_DEBUG,
			"chat: client %s is back; user %s continues", session->clientid,
			session->user->id);
	}
	session->expires_at = 0;
}

/*
 * With bind_mqtt_username, whether the connection of MQTT user `username` may read what is
 * addressed to the user of client id `clientid` (docs/protocol.md §2.5): only that user's own.
 */
static bool holds_own_session(struct chat *chat, const char *clientid, const char *username)
{
	if (!chat->config.bind_mqtt_username) {
		return true;
	}
	/*
	 * A client id whose session ended (offline expiry, logout) may still have a queue in the
	 * broker: nothing in it is for a connection the plugin cannot tie to the user, and every
	 * reply the plugin sends without a user goes by client id, past this check.
	 */
	const struct chat_session *session = state_session_find(chat, clientid);
	return session != NULL && session->user != NULL && username != NULL &&
		strcmp(username, session->user->username) == 0;
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

/*
 * A directory record is delivered only while the chat knows its user or group. A retained record
 * of one it does not know is a ghost of an earlier run (the broker's own persistence kept it, the
 * chat's store did not: no database, or a crash before the record's batch was committed); it is
 * never delivered, and the directory clears it on the next tick (docs/protocol.md §9.5). Empty
 * payloads, which clear records, always pass.
 */
static enum chat_acl_result read_directory(struct chat *chat, const char *topic, size_t len)
{
	const char *id = topics_directory_id(topic);
	if (id == NULL || len == 0) {
		return CHAT_ACL_ALLOW;
	}
	bool user = ids_is_user(id);
	if (user ? state_user_find(chat, id) != NULL
		 : ids_is_group(id) && state_group_find(chat, id) != NULL) {
		return CHAT_ACL_ALLOW;
	}
	if (user || ids_is_group(id)) {
		state_note_changed(chat, id); /* the next flush publishes its empty record */
	}
	return CHAT_ACL_DENY;
}

/*
 * READ of chat/room/<groupid>: a member's session that holds a room subscription for the group
 * (exactly one filter matching it, which is chat/room/<gid> or chat/room/+), and with
 * bind_mqtt_username only the user's own connection. Checked for every delivery, queued ones
 * included, so a member who leaves stops receiving at once.
 */
static bool may_read_room(struct chat *chat, const struct chat_conn *conn, const char *groupid)
{
	const struct chat_session *session = state_session_find(chat, conn->clientid);
	if (session == NULL || session->user == NULL || !session->valid_id ||
		state_session_room_qos(session, groupid) < 0) {
		return false;
	}
	/* One look-up in the user's own (small) table of memberships, on every delivery. */
	return state_user_membership(session->user, groupid) != NULL &&
		(!chat->config.bind_mqtt_username ||
			(conn->username != NULL &&
				strcmp(conn->username, session->user->username) == 0));
}

/*
 * SUBSCRIBE to a room subscription filter (`filter` as subscribed, not shared): granted to a
 * logged-in session, chat/room/<gid> only to a member of the group, and tracked.
 */
static enum chat_acl_result subscribe_room(struct chat *chat, const struct chat_conn *conn,
	const char *filter, enum topics_room_filter kind, const char *groupid, int qos)
{
	struct chat_session *session = state_session_find(chat, conn->clientid);
	if (session == NULL || session->user == NULL || !session->valid_id ||
		!holds_own_session(chat, conn->clientid, conn->username)) {
		return deny(chat, conn->clientid, "room subscription (log in first)", filter);
	}
	if (kind == TOPICS_ROOM_ONE) {
		struct chat_group *group = state_group_find(chat, groupid);
		if (group == NULL || state_member_find(group, session->user) == NULL) {
			return deny(chat, conn->clientid, "room subscription (not a member)",
				filter);
		}
	}
	if (!state_session_room_add(chat, session, filter, qos)) {
		return deny(chat, conn->clientid, "room subscription (too many)", filter);
	}
	return CHAT_ACL_ALLOW;
}

/*
 * A granted subscription that is not a room subscription but can match room topics (#, chat/#,
 * $share/g/chat/room/+ ...) is tracked too: while the session holds one, it reads its groups
 * through its inbox and the READ check keeps room topics from it, so that no message arrives
 * twice. One that cannot be tracked is refused instead.
 */
static enum chat_acl_result track_overlap(struct chat *chat, const struct chat_conn *conn,
	const char *filter, int qos, enum chat_acl_result decision)
{
	if (decision == CHAT_ACL_DENY || conn->clientid == NULL) {
		return decision;
	}
	struct chat_session *session = state_session_get(chat, conn->clientid);
	if (session == NULL || !state_session_room_add(chat, session, filter, qos)) {
		return deny(chat, conn->clientid, "subscription (too many overlapping room topics)",
			filter);
	}
	return decision;
}

enum chat_acl_result chat_acl_check(struct chat *chat, const struct chat_conn *conn,
	enum chat_access access, const char *topic, int qos, bool retain, size_t payload_len)
{
	const char *clientid = conn->clientid;
	const char *username = conn->username;
	/*
	 * Any check but a WRITE shows the connection is live. For READ (one per delivery) the
	 * session is only looked up while some session is in its grace period, so that ordinary
	 * deliveries pay nothing.
	 */
	if (clientid != NULL &&
		(access == CHAT_ACCESS_SUBSCRIBE || access == CHAT_ACCESS_UNSUBSCRIBE ||
			(access == CHAT_ACCESS_READ && chat->grace_sessions > 0))) {
		seen(chat, state_session_find(chat, clientid), conn);
	}
	const char *filter = topic; /* as subscribed, $share/<group>/ included */
	enum topics_room_filter room = TOPICS_ROOM_NONE;
	const char *groupid = NULL;
	if (topic != NULL &&
		(access == CHAT_ACCESS_SUBSCRIBE || access == CHAT_ACCESS_UNSUBSCRIBE)) {
		room = topics_room_filter(topic, &groupid);
		if (access == CHAT_ACCESS_UNSUBSCRIBE && room != TOPICS_ROOM_NONE &&
			clientid != NULL) {
			struct chat_session *session = state_session_find(chat, clientid);
			if (session != NULL) {
				state_session_room_remove(chat, session, topic);
			}
		}
		/* $share/<group>/<filter> is judged by its <filter> (MQTT 5 §4.8.2). */
		topic = topics_unshare(topic);
	}
	if (!topics_is_chat(topic)) {
		enum chat_acl_result decision = outside_chat(chat, access, topic);
		return access == CHAT_ACCESS_SUBSCRIBE && room == TOPICS_ROOM_OVERLAP
			? track_overlap(chat, conn, filter, qos, decision)
			: decision;
	}
	if (clientid == NULL) {
		return CHAT_ACL_DENY;
	}

	switch (access) {
	case CHAT_ACCESS_READ:
		/* Runs for every delivery, also to offline persistent sessions. */
		if (topics_is_directory(topic)) {
			return read_directory(chat, topic, payload_len);
		}
		if (topics_is_room(topic, &groupid)) {
			return may_read_room(chat, conn, groupid) ? CHAT_ACL_ALLOW : CHAT_ACL_DENY;
		}
		if (validate_clientid(clientid) && topics_is_own_inbox(topic, clientid) &&
			holds_own_session(chat, clientid, username)) {
			return CHAT_ACL_ALLOW;
		}
		return CHAT_ACL_DENY;

	case CHAT_ACCESS_WRITE: {
		if (!topics_is_request(topic)) {
			return deny(chat, clientid, "publish", topic);
		}
		/*
		 * A WRITE check from a session whose connection ended, with nothing from it since, is
		 * its will (Mosquitto publishes wills after the DISCONNECT event; MESSAGE does not fire
		 * for them, so a will is never acted on). Requests are never retained: a retained will
		 * is refused here, or the broker would store it.
		 */
		if (retain) {
			/* Only a retained PUBLISH costs a look-up: requests are rarely retained. */
			const struct chat_session *session = state_session_find(chat, clientid);
			if (session != NULL && session->disconnected) {
				return deny(chat, clientid, "retained will", topic);
			}
		}
		return CHAT_ACL_ALLOW;
	}

	case CHAT_ACCESS_SUBSCRIBE: {
		if (room == TOPICS_ROOM_ONE || room == TOPICS_ROOM_ALL) {
			return subscribe_room(chat, conn, filter, room, groupid, qos);
		}
		bool covers_inbox =
			validate_clientid(clientid) && topics_filter_meets_inbox(topic, clientid);
		if (!covers_inbox && !topics_filter_meets_directory(topic)) {
			return deny(chat, clientid, "subscription", filter);
		}
		struct chat_session *session = covers_inbox ? state_session_get(chat, clientid)
							    : state_session_find(chat, clientid);
		if (session != NULL && covers_inbox) {
			(void)state_session_inbox_subscribe(chat, session, topic, qos);
		}
		seen(chat, session, conn);
		return room == TOPICS_ROOM_OVERLAP
			? track_overlap(chat, conn, filter, qos, CHAT_ACL_ALLOW)
			: CHAT_ACL_ALLOW;
	}

	case CHAT_ACCESS_UNSUBSCRIBE: {
		struct chat_session *session = state_session_find(chat, clientid);
		if (session != NULL) {
			state_session_inbox_unsubscribe(chat, session, topic);
		}
		seen(chat, session, conn);
		return CHAT_ACL_ALLOW;
	}
	}
	return CHAT_ACL_DENY;
}
