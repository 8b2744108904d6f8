/*
 * The retained directory: chat/contacts (the seed's whole contact list), chat/users/<userid>
 * and chat/groups/<groupid>. State changes only mark what changed; chat_on_tick calls
 * directory_flush, which publishes each marked entity once per tick and the snapshot at most
 * once per tick.
 *
 * The snapshot grows with the chat and goes to every subscriber, so publishing it on every tick
 * of a login storm would cost O(users^2) bytes per second. After each snapshot the next waits
 * users / 10 ms (capped at 2 s): instant for a classroom, one or two snapshots a second for
 * ten thousand users, while the small per-entity topics stay current on every tick.
 */
#ifndef CHAT_DIRECTORY_H
#define CHAT_DIRECTORY_H

#include "state.h"

/* Marks a user or group id for republishing (its current record, or an empty payload if gone). */
void directory_mark(struct chat *chat, const char *id);

/* Publishes every marked entity and, if anything changed and its wait is over, the snapshot. */
void directory_flush(struct chat *chat, int64_t now_ms);

/* Forgets every mark without publishing (used by chat_free). */
void directory_clear(struct chat *chat);

#endif
