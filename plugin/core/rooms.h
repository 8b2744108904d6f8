/*
 * Group messages, stored once (docs/protocol.md §3.5). A group message reaches each session of
 * each member either as a copy in the session's inbox or, for a session that holds a room
 * subscription for the group (state.h, state_session_room_qos), through one publish on
 * chat/room/<gid> that the broker stores once for all its readers.
 *
 * Which of the two a session gets is decided on TICK, not when the message is accepted:
 * Mosquitto 2.0.11 adds or removes a subscription right after the SUBSCRIBE or UNSUBSCRIBE
 * access check that tells the plugin of it (handle_subscribe.c, handle_unsubscribe.c), and fans
 * the plugin's publishes out only at the top of its next loop pass (loop.c, queue_plugin_msgs).
 * A decision made in the MESSAGE callback could be overtaken by an UNSUBSCRIBE handled later in
 * the same pass, and the room publish would reach nobody; TICK is the last thing in a pass, so
 * what the plugin knows of the subscriptions then is exactly what the fan-out will see.
 *
 * Accepted messages wait in chat->room_posts (a FIFO, each one allocation with its text) until
 * rooms_flush; texts passed in are copied.
 */
#ifndef CHAT_ROOMS_H
#define CHAT_ROOMS_H

#include <stddef.h>
#include <stdint.h>

#include "state.h"

/*
 * The copies the broker would store of a message into `group` sent from `sender` if it were
 * delivered now: one per session that reads the group through its inbox (the sending session
 * excepted), plus one when any session reads it through the room topic. For the budget.
 */
size_t rooms_copies(struct chat *chat, const struct chat_group *group,
	const struct chat_session *sender);

/*
 * Queues the message `text` (`len` bytes, copied) with id number `number` into `group` from
 * session `sender`, for the next rooms_flush; a member who joins before then does not get it
 * in its inbox (it was not a member when it was sent). CHAT_ERR_INTERNAL on no memory (nothing
 * queued).
 */
enum chat_err rooms_post(struct chat *chat, const struct chat_group *group,
	const struct chat_session *sender, uint64_t number, const char *text, size_t len);

/*
 * Delivers every queued message, in the order they were accepted, to the members the group has
 * now: inbox copies, and one publish on the room topic if any member session holds a room
 * subscription for it. Called on TICK.
 */
void rooms_flush(struct chat *chat);

/* Drops every queued message (chat_free). */
void rooms_free(struct chat *chat);

#endif
