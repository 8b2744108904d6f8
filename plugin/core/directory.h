/*
 * The retained directory (docs/protocol.md §3): chat/contacts (the seed's whole contact list),
 * chat/users/<userid> and chat/groups/<groupid>. The type API records which users and groups
 * changed (state.h); on every tick directory_flush publishes each changed entity once and the
 * snapshot when its wait is over.
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

/* Below this many users the snapshot goes out on every tick that follows a change. */
#define DIRECTORY_DEBOUNCE_USERS 200
/* Above it, a pause in the changes this long lets the snapshot go out... */
#define DIRECTORY_QUIET_MS 100
/* ... and it never waits longer than 1 ms per user, nor than this. */
#define DIRECTORY_MAX_WAIT_MS 10000

/*
 * Publishes every changed entity (its current record, or an empty payload if it is gone) and,
 * if anything changed and its wait is over, the snapshot. `now_ms` is a monotonic clock.
 */
void directory_flush(struct chat *chat, int64_t now_ms);

#endif
