/*
 * chatbench: the load generator of tests/bench (issue #4). One process, one thread, one epoll
 * loop over raw non-blocking sockets (mqtt_loop.c); it measures its own CPU and prints it beside
 * every figure. Workloads, each against brokers the run script started:
 *
 *   fanout   closed-loop group messages through the chat plugin and, side by side, through plain
 *            mosquitto (each group a topic its members subscribe to with MQTT 5 No Local):
 *            deliveries/s over a window after a warm-up, and the latency of every delivery.
 *   storm    U clients connect, subscribe and log in at once; time until each holds a directory
 *            listing all U users (plugin), or until each is subscribed (plain baseline).
 *   memory   broker resident memory with U users in G groups, stage by stage.
 *   history  live group traffic, then the same while thousands of clients ask chat/history at
 *            once: every reply must arrive whole; live latency with and without the storm.
 *   state    live group traffic while N users log in, each creates a group and goes away
 *            (persistent session): the longest gap between deliveries and the latency.
 *   queue    broker memory for messages queued to a group of away members (persistent
 *            sessions disconnected): inbox copies, one room-topic copy, or plain mosquitto.
 *   freeport / waitport   helpers for the run script.
 *
 * Every workload checks what it receives: a failed login or subscription, a delivery that is
 * missing, duplicated, misaddressed or corrupted, or a broker closing a connection makes the
 * program print "FAIL: ..." and exit with status 2. Slowness never does (except a delivery still
 * missing after a generous drain, which is a missing delivery).
 *
 * Results go to stdout as "RESULT <workload> key=value ..." lines for the run script.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "mqtt_loop.h"

#define NS_PER_S 1000000000.0
#define EXIT_WRONG 2
#define EXIT_USAGE 64

enum side_kind { PLUGIN = 0, PLAIN = 1 };
static const char *const side_names[] = { "plugin", "plain" };

/* ============================================================================================ */
/* Failure                                                                                      */
/* ============================================================================================ */

static char failure[1024];

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	if (failure[0] != '\0') {
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(failure, sizeof failure, fmt, ap);
	va_end(ap);
}

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("chatbench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ============================================================================================ */
/* Measurements of this process and of the broker                                               */
/* ============================================================================================ */

static uint64_t self_cpu_ns(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
		(uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

/* CPU time the process `pid` has used, in ns (0 if unknown). */
static uint64_t proc_cpu_ns(int pid)
{
	if (pid <= 0) {
		return 0;
	}
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		return 0;
	}
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	if (p == NULL) {
		return 0;
	}
	/* Fields after the command: state(3) ... utime(14) stime(15). */
	unsigned long long utime = 0, stime = 0;
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
		    &stime) != 2) {
		return 0;
	}
	long hz = sysconf(_SC_CLK_TCK);
	return (uint64_t)(utime + stime) * (1000000000u / (uint64_t)(hz > 0 ? hz : 100));
}

/* Resident memory of `pid` in KiB (0 if unknown). */
static uint64_t proc_rss_kb(int pid)
{
	if (pid <= 0) {
		return 0;
	}
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		return 0;
	}
	uint64_t kb = 0;
	while (fgets(line, sizeof line, f) != NULL) {
		unsigned long long v;
		if (sscanf(line, "VmRSS: %llu", &v) == 1) {
			kb = v;
			break;
		}
	}
	fclose(f);
	return kb;
}

/* TcpExt ListenOverflows + ListenDrops of this network namespace. */
static void listen_counters(uint64_t *overflows, uint64_t *drops)
{
	*overflows = *drops = 0;
	FILE *f = fopen("/proc/net/netstat", "r");
	if (f == NULL) {
		return;
	}
	static char names[8192], values[8192];
	while (fgets(names, sizeof names, f) != NULL && fgets(values, sizeof values, f) != NULL) {
		if (strncmp(names, "TcpExt:", 7) != 0) {
			continue;
		}
		char *sn = NULL, *sv = NULL;
		char *n = strtok_r(names, " \n", &sn);
		char *v = strtok_r(values, " \n", &sv);
		while (n != NULL && v != NULL) {
			if (strcmp(n, "ListenOverflows") == 0) {
				*overflows = strtoull(v, NULL, 10);
			} else if (strcmp(n, "ListenDrops") == 0) {
				*drops = strtoull(v, NULL, 10);
			}
			n = strtok_r(NULL, " \n", &sn);
			v = strtok_r(NULL, " \n", &sv);
		}
	}
	fclose(f);
}

/* CPU use between two samples, in percent of one core. */
struct cpu_mark {
	uint64_t wall, self, broker;
};

static struct cpu_mark cpu_mark(int broker_pid)
{
	struct cpu_mark m = { now_ns(), self_cpu_ns(), proc_cpu_ns(broker_pid) };
	return m;
}

static double pct(uint64_t part, uint64_t whole)
{
	return whole == 0 ? 0.0 : 100.0 * (double)part / (double)whole;
}

static double seconds(uint64_t ns)
{
	return (double)ns / NS_PER_S;
}

/* Raises RLIMIT_NOFILE to at least `want` (the hard limit too, when allowed). */
static void raise_nofile(uint64_t want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		return;
	}
	if (rl.rlim_cur >= want) {
		return;
	}
	struct rlimit up = { .rlim_cur = want,
		.rlim_max = rl.rlim_max < want ? want : rl.rlim_max };
	if (setrlimit(RLIMIT_NOFILE, &up) != 0) {
		up.rlim_cur = rl.rlim_max;
		up.rlim_max = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &up);
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < want) {
		progress("warning: open-file limit %llu is below the %llu this run needs",
			(unsigned long long)rl.rlim_cur, (unsigned long long)want);
	}
}

/* ============================================================================================ */
/* Options                                                                                      */
/* ============================================================================================ */

#define MAX_PHASES 16
#define MAX_SIDES 4

/* fanout --side NAME:KIND:PORT:PID[:room]: one broker of the comparison. */
struct side_spec {
	char name[24];
	enum side_kind kind;
	uint16_t port;
	int pid;
	bool room; /* plugin: members also subscribe chat/room/<gid> (DESIGN.md §11) */
};

struct options {
	uint16_t port[2];
	int pid[2];
	uint32_t users, members, groups;
	uint32_t text_bytes;
	double warmup, window, timeout, drain;
	uint32_t phase_qos[MAX_PHASES], phase_w[MAX_PHASES];
	size_t phases;
	const char *dir_mode; /* storm: contacts | users */
	uint32_t connect_window;
	uint64_t rss_limit_kb;
	int side;    /* storm, memory: which broker */
	bool strict; /* smoke: an incomplete storm is a failure */
	struct side_spec specs[MAX_SIDES];
	size_t nspecs;
	uint32_t storm_clients, storm_members, history_limit; /* history */
	uint32_t messages, message_bytes;                     /* queue */
	double settle; /* memory, queue: seconds between RSS readings while it settles */
};

static struct options opt = {
	.users = 100,
	.members = 10,
	.groups = 1000,
	.text_bytes = 100,
	.warmup = 2,
	.window = 10,
	.timeout = 30,
	.drain = 30,
	.dir_mode = "contacts",
	.rss_limit_kb = 4u * 1024 * 1024,
	.side = PLUGIN,
	.storm_clients = 5000,
	.storm_members = 50,
	.history_limit = 50,
	.messages = 1000,
	.message_bytes = 8192,
	.settle = 0.1,
};

/* ============================================================================================ */
/* Clients                                                                                      */
/* ============================================================================================ */

struct side;

struct client {
	struct conn *conn;
	struct side *side;
	uint32_t index;         /* within its side */
	uint32_t group, member; /* its group and its position in it */
	bool connacked, logged_in, dir_complete, done, has_group;
	bool persistent; /* connects with a session that outlives the connection */
	bool away;       /* queue: disconnected on purpose */
	bool returning;  /* queue: reconnected to collect its queued messages */
	bool history_done;
	uint8_t *hbuf; /* history: the reply being received */
	uint64_t queued_received;
	uint8_t sub_qos; /* QoS granted by the last SUBACK */
	uint32_t pending_subacks, pending_pubacks;
	uint64_t t_connack, t_login, t_dir, t_done;
	uint64_t dir_msgs, dir_bytes;
	uint32_t braces;     /* '{' counted in the snapshot being received */
	uint32_t seen_count; /* storm, users mode: distinct online users seen */
	uint64_t *seen;
	char clientid[16];
	char username[16];
	char uid[24];
	char gid[24];
};

struct slot {
	uint64_t sent;
	uint64_t *seen; /* members that received this message */
	uint32_t seq, remaining, sender;
	bool busy;
};

struct group {
	uint32_t first, members; /* clients [first, first + members) of its side */
	uint32_t rr, seq, inflight;
	struct slot *slots;
	uint32_t nslots;
	uint32_t announced; /* members that received new_group */
	char gid[24];
	char topic[40]; /* plain: the group's topic; plugin: chat/msg/<gid> */
};

struct side {
	enum side_kind kind;
	char name[24]; /* in RESULT lines: plugin, plain, room, db, ... */
	bool room;     /* plugin: group messages arrive on chat/room/<gid> */
	uint16_t port;
	int pid;
	struct client *clients;
	uint32_t nclients;
	struct group *groups;
	uint32_t ngroups;
	/* the running phase */
	uint8_t qos;
	uint32_t w;
	bool running, recording;
	uint64_t window_deliveries, deliveries, messages;
	uint64_t *lat;
	size_t lat_len, lat_cap;
	uint64_t plain_msg_id;
	uint32_t seq_limit; /* history fill: a group sends no more than this many messages */
	uint64_t last_delivery, max_gap; /* while recording: the longest wait between deliveries */
};

static struct loop L;
static struct side sides[MAX_SIDES];
static size_t nsides;
static struct client **by_tag; /* conn->tag -> client */
static uint32_t ntags;
static bool closing;

/* counters the workloads wait on */
static uint64_t n_connack, n_suback, n_puback, n_login, n_new_group, n_done;
static uint64_t n_history, n_queued_received;
static bool history_mode; /* chat/inbox/C/history replies are expected */
static bool state_mode;   /* sides[1] are users that log in, create a group and go away */
static uint64_t n_state_groups;
/*
 * The Session Expiry Interval of persistent sessions. The state workload asks for "never":
 * mosquitto 2.0.11 keeps expiring sessions in a list sorted on insertion (session_expiry__add
 * walks it), a cost per disconnect that grows with the sessions already away and is
 * mosquitto's, not the plugin's; sessions that never expire are not in that list.
 */
static uint32_t persistent_expiry = 3600;
static uint32_t connecting; /* opened, not yet CONNACKed */

/* storm observer */
static struct client observer;
static bool observing;
static uint64_t snapshots_seen, snapshot_bytes_seen, snapshot_last;
static uint32_t observer_persons;

static void register_client(struct client *cl)
{
	static uint32_t cap;
	if (ntags == cap) {
		cap = cap ? cap * 2 : 1024;
		by_tag = realloc(by_tag, cap * sizeof *by_tag);
		if (by_tag == NULL) {
			abort();
		}
	}
	by_tag[ntags] = cl;
	cl->conn = conn_open(&L, cl->side->port, ntags);
	ntags++;
	if (cl->conn == NULL) {
		fail("cannot open a connection to port %u: %s", cl->side->port, strerror(errno));
		return;
	}
	connecting++;
}

static struct client *client_of(const struct conn *conn)
{
	return conn->tag < ntags ? by_tag[conn->tag] : NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Small parsers                                                                              */
/* ------------------------------------------------------------------------------------------ */

static uint64_t parse_dec(const char *p, size_t n, bool *ok)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9') {
			*ok = false;
			return 0;
		}
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	return v;
}

/* The string value of "key":"..." in a flat JSON text, copied into out; false if absent. */
static bool json_string(const uint8_t *data, size_t len, const char *key, char *out, size_t cap)
{
	char pat[48];
	int pl = snprintf(pat, sizeof pat, "\"%s\":\"", key);
	const char *p = memmem(data, len, pat, (size_t)pl);
	if (p == NULL) {
		return false;
	}
	p += pl;
	const char *end = memchr(p, '"', len - (size_t)(p - (const char *)data));
	if (end == NULL || (size_t)(end - p) >= cap) {
		return false;
	}
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
	return true;
}

static size_t count_byte(const uint8_t *data, size_t len, uint8_t c)
{
	size_t n = 0;
	const uint8_t *p = data, *end = data + len;
	while ((p = memchr(p, c, (size_t)(end - p))) != NULL) {
		n++;
		p++;
	}
	return n;
}

/* For a topic chat/inbox/<clientid>/<kind>: the kind, or NULL if it is not this client's inbox. */
static const char *inbox_kind(const struct client *cl, const struct mqtt_publish *pub, size_t *klen)
{
	size_t idlen = strlen(cl->clientid);
	if (pub->topic_len < 11 + idlen + 2 || memcmp(pub->topic, "chat/inbox/", 11) != 0 ||
		memcmp(pub->topic + 11, cl->clientid, idlen) != 0 ||
		pub->topic[11 + idlen] != '/') {
		return NULL;
	}
	*klen = pub->topic_len - 12 - idlen;
	return pub->topic + 12 + idlen;
}

static bool kind_is(const char *kind, size_t klen, const char *want)
{
	return klen == strlen(want) && memcmp(kind, want, klen) == 0;
}

/* ============================================================================================ */
/* Latency                                                                                      */
/* ============================================================================================ */

static void lat_push(struct side *s, uint64_t v)
{
	if (s->lat_len == s->lat_cap) {
		s->lat_cap = s->lat_cap ? s->lat_cap * 2 : 1u << 20;
		s->lat = realloc(s->lat, s->lat_cap * sizeof *s->lat);
		if (s->lat == NULL) {
			abort();
		}
	}
	s->lat[s->lat_len++] = v;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double percentile_us(const uint64_t *v, size_t n, double p)
{
	if (n == 0) {
		return 0;
	}
	size_t i = (size_t)(p * (double)(n - 1));
	return (double)v[i] / 1000.0;
}

/* ============================================================================================ */
/* Fan-out messages                                                                             */
/* ============================================================================================ */

/* The text of a message: its group, slot, sequence number and send time, padded to text_bytes. */
#define TXT_G 2
#define TXT_S 11
#define TXT_Q 17
#define TXT_T 30
#define TXT_MIN 52

static size_t make_text(char *buf, uint32_t group, uint32_t slot, uint32_t seq, uint64_t t)
{
	int n = snprintf(buf, 64,
		"g=%06" PRIu32 " s=%03" PRIu32 " q=%010" PRIu32 " t=%020" PRIu64 "|", group, slot,
		seq, t);
	size_t len = opt.text_bytes;
	memset(buf + n, 'x', len - (size_t)n);
	buf[len] = '\0';
	return len;
}

static void send_next(struct side *s, struct group *g, uint32_t si)
{
	struct slot *sl = &g->slots[si];
	uint32_t m = g->rr++ % g->members;
	struct client *cl = &s->clients[g->first + m];
	sl->seq = ++g->seq;
	sl->sender = m;
	/* On a room topic the sender's session gets its own message back (DESIGN.md §11). */
	sl->remaining = g->members - (s->room ? 0u : 1u);
	sl->busy = true;
	memset(sl->seen, 0, ((g->members + 63) / 64) * sizeof *sl->seen);
	g->inflight++;
	s->messages++;

	char text[1100], payload[1400];
	uint64_t t = now_ns();
	sl->sent = t;
	make_text(text, (uint32_t)(g - s->groups), si, sl->seq, t);
	int plen;
	if (s->kind == PLUGIN) {
		plen = snprintf(payload, sizeof payload, "{\"message\":\"%s\"}", text);
	} else {
		/* The same shape and size as what the plugin delivers. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		plen = snprintf(payload, sizeof payload,
			"{\"sender\":\"%s\",\"receiver\":\"%s\",\"message\":\"%s\",\"id\":\"%" PRIu64
			"\",\"ts\":%lld}",
			cl->uid, g->gid, text, ++s->plain_msg_id,
			(long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	}
	mqtt_publish(&L, cl->conn, g->topic, strlen(g->topic), payload, (size_t)plen, s->qos,
		false);
	if (s->qos > 0) {
		cl->pending_pubacks++;
	}
}

static void fanout_message(struct client *cl, const struct mqtt_publish *pub)
{
	struct side *s = cl->side;
	if (pub->offset != 0 || pub->len != pub->total) {
		fail("client %s: a message delivery of %zu bytes was split", cl->clientid,
			pub->total);
		return;
	}
	const uint8_t *d = pub->data;
	size_t len = pub->len;
	const char *text = memmem(d, len, "\"message\":\"", 11);
	if (text == NULL || (size_t)((const uint8_t *)text - d) + 11 + TXT_MIN > len) {
		fail("client %s: a delivery without the message text: %.*s", cl->clientid, (int)len,
			(const char *)d);
		return;
	}
	text += 11;
	bool ok = true;
	uint64_t gi = parse_dec(text + TXT_G, 6, &ok);
	uint64_t si = parse_dec(text + TXT_S, 3, &ok);
	uint64_t seq = parse_dec(text + TXT_Q, 10, &ok);
	uint64_t t = parse_dec(text + TXT_T, 20, &ok);
	if (!ok || gi >= s->ngroups) {
		fail("client %s: corrupted message text", cl->clientid);
		return;
	}
	if (gi != cl->group) {
		fail("client %s (group %u) received a message of group %" PRIu64, cl->clientid,
			cl->group, gi);
		return;
	}
	struct group *g = &s->groups[gi];
	if (si >= g->nslots) {
		fail("client %s: a message of an unknown slot", cl->clientid);
		return;
	}
	struct slot *sl = &g->slots[si];
	if (!sl->busy || sl->seq != seq) {
		fail("client %s: a duplicate or stale delivery (group %" PRIu64 " seq %" PRIu64 ")",
			cl->clientid, gi, seq);
		return;
	}
	if (cl->member == sl->sender && !s->room) {
		fail("client %s received its own message", cl->clientid);
		return;
	}
	uint64_t bit = 1ull << (cl->member % 64);
	if (sl->seen[cl->member / 64] & bit) {
		fail("client %s received a message twice", cl->clientid);
		return;
	}
	sl->seen[cl->member / 64] |= bit;
	bool echo = cl->member == sl->sender; /* room topics only: not counted as a delivery */
	/* The sender named in the delivery is the member that sent it. */
	const struct client *sender = &s->clients[g->first + sl->sender];
	size_t ulen = strlen(sender->uid);
	if (len < 12 + ulen || memcmp(d, "{\"sender\":\"", 11) != 0 ||
		memcmp(d + 11, sender->uid, ulen) != 0 || d[11 + ulen] != '"') {
		fail("client %s: a delivery with the wrong sender: %.*s", cl->clientid, (int)len,
			(const char *)d);
		return;
	}
	if (!echo) {
		s->deliveries++;
	}
	if (!echo && s->recording) {
		if (s->last_delivery != 0 && L.now - s->last_delivery > s->max_gap) {
			s->max_gap = L.now - s->last_delivery;
		}
		s->last_delivery = L.now;
		s->window_deliveries++;
		lat_push(s, L.now > t ? L.now - t : 0);
	}
	if (--sl->remaining == 0) {
		sl->busy = false;
		g->inflight--;
		if (s->running && (s->seq_limit == 0 || g->seq < s->seq_limit)) {
			send_next(s, g, (uint32_t)si);
		}
	}
}

/* ============================================================================================ */
/* Packet handlers                                                                              */
/* ============================================================================================ */

enum workload { W_NONE, W_FANOUT, W_STORM, W_MEMORY, W_QUEUE };
static enum workload workload;

static void plugin_login(struct client *cl)
{
	char payload[64];
	int n = snprintf(payload, sizeof payload, "{\"username\":\"%s\"}", cl->username);
	mqtt_publish(&L, cl->conn, "chat/login", 10, payload, (size_t)n, 1, false);
	cl->pending_pubacks++;
}

static void subscribe(struct client *cl, const char *filter, uint8_t options)
{
	mqtt_subscribe(&L, cl->conn, filter, options);
	cl->pending_subacks++;
}

static void room_subscribe(struct client *cl, uint8_t qos)
{
	char filter[48];
	snprintf(filter, sizeof filter, "chat/room/%s", cl->gid);
	subscribe(cl, filter, qos);
}

static void subscribe_inbox(struct client *cl, uint8_t qos)
{
	char filter[64];
	snprintf(filter, sizeof filter, "%s/inbox/%s/#",
		cl->side->kind == PLUGIN ? "chat" : "bench", cl->clientid);
	subscribe(cl, filter, qos);
}

/* What a client does once its CONNACK arrived, per workload. */
static void after_connack(struct client *cl)
{
	struct side *s = cl->side;
	if (cl == &observer) {
		subscribe(cl, "chat/contacts", 0);
		return;
	}
	if (cl->returning) {
		return; /* its session, subscriptions and queued messages are still there */
	}
	switch (workload) {
	case W_FANOUT:
	case W_QUEUE:
		if (s->kind == PLUGIN) {
			subscribe_inbox(cl, s->qos);
			plugin_login(cl);
		} else {
			subscribe(cl, s->groups[cl->group].topic,
				(uint8_t)(s->qos | MQTT_SUB_NO_LOCAL));
		}
		break;
	case W_STORM:
		subscribe_inbox(cl, 1);
		if (s->kind == PLUGIN) {
			subscribe(cl,
				strcmp(opt.dir_mode, "users") == 0 ? "chat/users/+"
								   : "chat/contacts",
				0);
			plugin_login(cl);
		} else {
			char payload[64];
			int n = snprintf(payload, sizeof payload, "{\"username\":\"%s\"}",
				cl->username);
			mqtt_publish(&L, cl->conn, "bench/login", 11, payload, (size_t)n, 1, false);
			cl->pending_pubacks++;
		}
		break;
	case W_MEMORY:
		subscribe_inbox(cl, 1);
		break;
	case W_NONE:
		break;
	}
}

static void storm_check_done(struct client *cl)
{
	if (cl->done || cl == &observer) {
		return;
	}
	bool done = cl->side->kind == PLUGIN ? cl->logged_in && cl->dir_complete
					     : cl->pending_subacks == 0 && cl->pending_pubacks == 0;
	if (done) {
		cl->done = true;
		cl->t_done = L.now;
		n_done++;
	}
}

static void on_established(struct loop *loop, struct conn *conn)
{
	(void)loop;
	struct client *cl = client_of(conn);
	mqtt_connect(&L, conn, cl->clientid, 5, !cl->persistent, 0,
		cl->persistent ? persistent_expiry : 0);
}

static void on_packet(struct loop *loop, struct conn *conn, uint8_t type, uint8_t flags,
	const uint8_t *body, size_t len)
{
	(void)loop;
	(void)flags;
	struct client *cl = client_of(conn);
	switch (type) {
	case MQTT_CONNACK:
		if (len < 2 || body[1] != 0) {
			fail("client %s: CONNACK refused (reason 0x%02x)", cl->clientid,
				len >= 2 ? body[1] : 0xffu);
			return;
		}
		if (!cl->connacked) {
			cl->connacked = true;
			cl->t_connack = L.now;
			n_connack++;
			connecting--;
			after_connack(cl);
		}
		return;
	case MQTT_SUBACK: {
		size_t pos = 2;
		if (conn->version == 5 && len > 2) {
			pos += 1 + body[2]; /* property length (small) and properties */
		}
		if (pos >= len) {
			fail("client %s: malformed SUBACK", cl->clientid);
			return;
		}
		for (size_t i = pos; i < len; i++) {
			if (body[i] >= 0x80) {
				fail("client %s: subscription refused (reason 0x%02x)",
					cl->clientid, body[i]);
				return;
			}
			cl->sub_qos = body[i];
		}
		if (cl->pending_subacks == 0) {
			fail("client %s: unexpected SUBACK", cl->clientid);
			return;
		}
		cl->pending_subacks--;
		n_suback++;
		if (workload == W_STORM) {
			storm_check_done(cl);
		}
		return;
	}
	case MQTT_PUBACK:
		if (len >= 3 && body[2] >= 0x80) {
			fail("client %s: PUBACK with reason 0x%02x", cl->clientid, body[2]);
			return;
		}
		if (cl->pending_pubacks == 0) {
			fail("client %s: unexpected PUBACK", cl->clientid);
			return;
		}
		cl->pending_pubacks--;
		n_puback++;
		if (workload == W_STORM) {
			storm_check_done(cl);
		}
		return;
	case MQTT_DISCONNECT:
		fail("client %s: the broker sent DISCONNECT (reason 0x%02x)", cl->clientid,
			len >= 1 ? body[0] : 0);
		return;
	default:
		return;
	}
}

static void handle_login_response(struct client *cl, const struct mqtt_publish *pub)
{
	char result[32];
	if (!json_string(pub->data, pub->len, "result", result, sizeof result) ||
		strcmp(result, "success") != 0) {
		fail("client %s: login failed: %.*s", cl->clientid, (int)pub->len,
			(const char *)pub->data);
		return;
	}
	char uid[24];
	if (!json_string(pub->data, pub->len, "userid", uid, sizeof uid) || uid[0] == '\0' ||
		uid[strlen(uid) - 1] != '0') {
		fail("client %s: login-response without a user id: %.*s", cl->clientid,
			(int)pub->len, (const char *)pub->data);
		return;
	}
	if (cl->logged_in) {
		fail("client %s: a second login-response", cl->clientid);
		return;
	}
	memcpy(cl->uid, uid, sizeof uid);
	cl->logged_in = true;
	cl->t_login = L.now;
	n_login++;
}

static void handle_new_group(struct client *cl, const struct mqtt_publish *pub)
{
	struct side *s = cl->side;
	char gid[24];
	if (!json_string(pub->data, pub->len, "groupid", gid, sizeof gid)) {
		fail("client %s: new_group without a groupid", cl->clientid);
		return;
	}
	const uint8_t *m = memmem(pub->data, pub->len, "\"member\":{", 10);
	if (m == NULL) {
		fail("client %s: new_group without members", cl->clientid);
		return;
	}
	size_t off = (size_t)(m - pub->data) + 10;
	const uint8_t *end = memchr(pub->data + off, '}', pub->len - off);
	size_t members =
		end == NULL ? 0 : count_byte(pub->data + off, (size_t)(end - pub->data) - off, ':');
	struct group *g = &s->groups[cl->group];
	if (members != g->members) {
		fail("client %s: new_group %s lists %zu members, expected %u", cl->clientid, gid,
			members, g->members);
		return;
	}
	if (g->gid[0] == '\0') {
		memcpy(g->gid, gid, sizeof gid);
		snprintf(g->topic, sizeof g->topic, "chat/msg/%s", gid);
	} else if (strcmp(g->gid, gid) != 0) {
		fail("client %s: members of one group were told different group ids (%s, %s)",
			cl->clientid, g->gid, gid);
		return;
	}
	if (cl->has_group) {
		fail("client %s: new_group twice", cl->clientid);
		return;
	}
	cl->has_group = true;
	memcpy(cl->gid, gid, sizeof gid);
	if (s->room && (workload == W_FANOUT || workload == W_QUEUE)) {
		room_subscribe(cl, s->qos);
	}
	g->announced++;
	n_new_group++;
}

/* A piece of the chat/contacts snapshot for a storm client or the observer. */
static void handle_snapshot(struct client *cl, const struct mqtt_publish *pub)
{
	if (pub->offset == 0) {
		cl->braces = 0;
		if (pub->total > 0 && pub->len >= 11 &&
			memcmp(pub->data, "{\"person\":{", 11) != 0) {
			fail("chat/contacts does not start with {\"person\":{ : %.*s",
				(int)(pub->len < 80 ? pub->len : 80), (const char *)pub->data);
			return;
		}
	}
	cl->braces += (uint32_t)count_byte(pub->data, pub->len, '{');
	if (pub->offset + pub->len < pub->total || pub->total == 0) {
		return;
	}
	/* {"person":{ one '{' per user },"group":{}} -- the storm makes no groups. */
	uint32_t persons = cl->braces >= 3 ? cl->braces - 3 : 0;
	if (cl == &observer) {
		if (observing) {
			snapshots_seen++;
			snapshot_bytes_seen += pub->total;
			snapshot_last = pub->total;
		}
		observer_persons = persons;
		return;
	}
	cl->dir_msgs++;
	cl->dir_bytes += pub->total;
	if (persons > cl->side->nclients) {
		fail("client %s: chat/contacts lists %u users, only %u logged in", cl->clientid,
			persons, cl->side->nclients);
		return;
	}
	if (persons == cl->side->nclients && !cl->dir_complete) {
		cl->dir_complete = true;
		cl->t_dir = L.now;
		storm_check_done(cl);
	}
}

static void handle_user_record(struct client *cl, const struct mqtt_publish *pub)
{
	if (pub->offset != 0 || pub->len != pub->total) {
		fail("client %s: a split chat/users record", cl->clientid);
		return;
	}
	cl->dir_msgs++;
	cl->dir_bytes += pub->total;
	if (pub->total == 0) {
		return;
	}
	/*
	 * User ids come from the clock (or the database's counter), so the record is matched to a
	 * bench client by its username, u<index>.
	 */
	bool ok = true;
	char name[24];
	uint64_t k = 0;
	if (!json_string(pub->data, pub->len, "username", name, sizeof name) || name[0] != 'u' ||
		(k = parse_dec(name + 1, strlen(name + 1), &ok), !ok) || k >= cl->side->nclients) {
		fail("client %s: a record of an unexpected user %.*s: %.*s", cl->clientid,
			(int)pub->topic_len, pub->topic, (int)pub->len, (const char *)pub->data);
		return;
	}
	if (memmem(pub->data, pub->len, "\"online\":true", 13) == NULL) {
		return;
	}
	if (!(cl->seen[k / 64] & (1ull << (k % 64)))) {
		cl->seen[k / 64] |= 1ull << (k % 64);
		if (++cl->seen_count == cl->side->nclients) {
			cl->dir_complete = true;
			cl->t_dir = L.now;
			storm_check_done(cl);
		}
	}
}

/* A piece of a chat/history reply: collected whole, then checked. */
static void handle_history(struct client *cl, const struct mqtt_publish *pub)
{
	if (pub->offset == 0) {
		free(cl->hbuf);
		cl->hbuf = malloc(pub->total + 1);
		if (cl->hbuf == NULL) {
			abort();
		}
	}
	if (cl->hbuf == NULL) {
		fail("client %s: a history reply without its beginning", cl->clientid);
		return;
	}
	memcpy(cl->hbuf + pub->offset, pub->data, pub->len);
	if (pub->offset + pub->len < pub->total) {
		return;
	}
	size_t len = pub->total;
	char room[24];
	size_t count = 0;
	for (const uint8_t *p = cl->hbuf, *end = cl->hbuf + len;
		(p = memmem(p, (size_t)(end - p), "{\"sender\":", 10)) != NULL; p += 10) {
		count++;
	}
	if (cl->history_done) {
		fail("client %s: a second history reply", cl->clientid);
	} else if (!json_string(cl->hbuf, len, "room", room, sizeof room) ||
		strcmp(room, cl->gid) != 0) {
		fail("client %s: a history reply for another room: %.*s", cl->clientid,
			(int)(len < 200 ? len : 200), (const char *)cl->hbuf);
	} else if (count != opt.history_limit) {
		fail("client %s: a history reply with %zu messages, %u asked and stored",
			cl->clientid, count, opt.history_limit);
	} else {
		cl->history_done = true;
		cl->t_done = L.now;
		n_history++;
	}
	free(cl->hbuf);
	cl->hbuf = NULL;
}

/* state: what a user that logs in and creates a group gets. */
static void state_delivery(struct client *cl, const struct mqtt_publish *pub)
{
	size_t klen = 0;
	const char *kind = inbox_kind(cl, pub, &klen);
	if (kind != NULL && kind_is(kind, klen, "login-response")) {
		handle_login_response(cl, pub);
	} else if (kind != NULL && kind_is(kind, klen, "new_group")) {
		if (cl->has_group) {
			fail("client %s: new_group twice", cl->clientid);
			return;
		}
		cl->has_group = true;
		n_state_groups++;
	} else {
		fail("client %s: an unexpected delivery on %.*s: %.*s", cl->clientid,
			(int)pub->topic_len, pub->topic, (int)(pub->len < 200 ? pub->len : 200),
			(const char *)pub->data);
	}
}

/* queue: a message for the sender (room echo) or for a member collecting its queue. */
static void queue_delivery(struct client *cl, const struct mqtt_publish *pub)
{
	const struct side *s = cl->side;
	size_t klen = 0;
	const char *kind = s->kind == PLUGIN ? inbox_kind(cl, pub, &klen) : NULL;
	bool room = pub->topic_len > 10 && memcmp(pub->topic, "chat/room/", 10) == 0;
	bool group_topic = s->kind == PLAIN && pub->topic_len == strlen(s->groups[0].topic) &&
		memcmp(pub->topic, s->groups[0].topic, pub->topic_len) == 0;
	bool message = group_topic || (room && s->room) ||
		(kind != NULL && kind_is(kind, klen, "message") && !s->room);
	if (kind != NULL && kind_is(kind, klen, "login-response")) {
		handle_login_response(cl, pub);
	} else if (kind != NULL && kind_is(kind, klen, "new_group")) {
		handle_new_group(cl, pub);
	} else if (!message) {
		fail("client %s: an unexpected delivery on %.*s: %.*s", cl->clientid,
			(int)pub->topic_len, pub->topic, (int)(pub->len < 200 ? pub->len : 200),
			(const char *)pub->data);
	} else if (pub->offset + pub->len == pub->total && cl->member != 0) {
		if (!cl->returning) {
			fail("client %s: a message while it should be away", cl->clientid);
			return;
		}
		cl->queued_received++;
		n_queued_received++;
	}
}

static void on_publish(struct loop *loop, struct conn *conn, const struct mqtt_publish *pub)
{
	(void)loop;
	struct client *cl = client_of(conn);
	if (pub->topic_len == 13 && memcmp(pub->topic, "chat/contacts", 13) == 0) {
		handle_snapshot(cl, pub);
		return;
	}
	if (pub->topic_len > 11 && memcmp(pub->topic, "chat/users/", 11) == 0) {
		if (workload == W_STORM && strcmp(opt.dir_mode, "users") == 0) {
			handle_user_record(cl, pub);
			return;
		}
		fail("client %s: a chat/users record it did not subscribe to", cl->clientid);
		return;
	}
	if (workload == W_QUEUE) {
		queue_delivery(cl, pub);
		return;
	}
	if (state_mode && cl->side == &sides[1]) {
		state_delivery(cl, pub);
		return;
	}
	if (history_mode && cl->side->kind == PLUGIN) {
		size_t hl = 0;
		const char *hk = inbox_kind(cl, pub, &hl);
		if (hk != NULL && kind_is(hk, hl, "history")) {
			handle_history(cl, pub);
			return;
		}
	}
	if (pub->offset != 0 || pub->len != pub->total) {
		fail("client %s: an unexpected large delivery on %.*s", cl->clientid,
			(int)pub->topic_len, pub->topic);
		return;
	}
	struct side *s = cl->side;
	if (s->kind == PLAIN) {
		const struct group *g = &s->groups[cl->group];
		if (workload == W_FANOUT && pub->topic_len == strlen(g->topic) &&
			memcmp(pub->topic, g->topic, pub->topic_len) == 0) {
			fanout_message(cl, pub);
			return;
		}
		fail("client %s: an unexpected delivery on %.*s", cl->clientid, (int)pub->topic_len,
			pub->topic);
		return;
	}
	if (pub->topic_len > 10 && memcmp(pub->topic, "chat/room/", 10) == 0) {
		if (s->room && cl->has_group && pub->topic_len == 10 + strlen(cl->gid) &&
			memcmp(pub->topic + 10, cl->gid, pub->topic_len - 10) == 0) {
			fanout_message(cl, pub);
			return;
		}
		fail("client %s: a delivery on a room topic it did not subscribe to: %.*s",
			cl->clientid, (int)pub->topic_len, pub->topic);
		return;
	}
	size_t klen = 0;
	const char *kind = inbox_kind(cl, pub, &klen);
	if (kind == NULL) {
		fail("client %s: a delivery on someone else's topic %.*s", cl->clientid,
			(int)pub->topic_len, pub->topic);
	} else if (kind_is(kind, klen, "message") && workload == W_FANOUT && s->room) {
		fail("client %s: an inbox copy although its session reads the room topic",
			cl->clientid);
	} else if (kind_is(kind, klen, "message") && workload == W_FANOUT) {
		fanout_message(cl, pub);
	} else if (kind_is(kind, klen, "login-response")) {
		handle_login_response(cl, pub);
		if (workload == W_STORM) {
			storm_check_done(cl);
		}
	} else if (kind_is(kind, klen, "new_group")) {
		handle_new_group(cl, pub);
	} else if (kind_is(kind, klen, "error")) {
		fail("client %s: the plugin answered an error: %.*s", cl->clientid, (int)pub->len,
			(const char *)pub->data);
	} else {
		fail("client %s: an unexpected delivery on %.*s", cl->clientid, (int)pub->topic_len,
			pub->topic);
	}
}

static void on_closed(struct loop *loop, struct conn *conn, const char *why)
{
	(void)loop;
	if (closing) {
		return;
	}
	struct client *cl = client_of(conn);
	if (cl != NULL && cl->away) {
		return;
	}
	fail("client %s (%s): connection lost: %s", cl != NULL ? cl->clientid : "?",
		cl != NULL ? cl->side->name : "?", why);
}

/* ============================================================================================ */
/* Driving the loop                                                                             */
/* ============================================================================================ */

static int ms_until(uint64_t deadline)
{
	uint64_t now = now_ns();
	if (now >= deadline) {
		return 0;
	}
	uint64_t ms = (deadline - now + 999999) / 1000000;
	return ms > 100 ? 100 : (int)ms;
}

static uint64_t deadline_after(double s)
{
	return now_ns() + (uint64_t)(s * NS_PER_S);
}

/* Runs the loop until *counter reaches target, the deadline passes, or something fails. */
static bool wait_for(const uint64_t *counter, uint64_t target, double timeout_s, const char *what)
{
	uint64_t deadline = deadline_after(timeout_s);
	while (*counter < target && failure[0] == '\0') {
		if (now_ns() >= deadline) {
			fail("timed out after %.0f s waiting for %s (%" PRIu64 " of %" PRIu64 ")",
				timeout_s, what, *counter, target);
			return false;
		}
		if (loop_poll(&L, ms_until(deadline)) < 0) {
			fail("epoll: %s", strerror(errno));
		}
	}
	return failure[0] == '\0';
}

static void run_for(double s)
{
	uint64_t deadline = deadline_after(s);
	while (now_ns() < deadline && failure[0] == '\0') {
		loop_poll(&L, ms_until(deadline));
	}
}

/* Opens clients [0, count) of a side, at most `window` in the handshake at once (0: all). */
static bool connect_side(struct side *s, uint32_t window, double timeout_s)
{
	uint64_t target = n_connack + s->nclients;
	uint64_t deadline = deadline_after(timeout_s);
	uint32_t next = 0;
	while (n_connack < target && failure[0] == '\0') {
		while (next < s->nclients && (window == 0 || connecting < window) &&
			failure[0] == '\0') {
			register_client(&s->clients[next++]);
		}
		if (now_ns() >= deadline) {
			fail("timed out connecting %s clients (%u of %u opened)",
				side_names[s->kind], next, s->nclients);
			break;
		}
		loop_poll(&L, ms_until(deadline));
	}
	return failure[0] == '\0';
}

static void init_side(struct side *s, enum side_kind kind, uint32_t users, uint32_t members)
{
	memset(s, 0, sizeof *s);
	s->kind = kind;
	s->port = opt.port[kind];
	s->pid = opt.pid[kind];
	snprintf(s->name, sizeof s->name, "%s", side_names[kind]);
	s->nclients = users;
	s->clients = calloc(users, sizeof *s->clients);
	s->ngroups = members > 0 ? users / members : 0;
	s->groups = s->ngroups > 0 ? calloc(s->ngroups, sizeof *s->groups) : NULL;
	if (s->clients == NULL || (s->ngroups > 0 && s->groups == NULL)) {
		abort();
	}
	for (uint32_t i = 0; i < users; i++) {
		struct client *cl = &s->clients[i];
		cl->side = s;
		cl->index = i;
		cl->group = members > 0 ? i / members : 0;
		cl->member = members > 0 ? i % members : 0;
		snprintf(cl->clientid, sizeof cl->clientid, "c%06u", i);
		snprintf(cl->username, sizeof cl->username, "u%06u", i);
		if (kind == PLAIN) {
			snprintf(cl->uid, sizeof cl->uid, "%u0", i + 1);
		}
	}
	for (uint32_t g = 0; g < s->ngroups; g++) {
		struct group *gr = &s->groups[g];
		gr->first = g * members;
		gr->members = members;
		if (kind == PLAIN) {
			snprintf(gr->gid, sizeof gr->gid, "%u1", g + 1);
			/* as long as chat/inbox/c000123/message */
			snprintf(gr->topic, sizeof gr->topic, "bench/room/g%06u/message", g);
		}
	}
}

static void close_all(void)
{
	closing = true;
	for (uint32_t i = 0; i < ntags; i++) {
		if (by_tag[i]->conn != NULL) {
			conn_close(&L, by_tag[i]->conn);
			conn_free(by_tag[i]->conn);
			by_tag[i]->conn = NULL;
		}
	}
}

/* ============================================================================================ */
/* Workload 1 and 2: group fan-out throughput and latency                                       */
/* ============================================================================================ */

static bool fanout_setup(struct side *s)
{
	uint64_t t0 = now_ns();
	s->qos = (uint8_t)opt.phase_qos[0];
	uint64_t logins = n_login, subacks = n_suback + s->nclients * (s->room ? 2u : 1u);
	if (!connect_side(s, 64, 60)) {
		return false;
	}
	if (s->kind == PLUGIN) {
		if (!wait_for(&n_login, logins + s->nclients, 60, "login-responses")) {
			return false;
		}
		/* Each group's first member creates it with the others. */
		uint64_t announced = n_new_group + s->nclients;
		for (uint32_t g = 0; g < s->ngroups; g++) {
			struct group *gr = &s->groups[g];
			size_t cap = 32 + (size_t)gr->members * 40, len = 0;
			char *payload = malloc(cap);
			if (payload == NULL) {
				abort();
			}
			len += (size_t)snprintf(payload + len, cap - len, "{\"member\":{");
			for (uint32_t m = 1; m < gr->members; m++) {
				const struct client *cl = &s->clients[gr->first + m];
				len += (size_t)snprintf(payload + len, cap - len, "%s\"%s\":\"%s\"",
					m > 1 ? "," : "", cl->uid, cl->username);
			}
			len += (size_t)snprintf(payload + len, cap - len, "}}");
			struct client *creator = &s->clients[gr->first];
			mqtt_publish(&L, creator->conn, "chat/group/create", 17, payload, len, 1,
				false);
			creator->pending_pubacks++;
			free(payload);
		}
		if (!wait_for(&n_new_group, announced, 60, "new_group deliveries")) {
			return false;
		}
	}
	if (!wait_for(&n_suback, subacks, 60, "SUBACKs")) {
		return false;
	}
	progress("%s: %u clients connected%s in %.2f s", s->name, s->nclients,
		s->kind == PLUGIN ? ", logged in and grouped" : " and subscribed",
		seconds(now_ns() - t0));
	return true;
}

static bool resubscribe(struct side *s, uint8_t qos)
{
	uint64_t target = n_suback + s->nclients;
	for (uint32_t i = 0; i < s->nclients; i++) {
		struct client *cl = &s->clients[i];
		if (s->kind == PLUGIN) {
			subscribe_inbox(cl, qos);
			if (s->room) {
				room_subscribe(cl, qos);
				target++;
			}
		} else {
			subscribe(cl, s->groups[cl->group].topic,
				(uint8_t)(qos | MQTT_SUB_NO_LOCAL));
		}
	}
	loop_flush(&L);
	if (!wait_for(&n_suback, target, 60, "re-subscriptions")) {
		return false;
	}
	for (uint32_t i = 0; i < s->nclients; i++) {
		if (s->clients[i].sub_qos != qos) {
			fail("client %s: granted QoS %u, asked %u", s->clients[i].clientid,
				s->clients[i].sub_qos, qos);
			return false;
		}
	}
	return true;
}

static uint64_t inflight_total(const struct side *s)
{
	uint64_t n = 0;
	for (uint32_t g = 0; g < s->ngroups; g++) {
		n += s->groups[g].inflight;
	}
	return n;
}

/* Starts the closed loop of a side: w messages in flight per group. */
static bool phase_begin(struct side *s, uint8_t qos, uint32_t w)
{
	if (s->clients[0].sub_qos != qos || s->qos != qos) {
		if (!resubscribe(s, qos)) {
			return false;
		}
	}
	s->qos = qos;
	s->w = w;
	for (uint32_t g = 0; g < s->ngroups; g++) {
		struct group *gr = &s->groups[g];
		if (gr->nslots < w) {
			gr->slots = realloc(gr->slots, w * sizeof *gr->slots);
			if (gr->slots == NULL) {
				abort();
			}
			for (uint32_t i = gr->nslots; i < w; i++) {
				memset(&gr->slots[i], 0, sizeof gr->slots[i]);
				gr->slots[i].seen =
					calloc((gr->members + 63) / 64, sizeof(uint64_t));
			}
			gr->nslots = w;
		}
	}
	s->lat_len = 0;
	s->window_deliveries = 0;
	s->running = true;
	for (uint32_t g = 0; g < s->ngroups; g++) {
		for (uint32_t i = 0; i < w; i++) {
			send_next(s, &s->groups[g], i);
		}
	}
	loop_flush(&L);
	return failure[0] == '\0';
}

/* Stops a side's closed loop; every message still in flight must reach all its recipients. */
static bool phase_drain(struct side *s)
{
	s->running = false;
	uint64_t deadline = deadline_after(opt.drain);
	while (inflight_total(s) > 0 && failure[0] == '\0') {
		if (now_ns() >= deadline) {
			fail("%s qos %u w %u: %" PRIu64
			     " messages still missing deliveries %.0f s after the window",
				s->name, s->qos, s->w, inflight_total(s), opt.drain);
			return false;
		}
		loop_poll(&L, ms_until(deadline));
	}
	/* PUBACKs of the last requests. */
	run_for(0.05);
	return failure[0] == '\0';
}

static bool fanout_phase(struct side *s, uint8_t qos, uint32_t w)
{
	uint64_t msgs0 = s->messages;
	if (!phase_begin(s, qos, w)) {
		return false;
	}
	run_for(opt.warmup);
	struct cpu_mark a = cpu_mark(s->pid);
	uint64_t msgs_a = s->messages;
	s->recording = true;
	run_for(opt.window);
	s->recording = false;
	struct cpu_mark b = cpu_mark(s->pid);
	uint64_t msgs_b = s->messages;
	if (failure[0] != '\0' || !phase_drain(s)) {
		return false;
	}

	uint64_t wall = b.wall - a.wall;
	qsort(s->lat, s->lat_len, sizeof *s->lat, cmp_u64);
	double rate = (double)s->window_deliveries / seconds(wall);
	printf("RESULT fanout side=%s users=%u members=%u groups=%u qos=%u w=%u window_s=%.2f "
	       "deliveries=%" PRIu64
	       " rate=%.0f msgs_per_s=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f "
	       "gen_cpu=%.1f broker_cpu=%.1f total_messages=%" PRIu64 "\n",
		s->name, s->nclients, s->groups[0].members, s->ngroups, qos, w, seconds(wall),
		s->window_deliveries, rate, (double)(msgs_b - msgs_a) / seconds(wall),
		percentile_us(s->lat, s->lat_len, 0.50), percentile_us(s->lat, s->lat_len, 0.99),
		s->lat_len ? (double)s->lat[s->lat_len - 1] / 1000.0 : 0.0,
		pct(b.self - a.self, wall), pct(b.broker - a.broker, wall), s->messages - msgs0);
	fflush(stdout);
	progress("%-6s qos %u w %-2u: %8.0f deliveries/s  p50 %6.0f us  p99 %7.0f us  generator "
		 "%4.1f%%  broker %5.1f%% CPU",
		s->name, qos, w, rate, percentile_us(s->lat, s->lat_len, 0.50),
		percentile_us(s->lat, s->lat_len, 0.99), pct(b.self - a.self, wall),
		pct(b.broker - a.broker, wall));
	return true;
}

static int run_fanout(void)
{
	if (opt.members < 2 || opt.users < opt.members || opt.users % opt.members != 0) {
		fprintf(stderr, "fanout: users must be a multiple of members (>= 2)\n");
		return EXIT_USAGE;
	}
	if (opt.phases == 0) {
		opt.phase_qos[0] = 1;
		opt.phase_w[0] = 16;
		opt.phases = 1;
	}
	workload = W_FANOUT;
	raise_nofile(MAX_SIDES * (uint64_t)opt.users + 64);
	if (opt.nspecs == 0) {
		/* --plugin-port / --plain-port: the classic pair. */
		for (int k = PLUGIN; k <= PLAIN; k++) {
			if (opt.port[k] != 0) {
				struct side_spec *sp = &opt.specs[opt.nspecs++];
				snprintf(sp->name, sizeof sp->name, "%s", side_names[k]);
				sp->kind = (enum side_kind)k;
				sp->port = opt.port[k];
				sp->pid = opt.pid[k];
			}
		}
	}
	nsides = opt.nspecs;
	for (size_t i = 0; i < nsides; i++) {
		const struct side_spec *sp = &opt.specs[i];
		init_side(&sides[i], sp->kind, opt.users, opt.members);
		snprintf(sides[i].name, sizeof sides[i].name, "%s", sp->name);
		sides[i].port = sp->port;
		sides[i].pid = sp->pid;
		sides[i].room = sp->room;
	}
	for (size_t i = 0; i < nsides; i++) {
		if (!fanout_setup(&sides[i])) {
			return EXIT_WRONG;
		}
	}
	for (size_t p = 0; p < opt.phases; p++) {
		/* Rotate which broker goes first, so drift in the machine's load hits all. */
		for (size_t k = 0; k < nsides; k++) {
			if (!fanout_phase(&sides[(p + k) % nsides], (uint8_t)opt.phase_qos[p],
				    opt.phase_w[p])) {
				return EXIT_WRONG;
			}
		}
	}
	return 0;
}

/* Lets the broker finish what it is doing, then reads its RSS (stable to 64 KiB, or after 5 s). */
static uint64_t settled_rss(int pid)
{
	uint64_t prev = 0;
	int stable = 0;
	for (int i = 0; i < 50 && failure[0] == '\0'; i++) {
		run_for(opt.settle);
		uint64_t rss = proc_rss_kb(pid);
		if (prev != 0 && (rss > prev ? rss - prev : prev - rss) < 64) {
			if (++stable >= 3) {
				return rss;
			}
		} else {
			stable = 0;
		}
		prev = rss;
	}
	return prev;
}

/* ============================================================================================ */
/* History storm (issue 10)                                                                      */
/* ============================================================================================ */

struct lat_stats {
	double p50, p99, max, rate;
	size_t n;
};

static struct lat_stats lat_stats(struct side *s, uint64_t wall)
{
	qsort(s->lat, s->lat_len, sizeof *s->lat, cmp_u64);
	struct lat_stats st = {
		.p50 = percentile_us(s->lat, s->lat_len, 0.50),
		.p99 = percentile_us(s->lat, s->lat_len, 0.99),
		.max = s->lat_len ? (double)s->lat[s->lat_len - 1] / 1000.0 : 0.0,
		.rate = (double)s->window_deliveries / seconds(wall),
		.n = s->lat_len,
	};
	s->lat_len = 0;
	s->window_deliveries = 0;
	return st;
}

static int run_history(void)
{
	workload = W_FANOUT;
	history_mode = true;
	if (opt.phases == 0) {
		opt.phase_qos[0] = 1;
		opt.phase_w[0] = 1;
		opt.phases = 1;
	}
	if (opt.members < 2 || opt.users % opt.members != 0 || opt.storm_members < 2 ||
		opt.storm_clients % opt.storm_members != 0) {
		fprintf(stderr,
			"history: users and storm clients must be multiples of their "
			"group sizes (>= 2)\n");
		return EXIT_USAGE;
	}
	raise_nofile((uint64_t)opt.users + opt.storm_clients + 64);
	struct side *live = &sides[0], *storm = &sides[1];
	nsides = 2;
	init_side(live, PLUGIN, opt.users, opt.members);
	init_side(storm, PLUGIN, opt.storm_clients, opt.storm_members);
	snprintf(live->name, sizeof live->name, "live");
	snprintf(storm->name, sizeof storm->name, "history");
	for (uint32_t i = 0; i < storm->nclients; i++) {
		snprintf(storm->clients[i].clientid, sizeof storm->clients[i].clientid, "h%06u", i);
		snprintf(storm->clients[i].username, sizeof storm->clients[i].username, "h%06u", i);
	}
	if (!fanout_setup(live) || !fanout_setup(storm)) {
		return EXIT_WRONG;
	}

	/* Each storm group gets more than `limit` messages, delivered and checked like any. */
	uint64_t t0 = now_ns();
	storm->seq_limit = opt.history_limit + 10;
	if (!phase_begin(storm, 1, 4)) {
		return EXIT_WRONG;
	}
	uint64_t deadline = deadline_after(120);
	bool filled = false;
	while (!filled && failure[0] == '\0' && now_ns() < deadline) {
		loop_poll(&L, 100);
		filled = inflight_total(storm) == 0;
		for (uint32_t g = 0; filled && g < storm->ngroups; g++) {
			filled = storm->groups[g].seq >= storm->seq_limit;
		}
	}
	if (!filled || !phase_drain(storm)) {
		fail("history: the storm groups' messages did not all arrive within 120 s");
		return EXIT_WRONG;
	}
	progress("history: %u groups hold %u messages each (%.1f s)", storm->ngroups,
		storm->seq_limit, seconds(now_ns() - t0));
	run_for(1.5); /* the store commits at least every 100 ms */

	/* Live traffic alone, then the same with the storm. */
	if (!phase_begin(live, (uint8_t)opt.phase_qos[0], opt.phase_w[0])) {
		return EXIT_WRONG;
	}
	run_for(opt.warmup);
	struct cpu_mark a = cpu_mark(live->pid);
	live->recording = true;
	run_for(opt.window);
	struct cpu_mark b = cpu_mark(live->pid);
	struct lat_stats base = lat_stats(live, b.wall - a.wall);

	uint64_t target = n_history + storm->nclients;
	struct cpu_mark c = cpu_mark(live->pid);
	for (uint32_t i = 0; i < storm->nclients; i++) {
		struct client *cl = &storm->clients[i];
		char payload[128];
		int n = snprintf(payload, sizeof payload,
			"{\"room\":\"%s\",\"limit\":%u,\"qid\":\"q%u\"}", cl->gid,
			opt.history_limit, i);
		mqtt_publish(&L, cl->conn, "chat/history", 12, payload, (size_t)n, 1, false);
		cl->pending_pubacks++;
	}
	loop_flush(&L);
	deadline = deadline_after(opt.timeout);
	while (n_history < target && failure[0] == '\0' && now_ns() < deadline) {
		loop_poll(&L, ms_until(deadline));
	}
	struct cpu_mark d = cpu_mark(live->pid);
	live->recording = false;
	if (failure[0] == '\0' && n_history < target) {
		fail("history storm: %" PRIu64 " of %u replies after %.0f s",
			n_history + storm->nclients - target, storm->nclients, opt.timeout);
	}
	if (failure[0] != '\0') {
		return EXIT_WRONG;
	}
	struct lat_stats during = lat_stats(live, d.wall - c.wall);
	if (!phase_drain(live)) {
		return EXIT_WRONG;
	}
	printf("RESULT history users=%u members=%u qos=%u w=%u clients=%u limit=%u replies=%u "
	       "storm_s=%.3f base_p50_us=%.0f base_p99_us=%.0f base_max_us=%.0f base_rate=%.0f "
	       "base_n=%zu storm_p50_us=%.0f storm_p99_us=%.0f storm_max_us=%.0f storm_rate=%.0f "
	       "storm_n=%zu base_broker_cpu=%.1f storm_broker_cpu=%.1f storm_gen_cpu=%.1f\n",
		live->nclients, opt.members, opt.phase_qos[0], opt.phase_w[0], storm->nclients,
		opt.history_limit, storm->nclients, seconds(d.wall - c.wall), base.p50, base.p99,
		base.max, base.rate, base.n, during.p50, during.p99, during.max, during.rate,
		during.n, pct(b.broker - a.broker, b.wall - a.wall),
		pct(d.broker - c.broker, d.wall - c.wall), pct(d.self - c.self, d.wall - c.wall));
	fflush(stdout);
	progress("history: %u replies of %u messages in %.2f s; live p99 %.0f us alone, %.0f us "
		 "during the storm",
		storm->nclients, opt.history_limit, seconds(d.wall - c.wall), base.p99, during.p99);
	return 0;
}

/* ============================================================================================ */
/* State at scale (issue 10)                                                                     */
/* ============================================================================================ */

/* Opens clients [first, end) of a side, at most `window` in the handshake at once. */
static bool connect_range(struct side *s, uint32_t first, uint32_t end, uint32_t window)
{
	uint64_t target = n_connack + (end - first);
	uint64_t deadline = deadline_after(120);
	uint32_t next = first;
	while (n_connack < target && failure[0] == '\0') {
		while (next < end && connecting < window && failure[0] == '\0') {
			register_client(&s->clients[next++]);
		}
		if (now_ns() >= deadline) {
			fail("timed out connecting %s clients", s->name);
			break;
		}
		loop_poll(&L, ms_until(deadline));
	}
	return failure[0] == '\0';
}

static int run_state(void)
{
	workload = W_FANOUT;
	state_mode = true;
	persistent_expiry = UINT32_MAX;
	if (opt.phases == 0) {
		opt.phase_qos[0] = 1;
		opt.phase_w[0] = 1;
		opt.phases = 1;
	}
	if (opt.members < 2 || opt.users % opt.members != 0) {
		fprintf(stderr, "state: users must be a multiple of members (>= 2)\n");
		return EXIT_USAGE;
	}
	const uint32_t wave = 5000;
	raise_nofile((uint64_t)opt.users + wave + 64);
	struct side *live = &sides[0], *load = &sides[1];
	nsides = 2;
	init_side(live, PLUGIN, opt.users, opt.members);
	init_side(load, PLUGIN, opt.storm_clients, 0);
	snprintf(live->name, sizeof live->name, "live");
	snprintf(load->name, sizeof load->name, "state");
	load->qos = 1;
	for (uint32_t i = 0; i < load->nclients; i++) {
		snprintf(load->clients[i].clientid, sizeof load->clients[i].clientid, "s%06u", i);
		snprintf(load->clients[i].username, sizeof load->clients[i].username, "s%06u", i);
		load->clients[i].persistent = true;
	}
	if (!fanout_setup(live) || !phase_begin(live, (uint8_t)opt.phase_qos[0], opt.phase_w[0])) {
		return EXIT_WRONG;
	}
	run_for(opt.warmup);
	struct cpu_mark a = cpu_mark(live->pid);
	live->recording = true;
	live->last_delivery = 0;
	live->max_gap = 0;
	run_for(opt.window);
	struct cpu_mark b = cpu_mark(live->pid);
	struct lat_stats base = lat_stats(live, b.wall - a.wall);
	uint64_t base_gap = live->max_gap;
	uint64_t rss0 = proc_rss_kb(live->pid);

	/* Waves of users: connect, log in, create a group of one, go away. */
	live->max_gap = 0;
	struct cpu_mark c = cpu_mark(live->pid);
	for (uint32_t first = 0; first < load->nclients && failure[0] == '\0'; first += wave) {
		uint32_t end = first + wave < load->nclients ? first + wave : load->nclients;
		uint64_t logins = n_login + (end - first), groups = n_state_groups + (end - first);
		if (!connect_range(load, first, end, 256) ||
			!wait_for(&n_login, logins, 120, "logins")) {
			break;
		}
		for (uint32_t i = first; i < end; i++) {
			struct client *cl = &load->clients[i];
			mqtt_publish(&L, cl->conn, "chat/group/create", 17, "{\"member\":{}}", 13,
				1, false);
			cl->pending_pubacks++;
		}
		loop_flush(&L);
		if (!wait_for(&n_state_groups, groups, 120, "new_group deliveries")) {
			break;
		}
		for (uint32_t i = first; i < end; i++) {
			load->clients[i].away = true;
			mqtt_disconnect(&L, load->clients[i].conn);
		}
		loop_flush(&L);
	}
	struct cpu_mark d = cpu_mark(live->pid);
	live->recording = false;
	if (failure[0] != '\0') {
		return EXIT_WRONG;
	}
	struct lat_stats during = lat_stats(live, d.wall - c.wall);
	uint64_t load_gap = live->max_gap;
	uint64_t rss1 = proc_rss_kb(live->pid);
	if (!phase_drain(live)) {
		return EXIT_WRONG;
	}
	printf("RESULT state users=%u groups=%u live_users=%u live_members=%u qos=%u w=%u "
	       "load_s=%.2f base_p99_us=%.0f base_max_us=%.0f base_gap_us=%.0f base_rate=%.0f "
	       "load_p99_us=%.0f load_max_us=%.0f load_gap_us=%.0f load_rate=%.0f "
	       "load_broker_cpu=%.1f load_gen_cpu=%.1f rss0_kb=%" PRIu64 " rss1_kb=%" PRIu64 "\n",
		load->nclients, load->nclients, live->nclients, opt.members, opt.phase_qos[0],
		opt.phase_w[0], seconds(d.wall - c.wall), base.p99, base.max,
		(double)base_gap / 1000.0, base.rate, during.p99, during.max,
		(double)load_gap / 1000.0, during.rate, pct(d.broker - c.broker, d.wall - c.wall),
		pct(d.self - c.self, d.wall - c.wall), rss0, rss1);
	fflush(stdout);
	progress("state: %u users logged in and created a group in %.1f s; live max gap %.1f ms "
		 "(alone %.1f ms), p99 %.1f ms (alone %.1f ms)",
		load->nclients, seconds(d.wall - c.wall), (double)load_gap / 1e6,
		(double)base_gap / 1e6, during.p99 / 1000.0, base.p99 / 1000.0);
	return 0;
}

/* ============================================================================================ */
/* Queued messages for away members (issue 11)                                                   */
/* ============================================================================================ */

static int run_queue(void)
{
	workload = W_QUEUE;
	opt.phase_qos[0] = 1;
	opt.phases = 1;
	if (opt.nspecs != 1) {
		fprintf(stderr, "queue: one --side\n");
		return EXIT_USAGE;
	}
	const struct side_spec *sp = &opt.specs[0];
	struct side *s = &sides[0];
	nsides = 1;
	raise_nofile((uint64_t)opt.members + 64);
	/* Member 0 sends; the others are persistent sessions that go away. */
	init_side(s, sp->kind, opt.members + 1, opt.members + 1);
	snprintf(s->name, sizeof s->name, "%s", sp->name);
	s->port = sp->port;
	s->pid = sp->pid;
	s->room = sp->room;
	for (uint32_t i = 1; i < s->nclients; i++) {
		s->clients[i].persistent = true;
	}
	if (!fanout_setup(s)) {
		return EXIT_WRONG;
	}
	for (uint32_t i = 1; i < s->nclients; i++) {
		struct client *cl = &s->clients[i];
		cl->away = true;
		mqtt_disconnect(&L, cl->conn);
	}
	loop_flush(&L);
	uint64_t rss0 = settled_rss(s->pid);

	/* The messages: `message_bytes` of text each, 16 PUBACKs outstanding at most. */
	struct client *sender = &s->clients[0];
	size_t cap = opt.message_bytes + 256;
	char *text = malloc(opt.message_bytes + 1), *payload = malloc(cap);
	if (text == NULL || payload == NULL) {
		abort();
	}
	memset(text, 'x', opt.message_bytes);
	text[opt.message_bytes] = '\0';
	uint64_t t0 = now_ns();
	uint64_t acked = n_puback;
	for (uint32_t m = 0; m < opt.messages && failure[0] == '\0'; m++) {
		int n = s->kind == PLUGIN
			? snprintf(payload, cap, "{\"message\":\"%s\"}", text)
			: snprintf(payload, cap,
				  "{\"sender\":\"%s\",\"receiver\":\"%s\",\"message\":\"%s\","
				  "\"id\":\"%u\",\"ts\":0}",
				  sender->uid, s->groups[0].gid, text, m + 1);
		mqtt_publish(&L, sender->conn, s->groups[0].topic, strlen(s->groups[0].topic),
			payload, (size_t)n, 1, false);
		sender->pending_pubacks++;
		loop_flush(&L);
		if (m + 1 >= 16 && !wait_for(&n_puback, acked + m + 1 - 15, 60, "PUBACKs")) {
			break;
		}
	}
	wait_for(&n_puback, acked + opt.messages, 60, "PUBACKs");
	free(text);
	free(payload);
	uint64_t rss1 = settled_rss(s->pid);
	uint64_t sent_s = now_ns() - t0;
	if (failure[0] != '\0') {
		return EXIT_WRONG;
	}

	/* One member comes back: every message must be waiting for it. */
	struct client *back = &s->clients[1];
	back->away = false;
	back->returning = true;
	conn_close(&L, back->conn);
	conn_free(back->conn);
	register_client(back);
	if (!wait_for(&n_queued_received, opt.messages, 60, "the queued messages")) {
		return EXIT_WRONG;
	}
	run_for(0.2);
	if (back->queued_received != opt.messages) {
		fail("%s: a returning member got %" PRIu64 " queued messages, %u were sent",
			s->name, back->queued_received, opt.messages);
		return EXIT_WRONG;
	}
	printf("RESULT queue side=%s members=%u messages=%u bytes=%u rss0_kb=%" PRIu64
	       " rss1_kb=%" PRIu64 " growth_kb=%" PRId64 " send_s=%.2f received=%" PRIu64 "\n",
		s->name, opt.members, opt.messages, opt.message_bytes, rss0, rss1,
		(int64_t)rss1 - (int64_t)rss0, seconds(sent_s), back->queued_received);
	fflush(stdout);
	progress("queue %-6s: %u messages of %u bytes for %u away members: RSS +%" PRId64
		 " KiB; a returning member got all",
		s->name, opt.messages, opt.message_bytes, opt.members,
		(int64_t)rss1 - (int64_t)rss0);
	return 0;
}

/* ============================================================================================ */
/* Workload 3: login storm                                                                      */
/* ============================================================================================ */

static int run_storm(void)
{
	workload = W_STORM;
	struct side *s = &sides[opt.side];
	opt.port[opt.side] = opt.port[PLUGIN] ? opt.port[PLUGIN] : opt.port[PLAIN];
	opt.pid[opt.side] = opt.pid[PLUGIN] ? opt.pid[PLUGIN] : opt.pid[PLAIN];
	raise_nofile((uint64_t)opt.users + 64);
	init_side(s, (enum side_kind)opt.side, opt.users, 0);
	bool users_mode = strcmp(opt.dir_mode, "users") == 0;
	if (users_mode) {
		for (uint32_t i = 0; i < s->nclients; i++) {
			s->clients[i].seen = calloc((opt.users + 63) / 64, sizeof(uint64_t));
			if (s->clients[i].seen == NULL) {
				abort();
			}
		}
	}

	if (s->kind == PLUGIN) {
		/* The observer counts how often the snapshot goes out. */
		observer.side = s;
		snprintf(observer.clientid, sizeof observer.clientid, "observer");
		uint64_t subacks = n_suback + 1;
		register_client(&observer);
		if (!wait_for(&n_suback, subacks, 10, "the observer's SUBACK")) {
			return EXIT_WRONG;
		}
		run_for(0.3); /* the retained (empty) snapshot */
	}

	uint64_t ov0, dr0;
	listen_counters(&ov0, &dr0);
	struct cpu_mark a = cpu_mark(s->pid);
	uint64_t t0 = a.wall;
	uint64_t peak_rss = proc_rss_kb(s->pid);
	observing = true;
	for (uint32_t i = 0; i < s->nclients && failure[0] == '\0'; i++) {
		if (opt.connect_window > 0) {
			break;
		}
		register_client(&s->clients[i]);
	}
	uint32_t next = opt.connect_window > 0 ? 0 : s->nclients;
	uint64_t deadline = t0 + (uint64_t)(opt.timeout * NS_PER_S);
	uint64_t next_rss = t0;
	const char *status = "ok";
	uint64_t t_all_connack = 0, t_all_login = 0;
	while (n_done < s->nclients && failure[0] == '\0') {
		while (next < s->nclients && connecting < opt.connect_window) {
			register_client(&s->clients[next++]);
		}
		uint64_t now = now_ns();
		if (now >= next_rss) {
			uint64_t rss = proc_rss_kb(s->pid);
			peak_rss = rss > peak_rss ? rss : peak_rss;
			next_rss = now + 100000000u;
			if (rss > opt.rss_limit_kb) {
				status = "rss_limit";
				break;
			}
			if (rss == 0) {
				fail("the broker (pid %d) is gone", s->pid);
				break;
			}
		}
		if (now >= deadline) {
			status = "timeout";
			break;
		}
		if (t_all_connack == 0 && n_connack >= s->nclients) {
			t_all_connack = now;
		}
		if (s->kind == PLUGIN && t_all_login == 0 && n_login >= s->nclients) {
			t_all_login = now;
		}
		loop_poll(&L, ms_until(next_rss < deadline ? next_rss : deadline));
	}
	observing = false;
	struct cpu_mark b = cpu_mark(s->pid);
	uint64_t ov1, dr1;
	listen_counters(&ov1, &dr1);
	if (failure[0] != '\0') {
		return EXIT_WRONG;
	}

	/* Per-client times, from the start of the storm. */
	uint64_t max_connack = 0, max_login = 0, max_done = 0, max_tcp = 0, dir_msgs = 0,
		 dir_bytes = 0;
	uint32_t slow_connects = 0, complete = 0, connacked = 0, logged_in = 0;
	for (uint32_t i = 0; i < s->nclients; i++) {
		const struct client *cl = &s->clients[i];
		if (cl->conn != NULL && cl->conn->established) {
			uint64_t tcp = cl->conn->t_established - cl->conn->t_open;
			max_tcp = tcp > max_tcp ? tcp : max_tcp;
			if (tcp >= 900000000u) {
				slow_connects++; /* a SYN was dropped and sent again after 1 s */
			}
		}
		if (cl->connacked) {
			connacked++;
			max_connack =
				cl->t_connack - t0 > max_connack ? cl->t_connack - t0 : max_connack;
		}
		if (cl->logged_in) {
			logged_in++;
			max_login = cl->t_login - t0 > max_login ? cl->t_login - t0 : max_login;
		}
		if (cl->done) {
			complete++;
			max_done = cl->t_done - t0 > max_done ? cl->t_done - t0 : max_done;
		}
		dir_msgs += cl->dir_msgs;
		dir_bytes += cl->dir_bytes;
	}
	bool ok = complete == s->nclients;
	if (!ok && opt.strict) {
		fail("storm of %u: only %u clients complete (%u connected, %u logged in) after %.0f s",
			s->nclients, complete, connacked, logged_in, opt.timeout);
		return EXIT_WRONG;
	}
	uint64_t wall = b.wall - a.wall;
	printf("RESULT storm side=%s users=%u dir=%s window=%u status=%s complete=%u connected=%u "
	       "logged_in=%u "
	       "connect_s=%.3f login_s=%.3f done_s=%.3f elapsed_s=%.3f max_tcp_s=%.3f "
	       "syn_retried=%u listen_overflows=%" PRIu64 " listen_drops=%" PRIu64
	       " snapshots=%" PRIu64 " snapshots_mb=%.1f snapshot_last_bytes=%" PRIu64
	       " dir_msgs=%" PRIu64 " dir_mb=%.1f peak_rss_mb=%.1f "
	       "gen_cpu=%.1f broker_cpu=%.1f\n",
		side_names[s->kind], s->nclients, s->kind == PLUGIN ? opt.dir_mode : "-",
		opt.connect_window, status, complete, connacked, logged_in,
		connacked == s->nclients ? seconds(max_connack) : -1.0,
		s->kind == PLUGIN && logged_in == s->nclients ? seconds(max_login) : -1.0,
		ok ? seconds(max_done) : -1.0, seconds(wall), seconds(max_tcp), slow_connects,
		ov1 - ov0, dr1 - dr0, snapshots_seen, (double)snapshot_bytes_seen / 1048576.0,
		snapshot_last, dir_msgs, (double)dir_bytes / 1048576.0, (double)peak_rss / 1024.0,
		pct(b.self - a.self, wall), pct(b.broker - a.broker, wall));
	fflush(stdout);
	progress("storm %-6s U=%-5u %s%s: connected %.2f s, logged in %.2f s, done %.2f s; %" PRIu64
		 " snapshots, %.0f MB of directory delivered; generator %.0f%%, broker %.0f%% CPU",
		side_names[s->kind], s->nclients, opt.connect_window ? "paced " : "", status,
		seconds(max_connack), seconds(max_login), ok ? seconds(max_done) : -1.0,
		snapshots_seen, (double)dir_bytes / 1048576.0, pct(b.self - a.self, wall),
		pct(b.broker - a.broker, wall));
	return 0;
}

/* ============================================================================================ */
/* Workload 4: memory                                                                           */
/* ============================================================================================ */

static int run_memory(void)
{
	workload = W_MEMORY;
	struct side *s = &sides[opt.side];
	opt.port[opt.side] = opt.port[PLUGIN] ? opt.port[PLUGIN] : opt.port[PLAIN];
	opt.pid[opt.side] = opt.pid[PLUGIN] ? opt.pid[PLUGIN] : opt.pid[PLAIN];
	if (opt.groups == 0 || opt.users % opt.groups != 0 || opt.users / opt.groups < 2) {
		fprintf(stderr,
			"memory: users must be a multiple of groups, at least 2 per group\n");
		return EXIT_USAGE;
	}
	raise_nofile((uint64_t)opt.users + 64);
	uint32_t members = opt.users / opt.groups;
	init_side(s, (enum side_kind)opt.side, opt.users, members);
	uint64_t t0 = now_ns(), cpu0 = self_cpu_ns();

	uint64_t rss0 = settled_rss(s->pid);
	uint64_t subacks = n_suback + s->nclients;
	if (!connect_side(s, 100, 120) || !wait_for(&n_suback, subacks, 60, "SUBACKs")) {
		return EXIT_WRONG;
	}
	uint64_t rss1 = settled_rss(s->pid);

	/* Log in (plain: the same publishes, which change nothing). */
	uint64_t target = (s->kind == PLUGIN ? n_login : n_puback) + s->nclients;
	for (uint32_t i = 0; i < s->nclients; i++) {
		struct client *cl = &s->clients[i];
		if (s->kind == PLUGIN) {
			plugin_login(cl);
		} else {
			char payload[64];
			int n = snprintf(payload, sizeof payload, "{\"username\":\"%s\"}",
				cl->username);
			mqtt_publish(&L, cl->conn, "bench/login", 11, payload, (size_t)n, 1, false);
			cl->pending_pubacks++;
		}
	}
	loop_flush(&L);
	if (!wait_for(s->kind == PLUGIN ? &n_login : &n_puback, target, 120, "logins")) {
		return EXIT_WRONG;
	}
	uint64_t rss2 = settled_rss(s->pid);

	/* Groups (plain: each member subscribes to its group's topic). */
	if (s->kind == PLUGIN) {
		target = n_new_group + s->nclients;
		for (uint32_t g = 0; g < s->ngroups; g++) {
			struct group *gr = &s->groups[g];
			char payload[2048];
			size_t len = (size_t)snprintf(payload, sizeof payload, "{\"member\":{");
			for (uint32_t m = 1; m < gr->members && len < sizeof payload - 64; m++) {
				const struct client *cl = &s->clients[gr->first + m];
				len += (size_t)snprintf(payload + len, sizeof payload - len,
					"%s\"%s\":\"%s\"", m > 1 ? "," : "", cl->uid, cl->username);
			}
			len += (size_t)snprintf(payload + len, sizeof payload - len, "}}");
			struct client *creator = &s->clients[gr->first];
			mqtt_publish(&L, creator->conn, "chat/group/create", 17, payload, len, 1,
				false);
			creator->pending_pubacks++;
		}
		loop_flush(&L);
		if (!wait_for(&n_new_group, target, 120, "new_group deliveries")) {
			return EXIT_WRONG;
		}
	} else {
		target = n_suback + s->nclients;
		for (uint32_t i = 0; i < s->nclients; i++) {
			struct client *cl = &s->clients[i];
			subscribe(cl, s->groups[cl->group].topic, 1 | MQTT_SUB_NO_LOCAL);
		}
		loop_flush(&L);
		if (!wait_for(&n_suback, target, 120, "group subscriptions")) {
			return EXIT_WRONG;
		}
	}
	uint64_t rss3 = settled_rss(s->pid);
	if (failure[0] != '\0') {
		return EXIT_WRONG;
	}
	uint64_t wall = now_ns() - t0;
	printf("RESULT memory side=%s users=%u groups=%u memberships=%u rss0_kb=%" PRIu64
	       " rss1_kb=%" PRIu64 " rss2_kb=%" PRIu64 " rss3_kb=%" PRIu64 " gen_cpu=%.1f\n",
		side_names[s->kind], s->nclients, s->ngroups, s->nclients, rss0, rss1, rss2, rss3,
		pct(self_cpu_ns() - cpu0, wall));
	fflush(stdout);
	progress("memory %-6s: RSS %" PRIu64 " KiB idle, %" PRIu64 " connected, %" PRIu64
		 " logged in, %" PRIu64 " grouped",
		side_names[s->kind], rss0, rss1, rss2, rss3);
	return 0;
}

/* ============================================================================================ */
/* Helpers for the run script                                                                   */
/* ============================================================================================ */

static int run_freeport(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0 };
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof addr;
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
		getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
		perror("freeport");
		return 1;
	}
	printf("%u\n", ntohs(addr.sin_port));
	close(fd);
	return 0;
}

/* Polls until 127.0.0.1:port accepts a connection (exit 0) or the timeout passes (exit 1). */
static int run_waitport(void)
{
	uint64_t deadline = deadline_after(opt.timeout);
	uint16_t port = opt.port[PLUGIN] ? opt.port[PLUGIN] : opt.port[PLAIN];
	while (now_ns() < deadline) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
		addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
		close(fd);
		if (rc == 0) {
			return 0;
		}
		struct timespec ts = { 0, 20000000 };
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "waitport: nothing accepts on 127.0.0.1:%u\n", port);
	return 1;
}

/* ============================================================================================ */
/* Command line                                                                                 */
/* ============================================================================================ */

static void usage(void)
{
	fputs("usage: chatbench fanout  --plugin-port P [--plugin-pid N] [--plain-port P --plain-pid N]\n"
	      "                         | --side NAME:plugin|plain:PORT:PID[:room] (up to 4)\n"
	      "                         [--users 1000 --members 50] [--phases 0:16,1:16,0:1,1:1]\n"
	      "                         [--warmup 2 --window 10 --text-bytes 100 --drain 30]\n"
	      "       chatbench storm   (--plugin-port P --plugin-pid N | --plain-port P --plain-pid N)\n"
	      "                         --users U [--timeout 30] [--dir contacts|users]\n"
	      "                         [--connect-window 0] [--rss-limit-mb 4096] [--strict]\n"
	      "       chatbench memory  (--plugin-port P --plugin-pid N | --plain-port P --plain-pid N)\n"
	      "                         [--users 10000 --groups 1000] [--settle 0.1]\n"
	      "       chatbench history --plugin-port P --plugin-pid N [--users 1000 --members 50]\n"
	      "                         [--phases 1:1] [--clients 5000 --client-members 50 --limit 50]\n"
	      "                         [--warmup 2 --window 10 --timeout 30]\n"
	      "       chatbench state   --plugin-port P --plugin-pid N [--users 100 --members 10]\n"
	      "                         [--phases 1:1] [--clients 100000] [--warmup 2 --window 10]\n"
	      "       chatbench queue   --side NAME:KIND:PORT:PID[:room] [--members 200]\n"
	      "                         [--messages 1000 --message-bytes 8192] [--settle 0.1]\n"
	      "       chatbench freeport | waitport --plugin-port P [--timeout 10]\n",
		stderr);
}

static bool parse_u32(const char *s, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v > UINT32_MAX) {
		return false;
	}
	*out = (uint32_t)v;
	return true;
}

/* NAME:KIND:PORT:PID[:room] */
static bool parse_side(const char *s)
{
	if (opt.nspecs == MAX_SIDES) {
		return false;
	}
	struct side_spec *sp = &opt.specs[opt.nspecs];
	char buf[128], *save = NULL;
	snprintf(buf, sizeof buf, "%s", s);
	const char *name = strtok_r(buf, ":", &save), *kind = strtok_r(NULL, ":", &save);
	const char *port = strtok_r(NULL, ":", &save), *pid = strtok_r(NULL, ":", &save);
	const char *flags = strtok_r(NULL, ":", &save);
	uint32_t u = 0, p = 0;
	if (name == NULL || kind == NULL || port == NULL || pid == NULL ||
		strlen(name) >= sizeof sp->name || !parse_u32(port, &u) || u == 0 || u > 65535 ||
		!parse_u32(pid, &p) || (flags != NULL && strcmp(flags, "room") != 0)) {
		return false;
	}
	snprintf(sp->name, sizeof sp->name, "%s", name);
	if (strcmp(kind, "plugin") == 0) {
		sp->kind = PLUGIN;
	} else if (strcmp(kind, "plain") == 0) {
		sp->kind = PLAIN;
	} else {
		return false;
	}
	sp->port = (uint16_t)u;
	sp->pid = (int)p;
	sp->room = flags != NULL;
	if (sp->room && sp->kind != PLUGIN) {
		return false;
	}
	opt.port[sp->kind] = sp->port; /* so the usage check below passes */
	opt.nspecs++;
	return true;
}

static bool parse_phases(const char *s)
{
	opt.phases = 0;
	char buf[256];
	snprintf(buf, sizeof buf, "%s", s);
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		if (colon == NULL || opt.phases == MAX_PHASES) {
			return false;
		}
		*colon = '\0';
		uint32_t q, w;
		if (!parse_u32(tok, &q) || !parse_u32(colon + 1, &w) || q > 1 || w == 0 ||
			w > 999) {
			return false;
		}
		opt.phase_qos[opt.phases] = q;
		opt.phase_w[opt.phases] = w;
		opt.phases++;
	}
	return opt.phases > 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage();
		return EXIT_USAGE;
	}
	const char *mode = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		uint32_t u = 0;
		bool ok = true;
		if (strcmp(a, "--strict") == 0) {
			opt.strict = true;
			continue;
		}
		if (v == NULL) {
			usage();
			return EXIT_USAGE;
		}
		i++;
		if (strcmp(a, "--plugin-port") == 0 || strcmp(a, "--plain-port") == 0) {
			ok = parse_u32(v, &u) && u > 0 && u < 65536;
			int side = strcmp(a, "--plugin-port") == 0 ? PLUGIN : PLAIN;
			opt.port[side] = (uint16_t)u;
			opt.side = side;
		} else if (strcmp(a, "--settle") == 0) {
			opt.settle = atof(v);
			ok = opt.settle > 0 && opt.settle <= 1;
		} else if (strcmp(a, "--clients") == 0) {
			ok = parse_u32(v, &opt.storm_clients) && opt.storm_clients > 0;
		} else if (strcmp(a, "--client-members") == 0) {
			ok = parse_u32(v, &opt.storm_members);
		} else if (strcmp(a, "--limit") == 0) {
			ok = parse_u32(v, &opt.history_limit) && opt.history_limit >= 1 &&
				opt.history_limit <= 100;
		} else if (strcmp(a, "--messages") == 0) {
			ok = parse_u32(v, &opt.messages) && opt.messages > 0;
		} else if (strcmp(a, "--message-bytes") == 0) {
			ok = parse_u32(v, &opt.message_bytes) && opt.message_bytes > 0 &&
				opt.message_bytes <= 1000000;
		} else if (strcmp(a, "--side") == 0) {
			ok = parse_side(v);
		} else if (strcmp(a, "--plugin-pid") == 0) {
			ok = parse_u32(v, &u);
			opt.pid[PLUGIN] = (int)u;
		} else if (strcmp(a, "--plain-pid") == 0) {
			ok = parse_u32(v, &u);
			opt.pid[PLAIN] = (int)u;
		} else if (strcmp(a, "--users") == 0) {
			ok = parse_u32(v, &opt.users) && opt.users > 0 && opt.users <= 1000000;
		} else if (strcmp(a, "--members") == 0) {
			ok = parse_u32(v, &opt.members);
		} else if (strcmp(a, "--groups") == 0) {
			ok = parse_u32(v, &opt.groups);
		} else if (strcmp(a, "--text-bytes") == 0) {
			ok = parse_u32(v, &opt.text_bytes) && opt.text_bytes >= TXT_MIN &&
				opt.text_bytes <= 1000;
		} else if (strcmp(a, "--phases") == 0) {
			ok = parse_phases(v);
		} else if (strcmp(a, "--warmup") == 0) {
			opt.warmup = atof(v);
		} else if (strcmp(a, "--window") == 0) {
			opt.window = atof(v);
			ok = opt.window > 0;
		} else if (strcmp(a, "--timeout") == 0) {
			opt.timeout = atof(v);
			ok = opt.timeout > 0;
		} else if (strcmp(a, "--drain") == 0) {
			opt.drain = atof(v);
			ok = opt.drain > 0;
		} else if (strcmp(a, "--dir") == 0) {
			opt.dir_mode = v;
			ok = strcmp(v, "contacts") == 0 || strcmp(v, "users") == 0;
		} else if (strcmp(a, "--connect-window") == 0) {
			ok = parse_u32(v, &opt.connect_window);
		} else if (strcmp(a, "--rss-limit-mb") == 0) {
			ok = parse_u32(v, &u);
			opt.rss_limit_kb = (uint64_t)u * 1024;
		} else {
			ok = false;
		}
		if (!ok) {
			fprintf(stderr, "chatbench: bad option %s %s\n", a, v);
			usage();
			return EXIT_USAGE;
		}
	}

	if (strcmp(mode, "freeport") == 0) {
		return run_freeport();
	}
	if (strcmp(mode, "waitport") == 0) {
		return run_waitport();
	}
	if (opt.port[PLUGIN] == 0 && opt.port[PLAIN] == 0) {
		usage();
		return EXIT_USAGE;
	}

	struct loop_handlers handlers = {
		.established = on_established,
		.packet = on_packet,
		.publish = on_publish,
		.closed = on_closed,
	};
	if (loop_init(&L, &handlers, 256 * 1024) != 0) {
		perror("chatbench: epoll");
		return 1;
	}
	int rc;
	if (strcmp(mode, "fanout") == 0) {
		rc = run_fanout();
	} else if (strcmp(mode, "storm") == 0) {
		rc = run_storm();
	} else if (strcmp(mode, "memory") == 0) {
		rc = run_memory();
	} else if (strcmp(mode, "history") == 0) {
		rc = run_history();
	} else if (strcmp(mode, "state") == 0) {
		rc = run_state();
	} else if (strcmp(mode, "queue") == 0) {
		rc = run_queue();
	} else {
		usage();
		rc = EXIT_USAGE;
	}
	if (failure[0] != '\0') {
		fprintf(stderr, "FAIL: %s\n", failure);
		printf("FAIL %s\n", failure);
		rc = EXIT_WRONG;
	}
	close_all();
	loop_free(&L);
	return rc;
}
