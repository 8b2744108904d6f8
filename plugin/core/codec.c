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
		if (cJSON_AddStringToObject(members, member->user->id, member->user->username) ==
			NULL) {
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
	if (doc == NULL || members == NULL ||
		cJSON_AddStringToObject(doc, "groupid", group->id) == NULL) {
		cJSON_Delete(doc);
		cJSON_Delete(members);
		return NULL;
	}
	if (!cJSON_AddItemToObject(doc, "member", members)) {
		cJSON_Delete(doc);
		cJSON_Delete(members);
		return NULL;
	}
	return doc;
}

cJSON *codec_user(const struct chat_user *user)
{
	cJSON *doc = cJSON_CreateObject();
	if (doc == NULL || cJSON_AddStringToObject(doc, "userid", user->id) == NULL ||
		cJSON_AddStringToObject(doc, "username", user->username) == NULL ||
		cJSON_AddBoolToObject(doc, "online", state_user_online(user)) == NULL) {
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
		if (entry == NULL ||
			cJSON_AddStringToObject(entry, user->id, user->username) == NULL) {
			goto error;
		}
	}
	const struct chat_group *group;
	for (group = chat->groups; group != NULL; group = group->hh.next) {
		cJSON *members = codec_members(group);
		if (members == NULL) {
			goto error;
		}
		if (!cJSON_AddItemToObject(groups, group->id, members)) {
			cJSON_Delete(members);
			goto error;
		}
	}
	return doc;

error:
	cJSON_Delete(doc);
	return NULL;
}

cJSON *codec_login_success(const struct chat_user *user, int64_t dropped, const char *token)
{
	cJSON *doc = cJSON_CreateObject();
	if (doc == NULL || cJSON_AddStringToObject(doc, "result", "success") == NULL ||
		cJSON_AddStringToObject(doc, "userid", user->id) == NULL ||
		cJSON_AddStringToObject(doc, "username", user->username) == NULL ||
		(token != NULL && cJSON_AddStringToObject(doc, "token", token) == NULL) ||
		(dropped > 0 && cJSON_AddNumberToObject(doc, "dropped", (double)dropped) == NULL)) {
		cJSON_Delete(doc);
		return NULL;
	}
	return doc;
}

cJSON *codec_login_failure(const char *code, const char *detail)
{
	cJSON *doc = cJSON_CreateObject();
	if (doc == NULL || cJSON_AddStringToObject(doc, "result", code) == NULL ||
		cJSON_AddStringToObject(doc, "detail", detail) == NULL) {
		cJSON_Delete(doc);
		return NULL;
	}
	return doc;
}

cJSON *codec_error(const char *action, const char *code, const char *detail)
{
	return codec_error_qid(action, code, detail, NULL);
}

cJSON *codec_error_qid(const char *action, const char *code, const char *detail, const char *qid)
{
	cJSON *doc = cJSON_CreateObject();
	if (doc == NULL || cJSON_AddStringToObject(doc, "action", action) == NULL ||
		cJSON_AddStringToObject(doc, "error", code) == NULL ||
		cJSON_AddStringToObject(doc, "detail", detail) == NULL ||
		(qid != NULL && cJSON_AddStringToObject(doc, "qid", qid) == NULL)) {
		cJSON_Delete(doc);
		return NULL;
	}
	return doc;
}

cJSON *codec_message(const char *sender, const char *receiver, const char *text, const char *id,
	int64_t ts, const char *cid)
{
	cJSON *doc = cJSON_CreateObject();
	if (doc == NULL || cJSON_AddStringToObject(doc, "sender", sender) == NULL ||
		cJSON_AddStringToObject(doc, "receiver", receiver) == NULL ||
		cJSON_AddStringToObject(doc, "message", text) == NULL ||
		cJSON_AddStringToObject(doc, "id", id) == NULL ||
		cJSON_AddNumberToObject(doc, "ts", (double)ts) == NULL ||
		(cid != NULL && cJSON_AddStringToObject(doc, "cid", cid) == NULL)) {
		cJSON_Delete(doc);
		return NULL;
	}
	return doc;
}

cJSON *codec_sent(const char *cid, const char *id, int64_t ts, const char *receiver)
{
	cJSON *doc = cJSON_CreateObject();
	if (doc == NULL || cJSON_AddStringToObject(doc, "cid", cid) == NULL ||
		cJSON_AddStringToObject(doc, "id", id) == NULL ||
		cJSON_AddNumberToObject(doc, "ts", (double)ts) == NULL ||
		cJSON_AddStringToObject(doc, "receiver", receiver) == NULL) {
		cJSON_Delete(doc);
		return NULL;
	}
	return doc;
}

cJSON *codec_history(const char *qid, const char *room, const char *const *messages, size_t count,
	bool complete)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON *list = NULL;
	if (doc == NULL || (qid != NULL && cJSON_AddStringToObject(doc, "qid", qid) == NULL) ||
		(room != NULL && cJSON_AddStringToObject(doc, "room", room) == NULL) ||
		(list = cJSON_AddArrayToObject(doc, "messages")) == NULL ||
		cJSON_AddBoolToObject(doc, "complete", complete) == NULL) {
		cJSON_Delete(doc);
		return NULL;
	}
	for (size_t i = 0; i < count; i++) {
		/* Each text is a message document this codec rendered when it was sent. */
		cJSON *item = cJSON_CreateRaw(messages[i]);
		if (item == NULL || !cJSON_AddItemToArray(list, item)) {
			cJSON_Delete(item);
			cJSON_Delete(doc);
			return NULL;
		}
	}
	return doc;
}

char *codec_render(const cJSON *doc, size_t *len)
{
	char *text = cJSON_PrintUnformatted(doc);
	if (text != NULL) {
		*len = strlen(text);
	}
	return text;
}

void codec_free(char *text)
{
	cJSON_free(text);
}
