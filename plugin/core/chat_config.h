/*
 * Plugin options: their defaults, their allowed ranges, and parsing of the broker's
 * `plugin_opt_<key> <value>` strings. A value is either fully valid or refused with a message
 * naming the option; nothing falls back to a default silently.
 */
#ifndef CHAT_CONFIG_H
#define CHAT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_error.h"

#define CHAT_PATH_MAX 1024

/* What the access check answers outside chat/ (docs/protocol.md §5); no default on purpose. */
enum chat_outside {
	CHAT_OUTSIDE_UNSET, /* not configured: the plugin refuses to start */
	CHAT_OUTSIDE_ALLOW, /* topics outside chat/ pass, as on a broker without ACLs; $ topics
	                       other than $SYS reads are still left to the broker */
	CHAT_OUTSIDE_DEFER, /* topics outside chat/ are left to acl_file or dynamic security */
};

struct chat_config {
	int64_t max_message_bytes; /* longest message text, in bytes of UTF-8 */
	int64_t offline_expiry_s;  /* offline persistent users are logged out after this; 0 never */
	int64_t reconnect_grace_s; /* a clean disconnect without subscriptions waits this long */
	int64_t max_groups_per_user;        /* 0: no limit */
	int64_t max_group_members;          /* 0: no limit */
	int64_t max_groups_added_by_others; /* groups others may put one user in; 0: no limit */
	int64_t max_sessions_per_user;      /* client ids one user may be logged in from */
	int64_t max_users;                  /* users that exist, online or not; 0: no limit */
	int64_t max_groups;                 /* groups in the whole chat; 0: no limit */
	int64_t request_rate;     /* requests per second per client, refilled; 0: no limit */
	int64_t request_burst;    /* requests a client may send at once */
	int64_t delivery_budget;  /* bytes per second of deliveries one user may make the
	                                  broker store (payload x copies); 0: no limit */
	int64_t delivery_burst;   /* bytes of deliveries one user may cause at once */
	int64_t offline_queue;    /* deliveries the broker queues per offline client (its
	                                max_queued_messages); past it the user is told */
	int64_t listen_backlog;   /* adapter: backlog for the broker's listeners; 0 leaves it */
	int64_t history_days;     /* messages older than this are not kept; 0: no limit */
	int64_t history_per_room; /* newest messages kept per room; 0: no limit */
	bool history_visibility_shared; /* members read a group's whole history, not only since
	                                   they joined (plugin_opt_history_visibility shared) */
	bool bind_mqtt_username;        /* chat username must equal the MQTT username */
	enum chat_outside outside_chat;
	char database[CHAT_PATH_MAX];   /* the store (store.h); "": none, no history */
	char state_file[CHAT_PATH_MAX]; /* an earlier release's state file to import; "": none */
};

/* Fills `config` with the defaults; outside_chat is left unset (it has no default). */
void chat_config_defaults(struct chat_config *config);

/*
 * Checks that every option without a default was given (today: outside_chat). On failure
 * returns CHAT_ERR_BAD_OPTION and writes a sentence that explains the choice into `err`.
 */
enum chat_err chat_config_check(const struct chat_config *config, char *err, size_t err_len);

/*
 * Applies one option. `key` is the name without the `plugin_opt_` prefix; surrounding
 * whitespace in `value` is ignored. On failure returns CHAT_ERR_BAD_OPTION, leaves `config`
 * unchanged and writes a sentence naming the option and the allowed values into `err`.
 */
enum chat_err chat_config_set(struct chat_config *config, const char *key, const char *value,
	char *err, size_t err_len);

/* Writes "key=value ..." of every option's effective value into `buf`, for the start-up log. */
void chat_config_describe(const struct chat_config *config, char *buf, size_t buf_len);

#endif
