/*
 * The JSON documents the chat sends, built with cJSON. Every builder returns a new cJSON tree
 * (the caller deletes it) or NULL on no memory; codec_send renders a tree once and publishes it.
 */
#ifndef CHAT_CODEC_H
#define CHAT_CODEC_H

#include <cjson/cJSON.h>

#include "state.h"

/* {"<userid>": "<username>", ...} of a group's members, in joining order. */
cJSON *codec_members(const struct chat_group *group);

/* {"groupid": ..., "member": {...}} */
cJSON *codec_group(const struct chat_group *group);

/* {"userid": ..., "username": ..., "online": ...} */
cJSON *codec_user(const struct chat_user *user);

/* The seed's contact event: {"person": {uid: {uid: name}}, "group": {gid: {uid: name}}}. */
cJSON *codec_contacts(const struct chat *chat);

/*
 * Renders `doc` (borrowed) and publishes it to `clientid` (NULL: fan-out) on `topic`.
 * Returns CHAT_OK, or CHAT_ERR_INTERNAL when rendering or publishing failed.
 */
enum chat_err codec_send(struct chat *chat, const char *clientid, const char *topic,
	const cJSON *doc, int qos, bool retain);

#endif
