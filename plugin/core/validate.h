/*
 * Validation at the edge: everything a client sends that the core keeps or echoes (client ids,
 * usernames, room and user ids, message text) is checked here, once, before it touches state.
 * All functions are pure and take explicit lengths; none allocates.
 */
#ifndef CHAT_VALIDATE_H
#define CHAT_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#define CHAT_CLIENTID_MAX 128
#define CHAT_USERNAME_MAX 64
#define CHAT_ID_MAX 20 /* decimal digits of a user or group id */

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF, no NUL byte. */
bool chat_utf8_valid(const char *s, size_t len);

/* A client id usable as one topic level: 1-128 bytes of UTF-8, no / + #, not starting with $. */
bool chat_clientid_valid(const char *clientid);

/* A username: 1-64 bytes of UTF-8 without control characters (C0, DEL or C1). */
bool chat_username_valid(const char *username, size_t len);

/* A well-formed user id: decimal digits, no leading zero, ending in 0. */
bool chat_is_userid(const char *id);

/* A well-formed group id: decimal digits, no leading zero, ending in 1-9. */
bool chat_is_groupid(const char *id);

#endif
