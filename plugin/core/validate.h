/*
 * Validation at the edge: everything a client sends that the core keeps or echoes (client ids,
 * usernames, message text) is checked here, once, before it touches state; ids are checked by
 * ids.h.
 * All functions are pure and take explicit lengths; none allocates.
 */
#ifndef CHAT_VALIDATE_H
#define CHAT_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#define CHAT_CLIENTID_MAX 128
#define CHAT_USERNAME_MAX 64

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF, no NUL byte. */
bool validate_utf8(const char *s, size_t len);

/* A client id usable as one topic level: 1-128 bytes of UTF-8, no / + #, not starting with $. */
bool validate_clientid(const char *clientid);

/* A username: 1-64 bytes of UTF-8 without control characters (C0, DEL or C1). */
bool validate_username(const char *username, size_t len);

#endif
