/*
 * Ids: the counters that issue them and the forms they take on the wire (docs/protocol.md §2).
 *
 * A user id is a decimal string ending in 0 (n * 10), a group id one ending in 1 (n * 10 + 1;
 * the protocol admits any non-zero last digit), so any id tells a person from a group. Message
 * ids are plain decimal strings. None has a leading zero or more than CHAT_ID_MAX digits. A
 * counter only moves forward: an id is never issued twice by one core, nor across restarts
 * (store.h: with a database blocks of ids are reserved before they are issued; without one
 * the counters start from the clock).
 */
#ifndef CHAT_IDS_H
#define CHAT_IDS_H

#include <stdbool.h>
#include <stdint.h>

#define CHAT_ID_MAX 20 /* decimal digits of an id */
#define CHAT_ID_BUF (CHAT_ID_MAX + 1)

/*
 * A source of ids. `next` is the number the next id is made from; with a database, no id at or
 * above `reserved` has been committed as reserved, so one may be issued only below it.
 */
struct id_counter {
	uint64_t next;
	uint64_t reserved;
};

/* The three counters of a chat; each starts at 1. */
struct chat_ids {
	struct id_counter user;    /* user ids are n * 10 */
	struct id_counter group;   /* group ids are n * 10 + 1 */
	struct id_counter message; /* message ids are n */
};

/* Sets every counter to its start. */
void ids_init(struct chat_ids *ids);

/* True when `counter` has issued every id reserved for it (store.h must reserve more first). */
bool ids_reserve_exhausted(const struct id_counter *counter);

/* Issues the counter's next number. The caller checks the reserve first where one is kept. */
uint64_t ids_take(struct id_counter *counter);

/* Write the user, group or message id made from `n` into `out` (CHAT_ID_BUF bytes). */
void ids_format_user(uint64_t n, char out[CHAT_ID_BUF]);
void ids_format_group(uint64_t n, char out[CHAT_ID_BUF]);
void ids_format_message(uint64_t n, char out[CHAT_ID_BUF]);

/* A well-formed user id: decimal digits, no leading zero, ending in 0. NULL: false. */
bool ids_is_user(const char *id);

/* A well-formed group id: decimal digits, no leading zero, ending in 1-9. NULL: false. */
bool ids_is_group(const char *id);

/* The counter number of a well-formed user or group id: the id without its last digit. */
uint64_t ids_number(const char *id);

#endif
