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
 *  - Every user is bound to exactly one session (a client id) and every bound session points back
 *    at its user; usernames and user ids are unique among the users.
 *  - A group exists only while it has at least one member; memberships are recorded on both sides
 *    (group -> users and user -> groups) in one record.
 *  - A failed request changes no state; the client is told why on its error topic.
 *  - Ids are never reused within the life of one core.
 *
 * The core's modules, bottom up (each includes only headers below it): chat_types, chat_error,
 * chat_config, log, validate, ids, topics; state (the records); codec, outbox; directory,
 * persist, budget, rooms; requests, acl and chat (this interface). README.md's development section draws it.
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

#define CHAT_VERSION "0.1.0"

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
 * Restores the state file named by the configuration (if any) into a new core; call once, right
 * after chat_new. A missing, unreadable or corrupt file is logged and the chat starts empty (an
 * unusable file is moved aside, never overwritten). Returns CHAT_OK unless out of memory.
 */
enum chat_err chat_state_load(struct chat *chat, int64_t now_ms);

/* Writes the state file now (e.g. at shutdown) if there is one. CHAT_ERR_INTERNAL: not written. */
enum chat_err chat_state_save(struct chat *chat);

/* Counts for logging and tests. */
void chat_get_stats(const struct chat *chat, struct chat_stats *out);

#endif
