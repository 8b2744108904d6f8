#include "check.h"
#include "validate.h"

TEST_CASE(utf8)
{
	CHECK(chat_utf8_valid("hello", 5));
	CHECK(chat_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
	CHECK(!chat_utf8_valid("\xc3", 1));              /* truncated */
	CHECK(!chat_utf8_valid("\xc0\xaf", 2));          /* overlong '/' */
	CHECK(!chat_utf8_valid("\xe0\x80\xaf", 3));      /* overlong */
	CHECK(!chat_utf8_valid("\xed\xa0\x80", 3));      /* surrogate U+D800 */
	CHECK(!chat_utf8_valid("\xf4\x90\x80\x80", 4));  /* above U+10FFFF */
	CHECK(!chat_utf8_valid("\xff", 1));
	CHECK(!chat_utf8_valid("a\0b", 3));
	CHECK(!chat_utf8_valid("\x80", 1));              /* lone continuation byte */
}

TEST_CASE(clientid)
{
	CHECK(chat_clientid_valid("alice-phone"));
	CHECK(chat_clientid_valid("caf\xc3\xa9"));
	CHECK(!chat_clientid_valid(NULL));
	CHECK(!chat_clientid_valid(""));
	CHECK(!chat_clientid_valid("a/b"));
	CHECK(!chat_clientid_valid("a+b"));
	CHECK(!chat_clientid_valid("a#"));
	CHECK(!chat_clientid_valid("$sys"));
	char longest[130];
	memset(longest, 'x', 128);
	longest[128] = '\0';
	CHECK(chat_clientid_valid(longest));
	longest[128] = 'x';
	longest[129] = '\0';
	CHECK(!chat_clientid_valid(longest));
}

TEST_CASE(username)
{
	CHECK(chat_username_valid("alice", 5));
	CHECK(chat_username_valid("J\xc3\xbcrgen M\xc3\xbcller", 15));
	CHECK(!chat_username_valid("", 0));
	CHECK(!chat_username_valid("a\tb", 3));
	CHECK(!chat_username_valid("a\x7f", 2));
	CHECK(!chat_username_valid("a\xc2\x85", 3)); /* NEL, a C1 control */
	CHECK(!chat_username_valid("\xff", 1));
	char name[66];
	memset(name, 'n', 65);
	CHECK(chat_username_valid(name, 64));
	CHECK(!chat_username_valid(name, 65));
}

TEST_CASE(ids)
{
	CHECK(chat_is_userid("10"));
	CHECK(chat_is_userid("1230"));
	CHECK(!chat_is_userid("11"));
	CHECK(!chat_is_userid("0"));
	CHECK(!chat_is_userid("010"));
	CHECK(!chat_is_userid(""));
	CHECK(!chat_is_userid("1a0"));
	CHECK(!chat_is_userid("+"));
	CHECK(chat_is_groupid("21"));
	CHECK(!chat_is_groupid("20"));
	CHECK(!chat_is_groupid("a1"));
	CHECK(!chat_is_groupid("123456789012345678901")); /* 21 digits */
}

CHECK_MAIN("test_validate")
