/*
 * The chat's topic names (docs/protocol.md §3), written once: the request topics clients
 * publish, the inbox topics the plugin delivers on, the retained directory topics, and the
 * matching of subscription filters against them that the access check needs (§5).
 *
 * Every topic of the chat is under `chat/`. A request topic is one of a fixed table; every topic
 * under `chat/msg/` is a request (its room may still be unknown). Functions are pure; topics and
 * filters are borrowed NUL-terminated strings.
 */
#ifndef CHAT_TOPICS_H
#define CHAT_TOPICS_H

#include <stdbool.h>
#include <stddef.h>

#include "ids.h"
#include "validate.h"

/* The requests of docs/protocol.md §3.1, one per request topic. */
enum request_kind {
	REQ_LOGIN,
	REQ_LOGOUT,
	REQ_MESSAGE,
	REQ_CREATE_GROUP,
	REQ_JOIN_GROUP,
	REQ_LEAVE_GROUP,
	REQ_HISTORY,
};

/* Room enough for any inbox topic: chat/inbox/<client id>/<kind>. */
#define TOPICS_INBOX_MAX (CHAT_CLIENTID_MAX + 32)
/* Room enough for chat/users/<id> and chat/groups/<id>. */
#define TOPICS_DIRECTORY_MAX (CHAT_ID_BUF + 16)
/* Room enough for chat/room/<groupid>. */
#define TOPICS_ROOM_MAX (CHAT_ID_BUF + 16)
/* The room topics' common beginning. */
#define TOPICS_ROOM_PREFIX "chat/room/"

/* True when `topic` (may be NULL) is under chat/ and so the chat's to handle or to guard. */
bool topics_is_chat(const char *topic);

/*
 * Finds the request `topic` names. On success sets *kind and, for chat/msg/<room>, *room to the
 * rest of the topic after chat/msg/ (may be empty or hold '/'; NULL for other requests).
 */
bool topics_classify(const char *topic, enum request_kind *kind, const char **room);

/* True for the request topics, which anyone may publish. */
bool topics_is_request(const char *topic);

/* The seed's event name of a request ("login", "create_group", ...), used as `action`. */
const char *topics_action(enum request_kind kind);

/* chat/inbox/<clientid>/<kind> into `buf` (TOPICS_INBOX_MAX bytes). */
void topics_inbox(char buf[TOPICS_INBOX_MAX], const char *clientid, const char *kind);

/* chat/users/<userid> or chat/groups/<groupid> (by the id's form) into `buf`. */
void topics_directory(char buf[TOPICS_DIRECTORY_MAX], const char *id);

/* The retained snapshot of every user and group. */
#define TOPICS_CONTACTS "chat/contacts"

/* True for chat/contacts, chat/users/<one level> and chat/groups/<one level>. */
bool topics_is_directory(const char *topic);

/* The id level of chat/users/<id> or chat/groups/<id> (inside `topic`); NULL for other topics. */
const char *topics_directory_id(const char *topic);

/* True when `topic` is inside chat/inbox/<clientid>/ (at least one level below it). */
bool topics_is_own_inbox(const char *topic, const char *clientid);

/*
 * The filter inside a shared subscription: for `$share/<group>/<filter>` a pointer to <filter>
 * within `filter`; any other filter (and a malformed $share/ one) is returned as it is.
 */
const char *topics_unshare(const char *filter);

/* chat/room/<groupid> into `buf`. */
void topics_room(char buf[TOPICS_ROOM_MAX], const char *groupid);

/*
 * True for a group's room topic chat/room/<groupid> (a well-formed group id); *groupid then
 * points at the id inside `topic`.
 */
bool topics_is_room(const char *topic, const char **groupid);

/* What a subscription filter is to the room topics (docs/protocol.md §3.5). */
enum topics_room_filter {
	TOPICS_ROOM_NONE,    /* it can match no room topic */
	TOPICS_ROOM_ONE,     /* exactly chat/room/<groupid>: a room subscription for one group */
	TOPICS_ROOM_ALL,     /* exactly chat/room/+: a room subscription for every group */
	TOPICS_ROOM_OVERLAP, /* anything else that can match a room topic: #, chat/#, +/room/+,
	                        $share/g/chat/room/+, chat/room/#, ... */
};

/*
 * Classifies a subscription filter as subscribed (a $share/<group>/ prefix included: a shared
 * filter is never a room subscription). For TOPICS_ROOM_ONE, *groupid points at the group id
 * inside `filter`.
 */
enum topics_room_filter topics_room_filter(const char *filter, const char **groupid);

/* True when some topic in chat/inbox/<clientid>/ can match the subscription `filter`. */
bool topics_filter_meets_inbox(const char *filter, const char *clientid);

/* True when some directory topic can match the subscription `filter`. */
bool topics_filter_meets_directory(const char *filter);

#endif
