#include "state.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory.h"

/* ===================================================================================== */
/* Sessions                                                                              */
/* ===================================================================================== */

struct chat_session *session_find(struct chat *chat, const char *clientid)
{
	struct chat_session *session = NULL;
	HASH_FIND_STR(chat->sessions, clientid, session);
	return session;
}

struct chat_session *session_get(struct chat *chat, const char *clientid)
{
	struct chat_session *session = session_find(chat, clientid);
	if (session != NULL) {
		return session;
	}
	size_t len = strlen(clientid);
	session = calloc(1, sizeof *session + len + 1);
	if (session == NULL) {
		return NULL;
	}
	memcpy(session->clientid, clientid, len + 1);
	session->inbox_qos = 1;
	session->tokens = (double)chat->config.request_burst;
	session->valid_id = chat_clientid_valid(clientid);
	HASH_ADD(hh, chat->sessions, clientid[0], len, session);
	return session;
}

void session_delete(struct chat *chat, struct chat_session *session)
{
	HASH_DEL(chat->sessions, session);
	free(session);
}

/* ===================================================================================== */
/* Users                                                                                 */
/* ===================================================================================== */

struct chat_user *user_find(struct chat *chat, const char *userid)
{
	struct chat_user *user = NULL;
	HASH_FIND(hh_id, chat->users_by_id, userid, strlen(userid), user);
	return user;
}

struct chat_user *user_find_by_name(struct chat *chat, const char *username, size_t len)
{
	struct chat_user *user = NULL;
	HASH_FIND(hh_name, chat->users_by_name, username, len, user);
	return user;
}

struct chat_user *user_create(struct chat *chat, struct chat_session *session,
	const char *username, size_t len)
{
	char id[32];
	snprintf(id, sizeof id, "%llu0", (unsigned long long)id_take(chat, &chat->user_ids));
	return user_insert(chat, session, id, username, len);
}

struct chat_user *user_insert(struct chat *chat, struct chat_session *session, const char *id,
	const char *username, size_t len)
{
	struct chat_user *user = calloc(1, sizeof *user + len + 1);
	if (user == NULL) {
		return NULL;
	}
	memcpy(user->username, username, len);
	snprintf(user->id, sizeof user->id, "%s", id);
	user->presence = PRESENCE_ONLINE;
	user->session = session;
	session->user = user;
	session->expires_at = 0;
	HASH_ADD(hh_id, chat->users_by_id, id[0], strlen(user->id), user);
	HASH_ADD(hh_name, chat->users_by_name, username[0], len, user);
	directory_mark(chat, user->id);
	return user;
}

void user_set_presence(struct chat *chat, struct chat_user *user, enum presence presence,
	int64_t deadline)
{
	bool was_online = user->presence == PRESENCE_ONLINE;
	chat->grace_users -= user->presence == PRESENCE_GRACE;
	chat->grace_users += presence == PRESENCE_GRACE;
	user->presence = presence;
	user->offline_deadline = deadline;
	if (was_online != (presence == PRESENCE_ONLINE)) {
		directory_mark(chat, user->id);
	}
}

void user_remove(struct chat *chat, struct chat_user *user)
{
	struct chat_member *member, *tmp;
	HASH_ITER(hh_user, user->groups, member, tmp) {
		member_remove(chat, member);
	}
	directory_mark(chat, user->id);
	chat->grace_users -= user->presence == PRESENCE_GRACE;
	if (user->session != NULL) {
		user->session->user = NULL;
	}
	HASH_DELETE(hh_id, chat->users_by_id, user);
	HASH_DELETE(hh_name, chat->users_by_name, user);
	free(user);
}

/* ===================================================================================== */
/* Groups and membership                                                                 */
/* ===================================================================================== */

struct chat_group *group_find(struct chat *chat, const char *groupid)
{
	struct chat_group *group = NULL;
	HASH_FIND_STR(chat->groups, groupid, group);
	return group;
}

struct chat_group *group_create(struct chat *chat)
{
	char id[32];
	snprintf(id, sizeof id, "%llu1", (unsigned long long)id_take(chat, &chat->group_ids));
	return group_insert(chat, id);
}

struct chat_group *group_insert(struct chat *chat, const char *id)
{
	struct chat_group *group = calloc(1, sizeof *group);
	if (group == NULL) {
		return NULL;
	}
	snprintf(group->id, sizeof group->id, "%s", id);
	HASH_ADD_STR(chat->groups, id, group);
	directory_mark(chat, group->id);
	return group;
}

struct chat_member *member_find(struct chat_group *group, const struct chat_user *user)
{
	struct chat_member *member = NULL;
	HASH_FIND(hh_group, group->members, user->id, strlen(user->id), member);
	return member;
}

bool member_add(struct chat *chat, struct chat_group *group, struct chat_user *user)
{
	struct chat_member *member = calloc(1, sizeof *member);
	if (member == NULL) {
		return false;
	}
	member->user = user;
	member->group = group;
	HASH_ADD_KEYPTR(hh_group, group->members, user->id, strlen(user->id), member);
	HASH_ADD_KEYPTR(hh_user, user->groups, group->id, strlen(group->id), member);
	group->member_count++;
	chat->membership_count++;
	directory_mark(chat, group->id);
	return true;
}

static void member_unlink(struct chat *chat, struct chat_member *member)
{
	HASH_DELETE(hh_group, member->group->members, member);
	HASH_DELETE(hh_user, member->user->groups, member);
	member->group->member_count--;
	chat->membership_count--;
	free(member);
}

void member_remove(struct chat *chat, struct chat_member *member)
{
	struct chat_group *group = member->group;
	member_unlink(chat, member);
	if (group->member_count == 0) {
		group_delete(chat, group);
	} else {
		directory_mark(chat, group->id);
	}
}

void group_delete(struct chat *chat, struct chat_group *group)
{
	struct chat_member *member, *tmp;
	HASH_ITER(hh_group, group->members, member, tmp) {
		member_unlink(chat, member);
	}
	directory_mark(chat, group->id);
	HASH_DEL(chat->groups, group);
	free(group);
}

void state_clear(struct chat *chat)
{
	struct chat_group *group, *gtmp;
	HASH_ITER(hh, chat->groups, group, gtmp) {
		struct chat_member *member, *mtmp;
		HASH_ITER(hh_group, group->members, member, mtmp) {
			member_unlink(chat, member);
		}
		HASH_DEL(chat->groups, group);
		free(group);
	}
	struct chat_user *user, *utmp;
	HASH_ITER(hh_id, chat->users_by_id, user, utmp) {
		HASH_DELETE(hh_id, chat->users_by_id, user);
		HASH_DELETE(hh_name, chat->users_by_name, user);
		free(user);
	}
	struct chat_session *session, *stmp;
	HASH_ITER(hh, chat->sessions, session, stmp) {
		HASH_DEL(chat->sessions, session);
		free(session);
	}
	directory_clear(chat);
}

void chat_logf(struct chat *chat, enum chat_log_level level, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (chat->hooks.log != NULL) {
		chat->hooks.log(chat->hooks.ctx, level, line);
	}
}
