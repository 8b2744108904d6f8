/*
 * One log line through the core's hooks. Lines are cut at 511 bytes; a core without a log hook
 * logs nothing. Callers never log message bodies: they are the users' own words.
 */
#ifndef CHAT_LOG_H
#define CHAT_LOG_H

#include "chat_types.h"

/* Formats printf-style and hands the line to hooks->log; `hooks` is borrowed. */
void log_printf(const struct chat_hooks *hooks, enum chat_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
