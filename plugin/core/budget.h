/*
 * The delivery budget (docs/protocol.md §4.10): what one user — all its sessions together —
 * may make the broker store. A message costs its delivery's bytes times the copies the broker
 * must keep of it (each inbox copy counts; a publish on a room topic counts once, however many
 * sessions read it). Each user has a token bucket of bytes, refilled continuously at
 * plugin_opt_delivery_budget bytes a second up to plugin_opt_delivery_burst; a message whose
 * cost the bucket cannot pay is refused whole (rate_limited) and costs nothing.
 *
 * The bucket lives in the user's record (state.h); nothing here publishes or logs.
 */
#ifndef CHAT_BUDGET_H
#define CHAT_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "state.h"

/*
 * Takes `cost` bytes from the user's budget at monotonic time `now_ms`. Returns true when it
 * could (or when the budget is off: delivery_budget 0). Otherwise changes nothing, returns false
 * and writes a sentence for the client into `detail` (`detail_len` bytes) that names the limit.
 */
bool budget_charge(struct chat *chat, struct chat_user *user, uint64_t cost, int64_t now_ms,
	char *detail, size_t detail_len);

#endif
