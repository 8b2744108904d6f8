#define _GNU_SOURCE /* getrandom */
#include "tokens.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

static const char hex_digits[] = "0123456789abcdef";

static void to_hex(const uint8_t *bytes, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex_digits[bytes[i] >> 4];
		out[2 * i + 1] = hex_digits[bytes[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

enum chat_err tokens_new(char text[TOKENS_TEXT_LEN + 1], uint8_t hash[TOKENS_HASH_SIZE])
{
	uint8_t bits[TOKENS_TEXT_LEN / 2];
	size_t got = 0;
	while (got < sizeof bits) {
		ssize_t n = getrandom(bits + got, sizeof bits - got, 0);
		if (n < 0 && errno != EINTR) {
			return CHAT_ERR_INTERNAL;
		}
		got += n > 0 ? (size_t)n : 0;
	}
	to_hex(bits, sizeof bits, text);
	return tokens_hash(text, TOKENS_TEXT_LEN, hash) ? CHAT_OK : CHAT_ERR_INTERNAL;
}

bool tokens_hash(const char *token, size_t len, uint8_t hash[TOKENS_HASH_SIZE])
{
	unsigned int out_len = 0;
	return EVP_Digest(token, len, hash, &out_len, EVP_sha256(), NULL) == 1 &&
		out_len == TOKENS_HASH_SIZE;
}

bool tokens_equal(const uint8_t a[TOKENS_HASH_SIZE], const uint8_t b[TOKENS_HASH_SIZE])
{
	return CRYPTO_memcmp(a, b, TOKENS_HASH_SIZE) == 0;
}

void tokens_hash_to_hex(const uint8_t hash[TOKENS_HASH_SIZE], char out[TOKENS_HASH_HEX_LEN + 1])
{
	to_hex(hash, TOKENS_HASH_SIZE, out);
}

static int nibble(char c)
{
	const char *at = c != '\0' ? strchr(hex_digits, c) : NULL;
	return at != NULL ? (int)(at - hex_digits) : -1;
}

bool tokens_hash_from_hex(const char *hex, uint8_t hash[TOKENS_HASH_SIZE])
{
	if (hex == NULL || strlen(hex) != TOKENS_HASH_HEX_LEN) {
		return false;
	}
	for (size_t i = 0; i < TOKENS_HASH_SIZE; i++) {
		int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			return false;
		}
		hash[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}
