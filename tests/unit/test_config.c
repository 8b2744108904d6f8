/* Unit tests of option parsing: every value is valid or refused with a message; no silent default. */
#include "check.h"
#include "chat_config.h"

TEST_CASE(defaults)
{
	struct chat_config c;
	chat_config_defaults(&c);
	CHECK_INT(8192, c.max_message_bytes);
	CHECK_INT(86400, c.offline_expiry_s);
	CHECK_INT(60, c.reconnect_grace_s);
	CHECK_INT(CHAT_OUTSIDE_UNSET, c.outside_chat);
	char buf[512];
	chat_config_describe(&c, buf, sizeof buf);
	CHECK_STR(
		"max_message_bytes=8192 offline_expiry=86400 reconnect_grace=60 "
		"max_groups_per_user=500 max_group_members=1000 max_groups_added_by_others=500 "
		"max_sessions_per_user=10 max_users=50000 max_groups=100000 "
		"request_rate=50 request_burst=1000 delivery_budget=262144 delivery_burst=16777216 "
		"offline_queue=1000 listen_backlog=0 history_days=365 history_per_room=10000 "
		"bind_mqtt_username=false outside_chat=(unset) history_visibility=joined "
		"database=(none) state_file=(none)",
		buf);
}

TEST_CASE(outside_chat_has_no_default)
{
	struct chat_config c;
	chat_config_defaults(&c);
	char err[1024] = "";
	CHECK_INT(CHAT_ERR_BAD_OPTION, chat_config_check(&c, err, sizeof err));
	CHECK(strstr(err, "plugin_opt_outside_chat") != NULL);
	CHECK(strstr(err, "defer: ") != NULL && strstr(err, "allow: ") != NULL);
	CHECK_INT(CHAT_OK, chat_config_set(&c, "outside_chat", "allow", err, sizeof err));
	CHECK_INT(CHAT_OK, chat_config_check(&c, err, sizeof err));
	CHECK_INT(CHAT_OK, chat_config_set(&c, "outside_chat", "defer", err, sizeof err));
	CHECK_INT(CHAT_OK, chat_config_check(&c, err, sizeof err));
}

TEST_CASE(valid_values)
{
	struct chat_config c;
	char err[256];
	chat_config_defaults(&c);
	CHECK_INT(CHAT_OK, chat_config_set(&c, "max_message_bytes", "100  ", err, sizeof err));
	CHECK_INT(100, c.max_message_bytes);
	CHECK_INT(CHAT_OK, chat_config_set(&c, "offline_expiry", "0", err, sizeof err));
	CHECK_INT(0, c.offline_expiry_s);
	CHECK_INT(CHAT_OK, chat_config_set(&c, "reconnect_grace", " 5", err, sizeof err));
	CHECK_INT(5, c.reconnect_grace_s);
	CHECK_INT(CHAT_OK, chat_config_set(&c, "outside_chat", "defer ", err, sizeof err));
	CHECK_INT(CHAT_OUTSIDE_DEFER, c.outside_chat);
	CHECK_INT(CHAT_OK, chat_config_set(&c, "bind_mqtt_username", "true", err, sizeof err));
	CHECK(c.bind_mqtt_username);
	CHECK_INT(CHAT_OK, chat_config_set(&c, "request_rate", "0", err, sizeof err));
	CHECK_INT(0, c.request_rate);
	CHECK_INT(CHAT_OK,
		chat_config_set(&c, "state_file", "/var/lib/chat.json ", err, sizeof err));
	CHECK_STR("/var/lib/chat.json", c.state_file);
	CHECK_INT(CHAT_OK, chat_config_set(&c, "database", "/var/lib/chat.db", err, sizeof err));
	CHECK_STR("/var/lib/chat.db", c.database);
	CHECK_INT(CHAT_OK, chat_config_set(&c, "history_visibility", "shared", err, sizeof err));
	CHECK(c.history_visibility_shared);
	CHECK_INT(CHAT_OK, chat_config_set(&c, "history_days", "0", err, sizeof err));
	CHECK_INT(0, c.history_days);
	CHECK_INT(CHAT_OK, chat_config_set(&c, "history_per_room", "50", err, sizeof err));
	CHECK_INT(50, c.history_per_room);
}

TEST_CASE(state_file_needs_a_database)
{
	struct chat_config c;
	char err[512] = "";
	chat_config_defaults(&c);
	c.outside_chat = CHAT_OUTSIDE_ALLOW;
	CHECK_INT(CHAT_OK, chat_config_set(&c, "state_file", "/var/lib/s.json", err, sizeof err));
	CHECK_INT(CHAT_ERR_BAD_OPTION, chat_config_check(&c, err, sizeof err));
	CHECK(strstr(err, "plugin_opt_database") != NULL);
	CHECK_INT(CHAT_OK, chat_config_set(&c, "database", "/var/lib/chat.db", err, sizeof err));
	CHECK_INT(CHAT_OK, chat_config_check(&c, err, sizeof err));
}

TEST_CASE(refused_values)
{
	struct chat_config c;
	char err[256];
	chat_config_defaults(&c);
	const char *bad[][2] = {
		{ "max_message_bytes", "abc" },
		{ "max_message_bytes", "0" },
		{ "max_message_bytes", "-5" },
		{ "max_message_bytes", "12k" },
		{ "max_message_bytes", "99999999999999999999" },
		{ "offline_expiry", "" },
		{ "reconnect_grace", "0" },
		{ "outside_chat", "deny" },
		{ "outside_chat", "Allow" },
		{ "max_mesage_bytes", "100" },
		{ "bind_mqtt_username", "yes" },
		{ "state_file", "relative/path" },
		{ "database", "chat.db" },
		{ "history_visibility", "all" },
		{ "history_days", "-1" },
		{ "history_per_room", "x" },
		{ "request_burst", "0" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		CHECK_INT(CHAT_ERR_BAD_OPTION,
			chat_config_set(&c, bad[i][0], bad[i][1], err, sizeof err));
		CHECK(strstr(err, bad[i][0]) != NULL);
	}
	CHECK_INT(8192, c.max_message_bytes);
	CHECK_INT(CHAT_ERR_BAD_OPTION, chat_config_set(&c, "outside_chat", NULL, err, sizeof err));
}

CHECK_MAIN("test_config")
