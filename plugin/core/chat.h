/*
 * mosquitto-chat core: the chat server's public interface, independent of any broker.
 *
 * The core keeps every user, group, membership and connection ("session") of the chat, turns
 * request publishes into state changes and deliveries, decides access to chat topics, and keeps
 * the retained directory current. It never includes a mosquitto header: the adapter
 * (plugin/adapter/) unwraps broker events into the calls below and gives the core a small set of
 * hooks through which it publishes and logs.
 *
 * Invariants the core keeps:
 *  - Every user has 1 to max_sessions_per_user sessions (client ids), each pointing back at it;
 *    usernames (by their look-alike key) and user ids are unique among the users.
 *  - A group exists only while it has at least one member; memberships are recorded on both sides
 *    (group -> users and user -> groups) in one record.
 *  - A failed request changes no state; the client is told why on its error topic.
 *  - Ids are never reused: within the life of one core, and across restarts (with a database
 *    the store reserves them before they are issued; without one they start from the clock).
 *
 * The core's modules, bottom up (each includes only headers below it): chat_types, chat_error,
 * chat_config, log, validate, names, tokens, ids, topics; state (the records); codec, outbox;
 * directory, persist, store, budget, rooms; requests, acl and chat (this interface).
 * README.md's development section draws it.
 *
 * Ownership: the core copies every string it keeps; event data passed in (client ids, topics,
 * payloads) is borrowed for the duration of the call. The publish hook must copy what it sends.
 */
#ifndef CHAT_H
#define CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_config.h"
#include "chat_error.h"
#include "chat_types.h"

#define CHAT_VERSION "0.2.0"

struct chat;

/*
 * Creates a core with a copy of `config` and of `hooks`. On success *out owns the new core (free
 * it with chat_free); on failure *out is untouched. Returns CHAT_OK or CHAT_ERR_INTERNAL.
 */
enum chat_err chat_new(const struct chat_config *config, const struct chat_hooks *hooks,
	struct chat **out);

/* Frees the core and everything it holds. Accepts NULL. Publishes nothing. */
void chat_free(struct chat *chat);

/* True when `topic` is under chat/ and therefore the core's to handle or to guard. */
bool chat_topic_is_chat(const char *topic);

/*
 * Handles one publish on a chat/ topic. `now_ms` is a monotonic clock. User mistakes are
 * answered to the client and return CHAT_OK; only a failure to answer at all returns an error.
 */
enum chat_err chat_on_publish(struct chat *chat, const struct chat_conn *conn, const char *topic,
	const void *payload, size_t len, int64_t now_ms);

/*
 * Decides an access check of the connection `conn` (its client id and MQTT username may be
 * NULL; its clean flag tells a new clean connection, whose old subscriptions the broker
 * dropped). For SUBSCRIBE, `qos` is the requested QoS, remembered for the client's deliveries
 * when the filter covers its inbox or is a room subscription; `retain` is the PUBLISH's retain
 * flag for WRITE; `payload_len` the length in bytes of the message delivered (READ) or
 * published (WRITE), 0 for the empty payload that clears a retained record.
 */
enum chat_acl_result chat_acl_check(struct chat *chat, const struct chat_conn *conn,
	enum chat_access access, const char *topic, int qos, bool retain, size_t payload_len);

/* A connection ended. `clean` is its clean-session flag; `sub_count` its subscriptions. */
void chat_on_disconnect(struct chat *chat, const char *clientid, bool clean, int sub_count,
	int64_t now_ms);

/*
 * The broker's loop ticked (the last thing in each pass of its loop): deliver the group
 * messages accepted in this pass, expire offline users and publish pending directory changes.
 */
void chat_on_tick(struct chat *chat, int64_t now_ms);

/*
 * Opens the database named by the configuration (if any) and restores the chat from it into a
 * new core; call once, right after chat_new (store.h: it starts the store's worker thread and
 * waits for it to read the database). An unusable database is logged and moved aside, and the
 * chat starts empty. Returns CHAT_OK unless out of memory or the thread cannot start.
 */
enum chat_err chat_state_load(struct chat *chat, int64_t now_ms);

/*
 * Clean shutdown of the store: commits what is not yet written, marks the shutdown clean and
 * stops the worker thread (waits for it). Returns CHAT_OK.
 */
enum chat_err chat_state_save(struct chat *chat);

/* Counts for logging and tests. */
void chat_get_stats(const struct chat *chat, struct chat_stats *out);

#endif
