/*
 * Records made directly through the type API (state.h) for the unit tests of the modules above
 * it (codec, outbox, directory, state): a user is given its name as its uniqueness key, which
 * holds for the plain lowercase ASCII names the tests use. Out of memory aborts the test.
 */
#ifndef CHAT_TEST_FAKE_STATE_H
#define CHAT_TEST_FAKE_STATE_H

#include <stdlib.h>
#include <string.h>

#include "state.h"

/* A user with id `id` named `username`, online, with a new session of `clientid`. */
static inline struct chat_user *fake_user(struct chat *chat, const char *clientid, const char *id,
	const char *username)
{
	struct chat_session *session = state_session_get(chat, clientid);
	struct chat_user *user = session == NULL
		? NULL
		: state_user_add(chat, session, id, username, strlen(username), username,
			  strlen(username));
	if (user == NULL) {
		abort();
	}
	return user;
}

#endif
