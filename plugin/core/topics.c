#include "topics.h"

#include <stdio.h>
#include <string.h>

#define MSG_PREFIX "chat/msg/"

/* The request topics. chat/msg/ is a prefix: the room follows it. */
static const struct {
	const char *topic;
	enum request_kind kind;
	const char *action; /* the seed's event name */
} requests[] = {
	{ "chat/login", REQ_LOGIN, "login" },
	{ "chat/logout", REQ_LOGOUT, "logout" },
	{ MSG_PREFIX, REQ_MESSAGE, "message" },
	{ "chat/group/create", REQ_CREATE_GROUP, "create_group" },
	{ "chat/group/join", REQ_JOIN_GROUP, "join_group" },
	{ "chat/group/leave", REQ_LEAVE_GROUP, "leave_group" },
	{ "chat/history", REQ_HISTORY, "history" },
};
#define REQUEST_COUNT (sizeof requests / sizeof requests[0])

bool topics_is_chat(const char *topic)
{
	return topic != NULL && strncmp(topic, "chat/", 5) == 0;
}

bool topics_classify(const char *topic, enum request_kind *kind, const char **room)
{
	*room = NULL;
	if (strncmp(topic, MSG_PREFIX, sizeof MSG_PREFIX - 1) == 0) {
		*kind = REQ_MESSAGE;
		*room = topic + sizeof MSG_PREFIX - 1;
		return true;
	}
	for (size_t i = 0; i < REQUEST_COUNT; i++) {
		if (requests[i].kind != REQ_MESSAGE && strcmp(topic, requests[i].topic) == 0) {
			*kind = requests[i].kind;
			return true;
		}
	}
	return false;
}

bool topics_is_request(const char *topic)
{
	enum request_kind kind;
	const char *room;
	return topics_classify(topic, &kind, &room);
}

const char *topics_action(enum request_kind kind)
{
	for (size_t i = 0; i < REQUEST_COUNT; i++) {
		if (requests[i].kind == kind) {
			return requests[i].action;
		}
	}
	return "unknown";
}

void topics_inbox(char buf[TOPICS_INBOX_MAX], const char *clientid, const char *kind)
{
	snprintf(buf, TOPICS_INBOX_MAX, "chat/inbox/%s/%s", clientid, kind);
}

void topics_directory(char buf[TOPICS_DIRECTORY_MAX], const char *id)
{
	snprintf(buf, TOPICS_DIRECTORY_MAX, ids_is_user(id) ? "chat/users/%s" : "chat/groups/%s",
		id);
}

bool topics_is_directory(const char *topic)
{
	if (strcmp(topic, TOPICS_CONTACTS) == 0) {
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

const char *topics_directory_id(const char *topic)
{
	if (!topics_is_directory(topic) || strcmp(topic, TOPICS_CONTACTS) == 0) {
		return NULL;
	}
	return strchr(topic + 5, '/') + 1; /* after chat/users/ or chat/groups/ */
}

bool topics_is_own_inbox(const char *topic, const char *clientid)
{
	if (strncmp(topic, "chat/inbox/", 11) != 0) {
		return false;
	}
	size_t len = strlen(clientid);
	return strncmp(topic + 11, clientid, len) == 0 && topic[11 + len] == '/';
}

/* ===================================================================================== */
/* Filters                                                                               */
/* ===================================================================================== */

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
 * levels are given one by one so that a client id can be spliced in without building a string.
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

const char *topics_unshare(const char *filter)
{
	if (strncmp(filter, "$share/", 7) != 0) {
		return filter;
	}
	const char *slash = strchr(filter + 7, '/');
	return slash != NULL && slash > filter + 7 ? slash + 1 : filter;
}

bool topics_filter_meets_inbox(const char *filter, const char *clientid)
{
	/* Readable inbox topics have at least one level after the client id. */
	const char *inbox[] = { "chat", "inbox", clientid, "+", "#" };
	return filters_intersect(filter, inbox, 5);
}

void topics_room(char buf[TOPICS_ROOM_MAX], const char *groupid)
{
	snprintf(buf, TOPICS_ROOM_MAX, TOPICS_ROOM_PREFIX "%s", groupid);
}

bool topics_is_room(const char *topic, const char **groupid)
{
	size_t n = sizeof TOPICS_ROOM_PREFIX - 1;
	if (topic == NULL || strncmp(topic, TOPICS_ROOM_PREFIX, n) != 0 ||
		!ids_is_group(topic + n)) {
		return false;
	}
	*groupid = topic + n;
	return true;
}

enum topics_room_filter topics_room_filter(const char *filter, const char **groupid)
{
	const char *own = topics_unshare(filter);
	if (own == filter) {
		if (strcmp(filter, TOPICS_ROOM_PREFIX "+") == 0) {
			return TOPICS_ROOM_ALL;
		}
		if (topics_is_room(filter, groupid)) {
			return TOPICS_ROOM_ONE;
		}
	}
	static const char *const room[] = { "chat", "room", "+" };
	return filters_intersect(own, room, 3) ? TOPICS_ROOM_OVERLAP : TOPICS_ROOM_NONE;
}

bool topics_filter_meets_directory(const char *filter)
{
	static const char *const contacts[] = { "chat", "contacts" };
	static const char *const users[] = { "chat", "users", "+" };
	static const char *const groups[] = { "chat", "groups", "+" };
	return filters_intersect(filter, contacts, 2) || filters_intersect(filter, users, 3) ||
		filters_intersect(filter, groups, 3);
}
