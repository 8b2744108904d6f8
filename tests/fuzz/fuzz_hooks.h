/* Hooks the fuzz targets share: the core's log lines are dropped and its clock stands still. */
#ifndef CHAT_FUZZ_HOOKS_H
#define CHAT_FUZZ_HOOKS_H

#include <stdint.h>

#include "chat.h"

static inline void ignore_log(void *ctx, enum chat_log_level level, const char *message)
{
	(void)ctx;
	(void)level;
	(void)message;
}

static inline int64_t fixed_wall(void *ctx)
{
	(void)ctx;
	return 1700000000000;
}

#endif
