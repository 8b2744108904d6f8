/* Unit tests of the error enum's names (chat_error.h). */
#include "check.h"
#include "chat_error.h"

TEST_CASE(every_code_named_distinctly)
{
	const char *names[CHAT_ERR_BAD_STATE_FILE + 1];
	for (int code = CHAT_OK; code <= CHAT_ERR_BAD_STATE_FILE; code++) {
		const char *name = chat_err_str((enum chat_err)code);
		names[code] = name;
		if (name == NULL || name[0] == '\0') {
			fprintf(stderr, "code %d:\n", code);
		}
		CHECK(name != NULL && name[0] != '\0');
		for (int other = CHAT_OK; other < code; other++) {
			if (name != NULL && names[other] != NULL &&
				strcmp(name, names[other]) == 0) {
				fprintf(stderr, "codes %d and %d are both named \"%s\"\n", other,
					code, name);
				CHECK(strcmp(name, names[other]) != 0);
			}
		}
	}
}

TEST_CASE(wire_names)
{
	/* The names clients see (docs/protocol.md); the web client keeps a text for each. */
	CHECK_STR("success", chat_err_str(CHAT_OK));
	CHECK_STR("invalid_request", chat_err_str(CHAT_ERR_INVALID_REQUEST));
	CHECK_STR("username_taken", chat_err_str(CHAT_ERR_USERNAME_TAKEN));
	CHECK_STR("not_logged_in", chat_err_str(CHAT_ERR_NOT_LOGGED_IN));
	CHECK_STR("limit_exceeded", chat_err_str(CHAT_ERR_LIMIT_EXCEEDED));
	CHECK_STR("internal", chat_err_str(CHAT_ERR_INTERNAL));
	CHECK_STR("bad_option", chat_err_str(CHAT_ERR_BAD_OPTION));
	CHECK_STR("bad_state_file", chat_err_str(CHAT_ERR_BAD_STATE_FILE));
}

CHECK_MAIN("test_error")
