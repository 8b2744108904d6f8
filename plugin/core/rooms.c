#include "rooms.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "outbox.h"

struct room_post {
	struct room_post *next;
	uint64_t number; /* the message's id number: members who joined after it do not get it */
	size_t len;
	char groupid[CHAT_ID_BUF];
	char data[]; /* the sending client id, NUL, then the text */
};

/*
 * Walks the sessions of the group's members: with `post` NULL it only counts the copies; with a
 * post it delivers the inbox copies (the room publish is the caller's). Sets *room when some
 * session reads the group through its room subscription. Returns the inbox copies, or the
 * failed deliveries when delivering.
 */
static size_t walk(struct chat *chat, const struct chat_group *group, const char *sender,
	const struct room_post *post, bool *room)
{
	size_t n = 0;
	const struct chat_member *member;
	for (member = group->members; member != NULL; member = member->hh_group.next) {
		if (post != NULL && member->since > post->number) {
			/*
			 * Joined between the message and this tick: it was not a member when the
			 * message was sent, so it neither gets it nor sees it in history (§4.11).
			 */
			continue;
		}
		struct chat_session *s;
		for (s = member->user->sessions; s != NULL; s = s->next_of_user) {
			int qos = state_session_room_qos(s, group->id);
			if (qos >= 0) {
				*room = true;
				if (post != NULL) {
					outbox_count_away(chat, s, qos);
				}
			} else if (strcmp(s->clientid, sender) == 0) {
				continue; /* the sender does not get its own message in its inbox */
			} else if (post == NULL) {
				n++;
			} else {
				const char *text = post->data + strlen(post->data) + 1;
				n += outbox_deliver(chat, s, "message", text, post->len) != CHAT_OK;
			}
		}
	}
	return n;
}

size_t rooms_copies(struct chat *chat, const struct chat_group *group,
	const struct chat_session *sender)
{
	bool room = false;
	size_t inbox = walk(chat, group, sender->clientid, NULL, &room);
	return inbox + (room ? 1 : 0);
}

enum chat_err rooms_post(struct chat *chat, const struct chat_group *group,
	const struct chat_session *sender, uint64_t number, const char *text, size_t len)
{
	size_t id_len = strlen(sender->clientid);
	struct room_post *post = malloc(sizeof *post + id_len + 1 + len + 1);
	if (post == NULL) {
		return CHAT_ERR_INTERNAL;
	}
	post->next = NULL;
	post->number = number;
	post->len = len;
	memcpy(post->groupid, group->id, sizeof post->groupid);
	memcpy(post->data, sender->clientid, id_len + 1);
	memcpy(post->data + id_len + 1, text, len);
	post->data[id_len + 1 + len] = '\0';
	struct room_post **tail =
		chat->room_posts_tail != NULL ? chat->room_posts_tail : &chat->room_posts;
	*tail = post;
	chat->room_posts_tail = &post->next;
	return CHAT_OK;
}

void rooms_flush(struct chat *chat)
{
	size_t failed = 0;
	struct room_post *post;
	while ((post = chat->room_posts) != NULL) {
		chat->room_posts = post->next;
		/* A group deleted since (its last member left) has nobody to deliver to. */
		const struct chat_group *group = state_group_find(chat, post->groupid);
		bool room = false;
		if (group != NULL) {
			failed += walk(chat, group, post->data, post, &room);
		}
		if (room) {
			const char *text = post->data + strlen(post->data) + 1;
			failed += outbox_room(chat, group->id, text, post->len) != CHAT_OK;
		}
		free(post);
	}
	chat->room_posts_tail = NULL;
	if (failed > 0) {
		log_printf(&chat->hooks, CHAT_LOG_ERR,
			"chat: %zu group message deliveries could not be queued (out of memory?)",
			failed);
	}
}

void rooms_free(struct chat *chat)
{
	struct room_post *post;
	while ((post = chat->room_posts) != NULL) {
		chat->room_posts = post->next;
		free(post);
	}
	chat->room_posts_tail = NULL;
}
