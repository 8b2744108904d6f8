/*
 * A recording stand-in for the adapter's hooks, so the core's unit tests can see exactly what it
 * would publish: every publish is copied into a list that the test inspects and clears.
 */
#ifndef CHAT_TEST_FAKE_BROKER_H
#define CHAT_TEST_FAKE_BROKER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "chat.h"

#define FAKE_MAX 4096

struct fake_publish {
	char clientid[160];
	char topic[256];
	char *payload; /* NUL-terminated copy */
	size_t len;
	int qos;
	bool retain;
	bool broadcast;
};

struct fake_broker {
	struct fake_publish sent[FAKE_MAX];
	size_t count;
	int64_t wall;
	int fail_publish;       /* non-zero: the publish hook fails */
	int fail_count;         /* the next this many publishes fail, then they work again; */
	const char *fail_topic; /* ... only those on this topic, when it is set */
	int logs;
	enum chat_log_level last_level; /* the last line logged */
	char last_log[512];
};

static inline int fake_publish(void *ctx, const char *clientid, const char *topic,
	const void *payload, size_t len, int qos, bool retain)
{
	struct fake_broker *fb = ctx;
	if (fb->fail_publish || fb->count == FAKE_MAX) {
		return -1;
	}
	if (fb->fail_count > 0 && (fb->fail_topic == NULL || strcmp(fb->fail_topic, topic) == 0)) {
		fb->fail_count--;
		return -1;
	}
	struct fake_publish *p = &fb->sent[fb->count++];
	snprintf(p->clientid, sizeof p->clientid, "%s", clientid ? clientid : "");
	snprintf(p->topic, sizeof p->topic, "%s", topic);
	p->payload = malloc(len + 1);
	memcpy(p->payload, payload, len);
	p->payload[len] = '\0';
	p->len = len;
	p->qos = qos;
	p->retain = retain;
	p->broadcast = clientid == NULL;
	return 0;
}

static inline void fake_log(void *ctx, enum chat_log_level level, const char *message)
{
	struct fake_broker *fb = ctx;
	fb->logs++;
	fb->last_level = level;
	snprintf(fb->last_log, sizeof fb->last_log, "%s", message);
	if (getenv("CHAT_TEST_LOG") != NULL) {
		fprintf(stderr, "log: %s\n", message);
	}
}

static inline int64_t fake_wall(void *ctx)
{
	return ((struct fake_broker *)ctx)->wall;
}

static inline void fake_clear(struct fake_broker *fb)
{
	for (size_t i = 0; i < fb->count; i++) {
		free(fb->sent[i].payload);
	}
	fb->count = 0;
}

/* The first recorded publish on `topic` (NULL if none). */
static inline struct fake_publish *fake_find(struct fake_broker *fb, const char *topic)
{
	for (size_t i = 0; i < fb->count; i++) {
		if (strcmp(fb->sent[i].topic, topic) == 0) {
			return &fb->sent[i];
		}
	}
	return NULL;
}

static inline size_t fake_count(struct fake_broker *fb, const char *topic)
{
	size_t n = 0;
	for (size_t i = 0; i < fb->count; i++) {
		n += strcmp(fb->sent[i].topic, topic) == 0;
	}
	return n;
}

/* The string field `name` of the JSON payload of the first publish on `topic`, copied. */
static inline const char *fake_field(struct fake_broker *fb, const char *topic, const char *name)
{
	static char value[256];
	struct fake_publish *p = fake_find(fb, topic);
	if (p == NULL) {
		return NULL;
	}
	cJSON *doc = cJSON_Parse(p->payload);
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(doc, name);
	const char *result = NULL;
	if (cJSON_IsString(item)) {
		snprintf(value, sizeof value, "%s", item->valuestring);
		result = value;
	}
	cJSON_Delete(doc);
	return result;
}

static inline struct chat *fake_chat(struct fake_broker *fb, const struct chat_config *config)
{
	struct chat_config defaults;
	chat_config_defaults(&defaults);
	if (config != NULL) {
		defaults = *config;
	}
	if (defaults.outside_chat == CHAT_OUTSIDE_UNSET) {
		defaults.outside_chat =
			CHAT_OUTSIDE_ALLOW; /* what the README's configurations set */
	}
	struct chat_hooks hooks = {
		.ctx = fb,
		.publish = fake_publish,
		.log = fake_log,
		.wall_ms = fake_wall,
	};
	fake_clear(fb); /* what an earlier core in this test published */
	memset(fb, 0, sizeof *fb);
	fb->wall = 1700000000000;
	struct chat *chat = NULL;
	if (chat_new(&defaults, &hooks, &chat) != CHAT_OK) {
		abort();
	}
	return chat;
}

/* Publishes a request from `clientid` with a NUL-terminated payload. */
static inline void req(struct chat *chat, const char *clientid, const char *topic,
	const char *payload)
{
	struct chat_conn conn = { .clientid = clientid, .username = clientid, .clean = true };
	chat_on_publish(chat, &conn, topic, payload, strlen(payload), 0);
}

/* An access check from a clean connection of `clientid` with MQTT username `username`. */
static inline enum chat_acl_result acl_check(struct chat *chat, const char *clientid,
	const char *username, enum chat_access access, const char *topic, int qos, bool retain)
{
	struct chat_conn conn = { .clientid = clientid, .username = username, .clean = true };
	return chat_acl_check(chat, &conn, access, topic, qos, retain, 0);
}

#endif
