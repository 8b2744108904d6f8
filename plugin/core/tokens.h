/*
 * Login tokens of anonymous mode (docs/protocol.md §2.6): the proof that a login naming a held
 * username comes from the person who created that user, when no broker authentication binds
 * the name.
 *
 * A token is 128 bits from the operating system's random source (getrandom(2)), written as 32
 * lowercase hex digits. The chat keeps only its SHA-256 (through OpenSSL's libcrypto, which
 * Mosquitto itself links) and compares hashes in constant time (CRYPTO_memcmp), so neither the
 * database nor a timing difference gives a token away. Tokens are never logged.
 */
#ifndef CHAT_TOKENS_H
#define CHAT_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_error.h"

#define TOKENS_TEXT_LEN 32 /* hex digits of a token */
#define TOKENS_HASH_SIZE 32
#define TOKENS_HASH_HEX_LEN (2 * TOKENS_HASH_SIZE)

/*
 * Makes a new token: its text into `text` (TOKENS_TEXT_LEN + 1 bytes, NUL-terminated) and its
 * hash into `hash`. Returns CHAT_OK, or CHAT_ERR_INTERNAL when the random source or the hash
 * failed (nothing usable is written then).
 */
enum chat_err tokens_new(char text[TOKENS_TEXT_LEN + 1], uint8_t hash[TOKENS_HASH_SIZE]);

/* The hash of `len` bytes of a presented token. Returns false when hashing failed. */
bool tokens_hash(const char *token, size_t len, uint8_t hash[TOKENS_HASH_SIZE]);

/* True when the two hashes are equal; takes the same time whatever they hold. */
bool tokens_equal(const uint8_t a[TOKENS_HASH_SIZE], const uint8_t b[TOKENS_HASH_SIZE]);

/* A hash as lowercase hex (TOKENS_HASH_HEX_LEN + 1 bytes), for snapshots (persist.h). */
void tokens_hash_to_hex(const uint8_t hash[TOKENS_HASH_SIZE], char out[TOKENS_HASH_HEX_LEN + 1]);

/* Parses exactly TOKENS_HASH_HEX_LEN lowercase hex digits; false for anything else. */
bool tokens_hash_from_hex(const char *hex, uint8_t hash[TOKENS_HASH_SIZE]);

#endif
