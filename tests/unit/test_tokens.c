/* Unit tests of login tokens (tokens.h): form, randomness, hashing, constant-time equality. */
#include <string.h>

#include "check.h"
#include "tokens.h"

TEST_CASE(new_token_is_32_hex_digits_with_its_hash)
{
	char text[TOKENS_TEXT_LEN + 1];
	uint8_t hash[TOKENS_HASH_SIZE], again[TOKENS_HASH_SIZE];
	CHECK_INT(CHAT_OK, tokens_new(text, hash));
	CHECK_INT(TOKENS_TEXT_LEN, strlen(text));
	CHECK(strspn(text, "0123456789abcdef") == TOKENS_TEXT_LEN);
	CHECK(tokens_hash(text, strlen(text), again));
	CHECK(tokens_equal(hash, again));
}

TEST_CASE(tokens_differ)
{
	char a[TOKENS_TEXT_LEN + 1], b[TOKENS_TEXT_LEN + 1];
	uint8_t ha[TOKENS_HASH_SIZE], hb[TOKENS_HASH_SIZE];
	CHECK_INT(CHAT_OK, tokens_new(a, ha));
	CHECK_INT(CHAT_OK, tokens_new(b, hb));
	CHECK(strcmp(a, b) != 0);
	CHECK(!tokens_equal(ha, hb));
}

TEST_CASE(known_sha256)
{
	/* SHA-256("abc"), FIPS 180-2 appendix B.1. */
	uint8_t hash[TOKENS_HASH_SIZE];
	char hex[TOKENS_HASH_HEX_LEN + 1];
	CHECK(tokens_hash("abc", 3, hash));
	tokens_hash_to_hex(hash, hex);
	CHECK_STR("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hex);
}

TEST_CASE(hash_hex_round_trip_and_refusals)
{
	uint8_t hash[TOKENS_HASH_SIZE], back[TOKENS_HASH_SIZE];
	char hex[TOKENS_HASH_HEX_LEN + 1];
	CHECK(tokens_hash("token", 5, hash));
	tokens_hash_to_hex(hash, hex);
	CHECK(tokens_hash_from_hex(hex, back));
	CHECK(memcmp(hash, back, sizeof hash) == 0);
	CHECK(!tokens_hash_from_hex(NULL, back));
	CHECK(!tokens_hash_from_hex("abc", back));
	hex[0] = 'A'; /* upper case is not what the saver writes */
	CHECK(!tokens_hash_from_hex(hex, back));
	hex[0] = 'g';
	CHECK(!tokens_hash_from_hex(hex, back));
}

CHECK_MAIN("test_tokens")
