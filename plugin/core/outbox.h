/*
 * The outbox: every message the chat publishes goes through here, and only here is the
 * publish hook called (docs/protocol.md §3).
 *
 * Inbox deliveries go by client id straight into one session's queue, at the QoS with which
 * that client subscribed its inbox (with bind_mqtt_username, through the fan-out while the
 * session's connection is not known to be its user's); for a user that is away they are counted, because the
 * broker silently drops what exceeds its max_queued_messages and the user is told at its next
 * login. A group message for the sessions that hold a room subscription is published once on
 * the group's room topic. Directory records are published retained at QoS 1 through the normal fan-out (READ
 * checks apply), and cleared with an empty retained payload. Texts and topics are borrowed.
 */
#ifndef CHAT_OUTBOX_H
#define CHAT_OUTBOX_H

#include <cjson/cJSON.h>

#include "state.h"

/*
 * Delivers `text` (`len` bytes) on chat/inbox/<session's client id>/<kind>. Returns CHAT_OK, or
 * CHAT_ERR_INTERNAL when the broker did not take it.
 */
enum chat_err outbox_deliver(struct chat *chat, struct chat_session *session, const char *kind,
	const char *text, size_t len);

/*
 * Publishes a group message `text` (`len` bytes) once on chat/room/<groupid> through the normal
 * fan-out, QoS 1, not retained; the READ check admits the member sessions that hold a room
 * subscription for the group (docs/protocol.md §3.5).
 */
enum chat_err outbox_room(struct chat *chat, const char *groupid, const char *text, size_t len);

/*
 * Counts a delivery that the broker queues for the session while its user is away (a room
 * publish it reads at `qos`; inbox deliveries count themselves), for "dropped" at its next login.
 */
void outbox_count_away(struct chat *chat, struct chat_session *session, int qos);

/*
 * Answers the request the session's connection just sent (login-response, error), rendering
 * `doc` (borrowed): always by client id, since that connection sent it, even when with
 * bind_mqtt_username it is not the session user's (docs/protocol.md §2.5). CHAT_ERR_INTERNAL
 * also when out of memory.
 */
enum chat_err outbox_reply_doc(struct chat *chat, struct chat_session *session, const char *kind,
	const cJSON *doc);

/* Publishes `doc` (borrowed) retained on `topic` to every reader. */
enum chat_err outbox_retain_doc(struct chat *chat, const char *topic, const cJSON *doc);

/* Clears the retained message of `topic` (an empty retained payload). */
enum chat_err outbox_retain_clear(struct chat *chat, const char *topic);

#endif
