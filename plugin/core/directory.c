#include "directory.h"

#include "codec.h"
#include "log.h"
#include "outbox.h"
#include "topics.h"

/* Publishes the retained record of one user or group, or an empty payload if it is gone. */
static void publish_entity(struct chat *chat, const char *id)
{
	char topic[TOPICS_DIRECTORY_MAX];
	topics_directory(topic, id);
	cJSON *doc = NULL;
	if (ids_is_user(id)) {
		struct chat_user *user = state_user_find(chat, id);
		if (user != NULL) {
			doc = codec_user(user);
		}
	} else {
		struct chat_group *group = state_group_find(chat, id);
		if (group != NULL) {
			doc = codec_group(group);
		}
	}
	/* Gone (or out of memory rendering it): an empty retained payload clears the topic. */
	enum chat_err rc = doc != NULL ? outbox_retain_doc(chat, topic, doc)
				       : outbox_retain_clear(chat, topic);
	cJSON_Delete(doc);
	if (rc != CHAT_OK) {
		log_printf(&chat->hooks, CHAT_LOG_ERR, "chat: could not publish %s", topic);
	}
}

void directory_flush(struct chat *chat, int64_t now_ms)
{
	const struct changed_id *changed;
	for (changed = chat->changes.ids; changed != NULL; changed = changed->hh.next) {
		publish_entity(chat, changed->id);
	}
	state_changes_clear(chat);

	if (chat->changes.count != chat->directory.changes_seen) {
		chat->directory.changes_seen = chat->changes.count;
		chat->directory.contacts_dirty = true;
		chat->directory.changed_at = now_ms;
		if (!chat->directory.stale) {
			chat->directory.stale = true;
			chat->directory.stale_since = now_ms;
		}
	}
	if (!chat->directory.contacts_dirty) {
		return;
	}
	size_t users = HASH_CNT(hh_id, chat->users_by_id);
	if (users >= DIRECTORY_DEBOUNCE_USERS) {
		int64_t max_wait = (int64_t)users;
		if (max_wait > DIRECTORY_MAX_WAIT_MS) {
			max_wait = DIRECTORY_MAX_WAIT_MS;
		}
		if (now_ms - chat->directory.changed_at < DIRECTORY_QUIET_MS &&
			now_ms - chat->directory.stale_since < max_wait) {
			return;
		}
	}
	cJSON *doc = codec_contacts(chat);
	if (doc == NULL || outbox_retain_doc(chat, TOPICS_CONTACTS, doc) != CHAT_OK) {
		log_printf(&chat->hooks, CHAT_LOG_ERR,
			"chat: could not publish chat/contacts; retrying next tick");
		cJSON_Delete(doc);
		return;
	}
	cJSON_Delete(doc);
	chat->directory.contacts_dirty = false;
	chat->directory.stale = false;
}
