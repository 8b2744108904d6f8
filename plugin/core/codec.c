#include "codec.h"

#include <string.h>

cJSON *codec_members(const struct chat_group *group)
{
	cJSON *members = cJSON_CreateObject();
	if (members == NULL) {
		return NULL;
	}
	const struct chat_member *member;
	for (member = group->members; member != NULL; member = member->hh_group.next) {
		if (cJSON_AddStringToObject(members, member->user->id, member->user->username) == NULL) {
			cJSON_Delete(members);
			return NULL;
		}
	}
	return members;
}

cJSON *codec_group(const struct chat_group *group)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *members = codec_members(group);
	if (doc == NULL || members == NULL) {
		cJSON_Delete(doc);
		cJSON_Delete(members);
		return NULL;
	}
	if (cJSON_AddStringToObject(doc, "groupid", group->id) == NULL) {
		cJSON_Delete(doc);
		cJSON_Delete(members);
		return NULL;
	}
	cJSON_AddItemToObject(doc, "member", members);
	return doc;
}

cJSON *codec_user(const struct chat_user *user)
{
	cJSON *doc = cJSON_CreateObject();
	if (doc == NULL || cJSON_AddStringToObject(doc, "userid", user->id) == NULL ||
		cJSON_AddStringToObject(doc, "username", user->username) == NULL ||
		cJSON_AddBoolToObject(doc, "online", user->presence == PRESENCE_ONLINE) == NULL) {
		cJSON_Delete(doc);
		return NULL;
	}
	return doc;
}

cJSON *codec_contacts(const struct chat *chat)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *person = cJSON_AddObjectToObject(doc, "person");
	cJSON *groups = cJSON_AddObjectToObject(doc, "group");
	if (doc == NULL || person == NULL || groups == NULL) {
		goto error;
	}
	const struct chat_user *user;
	for (user = chat->users_by_id; user != NULL; user = user->hh_id.next) {
		cJSON *entry = cJSON_AddObjectToObject(person, user->id);
		if (entry == NULL || cJSON_AddStringToObject(entry, user->id, user->username) == NULL) {
			goto error;
		}
	}
	const struct chat_group *group;
	for (group = chat->groups; group != NULL; group = group->hh.next) {
		cJSON *members = codec_members(group);
		if (members == NULL) {
			goto error;
		}
		cJSON_AddItemToObject(groups, group->id, members);
	}
	return doc;

error:
	cJSON_Delete(doc);
	return NULL;
}

enum chat_err codec_send(struct chat *chat, const char *clientid, const char *topic,
	const cJSON *doc, int qos, bool retain)
{
	char *text = cJSON_PrintUnformatted(doc);
	if (text == NULL) {
		return CHAT_ERR_INTERNAL;
	}
	int rc = chat->hooks.publish(chat->hooks.ctx, clientid, topic, text, strlen(text), qos, retain);
	cJSON_free(text);
	return rc == 0 ? CHAT_OK : CHAT_ERR_INTERNAL;
}
