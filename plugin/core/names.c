#include "names.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/uspoof.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

/*
 * ICU's UTF-16 iteration macros (utf16.h) mix UChar32 and uint32_t inside; their conversions
 * are ICU's, not ours, so -Wsign-conversion is silenced around each use only.
 */
#define ICU_MACRO_BEGIN                                                                            \
	_Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wsign-conversion\"")
#define ICU_MACRO_END _Pragma("GCC diagnostic pop")

struct names {
	const UNormalizer2 *nfc; /* ICU's shared instance: owned by ICU, never closed */
	USpoofChecker *spoof;
};

/*
 * UTF-16 buffer sizes, in code units. UTF-8 never takes fewer bytes than UTF-16 takes units for
 * the same text, so a name of at most CHAT_USERNAME_MAX bytes (before or after NFC) fits in
 * CHAT_USERNAME_MAX units, and a key that fits in NAMES_KEY_SIZE bytes has fewer units than
 * that. Full case folding turns one code point into at most three, and the code points that
 * expand are BMP characters folding to BMP characters, so three units per unit is enough; the
 * unit test runs every code point through names_key, which would fail on an overflow.
 */
#define NAME16_MAX CHAT_USERNAME_MAX
#define FOLD16_MAX (3 * NAME16_MAX)
#define SKELETON16_MAX NAMES_KEY_SIZE

static const char *const reason_utf8 = "is not valid UTF-8";
static const char *const reason_long = "is longer than 64 bytes in Unicode NFC form";

enum chat_err names_new(struct names **out)
{
	UErrorCode status = U_ZERO_ERROR;
	struct names *names = calloc(1, sizeof *names);

	*out = NULL;
	if (names == NULL) {
		return CHAT_ERR_INTERNAL;
	}
	names->nfc = unorm2_getNFCInstance(&status);
	if (U_FAILURE(status)) {
		goto error;
	}
	names->spoof = uspoof_open(&status);
	if (U_FAILURE(status)) {
		goto error;
	}
	*out = names;
	return CHAT_OK;

error:
	names_free(names);
	return CHAT_ERR_INTERNAL;
}

void names_free(struct names *names)
{
	if (names == NULL) {
		return;
	}
	if (names->spoof != NULL) {
		uspoof_close(names->spoof);
	}
	free(names);
}

static void set_reason(const char **reason, const char *text)
{
	if (reason != NULL) {
		*reason = text;
	}
}

/*
 * Brings `name` to NFC, in UTF-16 in `out16` (NAME16_MAX units) and in UTF-8, NUL-terminated, in
 * `out8`, with their lengths. Returns CHAT_ERR_INVALID_USERNAME with a reason for bytes that are
 * not UTF-8 or an NFC form longer than CHAT_USERNAME_MAX bytes, CHAT_ERR_INTERNAL with ICU's
 * error name when ICU fails.
 */
static enum chat_err to_nfc(const struct names *names, const char *name, size_t len,
	UChar out16[NAME16_MAX], int32_t *len16, char out8[NAMES_NFC_SIZE], int32_t *len8,
	const char **reason)
{
	UErrorCode status = U_ZERO_ERROR;
	UChar utf16[NAME16_MAX];
	int32_t utf16_len;

	if (len > CHAT_USERNAME_MAX) {
		set_reason(reason, reason_long);
		return CHAT_ERR_INVALID_USERNAME;
	}
	/* ICU takes a NUL as a character; chat_utf8_valid refuses it, and so do keys. */
	if (memchr(name, '\0', len) != NULL) {
		set_reason(reason, reason_utf8);
		return CHAT_ERR_INVALID_USERNAME;
	}
	u_strFromUTF8(utf16, NAME16_MAX, &utf16_len, name, (int32_t)len, &status);
	if (status == U_INVALID_CHAR_FOUND) {
		set_reason(reason, reason_utf8);
		return CHAT_ERR_INVALID_USERNAME;
	}
	if (U_FAILURE(status)) {
		set_reason(reason, u_errorName(status));
		return CHAT_ERR_INTERNAL;
	}
	status = U_ZERO_ERROR; /* ICU's warnings stay in `status`: start each call afresh */
	*len16 = unorm2_normalize(names->nfc, utf16, utf16_len, out16, NAME16_MAX, &status);
	/* More than NAME16_MAX units is more than CHAT_USERNAME_MAX bytes of UTF-8. */
	if (status == U_BUFFER_OVERFLOW_ERROR) {
		set_reason(reason, reason_long);
		return CHAT_ERR_INVALID_USERNAME;
	}
	if (U_FAILURE(status)) {
		set_reason(reason, u_errorName(status));
		return CHAT_ERR_INTERNAL;
	}
	status = U_ZERO_ERROR;
	u_strToUTF8(out8, NAMES_NFC_SIZE, len8, out16, *len16, &status);
	/* U_STRING_NOT_TERMINATED_WARNING: exactly NAMES_NFC_SIZE bytes, one past the limit. */
	if (status == U_BUFFER_OVERFLOW_ERROR || status == U_STRING_NOT_TERMINATED_WARNING) {
		set_reason(reason, reason_long);
		return CHAT_ERR_INVALID_USERNAME;
	}
	if (U_FAILURE(status)) {
		set_reason(reason, u_errorName(status));
		return CHAT_ERR_INTERNAL;
	}
	return CHAT_OK;
}

/* The first rule `s` (NFC, `len` units) breaks as a reason phrase, or NULL if it breaks none. */
static const char *broken_rule(const UChar *s, int32_t len)
{
	bool graphic = false;
	UChar32 first, last;
	int32_t i = 0;

	while (i < len) {
		UChar32 c;
		ICU_MACRO_BEGIN
		U16_NEXT(s, i, len, c);
		ICU_MACRO_END
		/* Every Bidi_Control is also Default_Ignorable: the more precise reason goes first.
		 */
		if (u_hasBinaryProperty(c, UCHAR_BIDI_CONTROL)) {
			return "contains a bidirectional control character";
		}
		if (u_hasBinaryProperty(c, UCHAR_DEFAULT_IGNORABLE_CODE_POINT)) {
			return "contains an invisible character";
		}
		if (u_charType(c) == U_CONTROL_CHAR) {
			return "contains a control character";
		}
		if (u_isgraph(c)) {
			graphic = true;
		}
	}
	ICU_MACRO_BEGIN
	U16_GET(s, 0, 0, len, first);
	i = len;
	U16_PREV(s, 0, i, last);
	ICU_MACRO_END
	if (u_hasBinaryProperty(first, UCHAR_WHITE_SPACE) ||
		u_hasBinaryProperty(last, UCHAR_WHITE_SPACE)) {
		return "begins or ends with a space";
	}
	if (!graphic) {
		return "has no visible character";
	}
	return NULL;
}

enum chat_err names_normalize(const struct names *names, const char *name, size_t len, char *nfc,
	size_t nfc_size, size_t *nfc_len, const char **reason)
{
	UChar nfc16[NAME16_MAX];
	int32_t nfc16_len;
	char utf8[NAMES_NFC_SIZE];
	int32_t utf8_len;

	if (len == 0) {
		set_reason(reason, "is empty");
		return CHAT_ERR_INVALID_USERNAME;
	}
	enum chat_err err = to_nfc(names, name, len, nfc16, &nfc16_len, utf8, &utf8_len, reason);
	if (err != CHAT_OK) {
		return err;
	}
	const char *rule = broken_rule(nfc16, nfc16_len);
	if (rule != NULL) {
		set_reason(reason, rule);
		return CHAT_ERR_INVALID_USERNAME;
	}
	if ((size_t)utf8_len >= nfc_size) {
		set_reason(reason, u_errorName(U_BUFFER_OVERFLOW_ERROR));
		return CHAT_ERR_INTERNAL;
	}
	memcpy(nfc, utf8, (size_t)utf8_len + 1);
	*nfc_len = (size_t)utf8_len;
	set_reason(reason, NULL);
	return CHAT_OK;
}

enum chat_err names_key(const struct names *names, const char *name, size_t len, char *key,
	size_t key_size, size_t *key_len)
{
	UErrorCode status = U_ZERO_ERROR;
	UChar nfc16[NAME16_MAX];
	int32_t nfc16_len;
	char nfc8[NAMES_NFC_SIZE];
	int32_t nfc8_len;
	UChar folded[FOLD16_MAX];
	int32_t folded_len;
	UChar skeleton[SKELETON16_MAX];
	int32_t skeleton_len;
	char utf8[NAMES_KEY_SIZE];
	int32_t utf8_len;

	enum chat_err err = to_nfc(names, name, len, nfc16, &nfc16_len, nfc8, &nfc8_len, NULL);
	if (err != CHAT_OK) {
		return err;
	}
	folded_len =
		u_strFoldCase(folded, FOLD16_MAX, nfc16, nfc16_len, U_FOLD_CASE_DEFAULT, &status);
	if (U_FAILURE(status)) {
		return CHAT_ERR_INTERNAL;
	}
	/* The type argument has been ignored since ICU 58: there is one skeleton table. */
	status = U_ZERO_ERROR;
	skeleton_len = uspoof_getSkeleton(names->spoof, 0, folded, folded_len, skeleton,
		SKELETON16_MAX, &status);
	if (U_FAILURE(status)) {
		return CHAT_ERR_INTERNAL;
	}
	status = U_ZERO_ERROR;
	u_strToUTF8(utf8, (int32_t)sizeof utf8, &utf8_len, skeleton, skeleton_len, &status);
	if (U_FAILURE(status) || status == U_STRING_NOT_TERMINATED_WARNING ||
		(size_t)utf8_len >= key_size) {
		return CHAT_ERR_INTERNAL;
	}
	memcpy(key, utf8, (size_t)utf8_len + 1);
	*key_len = (size_t)utf8_len;
	return CHAT_OK;
}
