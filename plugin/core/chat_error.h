/*
 * The chat's one error enum. Every code but CHAT_OK and CHAT_ERR_INTERNAL is a user mistake:
 * it is answered to the client on its error topic under the wire name chat_err_str() gives, and
 * the broker sees success. CHAT_ERR_INTERNAL (out of memory, a failed publish) is also answered
 * when possible, and logged.
 */
#ifndef CHAT_ERROR_H
#define CHAT_ERROR_H

enum chat_err {
	CHAT_OK = 0,
	CHAT_ERR_INVALID_REQUEST,
	CHAT_ERR_INVALID_USERNAME,
	CHAT_ERR_USERNAME_TAKEN,
	CHAT_ERR_ALREADY_LOGGED_IN,
	CHAT_ERR_USERNAME_MISMATCH,
	CHAT_ERR_NOT_LOGGED_IN,
	CHAT_ERR_SENDER_MISMATCH,
	CHAT_ERR_UNKNOWN_ROOM,
	CHAT_ERR_UNKNOWN_USER,
	CHAT_ERR_NOT_A_MEMBER,
	CHAT_ERR_INVALID_MESSAGE,
	CHAT_ERR_MESSAGE_TOO_LARGE,
	CHAT_ERR_RATE_LIMITED,
	CHAT_ERR_LIMIT_EXCEEDED,
	CHAT_ERR_HISTORY_UNAVAILABLE,
	CHAT_ERR_INTERNAL,
	/* Operator errors, never sent to a client: they stop the plugin from starting. */
	CHAT_ERR_BAD_OPTION, /* a plugin_opt_* value is refused (chat_config_set) */
	CHAT_ERR_BAD_STATE_FILE, /* a state file or the database's records are not what persist.h reads */
};

/*
 * The wire name of `err` ("success" for CHAT_OK); a static string, never NULL. The operator
 * errors have names for logs only.
 */
const char *chat_err_str(enum chat_err err);

#endif
