#include "chat_config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every integer option: its field, its range and what its unit is called in messages. */
static const struct int_option {
	const char *key;
	size_t offset;
	int64_t min;
	int64_t max;
	int64_t def;
	const char *unit;
} int_options[] = {
	{ "max_message_bytes", offsetof(struct chat_config, max_message_bytes), 1, 1048576, 8192,
		"bytes" },
	{ "offline_expiry", offsetof(struct chat_config, offline_expiry_s), 0, 315360000, 86400,
		"seconds (0 = never)" },
	{ "reconnect_grace", offsetof(struct chat_config, reconnect_grace_s), 1, 86400, 60,
		"seconds" },
	{ "max_groups_per_user", offsetof(struct chat_config, max_groups_per_user), 0, 1000000, 500,
		"groups (0 = no limit)" },
	{ "max_group_members", offsetof(struct chat_config, max_group_members), 0, 1000000, 1000,
		"members (0 = no limit)" },
	{ "max_groups_added_by_others", offsetof(struct chat_config, max_groups_added_by_others), 0,
		1000000, 500, "groups (0 = no limit)" },
	{ "max_sessions_per_user", offsetof(struct chat_config, max_sessions_per_user), 1, 1000, 10,
		"sessions (client ids) per user" },
	{ "max_users", offsetof(struct chat_config, max_users), 0, 100000000, 50000,
		"users (0 = no limit)" },
	{ "max_groups", offsetof(struct chat_config, max_groups), 0, 100000000, 100000,
		"groups (0 = no limit)" },
	{ "request_rate", offsetof(struct chat_config, request_rate), 0, 1000000, 50,
		"requests per second (0 = no limit)" },
	{ "request_burst", offsetof(struct chat_config, request_burst), 1, 1000000, 1000,
		"requests" },
	{ "delivery_budget", offsetof(struct chat_config, delivery_budget), 0, 1099511627776,
		262144, "bytes per second (0 = no limit)" },
	{ "delivery_burst", offsetof(struct chat_config, delivery_burst), 1, 1099511627776,
		16777216, "bytes" },
	{ "offline_queue", offsetof(struct chat_config, offline_queue), 0, 100000000, 1000,
		"messages (0 = no limit)" },
	{ "listen_backlog", offsetof(struct chat_config, listen_backlog), 0, 65535, 0,
		"connections (0 = mosquitto's 100)" },
	{ "history_days", offsetof(struct chat_config, history_days), 0, 36500, 365,
		"days (0 = no limit)" },
	{ "history_per_room", offsetof(struct chat_config, history_per_room), 0, 100000000, 10000,
		"messages (0 = no limit)" },
};
#define INT_OPTION_COUNT (sizeof int_options / sizeof int_options[0])

static int64_t *int_field(struct chat_config *config, const struct int_option *opt)
{
	return (int64_t *)(void *)((char *)config + opt->offset);
}

static int64_t int_value(const struct chat_config *config, const struct int_option *opt)
{
	int64_t v;
	memcpy(&v, (const char *)config + opt->offset, sizeof v);
	return v;
}

void chat_config_defaults(struct chat_config *config)
{
	memset(config, 0, sizeof *config);
	for (size_t i = 0; i < INT_OPTION_COUNT; i++) {
		*int_field(config, &int_options[i]) = int_options[i].def;
	}
	config->bind_mqtt_username = false;
	config->outside_chat = CHAT_OUTSIDE_UNSET;
}

enum chat_err chat_config_check(const struct chat_config *config, char *err, size_t err_len)
{
	if (config->state_file[0] != '\0' && config->database[0] == '\0') {
		snprintf(err, err_len,
			"plugin_opt_state_file is only read once, to import it into plugin_opt_database: "
			"set plugin_opt_database to a path (e.g. beside the state file, chat.db); see "
			"README.md, 'Moving from state_file to database'");
		return CHAT_ERR_BAD_OPTION;
	}
	if (config->outside_chat == CHAT_OUTSIDE_UNSET) {
		snprintf(err, err_len,
			"plugin_opt_outside_chat must be set, to defer or allow. defer: this broker has an "
			"acl_file, dynamic security or another access plugin, and they decide every topic "
			"outside chat/ as before (load the chat plugin first). allow: it has none, and "
			"everything outside chat/ stays open to every client, as on a broker without "
			"access control. The plugin cannot tell which broker this is, and guessing would "
			"either open what your ACLs close or close what was open");
		return CHAT_ERR_BAD_OPTION;
	}
	return CHAT_OK;
}

/* Copies `value` without surrounding whitespace (mosquitto keeps trailing spaces). */
static bool trimmed(const char *value, char *out, size_t out_len)
{
	while (isspace((unsigned char)*value)) {
		value++;
	}
	size_t len = strlen(value);
	while (len > 0 && isspace((unsigned char)value[len - 1])) {
		len--;
	}
	if (len >= out_len) {
		return false;
	}
	memcpy(out, value, len);
	out[len] = '\0';
	return true;
}

static bool parse_integer(const char *text, int64_t min, int64_t max, int64_t *out)
{
	if (!isdigit((unsigned char)*text)) {
		return false;
	}
	errno = 0;
	char *end = NULL;
	long long v = strtoll(text, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max) {
		return false;
	}
	*out = (int64_t)v;
	return true;
}

enum chat_err chat_config_set(struct chat_config *config, const char *key, const char *value,
	char *err, size_t err_len)
{
	char text[CHAT_PATH_MAX];

	if (value == NULL || !trimmed(value, text, sizeof text)) {
		snprintf(err, err_len, "plugin_opt_%s: value missing or too long", key);
		return CHAT_ERR_BAD_OPTION;
	}
	for (size_t i = 0; i < INT_OPTION_COUNT; i++) {
		const struct int_option *opt = &int_options[i];
		if (strcmp(key, opt->key) != 0) {
			continue;
		}
		int64_t n = 0;
		if (!parse_integer(text, opt->min, opt->max, &n)) {
			snprintf(err, err_len,
				"plugin_opt_%s: '%s' is not a whole number from %" PRId64
				" to %" PRId64 " %s",
				key, text, opt->min, opt->max, opt->unit);
			return CHAT_ERR_BAD_OPTION;
		}
		*int_field(config, opt) = n;
		return CHAT_OK;
	}
	if (strcmp(key, "outside_chat") == 0) {
		if (strcmp(text, "allow") == 0) {
			config->outside_chat = CHAT_OUTSIDE_ALLOW;
		} else if (strcmp(text, "defer") == 0) {
			config->outside_chat = CHAT_OUTSIDE_DEFER;
		} else {
			snprintf(err, err_len,
				"plugin_opt_outside_chat: '%s' is neither allow nor defer", text);
			return CHAT_ERR_BAD_OPTION;
		}
	} else if (strcmp(key, "bind_mqtt_username") == 0) {
		if (strcmp(text, "true") == 0) {
			config->bind_mqtt_username = true;
		} else if (strcmp(text, "false") == 0) {
			config->bind_mqtt_username = false;
		} else {
			snprintf(err, err_len,
				"plugin_opt_bind_mqtt_username: '%s' is neither true nor false",
				text);
			return CHAT_ERR_BAD_OPTION;
		}
	} else if (strcmp(key, "history_visibility") == 0) {
		if (strcmp(text, "joined") == 0) {
			config->history_visibility_shared = false;
		} else if (strcmp(text, "shared") == 0) {
			config->history_visibility_shared = true;
		} else {
			snprintf(err, err_len,
				"plugin_opt_history_visibility: '%s' is neither joined nor shared",
				text);
			return CHAT_ERR_BAD_OPTION;
		}
	} else if (strcmp(key, "state_file") == 0 || strcmp(key, "database") == 0) {
		if (text[0] != '/') {
			snprintf(err, err_len, "plugin_opt_%s: '%s' is not an absolute path", key,
				text);
			return CHAT_ERR_BAD_OPTION;
		}
		memcpy(strcmp(key, "database") == 0 ? config->database : config->state_file, text,
			strlen(text) + 1);
	} else {
		snprintf(err, err_len,
			"plugin_opt_%s: unknown option (see README.md, section Options, for the list)",
			key);
		return CHAT_ERR_BAD_OPTION;
	}
	return CHAT_OK;
}

void chat_config_describe(const struct chat_config *config, char *buf, size_t buf_len)
{
	size_t used = 0;
	for (size_t i = 0; i < INT_OPTION_COUNT && used < buf_len; i++) {
		int64_t v = int_value(config, &int_options[i]);
		used += (size_t)snprintf(buf + used, buf_len - used, "%s=%" PRId64 " ",
			int_options[i].key, v);
	}
	if (used < buf_len) {
		snprintf(buf + used, buf_len - used,
			"bind_mqtt_username=%s outside_chat=%s history_visibility=%s database=%s "
			"state_file=%s",
			config->bind_mqtt_username ? "true" : "false",
			config->outside_chat == CHAT_OUTSIDE_ALLOW           ? "allow"
				: config->outside_chat == CHAT_OUTSIDE_DEFER ? "defer"
									     : "(unset)",
			config->history_visibility_shared ? "shared" : "joined",
			config->database[0] != '\0' ? config->database : "(none)",
			config->state_file[0] != '\0' ? config->state_file : "(none)");
	}
}
