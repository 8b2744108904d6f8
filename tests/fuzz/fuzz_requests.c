/*
 * libFuzzer target: arbitrary sequences of requests, access checks, disconnects and ticks from a
 * few clients, on a fresh core per input. Besides the sanitizers' checks it asserts the core's
 * promises: every delivery is valid JSON (or an empty retained clear), goes to a valid client
 * id's own inbox, and the state's counts stay consistent.
 *
 * Input: records separated by '\n'. A record is "<op><client><topic><payload...>" where op,
 * client and topic are single characters indexing the tables below, and the rest is the payload.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "chat.h"
#include "fuzz_hooks.h"
#include "ids.h"
#include "validate.h"

static const char *const clients[] = { "a", "b", "c", "d", "a+b", "$x", "" };
static const char *const topics[] = {
	"chat/login",
	"chat/logout",
	"chat/msg/10",
	"chat/msg/20",
	"chat/msg/30",
	"chat/msg/11",
	"chat/msg/21",
	"chat/msg/",
	"chat/msg/a/b",
	"chat/group/create",
	"chat/group/join",
	"chat/group/leave",
	"chat/history",
	"chat/room/11",
	"chat/contacts",
	"chat/inbox/a/message",
	"#",
	"chat/#",
	"chat/inbox/+/error",
	"chat/users/10",
	"sensors/x",
	"chat/room/11",
	"chat/room/21",
	"chat/room/+",
	"$share/g/chat/room/+",
	"+/room/#",
};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int check_publish(void *ctx, const char *clientid, const char *topic, const void *payload,
	size_t len, int qos, bool retain)
{
	(void)ctx;
	if (qos < 0 || qos > 2) {
		abort();
	}
	if (clientid != NULL) {
		/* A delivery: to a valid client id's own inbox, never retained. */
		char prefix[200];
		size_t n = (size_t)snprintf(prefix, sizeof prefix, "chat/inbox/%s/", clientid);
		if (!validate_clientid(clientid) || strncmp(topic, prefix, n) != 0 || retain) {
			abort();
		}
	} else if (strncmp(topic, "chat/room/", 10) == 0) {
		/* A group message once on its room topic: never retained, QoS 1. */
		if (retain || qos != 1 || !ids_is_group(topic + 10)) {
			abort();
		}
	} else if (strncmp(topic, "chat/", 5) != 0 || !retain) {
		abort();
	}
	if (len == 0 && clientid == NULL) {
		return 0; /* a retained clear */
	}
	cJSON *doc = cJSON_ParseWithLength(payload, len);
	if (!cJSON_IsObject(doc) || !validate_utf8(payload, len)) {
		abort();
	}
	cJSON_Delete(doc);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct chat_config config;
	chat_config_defaults(&config);
	config.max_message_bytes = 64;
	config.outside_chat = CHAT_OUTSIDE_ALLOW;
	config.reconnect_grace_s = 1;
	config.offline_expiry_s = 2;
	struct chat_hooks hooks = { .publish = check_publish,
		.log = ignore_log,
		.wall_ms = fixed_wall };
	struct chat *chat = NULL;
	if (chat_new(&config, &hooks, &chat) != CHAT_OK) {
		return 0;
	}
	int64_t now = 0;
	const uint8_t *end = data + size;
	while (data < end) {
		const uint8_t *nl = memchr(data, '\n', (size_t)(end - data));
		const uint8_t *rec_end = nl != NULL ? nl : end;
		size_t len = (size_t)(rec_end - data);
		if (len >= 3) {
			uint8_t op = data[0] % 8;
			const char *client = clients[data[1] % COUNT(clients)];
			const char *topic = topics[data[2] % COUNT(topics)];
			const uint8_t *payload = data + 3;
			size_t payload_len = len - 3;
			switch (op) {
			case 0:
			case 1:
			case 2:
			case 3: {
				struct chat_conn conn = { .clientid = *client ? client : NULL,
					.username = client,
					.clean = (data[0] & 0x10) != 0 };
				chat_on_publish(chat, &conn, topic, payload, payload_len, now);
				break;
			}
			case 4: {
				struct chat_conn conn = { .clientid = *client ? client : NULL,
					.username = (data[2] & 4) ? client : NULL,
					.clean = (data[0] & 0x10) != 0 };
				chat_acl_check(chat, &conn, (enum chat_access)(data[1] % 4), topic,
					data[2] % 3, (data[2] & 8) != 0,
					(data[2] & 16) != 0 ? 5 : 0);
				break;
			}
			case 5:
				chat_on_disconnect(chat, *client ? client : NULL, data[2] & 1,
					(data[2] >> 1) & 1, now);
				break;
			default:
				now += 100 * (payload_len > 0 ? payload[0] : 1);
				chat_on_tick(chat, now);
				break;
			}
		}
		data = rec_end + (nl != NULL ? 1 : 0);
	}
	struct chat_stats stats;
	chat_get_stats(chat, &stats);
	if (stats.users_online > stats.users || stats.sessions < stats.users) {
		abort();
	}
	chat_free(chat);
	return 0;
}
