/*
 * libFuzzer target: arbitrary bytes as a state file. Loading must either restore a consistent
 * state or refuse the file as a whole and leave the core empty; what was restored must then
 * survive a save-and-load round trip unchanged: its state file, loaded into a second core, gives
 * that core exactly the same state file.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "fuzz_hooks.h"
#include "persist.h"
#include "state.h"

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

static struct chat *new_core(void)
{
	struct chat_config config;
	chat_config_defaults(&config);
	struct chat_hooks hooks = { .publish = ignore_publish,
		.log = ignore_log,
		.wall_ms = fixed_wall };
	struct chat *chat = NULL;
	return chat_new(&config, &hooks, &chat) == CHAT_OK ? chat : NULL;
}

/* Saves `chat` as a graceful shutdown would, loads that into a second core, and compares. */
static void round_trip(struct chat *chat)
{
	size_t len = 0, len2 = 0;
	char *text = persist_render(chat, true, &len);
	struct chat *copy = new_core();
	if (text == NULL || copy == NULL) {
		abort(); /* out of memory is not a finding here */
	}
	char err[160];
	if (persist_parse(copy, text, len, 0, err, sizeof err) != CHAT_OK) {
		abort(); /* the saver wrote a file its own loader refuses */
	}
	char *text2 = persist_render(copy, true, &len2);
	if (text2 == NULL || len != len2 || memcmp(text, text2, len) != 0) {
		abort(); /* the second core holds another state */
	}
	struct chat_stats a, b;
	chat_get_stats(chat, &a);
	chat_get_stats(copy, &b);
	if (memcmp(&a, &b, sizeof a) != 0) {
		abort();
	}
	persist_render_free(text);
	persist_render_free(text2);
	chat_free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct chat *chat = new_core();
	if (chat == NULL) {
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
		round_trip(chat);
		chat_on_tick(chat, 0);
	}
	chat_free(chat);
	return 0;
}
