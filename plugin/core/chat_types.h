/*
 * The types of the core's public interface (chat.h) that every layer of the core also uses:
 * the hooks through which the core publishes and logs, the kinds of access check, what the
 * broker tells of a connection, and the counts for tests. Kept at the bottom of the include
 * graph so that no module has to include chat.h, the top, to name them.
 */
#ifndef CHAT_TYPES_H
#define CHAT_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum chat_log_level {
	CHAT_LOG_DEBUG,
	CHAT_LOG_INFO,
	CHAT_LOG_NOTICE,
	CHAT_LOG_WARNING,
	CHAT_LOG_ERR,
};

enum chat_access {
	CHAT_ACCESS_READ,
	CHAT_ACCESS_WRITE,
	CHAT_ACCESS_SUBSCRIBE,
	CHAT_ACCESS_UNSUBSCRIBE,
};

enum chat_acl_result {
	CHAT_ACL_ALLOW,
	CHAT_ACL_DENY,
	CHAT_ACL_DEFER, /* not the chat's business: let the broker's other mechanisms decide */
};

struct chat_hooks {
	void *ctx;
	/*
	 * Publishes a copy of `payload` (the core keeps ownership). With `clientid` NULL the message
	 * goes through the broker's normal fan-out and `retain` is honoured; with a client id it goes
	 * straight into that client's queue. Returns 0 on success.
	 */
	int (*publish)(void *ctx, const char *clientid, const char *topic, const void *payload,
		size_t len, int qos, bool retain);
	/* Logs one line; `message` is borrowed. */
	void (*log)(void *ctx, enum chat_log_level level, const char *message);
	/* Wall-clock time in milliseconds since the epoch, for the `ts` of deliveries. */
	int64_t (*wall_ms)(void *ctx);
};

/* What the broker knows of the connection behind a publish; every field is borrowed. */
struct chat_conn {
	const char *clientid; /* NULL: a connection without a client id (ignored) */
	const char *username; /* the MQTT username it connected with, or NULL */
	bool clean;           /* its clean-session (3.1.1) or clean-start (5) flag */
};

/* Counts for logging and tests. */
struct chat_stats {
	size_t users;
	size_t users_online;
	size_t groups;
	size_t memberships;
	size_t sessions;
};

#endif
