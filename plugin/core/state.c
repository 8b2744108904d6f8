#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ===================================================================================== */
/* Changes                                                                               */
/* ===================================================================================== */

/* Puts `id` into a set of changed ids; false on no memory. */
static bool set_add(struct changed_id **set, const char *id)
{
	struct changed_id *changed = NULL;
	HASH_FIND_STR(*set, id, changed);
	if (changed != NULL) {
		return true;
	}
	changed = calloc(1, sizeof *changed);
	if (changed == NULL) {
		return false;
	}
	snprintf(changed->id, sizeof changed->id, "%s", id);
	HASH_ADD_STR(*set, id, changed);
	return true;
}

static void set_clear(struct changed_id **set)
{
	struct changed_id *changed, *tmp;
	HASH_ITER(hh, *set, changed, tmp) {
		HASH_DEL(*set, changed);
		free(changed);
	}
}

void state_note_changed(struct chat *chat, const char *id)
{
	chat->changes.count++;
	/*
	 * On no memory the counter still moved, so the snapshot follows; only this entity's own
	 * retained topic (or its row in the database, until its next change) misses the change.
	 */
	(void)set_add(&chat->changes.ids, id);
	(void)set_add(&chat->changes.unsaved, id);
}

void state_changes_clear(struct chat *chat)
{
	set_clear(&chat->changes.ids);
}

void state_note_unsaved(struct chat *chat, const char *id)
{
	(void)set_add(&chat->changes.unsaved, id);
}

void state_unsaved_forget(struct chat *chat, struct changed_id *changed)
{
	HASH_DEL(chat->changes.unsaved, changed);
	free(changed);
}

void state_unsaved_clear(struct chat *chat)
{
	set_clear(&chat->changes.unsaved);
}

/* ===================================================================================== */
/* Sessions                                                                              */
/* ===================================================================================== */

struct chat_session *state_session_find(struct chat *chat, const char *clientid)
{
	struct chat_session *session = NULL;
	HASH_FIND_STR(chat->sessions, clientid, session);
	return session;
}

struct chat_session *state_session_get(struct chat *chat, const char *clientid)
{
	struct chat_session *session = state_session_find(chat, clientid);
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
	session->presence = PRESENCE_OFFLINE;
	session->holder_ok = true;
	session->tokens = (double)chat->config.request_burst;
	session->valid_id = validate_clientid(clientid);
	HASH_ADD(hh, chat->sessions, clientid[0], len, session);
	return session;
}

void state_session_delete(struct chat *chat, struct chat_session *session)
{
	state_session_inbox_clear(session);
	state_session_rooms_clear(chat, session);
	HASH_DEL(chat->sessions, session);
	free(session);
}

void state_session_seen(struct chat *chat, struct chat_session *session, const char *username)
{
	session->disconnected = false;
	const struct chat_user *user = session->user;
	session->holder_ok = !chat->config.bind_mqtt_username || user == NULL ||
		(username != NULL && strcmp(username, user->username) == 0);
	session->foreign_holder = !session->holder_ok;
}

void state_session_seen_conn(struct chat *chat, struct chat_session *session, const char *username,
	bool clean)
{
	if (session->disconnected && clean) {
		/*
		 * A new connection with clean start: Mosquitto dropped the old session's
		 * subscriptions (handle_connect.c, sub__clean_session), whatever the plugin saw.
		 */
		state_session_rooms_clear(chat, session);
	}
	state_session_seen(chat, session, username);
}

void state_note_session_changed(struct chat *chat, const struct chat_session *session)
{
	if (session->user != NULL) {
		(void)set_add(&chat->changes.unsaved, session->user->id);
	}
}

static void inbox_qos_recompute(struct chat *chat, struct chat_session *session)
{
	uint8_t qos = 1;
	if (session->inbox_filters != NULL) {
		qos = 0;
		const struct inbox_filter *f;
		for (f = session->inbox_filters; f != NULL; f = f->hh.next) {
			qos = f->qos > qos ? f->qos : qos;
		}
	}
	if (qos != session->inbox_qos) {
		session->inbox_qos = qos;
		state_note_session_changed(chat, session);
	}
}

bool state_session_inbox_subscribe(struct chat *chat, struct chat_session *session,
	const char *filter, int qos)
{
	uint8_t q = (uint8_t)(qos >= 2 ? 2 : (qos < 0 ? 0 : qos));
	struct inbox_filter *f = NULL;
	HASH_FIND_STR(session->inbox_filters, filter, f);
	if (f == NULL) {
		size_t len = strlen(filter);
		if (HASH_COUNT(session->inbox_filters) >= STATE_INBOX_FILTERS_MAX ||
			(f = calloc(1, sizeof *f + len + 1)) == NULL) {
			bool first = session->inbox_filters == NULL;
			if (first || q > session->inbox_qos) {
				session->inbox_qos = q;
				state_note_session_changed(chat, session);
			}
			return false;
		}
		memcpy(f->filter, filter, len + 1);
		HASH_ADD(hh, session->inbox_filters, filter[0], len, f);
	}
	f->qos = q; /* a repeated SUBSCRIBE replaces the filter's QoS */
	inbox_qos_recompute(chat, session);
	return true;
}

void state_session_inbox_unsubscribe(struct chat *chat, struct chat_session *session,
	const char *filter)
{
	struct inbox_filter *f = NULL;
	HASH_FIND_STR(session->inbox_filters, filter, f);
	if (f != NULL) {
		HASH_DEL(session->inbox_filters, f);
		free(f);
		inbox_qos_recompute(chat, session);
	}
}

void state_session_inbox_clear(struct chat_session *session)
{
	struct inbox_filter *f, *tmp;
	HASH_ITER(hh, session->inbox_filters, f, tmp) {
		HASH_DEL(session->inbox_filters, f);
		free(f);
	}
	session->inbox_qos = 1;
}

/* ===================================================================================== */
/* Room filters                                                                          */
/* ===================================================================================== */

bool state_session_room_add(struct chat *chat, struct chat_session *session, const char *filter,
	int qos)
{
	uint8_t q = (uint8_t)(qos >= 2 ? 2 : (qos < 0 ? 0 : qos));
	struct room_filter *f = NULL;
	HASH_FIND_STR(session->rooms, filter, f);
	if (f != NULL) {
		f->qos = q; /* a repeated SUBSCRIBE replaces the filter's QoS */
		state_note_session_changed(chat, session);
		return true;
	}
	const char *groupid = NULL;
	enum topics_room_filter kind = topics_room_filter(filter, &groupid);
	size_t len = strlen(filter);
	if (kind == TOPICS_ROOM_NONE) {
		return false;
	}
	if (kind == TOPICS_ROOM_OVERLAP ? session->room_overlaps >= STATE_ROOM_OVERLAPS_MAX ||
				len > STATE_ROOM_FILTER_BYTES
					: session->room_subs >= STATE_ROOM_FILTERS_MAX) {
		return false;
	}
	f = calloc(1, sizeof *f + len + 1);
	if (f == NULL) {
		return false;
	}
	memcpy(f->filter, filter, len + 1);
	f->qos = q;
	f->kind = (uint8_t)kind;
	HASH_ADD(hh, session->rooms, filter[0], len, f);
	if (kind == TOPICS_ROOM_OVERLAP) {
		session->room_overlaps++;
	} else {
		session->room_subs++;
		session->room_all = session->room_all || kind == TOPICS_ROOM_ALL;
	}
	state_note_session_changed(chat, session);
	return true;
}

static void room_filter_free(struct chat_session *session, struct room_filter *f)
{
	HASH_DEL(session->rooms, f);
	if (f->kind == TOPICS_ROOM_OVERLAP) {
		session->room_overlaps--;
	} else {
		session->room_subs--;
		if (f->kind == TOPICS_ROOM_ALL) {
			session->room_all = false;
		}
	}
	free(f);
}

void state_session_room_remove(struct chat *chat, struct chat_session *session, const char *filter)
{
	struct room_filter *f = NULL;
	HASH_FIND_STR(session->rooms, filter, f);
	if (f != NULL) {
		room_filter_free(session, f);
		state_note_session_changed(chat, session);
	}
}

void state_session_rooms_clear(struct chat *chat, struct chat_session *session)
{
	if (session->rooms == NULL) {
		return;
	}
	struct room_filter *f, *tmp;
	HASH_ITER(hh, session->rooms, f, tmp) {
		room_filter_free(session, f);
	}
	state_note_session_changed(chat, session);
}

int state_session_room_qos(const struct chat_session *session, const char *groupid)
{
	if (session->room_subs == 0 || session->room_overlaps > 0) {
		return -1;
	}
	char filter[TOPICS_ROOM_MAX];
	topics_room(filter, groupid);
	struct room_filter *one = NULL, *all = NULL;
	HASH_FIND_STR(session->rooms, filter, one);
	if (session->room_all) {
		HASH_FIND_STR(session->rooms, TOPICS_ROOM_PREFIX "+", all);
	}
	/* Exactly one filter matches chat/room/<groupid>, or the broker would send it twice. */
	if ((one == NULL) == (all == NULL)) {
		return -1;
	}
	return one != NULL ? one->qos : all->qos;
}

void state_session_rooms_each(const struct chat_session *session,
	void (*fn)(void *ctx, const char *filter, int qos), void *ctx)
{
	const struct room_filter *f;
	for (f = session->rooms; f != NULL; f = f->hh.next) {
		fn(ctx, f->filter, f->qos);
	}
}

/* ===================================================================================== */
/* Users                                                                                 */
/* ===================================================================================== */

static void user_free(struct chat_user *user)
{
	struct sent_cid *sent, *tmp;
	HASH_ITER(hh, user->cids, sent, tmp) {
		HASH_DEL(user->cids, sent);
		free(sent);
	}
	free(user);
}

/* Forgets the user's cids older than STATE_CID_MS; they are in insertion order, oldest first. */
static void cids_expire(struct chat_user *user, int64_t now_ms)
{
	struct sent_cid *sent, *tmp;
	HASH_ITER(hh, user->cids, sent, tmp) {
		if (now_ms - sent->at_ms < STATE_CID_MS &&
			HASH_CNT(hh, user->cids) <= STATE_CIDS_PER_USER) {
			break;
		}
		HASH_DEL(user->cids, sent);
		free(sent);
	}
}

const struct sent_cid *state_cid_find(struct chat_user *user, const char *cid, int64_t now_ms)
{
	cids_expire(user, now_ms);
	struct sent_cid *sent = NULL;
	HASH_FIND_STR(user->cids, cid, sent);
	return sent;
}

bool state_cid_add(struct chat_user *user, const char *cid, const char *id, int64_t ts,
	const char *receiver, int64_t now_ms)
{
	size_t len = strlen(cid);
	struct sent_cid *sent = calloc(1, sizeof *sent + len + 1);
	if (sent == NULL) {
		return false;
	}
	sent->at_ms = now_ms;
	sent->ts = ts;
	snprintf(sent->id, sizeof sent->id, "%s", id);
	snprintf(sent->receiver, sizeof sent->receiver, "%s", receiver);
	memcpy(sent->cid, cid, len + 1);
	HASH_ADD_STR(user->cids, cid, sent);
	cids_expire(user, now_ms);
	return true;
}

struct chat_user *state_user_find(struct chat *chat, const char *userid)
{
	struct chat_user *user = NULL;
	HASH_FIND(hh_id, chat->users_by_id, userid, strlen(userid), user);
	return user;
}

struct chat_user *state_user_find_by_key(struct chat *chat, const char *key, size_t len)
{
	struct chat_user *user = NULL;
	HASH_FIND(hh_name, chat->users_by_name, key, len, user);
	return user;
}

struct chat_user *state_user_add(struct chat *chat, struct chat_session *session, const char *id,
	const char *username, size_t len, const char *key, size_t key_len)
{
	struct chat_user *user = calloc(1, sizeof *user + len + 1 + key_len + 1);
	if (user == NULL) {
		return NULL;
	}
	memcpy(user->username, username, len);
	char *own_key = user->username + len + 1;
	memcpy(own_key, key, key_len);
	user->key = own_key;
	snprintf(user->id, sizeof user->id, "%s", id);
	HASH_ADD(hh_id, chat->users_by_id, id[0], strlen(user->id), user);
	HASH_ADD_KEYPTR(hh_name, chat->users_by_name, user->key, key_len, user);
	state_note_changed(chat, user->id);
	state_session_attach(chat, user, session);
	return user;
}

bool state_user_online(const struct chat_user *user)
{
	return user->online_count > 0;
}

void state_session_attach(struct chat *chat, struct chat_user *user, struct chat_session *session)
{
	session->user = user;
	session->next_of_user = user->sessions;
	user->sessions = session;
	user->session_count++;
	session->presence = PRESENCE_OFFLINE; /* counted online just below */
	session->expires_at = 0;
	state_session_set_presence(chat, session, PRESENCE_ONLINE, 0, 0);
}

void state_session_set_presence(struct chat *chat, struct chat_session *session,
	enum presence presence, int64_t deadline, int64_t now_ms)
{
	struct chat_user *user = session->user;
	bool was_online = state_user_online(user);
	chat->grace_sessions -= session->presence == PRESENCE_GRACE;
	chat->grace_sessions += presence == PRESENCE_GRACE;
	user->online_count -= session->presence == PRESENCE_ONLINE;
	user->online_count += presence == PRESENCE_ONLINE;
	if (presence != PRESENCE_ONLINE && session->presence == PRESENCE_ONLINE) {
		session->offline_since = now_ms;
	}
	session->presence = presence;
	session->offline_deadline = deadline;
	if (was_online != state_user_online(user)) {
		state_note_changed(chat, user->id);
	}
}

/* Takes `session` out of its user's list and counts, leaving session->user NULL. */
static void session_unlink(struct chat *chat, struct chat_session *session)
{
	struct chat_user *user = session->user;
	struct chat_session **link = &user->sessions;
	while (*link != session) {
		link = &(*link)->next_of_user;
	}
	*link = session->next_of_user;
	session->next_of_user = NULL;
	user->session_count--;
	chat->grace_sessions -= session->presence == PRESENCE_GRACE;
	if (session->presence == PRESENCE_ONLINE) {
		user->online_count--;
		if (user->online_count == 0) {
			state_note_changed(chat, user->id);
		}
	}
	session->presence = PRESENCE_OFFLINE;
	session->user = NULL;
}

void state_session_end(struct chat *chat, struct chat_session *session)
{
	struct chat_user *user = session->user;
	if (user == NULL) {
		return;
	}
	session_unlink(chat, session);
	if (user->session_count == 0) {
		state_user_remove(chat, user);
	}
}

void state_user_remove(struct chat *chat, struct chat_user *user)
{
	struct chat_member *member, *tmp;
	HASH_ITER(hh_user, user->groups, member, tmp) {
		state_member_remove(chat, member);
	}
	while (user->sessions != NULL) {
		session_unlink(chat, user->sessions);
	}
	state_note_changed(chat, user->id);
	HASH_DELETE(hh_id, chat->users_by_id, user);
	HASH_DELETE(hh_name, chat->users_by_name, user);
	user_free(user);
}

/* ===================================================================================== */
/* Groups and membership                                                                 */
/* ===================================================================================== */

struct chat_group *state_group_find(struct chat *chat, const char *groupid)
{
	struct chat_group *group = NULL;
	HASH_FIND_STR(chat->groups, groupid, group);
	return group;
}

struct chat_group *state_group_add(struct chat *chat, const char *id)
{
	struct chat_group *group = calloc(1, sizeof *group);
	if (group == NULL) {
		return NULL;
	}
	snprintf(group->id, sizeof group->id, "%s", id);
	HASH_ADD_STR(chat->groups, id, group);
	state_note_changed(chat, group->id);
	return group;
}

struct chat_member *state_user_membership(const struct chat_user *user, const char *groupid)
{
	struct chat_member *member = NULL;
	HASH_FIND(hh_user, user->groups, groupid, strlen(groupid), member);
	return member;
}

struct chat_member *state_member_find(struct chat_group *group, const struct chat_user *user)
{
	struct chat_member *member = NULL;
	HASH_FIND(hh_group, group->members, user->id, strlen(user->id), member);
	return member;
}

static struct chat_member *member_add(struct chat *chat, struct chat_group *group,
	struct chat_user *user, bool added)
{
	struct chat_member *member = calloc(1, sizeof *member);
	if (member == NULL) {
		return NULL;
	}
	member->user = user;
	member->group = group;
	member->since = chat->ids.message.next;
	member->added = added;
	user->added_groups += added;
	HASH_ADD_KEYPTR(hh_group, group->members, user->id, strlen(user->id), member);
	HASH_ADD_KEYPTR(hh_user, user->groups, group->id, strlen(group->id), member);
	group->member_count++;
	chat->membership_count++;
	state_note_changed(chat, group->id);
	return member;
}

struct chat_member *state_member_add(struct chat *chat, struct chat_group *group,
	struct chat_user *user)
{
	return member_add(chat, group, user, false);
}

struct chat_member *state_member_add_by_other(struct chat *chat, struct chat_group *group,
	struct chat_user *user)
{
	return member_add(chat, group, user, true);
}

unsigned state_user_own_groups(const struct chat_user *user)
{
	return HASH_CNT(hh_user, user->groups) - user->added_groups;
}

static void member_unlink(struct chat *chat, struct chat_member *member)
{
	member->user->added_groups -= member->added;
	HASH_DELETE(hh_group, member->group->members, member);
	HASH_DELETE(hh_user, member->user->groups, member);
	member->group->member_count--;
	chat->membership_count--;
	free(member);
}

void state_member_remove(struct chat *chat, struct chat_member *member)
{
	struct chat_group *group = member->group;
	member_unlink(chat, member);
	if (group->member_count == 0) {
		state_group_delete(chat, group);
	} else {
		state_note_changed(chat, group->id);
	}
}

void state_group_delete(struct chat *chat, struct chat_group *group)
{
	struct chat_member *member, *tmp;
	HASH_ITER(hh_group, group->members, member, tmp) {
		member_unlink(chat, member);
	}
	state_note_changed(chat, group->id);
	HASH_DEL(chat->groups, group);
	free(group);
}

/* ===================================================================================== */
/* The whole                                                                             */
/* ===================================================================================== */

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
		user_free(user);
	}
	struct chat_session *session, *stmp;
	HASH_ITER(hh, chat->sessions, session, stmp) {
		/* Its user was freed above: the session is deleted as one without a user. */
		session->user = NULL;
		state_session_delete(chat, session);
	}
	chat->grace_sessions = 0;
	state_changes_clear(chat);
	state_unsaved_clear(chat);
}

void state_stats(const struct chat *chat, struct chat_stats *out)
{
	memset(out, 0, sizeof *out);
	out->users = HASH_CNT(hh_id, chat->users_by_id);
	out->groups = HASH_CNT(hh, chat->groups);
	out->sessions = HASH_CNT(hh, chat->sessions);
	out->memberships = chat->membership_count;
	const struct chat_user *user;
	for (user = chat->users_by_id; user != NULL; user = user->hh_id.next) {
		if (state_user_online(user)) {
			out->users_online++;
		}
	}
}
