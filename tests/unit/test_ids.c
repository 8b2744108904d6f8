/* Unit tests of ids (ids.h): their forms on the wire, the counters that issue them. */
#include "check.h"
#include "ids.h"

TEST_CASE(well_formed)
{
	CHECK(ids_is_user("10"));
	CHECK(ids_is_user("1230"));
	CHECK(!ids_is_user("11"));
	CHECK(!ids_is_user("0"));
	CHECK(!ids_is_user("010"));
	CHECK(!ids_is_user(""));
	CHECK(!ids_is_user("1a0"));
	CHECK(!ids_is_user("+"));
	CHECK(!ids_is_user(NULL));
	CHECK(ids_is_group("21"));
	CHECK(ids_is_group("15")); /* the protocol admits any non-zero last digit */
	CHECK(!ids_is_group("20"));
	CHECK(!ids_is_group("a1"));
	CHECK(!ids_is_group("01"));
	CHECK(!ids_is_group(NULL));
	CHECK(ids_is_group("12345678901234567891"));   /* 20 digits, CHAT_ID_MAX */
	CHECK(!ids_is_group("123456789012345678901")); /* 21 digits */
	CHECK(ids_is_user("12345678901234567890"));
	CHECK(!ids_is_user("123456789012345678900"));
}

TEST_CASE(formats)
{
	char id[CHAT_ID_BUF];
	ids_format_user(12, id);
	CHECK_STR("120", id);
	ids_format_group(12, id);
	CHECK_STR("121", id);
	ids_format_message(12, id);
	CHECK_STR("12", id);
	ids_format_user(1, id);
	CHECK_STR("10", id);
	ids_format_group(1, id);
	CHECK_STR("11", id);
	ids_format_message(1, id);
	CHECK_STR("1", id);

	/* What is formatted is well formed, and of its kind only. */
	ids_format_user(987654321, id);
	CHECK(ids_is_user(id));
	CHECK(!ids_is_group(id));
	ids_format_group(987654321, id);
	CHECK(ids_is_group(id));
	CHECK(!ids_is_user(id));
}

TEST_CASE(number_of_id)
{
	CHECK_INT(1, ids_number("10"));
	CHECK_INT(1, ids_number("11"));
	CHECK_INT(12, ids_number("120"));
	CHECK_INT(12, ids_number("121"));
	CHECK_INT(12, ids_number("125"));
	char id[CHAT_ID_BUF];
	ids_format_user(4242, id);
	CHECK_INT(4242, ids_number(id));
	ids_format_group(4242, id);
	CHECK_INT(4242, ids_number(id));
}

TEST_CASE(take_monotonic)
{
	struct chat_ids ids;
	ids_init(&ids);
	CHECK_INT(1, ids.user.next);
	CHECK_INT(1, ids.group.next);
	CHECK_INT(1, ids.message.next);

	uint64_t last = 0;
	for (int i = 0; i < 1000; i++) {
		uint64_t n = ids_take(&ids.user);
		CHECK(n > last);
		last = n;
	}
	CHECK_INT(1000, last);
	CHECK_INT(1001, ids.user.next);
	/* The counters are independent. */
	CHECK_INT(1, ids_take(&ids.group));
	CHECK_INT(1, ids_take(&ids.message));
	CHECK_INT(2, ids_take(&ids.message));
	CHECK_INT(2, ids.group.next);
}

TEST_CASE(reserve_exhausted)
{
	struct id_counter counter = { .next = 1, .reserved = 3 };
	CHECK(!ids_reserve_exhausted(&counter));
	CHECK_INT(1, ids_take(&counter));
	CHECK(!ids_reserve_exhausted(&counter));
	CHECK_INT(2, ids_take(&counter));
	/* 3 is the first number not reserved: it may not be issued. */
	CHECK(ids_reserve_exhausted(&counter));
	counter.reserved = 4;
	CHECK(!ids_reserve_exhausted(&counter));

	/* A fresh counter has nothing reserved. */
	struct chat_ids ids;
	ids_init(&ids);
	CHECK(ids_reserve_exhausted(&ids.user));
}

CHECK_MAIN("test_ids")
