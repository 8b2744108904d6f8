/*
 * The Mosquitto adapter: the only file that includes mosquitto's headers. It registers the
 * plugin's callbacks, unwraps each event into a call of the core (plugin/core/chat.h), publishes
 * and logs what the core asks it to, and maps the core's answers to MOSQ_ERR_* codes.
 *
 * Mosquitto 2.0.11 facts this file relies on (its src/handle_publish.c, src/security.c,
 * src/loop.c and src/plugin_public.c): MESSAGE fires after the WRITE check and before fan-out,
 * and any return other than success or ACL_DENIED disconnects the publisher; ACL checks run for every delivery; TICK fires every loop pass; DISCONNECT also fires
 * for stale connections and with a NULL client id; nothing unregisters callbacks for us.
 */
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "chat.h"

/*
 * How long the broker thread spent in one kind of callback: a log2 histogram in microseconds
 * (bucket 0: under 1 us; bucket k: [2^(k-1), 2^k) us), the count, the total and the maximum.
 * Two clock reads per call; logged at a clean shutdown for the benchmark (tests/bench).
 */
#define TIMING_BUCKETS 32
struct timing {
	uint64_t n, total_ns, max_ns;
	uint64_t buckets[TIMING_BUCKETS];
};

/* What the callbacks get as userdata: the core, and the adapter's own settings. */
struct plugin {
	struct chat *chat;
	int listen_backlog;   /* plugin_opt_listen_backlog; 0 leaves mosquitto's 100 */
	bool backlog_applied; /* done on the first tick, once the listeners exist */
	struct timing tick_time, message_time;
};

/* The plugin is built with hidden visibility; only the broker's entry points are exported. */
#define CHAT_EXPORT __attribute__((visibility("default")))

/* The identifier the broker gave this plugin: the only file-scope state. */
static mosquitto_plugin_id_t *plugin_id;

static int64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void timing_add(struct timing *t, uint64_t ns)
{
	uint64_t us = ns / 1000;
	size_t bucket = 0;
	while (us > 0 && bucket < TIMING_BUCKETS - 1) {
		us >>= 1;
		bucket++;
	}
	t->n++;
	t->total_ns += ns;
	t->max_ns = ns > t->max_ns ? ns : t->max_ns;
	t->buckets[bucket]++;
}

/* One INFO line: "chat: broker-thread time per <what>: n=..., max=... us, histogram <1us:n ..." */
static void timing_log(const struct timing *t, const char *what)
{
	char hist[TIMING_BUCKETS * 32];
	size_t len = 0;
	hist[0] = '\0';
	for (size_t i = 0; i < TIMING_BUCKETS && len < sizeof hist; i++) {
		if (t->buckets[i] == 0) {
			continue;
		}
		int n = snprintf(hist + len, sizeof hist - len, " <%lluus:%llu", 1ull << i,
			(unsigned long long)t->buckets[i]);
		len += n > 0 ? (size_t)n : 0;
	}
	mosquitto_log_printf(MOSQ_LOG_INFO,
		"chat: broker-thread time per %s: n=%llu, mean=%.1f us, max=%llu us, histogram%s",
		what, (unsigned long long)t->n,
		t->n > 0 ? (double)t->total_ns / (double)t->n / 1000.0 : 0.0,
		(unsigned long long)(t->max_ns / 1000), hist);
}

/* ---------------------------------------------------------------------------------- */
/* Hooks given to the core                                                              */
/* ---------------------------------------------------------------------------------- */

static int hook_publish(void *ctx, const char *clientid, const char *topic, const void *payload,
	size_t len, int qos, bool retain)
{
	(void)ctx;
	if (len > INT32_MAX) {
		return -1;
	}
	int rc = mosquitto_broker_publish_copy(clientid, topic, (int)len, payload, qos, retain,
		NULL);
	return rc == MOSQ_ERR_SUCCESS ? 0 : -1;
}

static void hook_log(void *ctx, enum chat_log_level level, const char *message)
{
	(void)ctx;
	int mosq_level = MOSQ_LOG_INFO;
	switch (level) {
	case CHAT_LOG_DEBUG:
		mosq_level = MOSQ_LOG_DEBUG;
		break;
	case CHAT_LOG_INFO:
		mosq_level = MOSQ_LOG_INFO;
		break;
	case CHAT_LOG_NOTICE:
		mosq_level = MOSQ_LOG_NOTICE;
		break;
	case CHAT_LOG_WARNING:
		mosq_level = MOSQ_LOG_WARNING;
		break;
	case CHAT_LOG_ERR:
		mosq_level = MOSQ_LOG_ERR;
		break;
	}
	mosquitto_log_printf(mosq_level, "%s", message);
}

static int64_t hook_wall_ms(void *ctx)
{
	(void)ctx;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Mosquitto 2.0 listens with a backlog of 100: when thousands of clients connect at once (a
 * broker restart, a network coming back), SYNs beyond it are dropped and each client waits 1,
 * 3, 7, 15 s to retry. With plugin_opt_listen_backlog the plugin re-issues listen() with a larger
 * backlog on the broker's listening sockets (Linux allows it on a listening socket; the kernel
 * caps it at net.core.somaxconn).
 */
static void raise_listen_backlog(int backlog)
{
	if (backlog <= 0) {
		return;
	}
	DIR *dir = opendir("/proc/self/fd");
	if (dir == NULL) {
		mosquitto_log_printf(MOSQ_LOG_WARNING,
			"chat: cannot list /proc/self/fd: listen backlog unchanged");
		return;
	}
	int raised = 0;
	struct dirent *entry;
	while ((entry = readdir(dir)) != NULL) {
		char *end = NULL;
		long fd = strtol(entry->d_name, &end, 10);
		int accepting = 0;
		socklen_t len = sizeof accepting;
		if (*end != '\0' || fd < 0 || fd == dirfd(dir) ||
			getsockopt((int)fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 ||
			!accepting) {
			continue;
		}
		raised += listen((int)fd, backlog) == 0;
	}
	closedir(dir);
	mosquitto_log_printf(MOSQ_LOG_INFO, "chat: listen backlog %d on %d listening sockets",
		backlog, raised);
}

/* ---------------------------------------------------------------------------------- */
/* Callbacks                                                                            */
/* ---------------------------------------------------------------------------------- */

static int plugin__on_acl_check(int event, void *event_data, void *userdata)
{
	(void)event;
	struct mosquitto_evt_acl_check *ev = event_data;
	enum chat_access access;
	switch (ev->access) {
	case MOSQ_ACL_READ:
		access = CHAT_ACCESS_READ;
		break;
	case MOSQ_ACL_WRITE:
		access = CHAT_ACCESS_WRITE;
		break;
	case MOSQ_ACL_SUBSCRIBE:
		access = CHAT_ACCESS_SUBSCRIBE;
		break;
	case MOSQ_ACL_UNSUBSCRIBE:
		access = CHAT_ACCESS_UNSUBSCRIBE;
		break;
	default:
		return MOSQ_ERR_PLUGIN_DEFER;
	}
	struct plugin *plugin = userdata;
	struct chat_conn conn = {
		.clientid = mosquitto_client_id(ev->client),
		.username = mosquitto_client_username(ev->client),
		.clean = mosquitto_client_clean_session(ev->client),
	};
	switch (chat_acl_check(plugin->chat, &conn, access, ev->topic, ev->qos, ev->retain,
		ev->payloadlen)) {
	case CHAT_ACL_ALLOW:
		return MOSQ_ERR_SUCCESS;
	case CHAT_ACL_DEFER:
		return MOSQ_ERR_PLUGIN_DEFER;
	case CHAT_ACL_DENY:
		break;
	}
	return MOSQ_ERR_ACL_DENIED;
}

static int plugin__on_message(int event, void *event_data, void *userdata)
{
	(void)event;
	struct mosquitto_evt_message *ev = event_data;
	if (!chat_topic_is_chat(ev->topic)) {
		return MOSQ_ERR_SUCCESS;
	}
	/* A request is never retained; READ checks keep it from every subscriber. */
	ev->retain = false;
	/*
	 * Whatever the core answers, the broker sees success: user mistakes were answered on the
	 * client's error topic, internal failures were logged, and any other code would disconnect
	 * the publisher.
	 */
	struct chat_conn conn = {
		.clientid = mosquitto_client_id(ev->client),
		.username = mosquitto_client_username(ev->client),
		.clean = mosquitto_client_clean_session(ev->client),
	};
	struct plugin *plugin = userdata;
	uint64_t t0 = monotonic_ns();
	(void)chat_on_publish(plugin->chat, &conn, ev->topic, ev->payload, ev->payloadlen,
		(int64_t)(t0 / 1000000));
	timing_add(&plugin->message_time, monotonic_ns() - t0);
	return MOSQ_ERR_SUCCESS;
}

static int plugin__on_disconnect(int event, void *event_data, void *userdata)
{
	(void)event;
	struct mosquitto_evt_disconnect *ev = event_data;
	struct plugin *plugin = userdata;
	chat_on_disconnect(plugin->chat, mosquitto_client_id(ev->client),
		mosquitto_client_clean_session(ev->client), mosquitto_client_sub_count(ev->client),
		monotonic_ms());
	return MOSQ_ERR_SUCCESS;
}

static int plugin__on_tick(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)event_data; /* its time fields are zero in 2.0 */
	struct plugin *plugin = userdata;
	if (!plugin->backlog_applied) {
		plugin->backlog_applied = true;
		raise_listen_backlog(plugin->listen_backlog);
	}
	uint64_t t0 = monotonic_ns();
	chat_on_tick(plugin->chat, (int64_t)(t0 / 1000000));
	timing_add(&plugin->tick_time, monotonic_ns() - t0);
	return MOSQ_ERR_SUCCESS;
}

/* ---------------------------------------------------------------------------------- */
/* Lifecycle                                                                            */
/* ---------------------------------------------------------------------------------- */

static const struct {
	int event;
	MOSQ_FUNC_generic_callback callback;
} callbacks[] = {
	{ MOSQ_EVT_ACL_CHECK, plugin__on_acl_check }, { MOSQ_EVT_MESSAGE, plugin__on_message },
	{ MOSQ_EVT_DISCONNECT, plugin__on_disconnect }, { MOSQ_EVT_TICK, plugin__on_tick },
	/*
	 * No MOSQ_EVT_RELOAD: options are read once at start-up, and 2.0's reload event (SIGHUP)
	 * brings none, so there is nothing to do on it.
	 */
};
#define CALLBACK_COUNT (sizeof callbacks / sizeof callbacks[0])

static void unregister_callbacks(size_t count)
{
	for (size_t i = 0; i < count; i++) {
		mosquitto_callback_unregister(plugin_id, callbacks[i].event, callbacks[i].callback,
			NULL);
	}
}

CHAT_EXPORT int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for (int i = 0; i < supported_version_count; i++) {
		if (supported_versions[i] == 5) {
			return 5;
		}
	}
	return -1;
}

CHAT_EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
	struct mosquitto_opt *options, int option_count)
{
	struct chat_config config;
	char err[CHAT_PATH_MAX + 512];
	size_t registered = 0;
	struct plugin *plugin = NULL;

	chat_config_defaults(&config);
	for (int i = 0; i < option_count; i++) {
		if (chat_config_set(&config, options[i].key, options[i].value, err, sizeof err) !=
			CHAT_OK) {
			mosquitto_log_printf(MOSQ_LOG_ERR, "chat: Error: %s", err);
			return MOSQ_ERR_INVAL;
		}
	}
	if (chat_config_check(&config, err, sizeof err) != CHAT_OK) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "chat: Error: %s", err);
		return MOSQ_ERR_INVAL;
	}

	/* cJSON allocates through the broker, so its memory is counted like the broker's own. */
	cJSON_Hooks json_hooks = { .malloc_fn = mosquitto_malloc, .free_fn = mosquitto_free };
	cJSON_InitHooks(&json_hooks);

	struct chat_hooks hooks = {
		.ctx = NULL,
		.publish = hook_publish,
		.log = hook_log,
		.wall_ms = hook_wall_ms,
	};
	plugin = mosquitto_calloc(1, sizeof *plugin);
	if (plugin == NULL || chat_new(&config, &hooks, &plugin->chat) != CHAT_OK ||
		chat_state_load(plugin->chat, monotonic_ms()) != CHAT_OK) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "chat: Error: out of memory");
		goto error;
	}
	plugin->listen_backlog = (int)config.listen_backlog;

	plugin_id = identifier;
	for (registered = 0; registered < CALLBACK_COUNT; registered++) {
		int rc = mosquitto_callback_register(plugin_id, callbacks[registered].event,
			callbacks[registered].callback, NULL, plugin);
		if (rc != MOSQ_ERR_SUCCESS) {
			mosquitto_log_printf(MOSQ_LOG_ERR,
				"chat: Error: could not register callback for event %d (%d)",
				callbacks[registered].event, rc);
			goto error;
		}
	}

	chat_config_describe(&config, err, sizeof err);
	mosquitto_log_printf(MOSQ_LOG_INFO, "chat: mosquitto-chat %s loaded: %s", CHAT_VERSION,
		err);
	*userdata = plugin;
	return MOSQ_ERR_SUCCESS;

error:
	unregister_callbacks(registered);
	if (plugin != NULL) {
		chat_free(plugin->chat);
		mosquitto_free(plugin);
	}
	return MOSQ_ERR_UNKNOWN;
}

CHAT_EXPORT int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options,
	int option_count)
{
	(void)options;
	(void)option_count;
	struct plugin *plugin = userdata;
	unregister_callbacks(CALLBACK_COUNT);
	timing_log(&plugin->tick_time, "tick");
	timing_log(&plugin->message_time, "chat request");
	/* A graceful stop loses nothing: the state as it is now. */
	(void)chat_state_save(plugin->chat);
	chat_free(plugin->chat);
	mosquitto_free(plugin);
	return MOSQ_ERR_SUCCESS;
}
