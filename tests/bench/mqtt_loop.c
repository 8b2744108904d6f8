#define _GNU_SOURCE
#include "mqtt_loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 1024

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int loop_init(struct loop *loop, const struct loop_handlers *handlers, size_t rbuf_size)
{
	memset(loop, 0, sizeof *loop);
	loop->handlers = *handlers;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->rbuf_size = rbuf_size;
	loop->rbuf = malloc(rbuf_size);
	loop->now = now_ns();
	return loop->epfd < 0 || loop->rbuf == NULL ? -1 : 0;
}

void loop_free(struct loop *loop)
{
	if (loop->epfd >= 0) {
		close(loop->epfd);
	}
	free(loop->rbuf);
	free(loop->dirty);
	memset(loop, 0, sizeof *loop);
	loop->epfd = -1;
}

static void set_events(struct loop *loop, struct conn *conn, bool out)
{
	struct epoll_event ev = { .events = EPOLLIN | (out ? (uint32_t)EPOLLOUT : 0u),
		.data.ptr = conn };
	epoll_ctl(loop->epfd, EPOLL_CTL_MOD, conn->fd, &ev);
	conn->want_out = out;
}

static void fail_conn(struct loop *loop, struct conn *conn, const char *why)
{
	if (conn->closed) {
		return;
	}
	conn_close(loop, conn);
	if (loop->handlers.closed != NULL) {
		loop->handlers.closed(loop, conn, why);
	}
}

struct conn *conn_open(struct loop *loop, uint16_t port, uint32_t tag)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return NULL;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct conn *conn = calloc(1, sizeof *conn);
	if (conn == NULL) {
		close(fd);
		return NULL;
	}
	conn->fd = fd;
	conn->tag = tag;
	conn->version = 5;
	conn->next_pid = 1;
	conn->t_open = now_ns();

	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
	if (rc != 0 && errno != EINPROGRESS) {
		int err = errno;
		close(fd);
		free(conn);
		errno = err;
		return NULL;
	}
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = conn };
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		int err = errno;
		close(fd);
		free(conn);
		errno = err;
		return NULL;
	}
	conn->want_out = true;
	/* Established or not, the socket reports writable once the handshake is done. */
	return conn;
}

void conn_close(struct loop *loop, struct conn *conn)
{
	if (conn->closed) {
		return;
	}
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(conn->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, conn->fd, NULL);
	close(conn->fd);
	conn->fd = -1;
	conn->closed = true;
	conn->out_len = conn->out_off = 0;
}

void conn_free(struct conn *conn)
{
	if (conn == NULL) {
		return;
	}
	free(conn->carry);
	free(conn->out);
	free(conn);
}

/* ------------------------------------------------------------------------------------------ */
/* Output                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static uint8_t *out_reserve(struct loop *loop, struct conn *conn, size_t n)
{
	if (conn->closed) {
		/* Encode into a scratch area that is thrown away. */
		conn->out_len = conn->out_off = 0;
	}
	if (conn->out_off > 0 && conn->out_off == conn->out_len) {
		conn->out_off = conn->out_len = 0;
	}
	if (conn->out_len + n > conn->out_cap) {
		size_t cap = conn->out_cap ? conn->out_cap : 256;
		while (cap < conn->out_len + n) {
			cap *= 2;
		}
		uint8_t *p = realloc(conn->out, cap);
		if (p == NULL) {
			abort();
		}
		conn->out = p;
		conn->out_cap = cap;
	}
	uint8_t *p = conn->out + conn->out_len;
	conn->out_len += n;
	if (!conn->dirty && !conn->closed) {
		if (loop->dirty_len == loop->dirty_cap) {
			size_t cap = loop->dirty_cap ? loop->dirty_cap * 2 : 1024;
			struct conn **d = realloc(loop->dirty, cap * sizeof *d);
			if (d == NULL) {
				abort();
			}
			loop->dirty = d;
			loop->dirty_cap = cap;
		}
		loop->dirty[loop->dirty_len++] = conn;
		conn->dirty = true;
	}
	return p;
}

static size_t varint_len(size_t v)
{
	return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

static uint8_t *put_varint(uint8_t *p, size_t v)
{
	do {
		uint8_t d = (uint8_t)(v & 127u);
		v >>= 7;
		if (v > 0) {
			d = (uint8_t)(d | 128u);
		}
		*p++ = d;
	} while (v > 0);
	return p;
}

static uint8_t *put_u16(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)(v & 255u);
	return p + 2;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
	p = put_u16(p, (uint16_t)(v >> 16));
	return put_u16(p, (uint16_t)v);
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t len)
{
	p = put_u16(p, len);
	memcpy(p, s, len);
	return p + len;
}

static uint16_t next_pid(struct conn *conn)
{
	uint16_t pid = conn->next_pid++;
	if (conn->next_pid == 0) {
		conn->next_pid = 1;
	}
	return pid;
}

void mqtt_connect(struct loop *loop, struct conn *conn, const char *clientid, uint8_t version,
	bool clean, uint16_t keepalive, uint32_t session_expiry)
{
	size_t idlen = strlen(clientid);
	conn->version = version;
	/* MQTT 5 ends a session at disconnect unless it asks for a Session Expiry Interval. */
	bool expiry = version == 5 && session_expiry > 0;
	size_t body = 2 + 4 + 1 + 1 + 2 + (version == 5 ? 1u : 0u) + (expiry ? 5u : 0u) + 2 + idlen;
	uint8_t *p = out_reserve(loop, conn, 1 + varint_len(body) + body);
	*p++ = MQTT_CONNECT << 4;
	p = put_varint(p, body);
	p = put_str(p, "MQTT", 4);
	*p++ = version;
	*p++ = clean ? 0x02 : 0x00;
	p = put_u16(p, keepalive);
	if (expiry) {
		*p++ = 5;
		*p++ = 0x11; /* Session Expiry Interval */
		p = put_u32(p, session_expiry);
	} else if (version == 5) {
		*p++ = 0; /* no properties */
	}
	put_str(p, clientid, idlen);
}

uint16_t mqtt_subscribe(struct loop *loop, struct conn *conn, const char *filter, uint8_t options)
{
	size_t flen = strlen(filter);
	size_t body = 2 + (conn->version == 5 ? 1u : 0u) + 2 + flen + 1;
	uint8_t *p = out_reserve(loop, conn, 1 + varint_len(body) + body);
	uint16_t pid = next_pid(conn);
	*p++ = (MQTT_SUBSCRIBE << 4) | 0x02;
	p = put_varint(p, body);
	p = put_u16(p, pid);
	if (conn->version == 5) {
		*p++ = 0;
	} else {
		options &= 0x03;
	}
	p = put_str(p, filter, flen);
	*p = options;
	return pid;
}

uint16_t mqtt_publish(struct loop *loop, struct conn *conn, const char *topic, size_t topic_len,
	const void *payload, size_t len, uint8_t qos, bool retain)
{
	size_t body = 2 + topic_len + (qos > 0 ? 2 : 0) + (conn->version == 5 ? 1 : 0) + len;
	uint8_t *p = out_reserve(loop, conn, 1 + varint_len(body) + body);
	uint16_t pid = qos > 0 ? next_pid(conn) : 0;
	*p++ = (uint8_t)((MQTT_PUBLISH << 4) | (qos << 1) | (retain ? 1 : 0));
	p = put_varint(p, body);
	p = put_str(p, topic, topic_len);
	if (qos > 0) {
		p = put_u16(p, pid);
	}
	if (conn->version == 5) {
		*p++ = 0;
	}
	if (len > 0) {
		memcpy(p, payload, len);
	}
	return pid;
}

void mqtt_ack(struct loop *loop, struct conn *conn, uint8_t type, uint16_t pid)
{
	uint8_t *p = out_reserve(loop, conn, 4);
	p[0] = (uint8_t)((type << 4) | (type == MQTT_PUBREL ? 0x02 : 0x00));
	p[1] = 2;
	put_u16(p + 2, pid);
}

void mqtt_disconnect(struct loop *loop, struct conn *conn)
{
	uint8_t *p = out_reserve(loop, conn, 2);
	p[0] = MQTT_DISCONNECT << 4;
	p[1] = 0;
}

static void conn_flush(struct loop *loop, struct conn *conn)
{
	while (conn->out_off < conn->out_len) {
		ssize_t n = send(conn->fd, conn->out + conn->out_off, conn->out_len - conn->out_off,
			MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (!conn->want_out) {
					set_events(loop, conn, true);
				}
				return;
			}
			if (errno == EINTR) {
				continue;
			}
			fail_conn(loop, conn, strerror(errno));
			return;
		}
		conn->out_off += (size_t)n;
		loop->bytes_out += (uint64_t)n;
	}
	conn->out_off = conn->out_len = 0;
	if (conn->want_out) {
		set_events(loop, conn, false);
	}
}

void loop_flush(struct loop *loop)
{
	for (size_t i = 0; i < loop->dirty_len; i++) {
		struct conn *conn = loop->dirty[i];
		conn->dirty = false;
		if (!conn->closed && conn->established) {
			conn_flush(loop, conn);
		}
	}
	loop->dirty_len = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Input                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/*
 * Parses a PUBLISH's variable header from `avail` bytes of its body. Returns its length, 0 if
 * more bytes are needed, or SIZE_MAX if it is malformed.
 */
static size_t publish_header(const struct conn *conn, uint8_t flags, const uint8_t *body,
	size_t avail, size_t body_len, struct mqtt_publish *pub)
{
	memset(pub, 0, sizeof *pub);
	pub->qos = (uint8_t)((flags >> 1) & 3u);
	pub->retain = (flags & 1u) != 0;
	if (avail < 2) {
		return 0;
	}
	size_t tlen = ((size_t)body[0] << 8) | body[1];
	size_t pos = 2 + tlen;
	if (pub->qos > 0) {
		pos += 2;
	}
	if (pos > body_len) {
		return SIZE_MAX;
	}
	if (avail < pos) {
		return 0;
	}
	pub->topic = (const char *)body + 2;
	pub->topic_len = tlen;
	if (pub->qos > 0) {
		pub->pid = (uint16_t)((body[pos - 2] << 8) | body[pos - 1]);
	}
	if (conn->version == 5) {
		size_t plen = 0;
		unsigned shift = 0;
		for (;;) {
			if (pos >= avail) {
				return pos >= body_len ? SIZE_MAX : 0;
			}
			uint8_t d = body[pos++];
			plen |= (size_t)(d & 127u) << shift;
			shift += 7;
			if (!(d & 128u)) {
				break;
			}
			if (shift > 21) {
				return SIZE_MAX;
			}
		}
		if (pos + plen > body_len) {
			return SIZE_MAX;
		}
		if (avail < pos + plen) {
			return 0;
		}
		pos += plen; /* properties (topic alias, ...) are not used by the brokers we drive */
	}
	return pos;
}

static void publish_done(struct loop *loop, struct conn *conn, uint8_t qos, uint16_t pid)
{
	if (qos == 1) {
		mqtt_ack(loop, conn, MQTT_PUBACK, pid);
	} else if (qos == 2) {
		mqtt_ack(loop, conn, MQTT_PUBREC, pid);
	}
}

static void handle_packet(struct loop *loop, struct conn *conn, uint8_t b0, const uint8_t *body,
	size_t len)
{
	uint8_t type = (uint8_t)(b0 >> 4);
	loop->packets_in++;
	if (type == MQTT_PUBLISH) {
		struct mqtt_publish pub;
		size_t hdr = publish_header(conn, (uint8_t)(b0 & 15u), body, len, len, &pub);
		if (hdr == 0 || hdr == SIZE_MAX) {
			fail_conn(loop, conn, "malformed PUBLISH");
			return;
		}
		pub.data = body + hdr;
		pub.len = len - hdr;
		pub.total = pub.len;
		loop->handlers.publish(loop, conn, &pub);
		if (!conn->closed) {
			publish_done(loop, conn, pub.qos, pub.pid);
		}
		return;
	}
	if (type == MQTT_PUBREL) {
		if (len >= 2) {
			mqtt_ack(loop, conn, MQTT_PUBCOMP, (uint16_t)((body[0] << 8) | body[1]));
		}
		return;
	}
	loop->handlers.packet(loop, conn, type, (uint8_t)(b0 & 15u), body, len);
}

/* Handles what `buf` holds; returns how many bytes were consumed (the rest is a partial packet). */
static size_t parse(struct loop *loop, struct conn *conn, const uint8_t *buf, size_t have)
{
	size_t pos = 0;
	while (pos < have && !conn->closed) {
		if (conn->stream_left > 0) {
			size_t k = have - pos < conn->stream_left ? have - pos : conn->stream_left;
			struct mqtt_publish pub = {
				.topic = conn->stream_topic,
				.topic_len = conn->stream_topic_len,
				.data = buf + pos,
				.len = k,
				.offset = conn->stream_total - conn->stream_left,
				.total = conn->stream_total,
				.pid = conn->stream_pid,
				.qos = conn->stream_qos,
				.retain = conn->stream_retain,
			};
			conn->stream_left -= k;
			pos += k;
			loop->handlers.publish(loop, conn, &pub);
			if (conn->stream_left == 0 && !conn->closed) {
				loop->packets_in++;
				publish_done(loop, conn, conn->stream_qos, conn->stream_pid);
			}
			continue;
		}
		if (have - pos < 2) {
			break;
		}
		size_t rl = 0;
		unsigned shift = 0;
		size_t i = pos + 1;
		bool complete = false;
		while (i < have && i - pos <= 4) {
			uint8_t d = buf[i++];
			rl |= (size_t)(d & 127u) << shift;
			shift += 7;
			if (!(d & 128u)) {
				complete = true;
				break;
			}
		}
		if (!complete) {
			if (i - pos > 4) {
				fail_conn(loop, conn, "malformed remaining length");
			}
			break;
		}
		size_t hdr = i - pos;
		uint8_t b0 = buf[pos];
		if (have - pos - hdr >= rl) {
			handle_packet(loop, conn, b0, buf + pos + hdr, rl);
			pos += hdr + rl;
			continue;
		}
		if (hdr + rl <= LOOP_CARRY_MAX) {
			break; /* wait for the rest */
		}
		if ((b0 >> 4) != MQTT_PUBLISH) {
			fail_conn(loop, conn, "oversized packet");
			break;
		}
		struct mqtt_publish pub;
		size_t vh = publish_header(conn, (uint8_t)(b0 & 15u), buf + pos + hdr,
			have - pos - hdr, rl, &pub);
		if (vh == SIZE_MAX || pub.topic_len >= LOOP_TOPIC_MAX) {
			fail_conn(loop, conn, "malformed large PUBLISH");
			break;
		}
		if (vh == 0) {
			if (have - pos > LOOP_CARRY_MAX) {
				fail_conn(loop, conn, "PUBLISH header too large");
			}
			break;
		}
		memcpy(conn->stream_topic, pub.topic, pub.topic_len);
		conn->stream_topic[pub.topic_len] = '\0';
		conn->stream_topic_len = (uint16_t)pub.topic_len;
		conn->stream_pid = pub.pid;
		conn->stream_qos = pub.qos;
		conn->stream_retain = pub.retain;
		conn->stream_total = conn->stream_left = rl - vh;
		pos += hdr + vh;
	}
	return pos;
}

static void conn_readable(struct loop *loop, struct conn *conn)
{
	uint8_t *buf = loop->rbuf;
	size_t have = conn->carry_len;
	if (have > 0) {
		memcpy(buf, conn->carry, have);
		conn->carry_len = 0;
	}
	ssize_t n;
	do {
		n = recv(conn->fd, buf + have, loop->rbuf_size - have, 0);
	} while (n < 0 && errno == EINTR);
	loop->now = now_ns();
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			n = 0;
		} else {
			fail_conn(loop, conn, n == 0 ? "closed by the broker" : strerror(errno));
			return;
		}
	}
	loop->reads++;
	loop->bytes_in += (uint64_t)n;
	have += (size_t)n;
	size_t used = parse(loop, conn, buf, have);
	if (conn->closed || used == have) {
		if (conn->carry_cap > 1024) {
			free(conn->carry);
			conn->carry = NULL;
			conn->carry_cap = 0;
		}
		return;
	}
	size_t rest = have - used;
	if (rest > conn->carry_cap) {
		size_t cap = rest < 256 ? 256 : rest;
		uint8_t *p = realloc(conn->carry, cap);
		if (p == NULL) {
			abort();
		}
		conn->carry = p;
		conn->carry_cap = cap;
	}
	memcpy(conn->carry, buf + used, rest);
	conn->carry_len = rest;
}

static void conn_writable(struct loop *loop, struct conn *conn)
{
	if (!conn->established) {
		int err = 0;
		socklen_t len = sizeof err;
		if (getsockopt(conn->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
			fail_conn(loop, conn, err != 0 ? strerror(err) : "connect failed");
			return;
		}
		conn->established = true;
		conn->t_established = loop->now;
		if (loop->handlers.established != NULL) {
			loop->handlers.established(loop, conn);
		}
		if (conn->closed) {
			return;
		}
	}
	conn_flush(loop, conn);
}

int loop_poll(struct loop *loop, int timeout_ms)
{
	struct epoll_event events[MAX_EVENTS];
	int n = epoll_wait(loop->epfd, events, MAX_EVENTS, timeout_ms);
	loop->now = now_ns();
	if (n < 0) {
		return errno == EINTR ? 0 : -1;
	}
	for (int i = 0; i < n; i++) {
		struct conn *conn = events[i].data.ptr;
		if (conn->closed) {
			continue;
		}
		uint32_t ev = events[i].events;
		if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
			if (!conn->established || (ev & EPOLLOUT)) {
				conn_writable(loop, conn);
			}
		}
		if (!conn->closed && conn->established && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
			conn_readable(loop, conn);
		}
	}
	loop_flush(loop);
	return n;
}
