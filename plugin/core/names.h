/*
 * Username rules beyond bytes: which names are refused, how a name is spelled once stored, and
 * when two names are one name. All of it comes from ICU's Unicode data (no tables of our own),
 * and runs on a name that already passed chat_username_valid (validate.h): strict UTF-8,
 * 1-64 bytes, no control characters.
 *
 * A name is refused (CHAT_ERR_INVALID_USERNAME) when it contains a code point with the UAX #44
 * binary property Bidi_Control (U+061C, U+200E/F, U+202A..U+202E, U+2066..U+2069) or
 * Default_Ignorable_Code_Point (zero-width space, joiners, U+2060 word joiner, U+FEFF byte
 * order mark, U+00AD soft hyphen, variation selectors, the Hangul fillers...), when its first or
 * last code point is White_Space (a space, U+00A0 no-break space, U+3000...), when none of its
 * code points is graphic (ICU's u_isgraph: not a control, format, unassigned, surrogate or
 * separator character), or when its NFC form is longer than 64 bytes. Inner spaces are fine
 * ("Ada Lovelace"). The rules are checked on the NFC form, which is what the directory shows.
 *
 * Two names are the same name for uniqueness when their keys are equal. The key is the UTS #39
 * §4 confusable skeleton of the full case folding of the NFC form, in UTF-8. So "Alice",
 * "alice" and "\u0430lice" (Cyrillic a) share the key "alice", and "caf\u00e9" and
 * "cafe\u0301" share one NFC spelling and one key. A key is only for comparing: it is not
 * meant to be read, may mix scripts and cases, and may be longer than the name. The skeleton
 * comes after folding, so a capital it produces stays: with ICU 72 "b0b" gives "bOb" (the digit
 * zero looks like a capital O), which is not the key "bob" of "bob" and "BOB".
 *
 * A `struct names` holds the ICU objects, opened once by names_new because opening a spoof
 * checker loads its data. It is never changed after names_new, and every function takes it
 * const: ICU documents its const operations on a USpoofChecker and a UNormalizer2 as
 * thread-safe, so one instance may serve several threads, though the broker has only one.
 * Only names_new allocates memory that outlives a call.
 */
#ifndef CHAT_NAMES_H
#define CHAT_NAMES_H

#include <stddef.h>

#include "chat_error.h"
#include "validate.h"

/* Bytes for an NFC spelling and its NUL: the NFC form is refused past CHAT_USERNAME_MAX. */
#define NAMES_NFC_SIZE (CHAT_USERNAME_MAX + 1)

/*
 * Bytes for a key and its NUL. Folding and the skeleton work code point by code point, so a
 * key's length is the sum over the name's code points. With ICU 72 (Unicode 15) the worst is
 * U+FDFA ARABIC LIGATURE SALLALLAHOU ALAYHE WASALLAM: 3 bytes of name, 30 bytes of key, so a
 * 64-byte name has at most 640 bytes of key. The rest is room for later Unicode data;
 * tests/unit/test_names.c checks every code point against this size.
 */
#define NAMES_KEY_SIZE 1024

struct names;

/*
 * Opens the ICU objects. On CHAT_OK, *out is a new instance the caller frees with names_free;
 * on CHAT_ERR_INTERNAL (out of memory, ICU data missing) *out is NULL and nothing is left open.
 */
enum chat_err names_new(struct names **out);

/* Closes what names_new opened and frees `names`. NULL is accepted. */
void names_free(struct names *names);

/*
 * Checks the rules above on `name` (`len` bytes, not necessarily NUL-terminated, borrowed) and
 * writes its NFC form, NUL-terminated, to the caller's `nfc` buffer of `nfc_size` bytes
 * (NAMES_NFC_SIZE is always enough) and its length without the NUL to *nfc_len.
 * Returns:
 *   CHAT_OK                    the name is acceptable; *reason is NULL.
 *   CHAT_ERR_INVALID_USERNAME  the name breaks a rule; *reason is a short English phrase that
 *                              can follow "invalid username: ", e.g. "contains an invisible
 *                              character".
 *   CHAT_ERR_INTERNAL          an ICU call failed, or `nfc_size` is too small for the NFC form;
 *                              *reason is a name for the log (ICU's error name).
 * `nfc` is written only on CHAT_OK. *reason is a static string, never freed; `reason` may be
 * NULL when the caller does not want it.
 */
enum chat_err names_normalize(const struct names *names, const char *name, size_t len, char *nfc,
	size_t nfc_size, size_t *nfc_len, const char **reason);

/*
 * Writes the uniqueness key of `name` (`len` bytes, borrowed; normally the NFC form that
 * names_normalize produced) to the caller's `key` buffer of `key_size` bytes, NUL-terminated
 * UTF-8, and its length without the NUL to *key_len. Canonically equivalent spellings give the
 * same key because the name is brought to NFC first; nothing is refused here, so call
 * names_normalize first. The key contains no NUL byte and may be used as a hash key of
 * *key_len bytes.
 * Returns:
 *   CHAT_OK                    the key is written.
 *   CHAT_ERR_INVALID_USERNAME  `name` is not UTF-8 or its NFC form is longer than 64 bytes
 *                              (never for the output of names_normalize).
 *   CHAT_ERR_INTERNAL          an ICU call failed, or the key does not fit in `key_size`
 *                              (never with NAMES_KEY_SIZE and a name names_normalize accepted).
 * `key` is written only on CHAT_OK.
 */
enum chat_err names_key(const struct names *names, const char *name, size_t len, char *key,
	size_t key_size, size_t *key_len);

#endif
