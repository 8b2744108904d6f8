/*
 * Every JSON document the chat sends (docs/protocol.md §3), built with cJSON. Each builder
 * returns a new cJSON tree that the caller deletes with cJSON_Delete, or NULL on no memory; the
 * strings passed in are copied. codec_render turns a tree into the text that is published.
 */
#ifndef CHAT_CODEC_H
#define CHAT_CODEC_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "state.h"

/* {"<userid>": "<username>", ...} of a group's members, in joining order. */
cJSON *codec_members(const struct chat_group *group);

/* new_group and chat/groups/<id>: {"groupid": ..., "member": {...}} */
cJSON *codec_group(const struct chat_group *group);

/* chat/users/<id>: {"userid": ..., "username": ..., "online": ...} */
cJSON *codec_user(const struct chat_user *user);

/* chat/contacts, the seed's contact event: {"person": {uid: {uid: name}}, "group": {gid: {...}}} */
cJSON *codec_contacts(const struct chat *chat);

/*
 * login-response on success: {"result": "success", "userid", "username"}, with "token" when
 * `token` is not NULL (a new user in anonymous mode) and "dropped" when `dropped` > 0
 * (deliveries the broker could not keep while the session was away).
 */
cJSON *codec_login_success(const struct chat_user *user, int64_t dropped, const char *token);

/* login-response on failure: {"result": "<code>", "detail": "<text>"} */
cJSON *codec_login_failure(const char *code, const char *detail);

/* error: {"action": "<the seed's event name>", "error": "<code>", "detail": "<text>"} */
cJSON *codec_error(const char *action, const char *code, const char *detail);

/* error of a request with a `qid` (history): codec_error's document with "qid" when not NULL. */
cJSON *codec_error_qid(const char *action, const char *code, const char *detail, const char *qid);

/*
 * message: {"sender", "receiver", "message", "id", "ts", "cid"}; `ts` in ms since the epoch;
 * "cid" only when `cid` is not NULL (the sender's own id for the message, docs/protocol.md §4.4).
 */
cJSON *codec_message(const char *sender, const char *receiver, const char *text, const char *id,
	int64_t ts, const char *cid);

/* sent: {"cid", "id", "ts", "receiver"}, the acknowledgement of a message with a cid. */
cJSON *codec_sent(const char *cid, const char *id, int64_t ts, const char *receiver);

/*
 * history: {"qid", "room", "messages": [...], "complete"}; "qid" and "room" only when not NULL.
 * `messages` are `count` message documents as rendered when they were sent (borrowed), oldest
 * first; they are put into the reply as they are.
 */
cJSON *codec_history(const char *qid, const char *room, const char *const *messages, size_t count,
	bool complete);

/*
 * Renders `doc` (borrowed) without white space. Returns the text, which the caller frees with
 * codec_free, and its length in *len; NULL on no memory.
 */
char *codec_render(const cJSON *doc, size_t *len);

/* Frees a text from codec_render. Accepts NULL. */
void codec_free(char *text);

#endif
