#include "check.h"
#include "validate.h"

TEST_CASE(utf8)
{
	CHECK(validate_utf8("hello", 5));
	CHECK(validate_utf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
	CHECK(!validate_utf8("\xc3", 1));             /* truncated */
	CHECK(!validate_utf8("\xc0\xaf", 2));         /* overlong '/' */
	CHECK(!validate_utf8("\xe0\x80\xaf", 3));     /* overlong */
	CHECK(!validate_utf8("\xed\xa0\x80", 3));     /* surrogate U+D800 */
	CHECK(!validate_utf8("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
	CHECK(!validate_utf8("\xff", 1));
	CHECK(!validate_utf8("a\0b", 3));
	CHECK(!validate_utf8("\x80", 1)); /* lone continuation byte */
}

TEST_CASE(clientid)
{
	CHECK(validate_clientid("alice-phone"));
	CHECK(validate_clientid("caf\xc3\xa9"));
	CHECK(!validate_clientid(NULL));
	CHECK(!validate_clientid(""));
	CHECK(!validate_clientid("a/b"));
	CHECK(!validate_clientid("a+b"));
	CHECK(!validate_clientid("a#"));
	CHECK(!validate_clientid("$sys"));
	char longest[130];
	memset(longest, 'x', 128);
	longest[128] = '\0';
	CHECK(validate_clientid(longest));
	longest[128] = 'x';
	longest[129] = '\0';
	CHECK(!validate_clientid(longest));
}

TEST_CASE(username)
{
	CHECK(validate_username("alice", 5));
	CHECK(validate_username("J\xc3\xbcrgen M\xc3\xbcller", 15));
	CHECK(!validate_username("", 0));
	CHECK(!validate_username("a\tb", 3));
	CHECK(!validate_username("a\x7f", 2));
	CHECK(!validate_username("a\xc2\x85", 3)); /* NEL, a C1 control */
	CHECK(!validate_username("\xff", 1));
	char name[66];
	memset(name, 'n', 65);
	CHECK(validate_username(name, 64));
	CHECK(!validate_username(name, 65));
}

CHECK_MAIN("test_validate")
