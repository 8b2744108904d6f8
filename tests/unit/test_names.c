/*
 * Unit tests of the username rules (names.c): what is refused and why, the NFC spelling, and
 * which names share a uniqueness key. Facts that come from ICU's data rather than from our
 * rules (the key of "b0b", the longest key) are the ones ICU 72 / Unicode 15 gives, as Debian 12
 * ships; the comments say so where a later ICU might differ.
 */
#include "check.h"
#include "names.h"

static struct names *names;

/* `name` with every byte outside printable ASCII as \xHH, for failure messages. */
static const char *show(const char *name, size_t len)
{
	static char out[4 * CHAT_USERNAME_MAX * 4 + 1];
	size_t o = 0;
	for (size_t i = 0; i < len && o + 5 < sizeof out; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			out[o++] = (char)c;
		} else {
			o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02x", c);
		}
	}
	out[o] = '\0';
	return out;
}

/* Prints which name a failed check was about (the CHECK macros only know the line). */
static void context(int failures_before, const char *name, size_t len, int line)
{
	if (check_failures != failures_before) {
		fprintf(stderr, "    for name \"%s\" (checked at line %d)\n", show(name, len),
			line);
	}
}

static void check_refused(const char *name, const char *why, int line)
{
	int before = check_failures;
	char nfc[NAMES_NFC_SIZE];
	size_t nfc_len = 0;
	const char *reason = NULL;
	CHECK_INT(CHAT_ERR_INVALID_USERNAME,
		names_normalize(names, name, strlen(name), nfc, sizeof nfc, &nfc_len, &reason));
	CHECK_STR(why, reason);
	context(before, name, strlen(name), line);
}
#define CHECK_REFUSED(name, why) check_refused(name, why, __LINE__)

/* Expects `name` to be accepted with the NFC spelling `expected_nfc`. */
static void check_accepted(const char *name, const char *expected_nfc, int line)
{
	int before = check_failures;
	char nfc[NAMES_NFC_SIZE];
	size_t nfc_len = 0;
	const char *reason = "(not set)";
	CHECK_INT(CHAT_OK,
		names_normalize(names, name, strlen(name), nfc, sizeof nfc, &nfc_len, &reason));
	if (check_failures == before) {
		CHECK(reason == NULL);
		CHECK_STR(expected_nfc, nfc);
		CHECK_INT(strlen(expected_nfc), nfc_len);
	} else {
		fprintf(stderr, "    reason: %s\n", reason ? reason : "(null)");
	}
	context(before, name, strlen(name), line);
}
#define CHECK_ACCEPTED(name, nfc) check_accepted(name, nfc, __LINE__)

/* The key of `name` as a C string in a static buffer ("(error)" if names_key failed). */
static const char *key_of(const char *name)
{
	static char keys[4][NAMES_KEY_SIZE];
	static int next;
	char *key = keys[next++ % 4];
	size_t key_len = 0;
	if (names_key(names, name, strlen(name), key, NAMES_KEY_SIZE, &key_len) != CHAT_OK) {
		return "(error)";
	}
	CHECK_INT(strlen(key), key_len);
	return key;
}

TEST_CASE(invisible)
{
	const char *invisible = "contains an invisible character";
	CHECK_REFUSED("alice\u200b", invisible);     /* U+200B zero width space */
	CHECK_REFUSED("\ufeffalice", invisible);     /* U+FEFF byte order mark */
	CHECK_REFUSED("al\u200cice", invisible);     /* U+200C zero width non-joiner */
	CHECK_REFUSED("al\u200dice", invisible);     /* U+200D zero width joiner */
	CHECK_REFUSED("alice\u2060", invisible);     /* U+2060 word joiner */
	CHECK_REFUSED("al\u00adice", invisible);     /* U+00AD soft hyphen */
	CHECK_REFUSED("alice\ufe0f", invisible);     /* U+FE0F variation selector-16 */
	CHECK_REFUSED("alice\U000e0100", invisible); /* U+E0100 variation selector-17 */
	CHECK_REFUSED("al\u3164ice", invisible);     /* U+3164 Hangul filler */
	/* Nothing but zero-width characters. */
	CHECK_REFUSED("\u200b", invisible);
	CHECK_REFUSED("\u200b\u200c\u200d\u2060\ufeff", invisible);
	/* An emoji presentation sequence carries U+FE0F, a ZWJ sequence U+200D: both refused. */
	CHECK_REFUSED("\u2764\ufe0f", invisible);               /* red heart, emoji style */
	CHECK_REFUSED("\U0001f469\u200d\U0001f4bb", invisible); /* woman technologist */
}

TEST_CASE(bidi)
{
	const char *bidi = "contains a bidirectional control character";
	CHECK_REFUSED("ali\u202ece", bidi); /* U+202E right-to-left override */
	CHECK_REFUSED("\u202eecila", bidi);
	CHECK_REFUSED("alice\u200e", bidi);       /* U+200E left-to-right mark */
	CHECK_REFUSED("alice\u200f", bidi);       /* U+200F right-to-left mark */
	CHECK_REFUSED("\u2066alice\u2069", bidi); /* U+2066 .. U+2069 isolates */
	CHECK_REFUSED("al\u061cice", bidi);       /* U+061C Arabic letter mark */
}

TEST_CASE(spaces)
{
	const char *edge = "begins or ends with a space";
	CHECK_REFUSED("alice ", edge);
	CHECK_REFUSED(" alice", edge);
	CHECK_REFUSED("\u00a0alice", edge); /* U+00A0 no-break space */
	CHECK_REFUSED("alice\u3000", edge); /* U+3000 ideographic space */
	CHECK_REFUSED("alice\u2028", edge); /* U+2028 line separator */
	CHECK_REFUSED(" ", edge);
	CHECK_REFUSED("   ", edge);
	CHECK_ACCEPTED("Ada Lovelace", "Ada Lovelace");
	CHECK_ACCEPTED("Ada\u00a0Lovelace", "Ada\u00a0Lovelace");
	CHECK_ACCEPTED("a b", "a b");
}

TEST_CASE(nothing_visible)
{
	const char *none = "has no visible character";
	CHECK_REFUSED("\u0378", none); /* U+0378, unassigned */
	CHECK_REFUSED("\u0600", none); /* U+0600, a format character */
	/* Not graphic alone, but a name needs only one graphic character. */
	CHECK_ACCEPTED("a\u0378", "a\u0378");
}

TEST_CASE(other_refusals)
{
	char nfc[NAMES_NFC_SIZE];
	size_t nfc_len;
	const char *reason;
	CHECK_INT(CHAT_ERR_INVALID_USERNAME,
		names_normalize(names, "", 0, nfc, sizeof nfc, &nfc_len, &reason));
	CHECK_STR("is empty", reason);
	CHECK_INT(CHAT_ERR_INVALID_USERNAME,
		names_normalize(names, "a\0b", 3, nfc, sizeof nfc, &nfc_len, &reason));
	CHECK_STR("is not valid UTF-8", reason);
	CHECK_INT(CHAT_ERR_INVALID_USERNAME,
		names_normalize(names, "a\xff", 2, nfc, sizeof nfc, &nfc_len, &reason));
	CHECK_STR("is not valid UTF-8", reason);
	CHECK_REFUSED("a\tb", "contains a control character");
	/* `reason` may be NULL. */
	CHECK_INT(CHAT_ERR_INVALID_USERNAME,
		names_normalize(names, " a", 2, nfc, sizeof nfc, &nfc_len, NULL));
	CHECK_INT(CHAT_OK, names_normalize(names, "a", 1, nfc, sizeof nfc, &nfc_len, NULL));
}

TEST_CASE(scripts)
{
	CHECK_ACCEPTED("\u5f20\u4e09", "\u5f20\u4e09");                         /* 张三 */
	CHECK_ACCEPTED("\u7530\u4e2d\u3055\u3093", "\u7530\u4e2d\u3055\u3093"); /* 田中さん */
	CHECK_ACCEPTED("\uae40\ucca0\uc218", "\uae40\ucca0\uc218");             /* 김철수 */
	CHECK_ACCEPTED("\U0001f600", "\U0001f600");                             /* grinning face */
	CHECK_ACCEPTED("bob \U0001f409", "bob \U0001f409");                     /* dragon */
	CHECK_ACCEPTED("\u05e9\u05dc\u05d5\u05dd", "\u05e9\u05dc\u05d5\u05dd"); /* שלום */
	CHECK_ACCEPTED("J\u00fcrgen", "J\u00fcrgen");
	/* A lone combining mark is graphic to ICU (it is drawn on a dotted circle). */
	CHECK_ACCEPTED("\u0301", "\u0301");
	CHECK_STR(key_of("\u5f20\u4e09"), "\u5f20\u4e09");
	CHECK_STR(key_of("\U0001f600"), "\U0001f600");
}

TEST_CASE(nfc)
{
	/* NFD "cafe" + U+0301 and NFC "caf" + U+00E9: one spelling, one key. */
	CHECK_ACCEPTED("cafe\u0301", "caf\u00e9");
	CHECK_ACCEPTED("caf\u00e9", "caf\u00e9");
	CHECK_STR(key_of("caf\u00e9"), key_of("cafe\u0301"));
	CHECK_STR(key_of("Caf\u00e9"), key_of("cafe\u0301"));
	/* U+212B ANGSTROM SIGN is a singleton: its NFC is U+00C5. */
	CHECK_ACCEPTED("\u212bngstr\u00f6m", "\u00c5ngstr\u00f6m");
}

TEST_CASE(keys)
{
	/* Case and the confusable Cyrillic U+0430 all reach "alice". */
	CHECK_STR("alice", key_of("alice"));
	CHECK_STR("alice", key_of("Alice"));
	CHECK_STR("alice", key_of("ALICE"));
	CHECK_STR("alice", key_of("\u0430lice"));
	CHECK_STR("alice", key_of("\u0410lice")); /* Cyrillic capital A */
	CHECK(strcmp(key_of("alice"), key_of("alicia")) != 0);
	CHECK(strcmp(key_of("Ada Lovelace"), key_of("AdaLovelace")) != 0);
	/* Full case folding: U+00DF sharp s folds to "ss". */
	CHECK_STR(key_of("strasse"), key_of("stra\u00dfe"));
	/*
	 * Observed with ICU 72, not a rule of ours: the skeleton maps the digit 0 to a capital O,
	 * and folding has already turned every O into o, so "b0b" keeps a key of its own ("bOb")
	 * and is not the same name as "bob" or "BOB". Likewise "1" and "l" share a key, but "I"
	 * (folded to "i") does not. "m" and "rn" share a key.
	 */
	CHECK_STR("bOb", key_of("b0b"));
	CHECK_STR("bob", key_of("bob"));
	CHECK_STR("bob", key_of("BOB"));
	CHECK(strcmp(key_of("b0b"), key_of("bob")) != 0);
	CHECK_STR(key_of("l"), key_of("1"));
	CHECK(strcmp(key_of("l"), key_of("I")) != 0);
	CHECK_STR(key_of("rn"), key_of("m"));
	printf("observed keys: b0b -> \"%s\", 1 -> \"%s\", I -> \"%s\", m -> \"%s\"\n",
		key_of("b0b"), key_of("1"), key_of("I"), key_of("m"));
}

TEST_CASE(lengths)
{
	char name[CHAT_USERNAME_MAX + 1];
	char nfc[NAMES_NFC_SIZE];
	char key[NAMES_KEY_SIZE];
	size_t nfc_len = 0, key_len = 0;
	const char *reason;

	/* 64 bytes of NFD ("e" U+0301 21 times, then "a") whose NFC takes 43: accepted. */
	for (int i = 0; i < 21; i++) {
		memcpy(name + 3 * i, "e\u0301", 3);
	}
	name[63] = 'a';
	name[64] = '\0';
	CHECK_INT(CHAT_OK, names_normalize(names, name, 64, nfc, sizeof nfc, &nfc_len, &reason));
	CHECK_INT(43, nfc_len);
	CHECK_STR(key_of(nfc), key_of(name));

	/* 64 bytes that are already NFC: accepted. */
	memset(name, 'n', 64);
	CHECK_INT(CHAT_OK, names_normalize(names, name, 64, nfc, sizeof nfc, &nfc_len, &reason));
	CHECK_INT(64, nfc_len);
	CHECK_INT(CHAT_OK, names_key(names, name, 64, key, sizeof key, &key_len));
	CHECK_INT(64, key_len);
	CHECK_INT(CHAT_ERR_INVALID_USERNAME,
		names_normalize(names, name, 65, nfc, sizeof nfc, &nfc_len, &reason));
	CHECK_STR("is longer than 64 bytes in Unicode NFC form", reason);

	/* U+0958 is excluded from composition: 21 of them are 63 bytes, and 126 in NFC. */
	for (int i = 0; i < 21; i++) {
		memcpy(name + 3 * i, "\u0958", 3);
	}
	CHECK_INT(CHAT_ERR_INVALID_USERNAME,
		names_normalize(names, name, 63, nfc, sizeof nfc, &nfc_len, &reason));
	CHECK_STR("is longer than 64 bytes in Unicode NFC form", reason);
	CHECK_INT(CHAT_ERR_INVALID_USERNAME, names_key(names, name, 63, key, sizeof key, &key_len));
	/* 10 of them: 30 bytes, 60 in NFC. */
	CHECK_INT(CHAT_OK, names_normalize(names, name, 30, nfc, sizeof nfc, &nfc_len, &reason));
	CHECK_INT(60, nfc_len);
	/* One U+0958 after 58 or 59 letters: 64 bytes of NFC are accepted, 65 are not. */
	memset(name, 'n', 59);
	memcpy(name + 59, "\u0958", 3);
	CHECK_INT(CHAT_ERR_INVALID_USERNAME,
		names_normalize(names, name, 62, nfc, sizeof nfc, &nfc_len, &reason));
	CHECK_INT(CHAT_OK,
		names_normalize(names, name + 1, 61, nfc, sizeof nfc, &nfc_len, &reason));
	CHECK_INT(64, nfc_len);

	/* The longest key known with ICU 72: U+FDFA (3 bytes) has a 30-byte skeleton. */
	for (int i = 0; i < 21; i++) {
		memcpy(name + 3 * i, "\ufdfa", 3);
	}
	name[63] = 'a';
	CHECK_INT(CHAT_OK, names_normalize(names, name, 64, nfc, sizeof nfc, &nfc_len, &reason));
	CHECK_INT(CHAT_OK, names_key(names, name, 64, key, sizeof key, &key_len));
	CHECK_INT(21 * 30 + 1, key_len);
	printf("longest key: %zu bytes for a 64-byte name\n", key_len);

	/* Buffers the caller made too small are internal errors, and nothing is written. */
	memset(nfc, 'x', sizeof nfc);
	CHECK_INT(CHAT_ERR_INTERNAL, names_normalize(names, "alice", 5, nfc, 5, &nfc_len, &reason));
	CHECK(reason != NULL);
	CHECK(nfc[0] == 'x');
	CHECK_INT(CHAT_OK, names_normalize(names, "alice", 5, nfc, 6, &nfc_len, &reason));
	memset(key, 'x', sizeof key);
	CHECK_INT(CHAT_ERR_INTERNAL, names_key(names, "alice", 5, key, 5, &key_len));
	CHECK(key[0] == 'x');
	CHECK_INT(CHAT_OK, names_key(names, "alice", 5, key, 6, &key_len));
}

static size_t utf8_encode(unsigned cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	} else if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	} else if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/*
 * NAMES_KEY_SIZE holds for every code point: keys add up code point by code point, so it is
 * enough that no code point that can be part of an accepted name has more than
 * (NAMES_KEY_SIZE - 1) / CHAT_USERNAME_MAX bytes of key per byte of NFC. A code point refused
 * alone (a space, an unassigned one) is measured between two "a"s, whose key is "aa".
 */
TEST_CASE(key_size_bound)
{
	char name[16], nfc[NAMES_NFC_SIZE], key[NAMES_KEY_SIZE];
	size_t nfc_len, key_len;
	unsigned worst_cp = 0;
	double worst = 0;
	long measured = 0;

	for (unsigned cp = 0x20; cp <= 0x10FFFF; cp++) {
		if (cp >= 0xD800 && cp <= 0xDFFF) {
			continue;
		}
		size_t len = utf8_encode(cp, name);
		size_t extra = 0;
		if (names_normalize(names, name, len, nfc, sizeof nfc, &nfc_len, NULL) != CHAT_OK) {
			name[0] = 'a';
			len = 1 + utf8_encode(cp, name + 1);
			name[len++] = 'a';
			extra = 2;
			if (names_normalize(names, name, len, nfc, sizeof nfc, &nfc_len, NULL) !=
				CHAT_OK) {
				continue; /* never part of an accepted name */
			}
		}
		enum chat_err err = names_key(names, nfc, nfc_len, key, sizeof key, &key_len);
		if (err != CHAT_OK) {
			CHECK_INT(CHAT_OK, err);
			fprintf(stderr, "    for U+%04X\n", cp);
			continue;
		}
		measured++;
		double ratio = (double)(key_len - extra) / (double)(nfc_len - extra);
		if (ratio > worst) {
			worst = ratio;
			worst_cp = cp;
		}
	}
	CHECK(worst * CHAT_USERNAME_MAX <= NAMES_KEY_SIZE - 1);
	printf("key size bound: %ld code points measured, worst U+%04X with %.2f key bytes per "
	       "byte; NAMES_KEY_SIZE allows %.2f\n",
		measured, worst_cp, worst, (double)(NAMES_KEY_SIZE - 1) / CHAT_USERNAME_MAX);
}

static int open_names(void)
{
	if (names_new(&names) != CHAT_OK) {
		fprintf(stderr, "names_new failed\n");
		return -1;
	}
	return 0;
}

static void close_names(void)
{
	names_free(names);
	names_free(NULL);
	names = NULL;
}

CHECK_MAIN_FIXTURE("test_names", open_names, close_names)
