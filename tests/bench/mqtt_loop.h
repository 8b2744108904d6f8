/*
 * The benchmark's client side: many MQTT connections over raw non-blocking sockets in one
 * epoll loop, with a minimal MQTT 3.1.1 / 5 encoder and decoder.
 *
 * Reads are batched: one recv() of up to the loop's read buffer per readable socket, every
 * complete packet in it handled in place. A PUBLISH larger than LOOP_CARRY_MAX is streamed to the
 * publish handler in pieces (offset / total), so 10,000 clients receiving a large retained
 * directory never hold it whole. Writes are batched too: encoders append to the connection's
 * output buffer and the loop sends each touched connection once per pass.
 *
 * QoS 1 and 2 deliveries are acknowledged by the loop (PUBACK, PUBREC / PUBCOMP) after the
 * publish handler has seen the last piece.
 */
#ifndef BENCH_MQTT_LOOP_H
#define BENCH_MQTT_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mqtt_type {
	MQTT_CONNECT = 1,
	MQTT_CONNACK = 2,
	MQTT_PUBLISH = 3,
	MQTT_PUBACK = 4,
	MQTT_PUBREC = 5,
	MQTT_PUBREL = 6,
	MQTT_PUBCOMP = 7,
	MQTT_SUBSCRIBE = 8,
	MQTT_SUBACK = 9,
	MQTT_UNSUBSCRIBE = 10,
	MQTT_UNSUBACK = 11,
	MQTT_PINGREQ = 12,
	MQTT_PINGRESP = 13,
	MQTT_DISCONNECT = 14,
};

/* Subscription options (MQTT 5 "No Local" is ignored by 3.1.1 brokers, so only set it on v5). */
#define MQTT_SUB_NO_LOCAL 0x04u

/* Packets up to this size are handled whole; larger PUBLISHes are streamed. */
#define LOOP_CARRY_MAX 16384u
#define LOOP_TOPIC_MAX 256u

/* One piece of a received PUBLISH: the whole payload when offset == 0 and len == total. */
struct mqtt_publish {
	const char *topic;
	size_t topic_len;
	const uint8_t *data;
	size_t len;
	size_t offset;
	size_t total;
	uint16_t pid;
	uint8_t qos;
	bool retain;
};

struct loop;

struct conn {
	int fd;
	uint32_t tag;     /* the workload's index of this client */
	uint8_t version;  /* 4 (MQTT 3.1.1) or 5 */
	bool established; /* the TCP handshake completed */
	bool closed;
	bool dirty;    /* in the loop's flush list */
	bool want_out; /* EPOLLOUT registered */
	uint16_t next_pid;
	uint64_t t_open;        /* ns (monotonic) when connect() was called */
	uint64_t t_established; /* ns when the socket became writable */

	/* A partial packet carried over to the next read, and a streamed PUBLISH in progress. */
	uint8_t *carry;
	size_t carry_len, carry_cap;
	size_t stream_left, stream_total;
	uint16_t stream_pid;
	uint8_t stream_qos;
	bool stream_retain;
	uint16_t stream_topic_len;
	char stream_topic[LOOP_TOPIC_MAX];

	uint8_t *out;
	size_t out_len, out_off, out_cap;
};

struct loop_handlers {
	/* The TCP connection is up; send CONNECT. */
	void (*established)(struct loop *loop, struct conn *conn);
	/* Any packet but PUBLISH (and PUBREL, which the loop answers itself). */
	void (*packet)(struct loop *loop, struct conn *conn, uint8_t type, uint8_t flags,
		const uint8_t *body, size_t len);
	void (*publish)(struct loop *loop, struct conn *conn, const struct mqtt_publish *pub);
	/* The connection failed or the broker closed it; `why` says how. */
	void (*closed)(struct loop *loop, struct conn *conn, const char *why);
};

struct loop {
	int epfd;
	struct loop_handlers handlers;
	uint64_t now; /* ns, refreshed after every epoll_wait and recv */
	uint8_t *rbuf;
	size_t rbuf_size;
	struct conn **dirty;
	size_t dirty_len, dirty_cap;
	uint64_t bytes_in, bytes_out, reads, packets_in;
};

uint64_t now_ns(void);

int loop_init(struct loop *loop, const struct loop_handlers *handlers, size_t rbuf_size);
void loop_free(struct loop *loop);

/* Waits up to timeout_ms for events, handles them, then flushes every touched connection. */
int loop_poll(struct loop *loop, int timeout_ms);
void loop_flush(struct loop *loop);

/* Starts a non-blocking connect to 127.0.0.1:port with TCP_NODELAY. NULL (errno set) on error. */
struct conn *conn_open(struct loop *loop, uint16_t port, uint32_t tag);
/* Closes without lingering (RST, no TIME_WAIT): the benchmark opens tens of thousands. */
void conn_close(struct loop *loop, struct conn *conn);
void conn_free(struct conn *conn);

/* Encoders: append one packet to the connection's output (sent at the end of the loop pass). */
/* session_expiry: MQTT 5's Session Expiry Interval in seconds (0: none, the session ends with
 * the connection; 0xFFFFFFFF: never). */
void mqtt_connect(struct loop *loop, struct conn *conn, const char *clientid, uint8_t version,
	bool clean, uint16_t keepalive, uint32_t session_expiry);
uint16_t mqtt_subscribe(struct loop *loop, struct conn *conn, const char *filter, uint8_t options);
/* Returns the packet id used (0 for QoS 0). */
uint16_t mqtt_publish(struct loop *loop, struct conn *conn, const char *topic, size_t topic_len,
	const void *payload, size_t len, uint8_t qos, bool retain);
void mqtt_ack(struct loop *loop, struct conn *conn, uint8_t type, uint16_t pid);
void mqtt_disconnect(struct loop *loop, struct conn *conn);

#endif
