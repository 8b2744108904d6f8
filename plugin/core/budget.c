#include "budget.h"

#include <inttypes.h>
#include <stdio.h>

bool budget_charge(struct chat *chat, struct chat_user *user, uint64_t cost, int64_t now_ms,
	char *detail, size_t detail_len)
{
	int64_t rate = chat->config.delivery_budget;
	if (rate == 0) {
		return true;
	}
	double burst = (double)chat->config.delivery_burst;
	if (!user->budget_started) {
		user->budget_started = true;
		user->budget = burst;
		user->budget_at = now_ms;
	} else if (now_ms > user->budget_at) {
		user->budget += (double)(now_ms - user->budget_at) * (double)rate / 1000.0;
		if (user->budget > burst) {
			user->budget = burst;
		}
		user->budget_at = now_ms;
	}
	if ((double)cost <= user->budget) {
		user->budget -= (double)cost;
		return true;
	}
	if ((double)cost > burst) {
		snprintf(detail, detail_len,
			"delivery_burst: this message would make the broker store %" PRIu64
			" bytes (its size times its copies), more than the %" PRId64
			" one user may ever cause at once; write less, or to fewer people",
			cost, chat->config.delivery_burst);
	} else {
		snprintf(detail, detail_len,
			"delivery_budget: this message would make the broker store %" PRIu64
			" bytes (its size times its copies); one user may cause %" PRId64
			" bytes a second (bursts of %" PRId64 "), and %" PRIu64
			" are left now: try again in %" PRId64 " s",
			cost, rate, chat->config.delivery_burst, (uint64_t)user->budget,
			(int64_t)(((double)cost - user->budget) / (double)rate) + 1);
	}
	return false;
}
