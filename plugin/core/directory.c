#include "directory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

void directory_mark(struct chat *chat, const char *id)
{
	/* Every change the directory shows is a change of the saved state too. */
	chat->contacts_dirty = true;
	chat->contacts_changes++;
	chat->state_dirty = true;
	struct dirty_id *dirty = NULL;
	HASH_FIND_STR(chat->dirty, id, dirty);
	if (dirty != NULL) {
		return;
	}
	dirty = calloc(1, sizeof *dirty);
	if (dirty == NULL) {
		/* The snapshot still goes out; only this entity's own topic misses this change. */
		chat_logf(chat, CHAT_LOG_ERR, "chat: out of memory marking %s for the directory", id);
		return;
	}
	snprintf(dirty->id, sizeof dirty->id, "%s", id);
	HASH_ADD_STR(chat->dirty, id, dirty);
}

/* Publishes the retained record of one user or group, or an empty payload if it is gone. */
static void publish_entity(struct chat *chat, const char *id)
{
	char topic[64];
	cJSON *doc = NULL;

	if (chat_is_userid(id)) {
		snprintf(topic, sizeof topic, "chat/users/%s", id);
		struct chat_user *user = user_find(chat, id);
		if (user != NULL) {
			doc = codec_user(user);
		}
	} else {
		snprintf(topic, sizeof topic, "chat/groups/%s", id);
		struct chat_group *group = group_find(chat, id);
		if (group != NULL) {
			doc = codec_group(group);
		}
	}
	enum chat_err rc;
	if (doc != NULL) {
		rc = codec_send(chat, NULL, topic, doc, 1, true);
		cJSON_Delete(doc);
	} else {
		/* Gone (or out of memory rendering it): an empty retained payload clears the topic. */
		rc = chat->hooks.publish(chat->hooks.ctx, NULL, topic, "", 0, 1, true) == 0
			? CHAT_OK
			: CHAT_ERR_INTERNAL;
	}
	if (rc != CHAT_OK) {
		chat_logf(chat, CHAT_LOG_ERR, "chat: could not publish %s", topic);
	}
}

/* Below this many users the snapshot goes out on every tick that follows a change. */
#define CONTACTS_DEBOUNCE_USERS 200
/* Above it, a pause in the changes this long lets the snapshot go out... */
#define CONTACTS_QUIET_MS 100
/* ... and it never waits longer than 1 ms per user, nor than this. */
#define CONTACTS_MAX_WAIT_MS 10000

/* Ids cleared per tick after a restart, so a long history does not stall the broker. */
#define SWEEP_BATCH 2000

/*
 * After a restart, clears the retained topics of ids that no longer exist: the broker's own
 * persistence may still hold records that were deleted after its last save.
 */
static void sweep(struct chat *chat)
{
	char id[32];
	unsigned budget = SWEEP_BATCH;
	for (; chat->sweep_user != 0 && budget > 0; budget--) {
		if (chat->sweep_user >= chat->user_ids.next) {
			chat->sweep_user = 0;
			break;
		}
		snprintf(id, sizeof id, "%llu0", (unsigned long long)chat->sweep_user++);
		if (user_find(chat, id) == NULL) {
			publish_entity(chat, id);
		}
	}
	for (; chat->sweep_group != 0 && budget > 0; budget--) {
		if (chat->sweep_group >= chat->group_ids.next) {
			chat->sweep_group = 0;
			break;
		}
		snprintf(id, sizeof id, "%llu1", (unsigned long long)chat->sweep_group++);
		if (group_find(chat, id) == NULL) {
			publish_entity(chat, id);
		}
	}
}

void directory_flush(struct chat *chat, int64_t now_ms)
{
	sweep(chat);
	struct dirty_id *dirty, *tmp;
	HASH_ITER(hh, chat->dirty, dirty, tmp) {
		publish_entity(chat, dirty->id);
		HASH_DEL(chat->dirty, dirty);
		free(dirty);
	}
	if (!chat->contacts_dirty) {
		return;
	}
	if (chat->contacts_changes != chat->contacts_changes_seen) {
		chat->contacts_changes_seen = chat->contacts_changes;
		chat->contacts_changed_at = now_ms;
		if (!chat->contacts_stale) {
			chat->contacts_stale = true;
			chat->contacts_stale_since = now_ms;
		}
	}
	size_t users = HASH_CNT(hh_id, chat->users_by_id);
	if (users >= CONTACTS_DEBOUNCE_USERS) {
		int64_t max_wait = (int64_t)users;
		if (max_wait > CONTACTS_MAX_WAIT_MS) {
			max_wait = CONTACTS_MAX_WAIT_MS;
		}
		if (now_ms - chat->contacts_changed_at < CONTACTS_QUIET_MS &&
			now_ms - chat->contacts_stale_since < max_wait) {
			return;
		}
	}
	cJSON *doc = codec_contacts(chat);
	if (doc == NULL || codec_send(chat, NULL, "chat/contacts", doc, 1, true) != CHAT_OK) {
		chat_logf(chat, CHAT_LOG_ERR, "chat: could not publish chat/contacts; retrying next tick");
		cJSON_Delete(doc);
		return;
	}
	cJSON_Delete(doc);
	chat->contacts_dirty = false;
	chat->contacts_stale = false;
}

void directory_clear(struct chat *chat)
{
	struct dirty_id *dirty, *tmp;
	HASH_ITER(hh, chat->dirty, dirty, tmp) {
		HASH_DEL(chat->dirty, dirty);
		free(dirty);
	}
}
