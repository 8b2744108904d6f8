#include "log.h"

#include <stdarg.h>
#include <stdio.h>

void log_printf(const struct chat_hooks *hooks, enum chat_log_level level, const char *fmt, ...)
{
	if (hooks->log == NULL) {
		return;
	}
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	hooks->log(hooks->ctx, level, line);
}
