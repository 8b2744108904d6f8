#include "validate.h"

#include <stdint.h>
#include <string.h>

bool validate_utf8(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = p + len;

	while (p < end) {
		unsigned char c = *p;
		size_t extra;
		uint32_t cp;

		if (c == 0) {
			return false;
		}
		if (c < 0x80) {
			p++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			extra = 1;
			cp = c & 0x1Fu;
		} else if ((c & 0xF0) == 0xE0) {
			extra = 2;
			cp = c & 0x0Fu;
		} else if ((c & 0xF8) == 0xF0) {
			extra = 3;
			cp = c & 0x07u;
		} else {
			return false;
		}
		if ((size_t)(end - p) <= extra) {
			return false;
		}
		for (size_t i = 1; i <= extra; i++) {
			if ((p[i] & 0xC0) != 0x80) {
				return false;
			}
			cp = (cp << 6) | (p[i] & 0x3Fu);
		}
		/* Reject overlong encodings, UTF-16 surrogates and code points past Unicode. */
		if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) ||
			(extra == 3 && cp < 0x10000) || (cp >= 0xD800 && cp <= 0xDFFF) ||
			cp > 0x10FFFF) {
			return false;
		}
		p += extra + 1;
	}
	return true;
}

bool validate_clientid(const char *clientid)
{
	if (clientid == NULL) {
		return false;
	}
	size_t len = strlen(clientid);
	if (len == 0 || len > CHAT_CLIENTID_MAX || clientid[0] == '$') {
		return false;
	}
	if (strpbrk(clientid, "/+#") != NULL) {
		return false;
	}
	return validate_utf8(clientid, len);
}

bool validate_username(const char *username, size_t len)
{
	if (len == 0 || len > CHAT_USERNAME_MAX || !validate_utf8(username, len)) {
		return false;
	}
	const unsigned char *p = (const unsigned char *)username;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < 0x20 || p[i] == 0x7F) {
			return false;
		}
		/* C1 controls U+0080..U+009F are encoded as C2 80..C2 9F. */
		if (p[i] == 0xC2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9F) {
			return false;
		}
	}
	return true;
}
