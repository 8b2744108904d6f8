/*
 * The retained directory: chat/contacts (the seed's whole contact list), chat/users/<userid>
 * and chat/groups/<groupid>. State changes only mark what changed; chat_on_tick calls
 * directory_flush, which publishes each marked entity once per tick and the snapshot at most
 * once per tick.
 *
 * The snapshot grows with the chat and goes to every subscriber, so publishing it on every tick
 * of a login storm would cost O(users^2) bytes per tick. The snapshot therefore waits until the
 * changes pause (no change for 100 ms) or until it is stale by 1 ms per user (at most 10 s),
 * whichever comes first; below 200 users it goes out on the tick after a change. A classroom
 * sees a login at once, and a storm of ten thousand logins sends a handful of snapshots instead
 * of one per tick. The small per-entity topics stay current on every tick.
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
