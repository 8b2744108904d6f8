#include "chat_config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void chat_config_defaults(struct chat_config *config)
{
	config->max_message_bytes = 8192;
	config->offline_expiry_s = 86400;
	config->reconnect_grace_s = 60;
	config->outside_chat = CHAT_OUTSIDE_ALLOW;
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
	if (*text == '\0' || !(isdigit((unsigned char)*text))) {
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
	char text[64];
	int64_t n = 0;

	if (value == NULL || !trimmed(value, text, sizeof text)) {
		snprintf(err, err_len, "plugin_opt_%s: value missing or too long", key);
		return CHAT_ERR_INVALID_REQUEST;
	}
	if (strcmp(key, "max_message_bytes") == 0) {
		if (!parse_integer(text, 1, 1048576, &n)) {
			snprintf(err, err_len,
				"plugin_opt_max_message_bytes: '%s' is not an integer from 1 to 1048576",
				text);
			return CHAT_ERR_INVALID_REQUEST;
		}
		config->max_message_bytes = (size_t)n;
	} else if (strcmp(key, "offline_expiry") == 0) {
		if (!parse_integer(text, 0, 315360000, &n)) {
			snprintf(err, err_len,
				"plugin_opt_offline_expiry: '%s' is not a number of seconds from 0 (never) "
				"to 315360000",
				text);
			return CHAT_ERR_INVALID_REQUEST;
		}
		config->offline_expiry_s = n;
	} else if (strcmp(key, "reconnect_grace") == 0) {
		if (!parse_integer(text, 1, 86400, &n)) {
			snprintf(err, err_len,
				"plugin_opt_reconnect_grace: '%s' is not a number of seconds from 1 to 86400",
				text);
			return CHAT_ERR_INVALID_REQUEST;
		}
		config->reconnect_grace_s = n;
	} else if (strcmp(key, "outside_chat") == 0) {
		if (strcmp(text, "allow") == 0) {
			config->outside_chat = CHAT_OUTSIDE_ALLOW;
		} else if (strcmp(text, "defer") == 0) {
			config->outside_chat = CHAT_OUTSIDE_DEFER;
		} else {
			snprintf(err, err_len, "plugin_opt_outside_chat: '%s' is neither allow nor defer",
				text);
			return CHAT_ERR_INVALID_REQUEST;
		}
	} else {
		snprintf(err, err_len,
			"plugin_opt_%s: unknown option (known: max_message_bytes, offline_expiry, "
			"reconnect_grace, outside_chat)",
			key);
		return CHAT_ERR_INVALID_REQUEST;
	}
	return CHAT_OK;
}

void chat_config_describe(const struct chat_config *config, char *buf, size_t buf_len)
{
	snprintf(buf, buf_len,
		"max_message_bytes=%zu offline_expiry=%" PRId64 " reconnect_grace=%" PRId64
		" outside_chat=%s",
		config->max_message_bytes, config->offline_expiry_s, config->reconnect_grace_s,
		config->outside_chat == CHAT_OUTSIDE_ALLOW ? "allow" : "defer");
}
