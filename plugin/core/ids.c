#include "ids.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ids_init(struct chat_ids *ids)
{
	*ids = (struct chat_ids){
		.user = { .next = 1 },
		.group = { .next = 1 },
		.message = { .next = 1 },
	};
}

bool ids_reserve_exhausted(const struct id_counter *counter)
{
	return counter->next >= counter->reserved;
}

uint64_t ids_take(struct id_counter *counter)
{
	return counter->next++;
}

void ids_format_user(uint64_t n, char out[CHAT_ID_BUF])
{
	snprintf(out, CHAT_ID_BUF, "%llu0", (unsigned long long)n);
}

void ids_format_group(uint64_t n, char out[CHAT_ID_BUF])
{
	snprintf(out, CHAT_ID_BUF, "%llu1", (unsigned long long)n);
}

void ids_format_message(uint64_t n, char out[CHAT_ID_BUF])
{
	snprintf(out, CHAT_ID_BUF, "%llu", (unsigned long long)n);
}

static bool is_id(const char *id, bool group)
{
	if (id == NULL) {
		return false;
	}
	size_t len = strlen(id);
	if (len == 0 || len > CHAT_ID_MAX || id[0] == '0') {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		if (id[i] < '0' || id[i] > '9') {
			return false;
		}
	}
	return group ? id[len - 1] != '0' : id[len - 1] == '0';
}

bool ids_is_user(const char *id)
{
	return is_id(id, false);
}

bool ids_is_group(const char *id)
{
	return is_id(id, true);
}

uint64_t ids_number(const char *id)
{
	return strtoull(id, NULL, 10) / 10;
}
