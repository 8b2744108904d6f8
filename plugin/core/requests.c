/*
 * Requests: parsing a publish on a request topic, authorising it against the sender's session,
 * applying it through the type API (state.c) and answering through the client's inbox.
 *
 * Every handler either succeeds completely or returns an error having changed nothing; the
 * error is then answered on chat/inbox/<client>/error (and, for login, in login-response).
 */
#define _GNU_SOURCE /* memmem */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "budget.h"
#include "chat.h"
#include "codec.h"
#include "log.h"
#include "names.h"
#include "outbox.h"
#include "rooms.h"
#include "state.h"
#include "store.h"
#include "tokens.h"
#include "topics.h"

/* Requests other than messages are small; anything larger is refused before parsing. */
#define REQUEST_MAX_BYTES 65536

struct request {
	struct chat *chat;
	const struct chat_conn *conn;
	struct chat_session *session;
	enum request_kind kind;
	const char *room; /* the topic level after chat/msg/ (may be empty or hold '/') */
	int64_t now_ms;   /* monotonic */
	cJSON *root;
	const char *qid;    /* a history request's qid, echoed in its error */
	const char *detail; /* why the request failed, for the client */
	char detail_buf[320];
};

static enum chat_err fail(struct request *req, enum chat_err err, const char *detail)
{
	req->detail = detail;
	return err;
}

static enum chat_err failf(struct request *req, enum chat_err err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum chat_err failf(struct request *req, enum chat_err err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(req->detail_buf, sizeof req->detail_buf, fmt, ap);
	va_end(ap);
	req->detail = req->detail_buf;
	return err;
}

/* ===================================================================================== */
/* Deliveries                                                                            */
/* ===================================================================================== */

/*
 * Takes the next number of `counter` into *out. With a database an id is issued only once the
 * store has committed its reservation (store.h); the tick keeps reservations ahead, so only a
 * database that stalls for many seconds makes this fail, and the request is refused rather
 * than waiting for the disk in the MESSAGE callback.
 */
static enum chat_err take_id(struct request *req, struct id_counter *counter, uint64_t *out)
{
	if (!store_id_ready(req->chat, counter)) {
		return fail(req, CHAT_ERR_RATE_LIMITED,
			"the chat's database is behind; try again in a moment");
	}
	*out = ids_take(counter);
	return CHAT_OK;
}

/* Delivers `text` to every session of `user` but `except` (may be NULL). */
static enum chat_err deliver_to_user(struct chat *chat, const struct chat_user *user,
	const struct chat_session *except, const char *kind, const char *text, size_t len)
{
	enum chat_err rc = CHAT_OK;
	struct chat_session *session;
	for (session = user->sessions; session != NULL; session = session->next_of_user) {
		if (session != except &&
			outbox_deliver(chat, session, kind, text, len) != CHAT_OK) {
			rc = CHAT_ERR_INTERNAL;
		}
	}
	return rc;
}

/* Sends a group's new_group record to every member, or only to `only` when it is not NULL. */
static enum chat_err announce_group(struct chat *chat, const struct chat_group *group,
	const struct chat_user *only)
{
	cJSON *doc = codec_group(group);
	size_t len = 0;
	char *text = doc != NULL ? codec_render(doc, &len) : NULL;
	cJSON_Delete(doc);
	if (text == NULL) {
		return CHAT_ERR_INTERNAL;
	}
	enum chat_err rc = CHAT_OK;
	const struct chat_member *member;
	for (member = group->members; member != NULL; member = member->hh_group.next) {
		if ((only == NULL || member->user == only) &&
			deliver_to_user(chat, member->user, NULL, "new_group", text, len) !=
				CHAT_OK) {
			rc = CHAT_ERR_INTERNAL;
		}
	}
	codec_free(text);
	return rc;
}

static void reply_error(struct request *req, enum chat_err err)
{
	struct chat *chat = req->chat;
	struct chat_session *session = req->session;
	const char *code = chat_err_str(err);
	const char *detail = req->detail != NULL ? req->detail : code;

	if (!(session->warned & WARN_BAD_REQUEST)) {
		session->warned |= WARN_BAD_REQUEST;
		log_printf(&chat->hooks, err == CHAT_ERR_INTERNAL ? CHAT_LOG_ERR : CHAT_LOG_NOTICE,
			"chat: refused %s from client %s: %s (%s); further refusals for this client "
			"are not logged",
			topics_action(req->kind), session->clientid, code, detail);
	}

	cJSON *doc = codec_error_qid(topics_action(req->kind), code, detail, req->qid);
	if (doc != NULL) {
		(void)outbox_reply_doc(chat, session, "error", doc);
	}
	cJSON_Delete(doc);

	if (req->kind == REQ_LOGIN) {
		doc = codec_login_failure(code, detail);
		if (doc != NULL) {
			(void)outbox_reply_doc(chat, session, "login-response", doc);
		}
		cJSON_Delete(doc);
	}
}

/* ===================================================================================== */
/* Field access                                                                          */
/* ===================================================================================== */

/* The field `name`, or NULL when it is absent or JSON null (both count as absent). */
static const cJSON *field(const cJSON *root, const char *name)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);
	return cJSON_IsNull(item) ? NULL : item;
}

/* A required string field; on failure sets the request's detail and returns NULL. */
static const char *string_field(struct request *req, const char *name)
{
	const cJSON *item = field(req->root, name);
	if (!cJSON_IsString(item)) {
		failf(req, CHAT_ERR_INVALID_REQUEST, "field '%s' must be a string", name);
		return NULL;
	}
	return item->valuestring;
}

/* ===================================================================================== */
/* Handlers                                                                              */
/* ===================================================================================== */

/*
 * Checks the proof that the login of a held username comes from its user (docs/protocol.md
 * §2.6), and makes room among its sessions. With bind_mqtt_username the broker authenticated
 * the name (checked before this); otherwise the request must carry the token of the user's
 * first login. A wrong or missing token is username_taken, as for a probe of any held name.
 */
static enum chat_err join_held_user(struct request *req, struct chat_user *holder,
	const char *username, struct chat_session **evict)
{
	struct chat *chat = req->chat;
	if (chat->config.bind_mqtt_username) {
		/*
		 * The broker authenticated exactly this name: a look-alike held by another MQTT user
		 * (MQTT user "Alice" for chat user "alice") is someone else.
		 */
		if (strcmp(holder->username, username) != 0) {
			return failf(req, CHAT_ERR_USERNAME_TAKEN,
				"the username '%s' is taken: it looks like '%s'", username,
				holder->username);
		}
	} else {
		const cJSON *token = field(req->root, "token");
		uint8_t hash[TOKENS_HASH_SIZE];
		if (!holder->has_token || !cJSON_IsString(token) ||
			!tokens_hash(token->valuestring, strlen(token->valuestring), hash) ||
			!tokens_equal(hash, holder->token_hash)) {
			return strcmp(holder->username, username) == 0
				? failf(req, CHAT_ERR_USERNAME_TAKEN, "the username '%s' is taken",
					  username)
				: failf(req, CHAT_ERR_USERNAME_TAKEN,
					  "the username '%s' is taken: it looks like '%s'",
					  username, holder->username);
		}
	}
	if ((int64_t)holder->session_count < chat->config.max_sessions_per_user) {
		return CHAT_OK;
	}
	/* Make room: the session that has been away longest ends; if all are online, refuse. */
	struct chat_session *oldest = NULL, *s;
	for (s = holder->sessions; s != NULL; s = s->next_of_user) {
		if (s->presence != PRESENCE_ONLINE &&
			(oldest == NULL || s->offline_since < oldest->offline_since)) {
			oldest = s;
		}
	}
	if (oldest == NULL) {
		return failf(req, CHAT_ERR_LIMIT_EXCEEDED,
			"max_sessions_per_user: '%s' is logged in from %lld client ids, all online, "
			"the most allowed",
			username, (long long)chat->config.max_sessions_per_user);
	}
	log_printf(&chat->hooks, CHAT_LOG_INFO,
		"chat: user %s has %u sessions; its session %s, away longest, ends to make room",
		holder->id, holder->session_count, oldest->clientid);
	/*
	 * Ended by the caller once the new session is attached: ended now, a user's only session
	 * (max_sessions_per_user 1) would take the user with it.
	 */
	*evict = oldest;
	return CHAT_OK;
}

/*
 * Creates the user of a free username with this request's session. In anonymous mode it gets
 * a token (written into `token`, TOKENS_TEXT_LEN + 1 bytes), which login-response carries.
 */
static enum chat_err create_user(struct request *req, const char *username, size_t len,
	const char *key, size_t key_len, char *token, struct chat_user **out)
{
	struct chat *chat = req->chat;
	int64_t max_users = chat->config.max_users;
	if (max_users > 0 && (int64_t)HASH_CNT(hh_id, chat->users_by_id) >= max_users) {
		token[0] = '\0';
		return failf(req, CHAT_ERR_LIMIT_EXCEEDED,
			"max_users: the chat has %lld users, the most it allows; a user that exists "
			"can still log in",
			(long long)max_users);
	}
	uint8_t hash[TOKENS_HASH_SIZE];
	uint64_t number = 0;
	token[0] = '\0';
	if (take_id(req, &chat->ids.user, &number) != CHAT_OK) {
		return CHAT_ERR_RATE_LIMITED;
	}
	if (!chat->config.bind_mqtt_username && tokens_new(token, hash) != CHAT_OK) {
		token[0] = '\0';
		return fail(req, CHAT_ERR_INTERNAL, "no token could be made");
	}
	char id[CHAT_ID_BUF];
	ids_format_user(number, id);
	struct chat_user *user =
		state_user_add(chat, req->session, id, username, len, key, key_len);
	if (user == NULL) {
		token[0] = '\0';
		return fail(req, CHAT_ERR_INTERNAL, "out of memory");
	}
	if (!chat->config.bind_mqtt_username) {
		user->has_token = true;
		memcpy(user->token_hash, hash, sizeof hash);
	}
	*out = user;
	return CHAT_OK;
}

static enum chat_err handle_login(struct request *req)
{
	struct chat *chat = req->chat;
	struct chat_session *session = req->session;
	const char *username = string_field(req, "username");
	if (username == NULL) {
		return CHAT_ERR_INVALID_REQUEST;
	}
	size_t raw_len = strlen(username);
	if (!validate_username(username, raw_len)) {
		return fail(req, CHAT_ERR_INVALID_USERNAME,
			"a username is 1 to 64 bytes of UTF-8 without control characters");
	}
	if (chat->config.bind_mqtt_username &&
		(req->conn->username == NULL || strcmp(req->conn->username, username) != 0)) {
		return fail(req, CHAT_ERR_USERNAME_MISMATCH,
			"this broker binds chat names to MQTT usernames: log in as the username you "
			"connected with");
	}
	/*
	 * The name as the directory shows it is its NFC form; two names are the same name when
	 * their keys (confusable skeletons of the case-folded forms) are equal (names.h).
	 */
	char nfc[NAMES_NFC_SIZE];
	char key[NAMES_KEY_SIZE];
	size_t len = 0, key_len = 0;
	const char *reason = NULL;
	enum chat_err err =
		names_normalize(chat->names, username, raw_len, nfc, sizeof nfc, &len, &reason);
	if (err == CHAT_OK) {
		err = names_key(chat->names, nfc, len, key, sizeof key, &key_len);
	}
	if (err != CHAT_OK) {
		return failf(req, err, "this username %s",
			err == CHAT_ERR_INVALID_USERNAME && reason != NULL ? reason
									   : "cannot be checked");
	}
	if (chat->config.bind_mqtt_username &&
		(len != raw_len || memcmp(nfc, username, len) != 0)) {
		return fail(req, CHAT_ERR_INVALID_USERNAME,
			"with bind_mqtt_username the MQTT username must be in Unicode NFC");
	}
	username = nfc;

	struct chat_user *current = session->user;
	char token[TOKENS_TEXT_LEN + 1] = "";
	if (current != NULL && strcmp(current->key, key) == 0) {
		/* The same login again, e.g. after a reconnect: resume. */
		if (session->presence != PRESENCE_ONLINE) {
			state_session_set_presence(chat, session, PRESENCE_ONLINE, 0, req->now_ms);
		}
	} else {
		if (current != NULL && session->presence == PRESENCE_ONLINE) {
			return failf(req, CHAT_ERR_ALREADY_LOGGED_IN,
				"this connection is logged in as '%s'; log out first",
				current->username);
		}
		struct chat_user *holder = state_user_find_by_key(chat, key, key_len);
		struct chat_session *evict = NULL;
		if (holder != NULL) {
			err = join_held_user(req, holder, username, &evict);
			if (err != CHAT_OK) {
				return err;
			}
		}
		if (current != NULL) {
			/* A new connection took over this client id while its session was away. */
			log_printf(&chat->hooks, CHAT_LOG_INFO,
				"chat: client %s logs in anew; its away session of user %s ends",
				session->clientid, current->id);
			state_session_end(chat, session);
		}
		if (holder != NULL) {
			state_session_attach(chat, holder, session);
			if (evict != NULL) {
				state_session_end(chat, evict);
			}
			current = holder;
		} else {
			err = create_user(req, username, len, key, key_len, token, &current);
			if (err != CHAT_OK) {
				return err;
			}
		}
	}

	/* Tell a returning user how many deliveries the broker could not keep for it. */
	int64_t limit = chat->config.offline_queue;
	int64_t dropped = limit > 0 && session->queued > limit ? session->queued - limit : 0;
	cJSON *doc = codec_login_success(current, dropped, token[0] != '\0' ? token : NULL);
	enum chat_err rc = doc != NULL ? outbox_reply_doc(chat, session, "login-response", doc)
				       : CHAT_ERR_INTERNAL;
	cJSON_Delete(doc);
	session->queued = 0;
	session->warned &= ~(unsigned)WARN_QUEUE_FULL;
	return rc;
}

static enum chat_err handle_logout(struct request *req)
{
	const cJSON *all = field(req->root, "all");
	if (all != NULL && !cJSON_IsBool(all)) {
		return fail(req, CHAT_ERR_INVALID_REQUEST, "field 'all' must be true or false");
	}
	if (cJSON_IsTrue(all)) {
		/* Every session of the user ends; their connections may stay open. */
		state_user_remove(req->chat, req->session->user);
	} else {
		state_session_end(req->chat, req->session);
	}
	return CHAT_OK;
}

/* Acknowledges a message that carried a cid to the session that sent it (§4.4). */
static enum chat_err reply_sent(struct request *req, const char *cid, const char *id, int64_t ts,
	const char *receiver)
{
	cJSON *doc = codec_sent(cid, id, ts, receiver);
	size_t len = 0;
	char *text = doc != NULL ? codec_render(doc, &len) : NULL;
	cJSON_Delete(doc);
	enum chat_err rc = text != NULL ? outbox_deliver(req->chat, req->session, "sent", text, len)
					: CHAT_ERR_INTERNAL;
	codec_free(text);
	return rc == CHAT_OK ? CHAT_OK : fail(req, rc, "the acknowledgement could not be queued");
}

/* The inbox copies of a direct message: every session of the peer, the sender's other ones. */
static size_t direct_copies(const struct chat_user *peer, const struct chat_user *sender)
{
	return peer->session_count + (peer != sender ? sender->session_count - 1 : 0);
}

/* Logs the first time a client's messages exceed its user's delivery budget. */
static void warn_budget(struct request *req)
{
	struct chat_session *session = req->session;
	if (!(session->warned & WARN_BUDGET)) {
		session->warned |= WARN_BUDGET;
		log_printf(&req->chat->hooks, CHAT_LOG_WARNING,
			"chat: user %s (client %s) exceeds its delivery budget; refusing the excess (%s)",
			session->user->id, session->clientid, req->detail);
	}
	session->warned |= WARN_BAD_REQUEST; /* the line above says it all */
}

static enum chat_err handle_message(struct request *req)
{
	struct chat *chat = req->chat;
	struct chat_user *sender = req->session->user;
	const char *room = req->room;

	const cJSON *receiver = field(req->root, "receiver");
	if (receiver != NULL &&
		(!cJSON_IsString(receiver) || strcmp(receiver->valuestring, room) != 0)) {
		return fail(req, CHAT_ERR_INVALID_REQUEST,
			"field 'receiver' must be the room named in the topic");
	}

	const cJSON *text = field(req->root, "message");
	if (!cJSON_IsString(text) || text->valuestring[0] == '\0') {
		return fail(req, CHAT_ERR_INVALID_MESSAGE,
			"field 'message' must be a non-empty string");
	}
	size_t text_len = strlen(text->valuestring);
	if ((int64_t)text_len > chat->config.max_message_bytes) {
		return failf(req, CHAT_ERR_MESSAGE_TOO_LARGE,
			"a message is at most %lld bytes; this one has %zu",
			(long long)chat->config.max_message_bytes, text_len);
	}
	if (!validate_utf8(text->valuestring, text_len)) {
		return fail(req, CHAT_ERR_INVALID_MESSAGE, "the message is not valid UTF-8");
	}

	struct chat_group *group = NULL;
	struct chat_user *peer = NULL;
	if (ids_is_group(room)) {
		group = state_group_find(chat, room);
		if (group == NULL) {
			return failf(req, CHAT_ERR_UNKNOWN_ROOM, "there is no group %s", room);
		}
		if (state_member_find(group, sender) == NULL) {
			return failf(req, CHAT_ERR_NOT_A_MEMBER, "you are not a member of group %s",
				room);
		}
	} else if (ids_is_user(room)) {
		peer = state_user_find(chat, room);
		if (peer == NULL) {
			return failf(req, CHAT_ERR_UNKNOWN_ROOM, "there is no user %s", room);
		}
	} else {
		return fail(req, CHAT_ERR_UNKNOWN_ROOM,
			"the topic must be chat/msg/<groupid> or chat/msg/<userid>");
	}

	/* A repeat of a recent cid is acknowledged again and not delivered again (§4.4). */
	const char *cid = NULL;
	const cJSON *cid_item = field(req->root, "cid");
	if (cid_item != NULL) {
		if (!cJSON_IsString(cid_item) || cid_item->valuestring[0] == '\0' ||
			strlen(cid_item->valuestring) > STATE_CID_MAX ||
			!validate_utf8(cid_item->valuestring, strlen(cid_item->valuestring))) {
			return failf(req, CHAT_ERR_INVALID_REQUEST,
				"field 'cid' must be a string of 1 to %d bytes of UTF-8",
				STATE_CID_MAX);
		}
		cid = cid_item->valuestring;
		const struct sent_cid *seen = state_cid_find(sender, cid, req->now_ms);
		if (seen != NULL) {
			return reply_sent(req, cid, seen->id, seen->ts, seen->receiver);
		}
	}

	uint64_t number = 0;
	if (take_id(req, &chat->ids.message, &number) != CHAT_OK) {
		return CHAT_ERR_RATE_LIMITED;
	}
	char id[CHAT_ID_BUF];
	ids_format_message(number, id);
	int64_t ts = chat->hooks.wall_ms(chat->hooks.ctx);
	cJSON *doc = codec_message(sender->id, room, text->valuestring, id, ts, cid);
	size_t len = 0;
	char *rendered = doc != NULL ? codec_render(doc, &len) : NULL;
	cJSON_Delete(doc);
	if (rendered == NULL) {
		return fail(req, CHAT_ERR_INTERNAL, "out of memory");
	}

	/* What the broker will store of it is paid from the sender's delivery budget (budget.h). */
	size_t copies = group != NULL ? rooms_copies(chat, group, req->session)
				      : direct_copies(peer, sender);
	if (!budget_charge(chat, sender, (uint64_t)len * copies, req->now_ms, req->detail_buf,
		    sizeof req->detail_buf)) {
		codec_free(rendered);
		req->detail = req->detail_buf;
		warn_budget(req);
		return CHAT_ERR_RATE_LIMITED;
	}

	/*
	 * Rendered once; each recipient session gets a copy in its own inbox. The sender's other
	 * sessions get it too, so every device shows the whole conversation (a message to oneself
	 * reaches every session of one's own, the sending one included). A group message waits
	 * for the tick, which decides between inbox copies and the room topic (rooms.h).
	 */
	enum chat_err rc = CHAT_OK;
	char key[STORE_ROOM_KEY_MAX];
	if (peer != NULL) {
		rc = deliver_to_user(chat, peer, NULL, "message", rendered, len);
		if (peer != sender &&
			deliver_to_user(chat, sender, req->session, "message", rendered, len) !=
				CHAT_OK) {
			rc = CHAT_ERR_INTERNAL;
		}
		store_direct_key(sender->id, peer->id, key);
		store_message(chat, number, key, sender->id, peer->id, ts, rendered, len);
	} else {
		rc = rooms_post(chat, group, req->session, number, rendered, len);
		store_message(chat, number, group->id, NULL, NULL, ts, rendered, len);
	}
	codec_free(rendered);
	if (rc != CHAT_OK) {
		return fail(req, rc, "a delivery could not be queued");
	}
	if (cid == NULL) {
		return CHAT_OK;
	}
	if (!state_cid_add(sender, cid, id, ts, room, req->now_ms)) {
		log_printf(&chat->hooks, CHAT_LOG_ERR, "chat: out of memory remembering a cid");
	}
	return reply_sent(req, cid, id, ts, room);
}

/*
 * True when `user` may create or join no more groups itself. Groups others put it in do not
 * count (they have their own cap, max_groups_added_by_others), so that being added to groups
 * by others never locks a user out of creating or joining its own (docs/protocol.md §4.5).
 */
static bool at_own_group_limit(const struct chat *chat, const struct chat_user *user)
{
	int64_t limit = chat->config.max_groups_per_user;
	return limit > 0 && (int64_t)state_user_own_groups(user) >= limit;
}

/* True when others may add `user` to no more groups. */
static bool at_added_group_limit(const struct chat *chat, const struct chat_user *user)
{
	int64_t limit = chat->config.max_groups_added_by_others;
	return limit > 0 && (int64_t)user->added_groups >= limit;
}

static enum chat_err handle_create_group(struct request *req)
{
	struct chat *chat = req->chat;
	struct chat_user *sender = req->session->user;
	const cJSON *members = field(req->root, "member");
	if (!cJSON_IsObject(members)) {
		return fail(req, CHAT_ERR_INVALID_REQUEST,
			"field 'member' must be an object of userid: username");
	}

	/* Check every member before creating anything: the request is all or nothing. */
	const cJSON *entry;
	int64_t listed = 1;
	cJSON_ArrayForEach(entry, members) {
		struct chat_user *user = NULL;
		if (entry->string == NULL || !ids_is_user(entry->string) ||
			(user = state_user_find(chat, entry->string)) == NULL) {
			return fail(req, CHAT_ERR_UNKNOWN_USER, "a listed member is not a user");
		}
		if (user != sender && at_added_group_limit(chat, user)) {
			return failf(req, CHAT_ERR_LIMIT_EXCEEDED,
				"max_groups_added_by_others: user %s has been put in %lld groups by "
				"others, the most allowed; it can still create and join groups itself",
				user->id, (long long)chat->config.max_groups_added_by_others);
		}
		listed++;
	}
	if (at_own_group_limit(chat, sender)) {
		return failf(req, CHAT_ERR_LIMIT_EXCEEDED,
			"max_groups_per_user: you have created or joined %lld groups, the most "
			"allowed",
			(long long)chat->config.max_groups_per_user);
	}
	if (chat->config.max_group_members > 0 && listed > chat->config.max_group_members) {
		return failf(req, CHAT_ERR_LIMIT_EXCEEDED,
			"max_group_members: a group has at most %lld members",
			(long long)chat->config.max_group_members);
	}
	int64_t max_groups = chat->config.max_groups;
	if (max_groups > 0 && (int64_t)HASH_CNT(hh, chat->groups) >= max_groups) {
		return failf(req, CHAT_ERR_LIMIT_EXCEEDED,
			"max_groups: the chat has %lld groups, the most it allows",
			(long long)max_groups);
	}

	uint64_t number = 0;
	if (take_id(req, &chat->ids.group, &number) != CHAT_OK) {
		return CHAT_ERR_RATE_LIMITED;
	}
	char id[CHAT_ID_BUF];
	ids_format_group(number, id);
	struct chat_group *group = state_group_add(chat, id);
	if (group == NULL || !state_member_add(chat, group, sender)) {
		goto nomem;
	}
	cJSON_ArrayForEach(entry, members) {
		struct chat_user *user = state_user_find(chat, entry->string);
		if (state_member_find(group, user) == NULL &&
			!state_member_add_by_other(chat, group, user)) {
			goto nomem;
		}
	}
	return announce_group(chat, group, NULL);

nomem:
	if (group != NULL) {
		state_group_delete(chat, group);
	}
	return fail(req, CHAT_ERR_INTERNAL, "out of memory");
}

/* The group named by the request's `groupid` field, or NULL with the error set. */
static struct chat_group *requested_group(struct request *req, enum chat_err *err)
{
	const char *groupid = string_field(req, "groupid");
	if (groupid == NULL) {
		*err = CHAT_ERR_INVALID_REQUEST;
		return NULL;
	}
	struct chat_group *group =
		ids_is_group(groupid) ? state_group_find(req->chat, groupid) : NULL;
	if (group == NULL) {
		*err = CHAT_ERR_UNKNOWN_ROOM;
		req->detail = "there is no such group";
	}
	return group;
}

static enum chat_err handle_join_group(struct request *req)
{
	enum chat_err err = CHAT_OK;
	struct chat_group *group = requested_group(req, &err);
	if (group == NULL) {
		return err;
	}
	struct chat_user *user = req->session->user;
	if (state_member_find(group, user) != NULL) {
		return announce_group(req->chat, group, user);
	}
	int64_t max_members = req->chat->config.max_group_members;
	if (max_members > 0 && (int64_t)group->member_count >= max_members) {
		return failf(req, CHAT_ERR_LIMIT_EXCEEDED,
			"max_group_members: group %s is full (%lld members)", group->id,
			(long long)max_members);
	}
	if (at_own_group_limit(req->chat, user)) {
		return failf(req, CHAT_ERR_LIMIT_EXCEEDED,
			"max_groups_per_user: you have created or joined %lld groups, the most "
			"allowed",
			(long long)req->chat->config.max_groups_per_user);
	}
	if (!state_member_add(req->chat, group, user)) {
		return fail(req, CHAT_ERR_INTERNAL, "out of memory");
	}
	return announce_group(req->chat, group, NULL);
}

static enum chat_err handle_leave_group(struct request *req)
{
	enum chat_err err = CHAT_OK;
	struct chat_group *group = requested_group(req, &err);
	if (group == NULL) {
		return err;
	}
	struct chat_member *member = state_member_find(group, req->session->user);
	if (member == NULL) {
		return failf(req, CHAT_ERR_NOT_A_MEMBER, "you are not a member of group %s",
			group->id);
	}
	state_member_remove(req->chat, member);
	return CHAT_OK;
}

/* Longest qid echoed in a history reply. */
#define HISTORY_QID_MAX 128
#define HISTORY_LIMIT_MAX 100
#define HISTORY_LIMIT_DEFAULT 50

/*
 * A cursor field (`before` or `after`): absent (0), or a message id as a decimal string without
 * a leading zero that SQLite's integers hold.
 */
static enum chat_err cursor_field(struct request *req, const char *name, uint64_t *out)
{
	*out = 0;
	const cJSON *item = field(req->root, name);
	if (item == NULL) {
		return CHAT_OK;
	}
	const char *text = cJSON_IsString(item) ? item->valuestring : NULL;
	size_t len = text != NULL ? strlen(text) : 0;
	bool ok = len > 0 && len <= 19 && text[0] != '0';
	for (size_t i = 0; ok && i < len; i++) {
		ok = text[i] >= '0' && text[i] <= '9';
	}
	if (!ok) {
		return failf(req, CHAT_ERR_INVALID_REQUEST,
			"field '%s' must be a message id: a decimal string of at most 19 digits",
			name);
	}
	*out = strtoull(text, NULL, 10);
	return CHAT_OK;
}

static enum chat_err handle_history(struct request *req)
{
	struct chat *chat = req->chat;
	struct chat_user *user = req->session->user;
	struct store_query query = { .limit = HISTORY_LIMIT_DEFAULT };

	const cJSON *qid = field(req->root, "qid");
	if (qid != NULL && (!cJSON_IsString(qid) || strlen(qid->valuestring) > HISTORY_QID_MAX)) {
		return failf(req, CHAT_ERR_INVALID_REQUEST,
			"field 'qid' must be a string of at most %d bytes", HISTORY_QID_MAX);
	}
	query.qid = req->qid = qid != NULL ? qid->valuestring : NULL;
	const cJSON *limit = field(req->root, "limit");
	if (limit != NULL) {
		if (!cJSON_IsNumber(limit) || limit->valuedouble < 1 ||
			limit->valuedouble > HISTORY_LIMIT_MAX ||
			limit->valuedouble != (double)(int)limit->valuedouble) {
			return failf(req, CHAT_ERR_INVALID_REQUEST,
				"field 'limit' must be a whole number from 1 to %d",
				HISTORY_LIMIT_MAX);
		}
		query.limit = (int)limit->valuedouble;
	}
	enum chat_err err = cursor_field(req, "before", &query.before);
	if (err == CHAT_OK) {
		err = cursor_field(req, "after", &query.after);
	}
	if (err != CHAT_OK) {
		return err;
	}
	if (query.before != 0 && query.after != 0 && query.after >= query.before) {
		return fail(req, CHAT_ERR_INVALID_REQUEST, "'after' must be smaller than 'before'");
	}

	const cJSON *room = field(req->root, "room");
	char key[STORE_ROOM_KEY_MAX];
	if (room == NULL) {
		if (query.before != 0) {
			return fail(req, CHAT_ERR_INVALID_REQUEST,
				"'before' needs a 'room'; without one, ask with 'after' (catch-up) or "
				"with no cursor (summary)");
		}
	} else if (!cJSON_IsString(room)) {
		return fail(req, CHAT_ERR_INVALID_REQUEST, "field 'room' must be a string");
	} else if (ids_is_group(room->valuestring)) {
		struct chat_group *group = state_group_find(chat, room->valuestring);
		if (group == NULL) {
			return failf(req, CHAT_ERR_UNKNOWN_ROOM, "there is no group %s",
				room->valuestring);
		}
		const struct chat_member *member = state_member_find(group, user);
		if (member == NULL) {
			return failf(req, CHAT_ERR_NOT_A_MEMBER, "you are not a member of group %s",
				room->valuestring);
		}
		query.room = query.room_key = group->id;
		query.since = chat->config.history_visibility_shared ? 0 : member->since;
	} else if (ids_is_user(room->valuestring)) {
		/* A direct conversation stays readable after the other user is gone (§9.3). */
		store_direct_key(user->id, room->valuestring, key);
		query.room = room->valuestring;
		query.room_key = key;
		query.gone_peer = state_user_find(chat, room->valuestring) == NULL;
	} else {
		return fail(req, CHAT_ERR_UNKNOWN_ROOM, "field 'room' must be a group or user id");
	}

	err = store_query(chat, req->session, &query);
	switch (err) {
	case CHAT_OK:
		return CHAT_OK;
	case CHAT_ERR_RATE_LIMITED:
		return failf(req, err, "at most %d history requests of a session may wait at once",
			STORE_QUERIES_PER_SESSION);
	case CHAT_ERR_HISTORY_UNAVAILABLE:
		return fail(req, err,
			chat->store == NULL
				? "this chat keeps no history (no plugin_opt_database)"
				: "the chat's database is failing or overloaded; try later");
	default:
		return fail(req, err, "out of memory");
	}
}

/* ===================================================================================== */
/* Entry point                                                                           */
/* ===================================================================================== */

/*
 * Checks a field that names the sender (the seed's `sender`, or a `username`): absent or null
 * passes; anything else must be a string naming this connection's user.
 */
static enum chat_err identity_field(struct request *req, const char *name, const char *expected,
	enum chat_err mismatch)
{
	const cJSON *item = field(req->root, name);
	if (item == NULL) {
		return CHAT_OK;
	}
	if (!cJSON_IsString(item)) {
		return failf(req, CHAT_ERR_INVALID_REQUEST, "field '%s' must be a string", name);
	}
	if (strcmp(item->valuestring, expected) != 0) {
		return failf(req, mismatch, "field '%s' does not name this connection's user",
			name);
	}
	return CHAT_OK;
}

/* Parses and authorises the request, then runs its handler. */
static enum chat_err dispatch(struct request *req, const char *payload, size_t len)
{
	size_t limit = req->kind == REQ_MESSAGE
		? 6 * (size_t)req->chat->config.max_message_bytes + 4096 /* room for \u escapes */
		: REQUEST_MAX_BYTES;
	if (len > limit) {
		return req->kind == REQ_MESSAGE
			? fail(req, CHAT_ERR_MESSAGE_TOO_LARGE, "the request is far too large")
			: fail(req, CHAT_ERR_INVALID_REQUEST,
				  "the request is larger than 65536 bytes");
	}
	/*
	 * cJSON strings are NUL-terminated, so a NUL inside one would silently cut it short. The
	 * text a login or message carries is where such a character would be; say so.
	 */
	if (memchr(payload, '\0', len) != NULL) {
		return fail(req, CHAT_ERR_INVALID_REQUEST, "the payload holds a NUL byte");
	}
	if (len >= 6 && memmem(payload, len, "\\u0000", 6) != NULL) {
		enum chat_err err = req->kind == REQ_LOGIN ? CHAT_ERR_INVALID_USERNAME
			: req->kind == REQ_MESSAGE         ? CHAT_ERR_INVALID_MESSAGE
							   : CHAT_ERR_INVALID_REQUEST;
		return fail(req, err, "NUL characters are not allowed");
	}
	const char *end = NULL;
	req->root = cJSON_ParseWithLengthOpts(payload, len, &end, false);
	if (req->root == NULL) {
		return fail(req, CHAT_ERR_INVALID_REQUEST, "the payload is not JSON");
	}
	/* One JSON document and nothing after it but white space. */
	for (const char *stop = payload + len; end < stop; end++) {
		if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
			return fail(req, CHAT_ERR_INVALID_REQUEST,
				"the payload has bytes after its JSON");
		}
	}
	if (!cJSON_IsObject(req->root)) {
		return fail(req, CHAT_ERR_INVALID_REQUEST, "the payload must be a JSON object");
	}
	/*
	 * A history request's qid is echoed in every error that follows, not only in those of its
	 * own checks (not_logged_in, sender_mismatch...), so a client can match each answer to its
	 * request; handle_history refuses a qid that is not a string of at most 128 bytes.
	 */
	const cJSON *qid = req->kind == REQ_HISTORY ? field(req->root, "qid") : NULL;
	if (cJSON_IsString(qid) && strlen(qid->valuestring) <= HISTORY_QID_MAX) {
		req->qid = qid->valuestring;
	}

	struct chat_user *user = req->session->user;
	if (req->chat->config.bind_mqtt_username && user != NULL &&
		(req->conn->username == NULL || strcmp(req->conn->username, user->username) != 0)) {
		/*
		 * The broker authenticated another MQTT user than this session's: a takeover of the
		 * client id. It may neither act for the user nor log it out (docs/protocol.md §2.5).
		 */
		return fail(req, CHAT_ERR_USERNAME_MISMATCH,
			"this client id is a session of another MQTT user; connect with your own client id");
	}
	if (req->kind != REQ_LOGIN) {
		if (user == NULL) {
			return fail(req, CHAT_ERR_NOT_LOGGED_IN, "log in first");
		}
		enum chat_err err =
			identity_field(req, "sender", user->id, CHAT_ERR_SENDER_MISMATCH);
		if (err == CHAT_OK) {
			err = identity_field(req, "username", user->username,
				CHAT_ERR_USERNAME_MISMATCH);
		}
		if (err != CHAT_OK) {
			return err;
		}
		/* Any request from a session that reconnected brings it back online. */
		if (req->session->presence != PRESENCE_ONLINE) {
			state_session_set_presence(req->chat, req->session, PRESENCE_ONLINE, 0,
				req->now_ms);
		}
	}

	switch (req->kind) {
	case REQ_LOGIN:
		return handle_login(req);
	case REQ_LOGOUT:
		return handle_logout(req);
	case REQ_MESSAGE:
		return handle_message(req);
	case REQ_CREATE_GROUP:
		return handle_create_group(req);
	case REQ_JOIN_GROUP:
		return handle_join_group(req);
	case REQ_LEAVE_GROUP:
		return handle_leave_group(req);
	case REQ_HISTORY:
		return handle_history(req);
	}
	return fail(req, CHAT_ERR_INVALID_REQUEST, "unknown request");
}

/* Takes one token from the session's bucket; false when it is empty. */
static bool take_token(struct chat *chat, struct chat_session *session, int64_t now_ms)
{
	int64_t rate = chat->config.request_rate;
	if (rate == 0) {
		return true;
	}
	double burst = (double)chat->config.request_burst;
	if (now_ms > session->refilled_at) {
		session->tokens += (double)(now_ms - session->refilled_at) * (double)rate / 1000.0;
		if (session->tokens > burst) {
			session->tokens = burst;
		}
		session->refilled_at = now_ms;
	}
	if (session->tokens < 1.0) {
		return false;
	}
	session->tokens -= 1.0;
	return true;
}

enum chat_err chat_on_publish(struct chat *chat, const struct chat_conn *conn, const char *topic,
	const void *payload, size_t len, int64_t now_ms)
{
	struct request req = { .chat = chat, .conn = conn, .now_ms = now_ms };
	const char *clientid = conn->clientid;
	if (clientid == NULL || topic == NULL || !topics_classify(topic, &req.kind, &req.room)) {
		return CHAT_OK;
	}
	req.session = state_session_get(chat, clientid);
	if (req.session == NULL) {
		log_printf(&chat->hooks, CHAT_LOG_ERR, "chat: out of memory for a request from %s",
			clientid);
		return CHAT_ERR_INTERNAL;
	}
	if (!req.session->valid_id) {
		/* No inbox topic can be formed for this client id, so it cannot be answered. */
		if (!(req.session->warned & WARN_BAD_CLIENTID)) {
			req.session->warned |= WARN_BAD_CLIENTID;
			log_printf(&chat->hooks, CHAT_LOG_WARNING,
				"chat: ignoring chat requests from client '%s': a client id must be 1-128 "
				"bytes of UTF-8 without / + # and not start with $",
				clientid);
		}
		return CHAT_OK;
	}
	req.session->expires_at = 0;
	if (req.session->persistent != !conn->clean) {
		req.session->persistent = !conn->clean;
		state_note_session_changed(chat, req.session);
	}
	/* A MESSAGE event is never a will: this connection is live. */
	state_session_seen_conn(chat, req.session, conn->username, conn->clean);

	enum chat_err err;
	if (!take_token(chat, req.session, now_ms)) {
		if (!(req.session->warned & WARN_RATE)) {
			req.session->warned |= WARN_RATE;
			log_printf(&chat->hooks, CHAT_LOG_WARNING,
				"chat: client %s sends more than %lld requests a second; refusing the excess",
				clientid, (long long)chat->config.request_rate);
		}
		req.session->warned |= WARN_BAD_REQUEST; /* the line above says it all */
		err = failf(&req, CHAT_ERR_RATE_LIMITED,
			"request_rate: at most %lld requests a second (bursts of %lld)",
			(long long)chat->config.request_rate,
			(long long)chat->config.request_burst);
	} else {
		err = dispatch(&req, payload != NULL ? payload : "", len);
	}
	if (err != CHAT_OK) {
		reply_error(&req, err);
	}
	cJSON_Delete(req.root);
	return err == CHAT_ERR_INTERNAL ? CHAT_ERR_INTERNAL : CHAT_OK;
}
