#define _GNU_SOURCE /* fileno */
#include "persist.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "tokens.h"
#include "names.h"

/*
 * Version 3 adds each membership's visibility start ("since", the first message id the member
 * may read in history); version 2 kept several sessions per user and the user's token hash;
 * versions 1 and 2 are the state files of earlier releases, read once when they are imported.
 */
#define STATE_VERSION 3
/* The largest counter a snapshot holds: JSON numbers are exact up to 2^53. */
#define MAX_COUNTER 9007199254740992u

/* ===================================================================================== */
/* Saving                                                                                */
/* ===================================================================================== */

/* The counters as saved: where each one is, and what is reserved beyond it. */
static const struct saved_counter {
	const char *next;
	const char *reserved;
	size_t offset;
} saved_counters[] = {
	{ "next_user", "reserved_user", offsetof(struct chat, ids.user) },
	{ "next_group", "reserved_group", offsetof(struct chat, ids.group) },
	{ "next_message", "reserved_message", offsetof(struct chat, ids.message) },
};
#define SAVED_COUNTERS (sizeof saved_counters / sizeof saved_counters[0])

static struct id_counter *counter_of(struct chat *chat, const struct saved_counter *saved)
{
	return (struct id_counter *)(void *)((char *)chat + saved->offset);
}

static const struct id_counter *counter_in(const struct chat *chat,
	const struct saved_counter *saved)
{
	return (const struct id_counter *)(const void *)((const char *)chat + saved->offset);
}

struct rooms_render {
	cJSON *list;
	bool ok;
};

static void render_room(void *ctx, const char *filter, int qos)
{
	struct rooms_render *r = ctx;
	cJSON *item = cJSON_CreateObject();
	if (item == NULL || !cJSON_AddItemToArray(r->list, item) ||
		cJSON_AddStringToObject(item, "filter", filter) == NULL ||
		cJSON_AddNumberToObject(item, "qos", qos) == NULL) {
		r->ok = false;
	}
}

/* A session's room subscriptions (rooms.h), when it has any: "rooms": [{"filter", "qos"}]. */
static bool render_rooms(cJSON *entry, const struct chat_session *session)
{
	if (session->rooms == NULL) {
		return true;
	}
	struct rooms_render r = { .list = cJSON_AddArrayToObject(entry, "rooms"), .ok = true };
	if (r.list == NULL) {
		return false;
	}
	state_session_rooms_each(session, render_room, &r);
	return r.ok;
}

static cJSON *render_state(const struct chat *chat, bool clean)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *users = cJSON_AddArrayToObject(doc, "users");
	cJSON *groups = cJSON_AddArrayToObject(doc, "groups");
	if (doc == NULL || users == NULL || groups == NULL ||
		cJSON_AddNumberToObject(doc, "version", STATE_VERSION) == NULL ||
		cJSON_AddBoolToObject(doc, "clean_shutdown", clean) == NULL) {
		goto error;
	}
	for (size_t i = 0; i < SAVED_COUNTERS; i++) {
		const struct id_counter *c = counter_in(chat, &saved_counters[i]);
		/* Without a store nothing is reserved (0) or every id is (the clock's counters). */
		uint64_t reserved = c->reserved < c->next ? c->next
			: c->reserved > MAX_COUNTER       ? MAX_COUNTER
							  : c->reserved;
		if (cJSON_AddNumberToObject(doc, saved_counters[i].next, (double)c->next) == NULL ||
			cJSON_AddNumberToObject(doc, saved_counters[i].reserved,
				(double)reserved) == NULL) {
			goto error;
		}
	}
	const struct chat_user *user;
	for (user = chat->users_by_id; user != NULL; user = user->hh_id.next) {
		cJSON *entry = cJSON_CreateObject();
		cJSON_AddItemToArray(users, entry);
		cJSON *sessions = NULL;
		char hash[TOKENS_HASH_HEX_LEN + 1];
		if (user->has_token) {
			tokens_hash_to_hex(user->token_hash, hash);
		}
		if (entry == NULL || cJSON_AddStringToObject(entry, "id", user->id) == NULL ||
			cJSON_AddStringToObject(entry, "username", user->username) == NULL ||
			(user->has_token &&
				cJSON_AddStringToObject(entry, "token_hash", hash) == NULL) ||
			(sessions = cJSON_AddArrayToObject(entry, "sessions")) == NULL) {
			goto error;
		}
		const struct chat_session *session;
		for (session = user->sessions; session != NULL; session = session->next_of_user) {
			cJSON *item = cJSON_CreateObject();
			if (item == NULL || !cJSON_AddItemToArray(sessions, item) ||
				cJSON_AddStringToObject(item, "clientid", session->clientid) ==
					NULL ||
				cJSON_AddBoolToObject(item, "persistent", session->persistent) ==
					NULL ||
				cJSON_AddNumberToObject(item, "qos", session->inbox_qos) == NULL ||
				!render_rooms(item, session)) {
				cJSON_Delete(item);
				goto error;
			}
		}
	}
	const struct chat_group *group;
	for (group = chat->groups; group != NULL; group = group->hh.next) {
		cJSON *entry = cJSON_CreateObject();
		cJSON_AddItemToArray(groups, entry);
		cJSON *members = NULL, *since = NULL;
		if (entry == NULL || cJSON_AddStringToObject(entry, "id", group->id) == NULL ||
			(members = cJSON_AddArrayToObject(entry, "member")) == NULL ||
			(since = cJSON_AddArrayToObject(entry, "since")) == NULL) {
			goto error;
		}
		cJSON *added = NULL;
		const struct chat_member *member;
		for (member = group->members; member != NULL; member = member->hh_group.next) {
			if (member->added &&
				((added == NULL &&
					 (added = cJSON_AddArrayToObject(entry, "added")) ==
						 NULL) ||
					!cJSON_AddItemToArray(added,
						cJSON_CreateString(member->user->id)))) {
				goto error;
			}
			cJSON *id = cJSON_CreateString(member->user->id);
			cJSON *from = cJSON_CreateNumber((double)member->since);
			if (id == NULL || from == NULL) {
				cJSON_Delete(id);
				cJSON_Delete(from);
				goto error;
			}
			cJSON_AddItemToArray(members, id);
			cJSON_AddItemToArray(since, from);
		}
	}
	return doc;

error:
	cJSON_Delete(doc);
	return NULL;
}

char *persist_render(const struct chat *chat, bool clean, size_t *len)
{
	cJSON *doc = render_state(chat, clean);
	char *text = doc != NULL ? cJSON_PrintUnformatted(doc) : NULL;
	cJSON_Delete(doc);
	if (text != NULL) {
		*len = strlen(text);
	}
	return text;
}

void persist_render_free(char *text)
{
	cJSON_free(text);
}

/* ===================================================================================== */
/* Loading                                                                               */
/* ===================================================================================== */

struct loader {
	struct chat *chat;
	int version; /* of the file being loaded */
	char *err;
	size_t err_len;
};

static bool bad(struct loader *ld, const char *what)
{
	snprintf(ld->err, ld->err_len, "%s", what);
	return false;
}

/* True when the JSON array `list` (may be NULL) holds the string `id`. */
static bool id_listed(const cJSON *list, const char *id)
{
	const cJSON *item;
	cJSON_ArrayForEach(item, list) {
		if (cJSON_IsString(item) && strcmp(item->valuestring, id) == 0) {
			return true;
		}
	}
	return false;
}

/* A visibility start: a whole JSON number from 0 to `limit`. */
static bool counter_value(const cJSON *item, uint64_t limit, uint64_t *out)
{
	if (!cJSON_IsNumber(item) || item->valuedouble < 0 || item->valuedouble > (double)limit ||
		item->valuedouble != (double)(uint64_t)item->valuedouble) {
		return false;
	}
	*out = (uint64_t)item->valuedouble;
	return true;
}

/* A counter: a JSON number that is a whole number from 1 to 2^53. */
static bool counter(const cJSON *doc, const char *name, uint64_t *out)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(doc, name);
	if (!cJSON_IsNumber(item) || item->valuedouble < 1 ||
		item->valuedouble > (double)MAX_COUNTER ||
		item->valuedouble != (double)(uint64_t)item->valuedouble) {
		return false;
	}
	*out = (uint64_t)item->valuedouble;
	return true;
}

static const char *string_of(const cJSON *obj, const char *name)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
	return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* Version 3: a persistent session's room subscriptions, kept as the broker keeps them. */
static bool load_rooms(struct loader *ld, struct chat_session *session, const cJSON *rooms)
{
	if (rooms == NULL) {
		return true;
	}
	if (!cJSON_IsArray(rooms)) {
		return bad(ld, "a session's room list is malformed");
	}
	const cJSON *room;
	cJSON_ArrayForEach(room, rooms) {
		const char *filter = string_of(room, "filter");
		const cJSON *qos = cJSON_GetObjectItemCaseSensitive(room, "qos");
		uint64_t q = 0;
		if (filter == NULL || !counter_value(qos, 2, &q) ||
			!state_session_room_add(ld->chat, session, filter, (int)q)) {
			return bad(ld, "a room subscription is malformed");
		}
	}
	return true;
}

static bool load_user(struct loader *ld, const cJSON *entry, int64_t now_ms)
{
	struct chat *chat = ld->chat;
	const char *id = string_of(entry, "id");
	const char *username = string_of(entry, "username");
	const cJSON *sessions = cJSON_GetObjectItemCaseSensitive(entry, "sessions");
	const char *token_hash = string_of(entry, "token_hash");
	uint8_t hash[TOKENS_HASH_SIZE];
	if (!ids_is_user(id) || username == NULL ||
		!validate_username(username, strlen(username)) ||
		ids_number(id) >= chat->ids.user.next ||
		(cJSON_GetObjectItemCaseSensitive(entry, "token_hash") != NULL &&
			!tokens_hash_from_hex(token_hash, hash))) {
		return bad(ld, "a user record is malformed");
	}
	if (ld->version == 1) {
		sessions = entry; /* version 1: one session, its fields in the user's record */
	} else if (!cJSON_IsArray(sessions) || cJSON_GetArraySize(sessions) < 1) {
		return bad(ld, "a user record has no sessions");
	}
	char nfc[NAMES_NFC_SIZE];
	char key[NAMES_KEY_SIZE];
	size_t len = 0, key_len = 0;
	bool valid_name = names_normalize(chat->names, username, strlen(username), nfc, sizeof nfc,
				  &len, NULL) == CHAT_OK &&
		len == strlen(username) && memcmp(nfc, username, len) == 0 &&
		names_key(chat->names, nfc, len, key, sizeof key, &key_len) == CHAT_OK;
	const struct chat_user *alike =
		valid_name ? state_user_find_by_key(chat, key, key_len) : NULL;
	bool look_alike = alike != NULL && strcmp(alike->username, username) != 0;
	if (ld->version == 1 && (!valid_name || look_alike) && state_user_find(chat, id) == NULL) {
		/*
		 * Version 1 had no rules against look-alike or invisible names: such a user is not
		 * restored (the rest of the file is), its directory entry is cleared, and it can log
		 * in again under a name that passes today's rules.
		 */
		log_printf(&chat->hooks, CHAT_LOG_WARNING,
			"chat: user %s of the version 1 state file is not restored: its name %s",
			id, valid_name ? "looks like another user's" : "breaks the username rules");
		state_note_changed(chat, id);
		return true;
	}
	if (!valid_name) {
		return bad(ld, "a username is not a valid name in NFC");
	}
	if (state_user_find(chat, id) != NULL || alike != NULL) {
		return bad(ld, "a user id or username appears twice");
	}
	/*
	 * Sessions are saved newest first and each one restored goes to the front: restore from
	 * the last, so that a saved state loads into the same order. Only persistent sessions
	 * survived the restart; a user with none is not restored, only its directory entry cleared.
	 */
	int count = ld->version == 1 ? 1 : cJSON_GetArraySize(sessions);
	struct chat_user *user = NULL;
	int64_t expiry_ms = chat->config.offline_expiry_s * 1000;
	for (int i = count - 1; i >= 0; i--) {
		const cJSON *item = ld->version == 1 ? sessions : cJSON_GetArrayItem(sessions, i);
		const char *clientid = string_of(item, "clientid");
		const cJSON *persistent = cJSON_GetObjectItemCaseSensitive(item, "persistent");
		const cJSON *qos = cJSON_GetObjectItemCaseSensitive(item, "qos");
		if (!validate_clientid(clientid) || !cJSON_IsBool(persistent) ||
			!cJSON_IsNumber(qos) || qos->valuedouble < 0 || qos->valuedouble > 2 ||
			qos->valuedouble != (double)(int)qos->valuedouble) {
			return bad(ld, "a session record is malformed");
		}
		if (state_session_find(chat, clientid) != NULL) {
			return bad(ld, "a client id appears twice");
		}
		if (!cJSON_IsTrue(persistent)) {
			continue;
		}
		struct chat_session *session = state_session_get(chat, clientid);
		if (session == NULL) {
			return bad(ld, "out of memory");
		}
		if (user == NULL) {
			user = state_user_add(chat, session, id, username, len, key, key_len);
			if (user == NULL) {
				state_session_delete(chat, session);
				return bad(ld, "out of memory");
			}
		} else if ((int64_t)user->session_count < chat->config.max_sessions_per_user) {
			state_session_attach(chat, user, session);
		} else {
			state_session_delete(chat, session); /* the limit was lowered since */
			continue;
		}
		session->persistent = true;
		session->inbox_qos = (uint8_t)qos->valuedouble;
		if (!load_rooms(ld, session, cJSON_GetObjectItemCaseSensitive(item, "rooms"))) {
			return false;
		}
		state_session_set_presence(chat, session, PRESENCE_OFFLINE,
			expiry_ms == 0 ? 0 : now_ms + expiry_ms, now_ms);
	}
	if (user == NULL) {
		/* No connection of it survived the restart: only clear its directory entry. */
		state_note_changed(chat, id);
		return true;
	}
	if (token_hash != NULL) {
		user->has_token = true;
		memcpy(user->token_hash, hash, sizeof hash);
	}
	return true;
}

static bool load_group(struct loader *ld, const cJSON *entry)
{
	struct chat *chat = ld->chat;
	const char *id = string_of(entry, "id");
	const cJSON *members = cJSON_GetObjectItemCaseSensitive(entry, "member");
	if (!ids_is_group(id) || !cJSON_IsArray(members) ||
		ids_number(id) >= chat->ids.group.next) {
		return bad(ld, "a group record is malformed");
	}
	if (state_group_find(chat, id) != NULL) {
		return bad(ld, "a group id appears twice");
	}
	struct chat_group *group = state_group_add(chat, id);
	if (group == NULL) {
		return bad(ld, "out of memory");
	}
	/* Version 3: "since" holds each member's visibility start, in the order of "member". */
	const cJSON *since = cJSON_GetObjectItemCaseSensitive(entry, "since");
	if (ld->version >= 3 &&
		(!cJSON_IsArray(since) ||
			cJSON_GetArraySize(since) != cJSON_GetArraySize(members))) {
		return bad(ld, "a group's visibility list is malformed");
	}
	const cJSON *added = cJSON_GetObjectItemCaseSensitive(entry, "added");
	if (added != NULL && !cJSON_IsArray(added)) {
		return bad(ld, "a group's list of added members is malformed");
	}
	const cJSON *member;
	const cJSON *from = ld->version >= 3 ? since->child : NULL;
	cJSON_ArrayForEach(member, members) {
		uint64_t start = 0;
		if (!cJSON_IsString(member) || !ids_is_user(member->valuestring) ||
			ids_number(member->valuestring) >= chat->ids.user.next ||
			(from != NULL && !counter_value(from, chat->ids.message.next, &start))) {
			return bad(ld, "a group member is malformed");
		}
		from = from != NULL ? from->next : NULL;
		/* Members of clean sessions were not restored; the group goes on without them. */
		struct chat_user *user = state_user_find(chat, member->valuestring);
		struct chat_member *made = NULL;
		if (user != NULL && state_member_find(group, user) == NULL) {
			/* Version 3: "added" lists the members others put in the group (§4.5). */
			made = id_listed(added, user->id)
				? state_member_add_by_other(chat, group, user)
				: state_member_add(chat, group, user);
			if (made == NULL) {
				return bad(ld, "out of memory");
			}
			made->since = start;
		}
	}
	if (group->member_count == 0) {
		state_group_delete(chat, group);
	}
	return true;
}

/*
 * Sets the counters from a saved state. After a clean shutdown they continue exactly; after a
 * crash, from what was reserved, since ids up to there may have been issued after the last save.
 */
static bool load_counters(const cJSON *doc, struct chat *chat)
{
	bool clean = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "clean_shutdown"));
	if (!cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(doc, "clean_shutdown"))) {
		return false;
	}
	for (size_t i = 0; i < SAVED_COUNTERS; i++) {
		uint64_t next = 0, reserved = 0;
		if (!counter(doc, saved_counters[i].next, &next) ||
			!counter(doc, saved_counters[i].reserved, &reserved) || reserved < next) {
			return false;
		}
		struct id_counter *c = counter_of(chat, &saved_counters[i]);
		c->next = clean ? next : reserved;
		c->reserved = c->next; /* nothing is reserved in this run until it is saved */
	}
	return true;
}

enum chat_err persist_parse(struct chat *chat, const char *text, size_t len, int64_t now_ms,
	char *err, size_t err_len)
{
	struct loader ld = { .chat = chat, .err = err, .err_len = err_len };
	cJSON *doc = cJSON_ParseWithLength(text, len);
	const cJSON *version = cJSON_GetObjectItemCaseSensitive(doc, "version");
	const cJSON *users = cJSON_GetObjectItemCaseSensitive(doc, "users");
	const cJSON *groups = cJSON_GetObjectItemCaseSensitive(doc, "groups");
	bool ok = false;

	if (!cJSON_IsObject(doc)) {
		bad(&ld, "not a JSON object");
	} else if (!cJSON_IsNumber(version) ||
		(version->valuedouble != STATE_VERSION && version->valuedouble != 2 &&
			version->valuedouble != 1)) {
		bad(&ld, "unknown version");
	} else if (!load_counters(doc, chat) || !cJSON_IsArray(users) || !cJSON_IsArray(groups)) {
		bad(&ld, "counters or lists missing or inconsistent");
	} else {
		ok = true;
		ld.version = (int)version->valuedouble;
		const cJSON *entry;
		cJSON_ArrayForEach(entry, users) {
			if (!(ok = load_user(&ld, entry, now_ms))) {
				break;
			}
		}
		if (ok) {
			cJSON_ArrayForEach(entry, groups) {
				if (!(ok = load_group(&ld, entry))) {
					break;
				}
			}
		}
	}
	cJSON_Delete(doc);
	if (!ok) {
		state_clear(chat);
		for (size_t i = 0; i < SAVED_COUNTERS; i++) {
			*counter_of(chat, &saved_counters[i]) = (struct id_counter){ .next = 1 };
		}
		return CHAT_ERR_BAD_STATE_FILE;
	}
	return CHAT_OK;
}

/* Reads the whole file; NULL with errno set when it cannot. */
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		return NULL;
	}
	struct stat st;
	char *text = NULL;
	if (fstat(fileno(f), &st) == 0 && st.st_size >= 0 && st.st_size < (1 << 30)) {
		text = malloc((size_t)st.st_size + 1);
		if (text != NULL && fread(text, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
			free(text);
			text = NULL;
			errno = EIO;
		}
		*len = (size_t)st.st_size;
	} else {
		errno = EFBIG;
	}
	fclose(f);
	return text;
}

/* Renames the state file to PATH.<suffix>, so that it is never read or overwritten again. */
static bool rename_to(const char *path, const char *suffix, char *out, size_t out_len)
{
	long long stamp = (long long)time(NULL);
	snprintf(out, out_len, "%s.%s", path, suffix);
	for (int n = 1; access(out, F_OK) == 0 && n < 1000; n++) {
		snprintf(out, out_len, "%s.%s-%lld-%d", path, suffix, stamp, n);
	}
	return rename(path, out) == 0;
}

bool persist_import(struct chat *chat, int64_t now_ms)
{
	const char *path = chat->config.state_file;
	char moved[CHAT_PATH_MAX + 48];
	size_t len = 0;
	char *text = read_file(path, &len);
	if (text == NULL) {
		if (errno == ENOENT) {
			log_printf(&chat->hooks, CHAT_LOG_NOTICE,
				"chat: no state file at %s to import (already imported?)", path);
		} else {
			log_printf(&chat->hooks, CHAT_LOG_ERR,
				"chat: cannot read the state file %s to import it: %s", path,
				strerror(errno));
		}
		return false;
	}
	char err[160];
	enum chat_err rc = persist_parse(chat, text, len, now_ms, err, sizeof err);
	free(text);
	if (rc != CHAT_OK) {
		bool ok = rename_to(path, "corrupt", moved, sizeof moved);
		log_printf(&chat->hooks, CHAT_LOG_ERR,
			"chat: the state file %s cannot be imported (%s); %s%s", path, err,
			ok ? "moved it to " : "and it cannot be moved aside", ok ? moved : "");
		return false;
	}
	struct chat_stats stats;
	state_stats(chat, &stats);
	bool ok = rename_to(path, "imported", moved, sizeof moved);
	log_printf(&chat->hooks, CHAT_LOG_NOTICE,
		"chat: imported %zu users and %zu groups from the state file %s into the database "
		"%s; %s%s",
		stats.users, stats.groups, path, chat->config.database,
		ok ? "the file is now " : "the file could not be renamed: move it away by hand",
		ok ? moved : "");
	return true;
}
