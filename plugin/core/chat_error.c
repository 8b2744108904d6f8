#include "chat_error.h"

const char *chat_err_str(enum chat_err err)
{
	switch (err) {
	case CHAT_OK:
		return "success";
	case CHAT_ERR_INVALID_REQUEST:
		return "invalid_request";
	case CHAT_ERR_INVALID_USERNAME:
		return "invalid_username";
	case CHAT_ERR_USERNAME_TAKEN:
		return "username_taken";
	case CHAT_ERR_ALREADY_LOGGED_IN:
		return "already_logged_in";
	case CHAT_ERR_USERNAME_MISMATCH:
		return "username_mismatch";
	case CHAT_ERR_NOT_LOGGED_IN:
		return "not_logged_in";
	case CHAT_ERR_SENDER_MISMATCH:
		return "sender_mismatch";
	case CHAT_ERR_UNKNOWN_ROOM:
		return "unknown_room";
	case CHAT_ERR_UNKNOWN_USER:
		return "unknown_user";
	case CHAT_ERR_NOT_A_MEMBER:
		return "not_a_member";
	case CHAT_ERR_INVALID_MESSAGE:
		return "invalid_message";
	case CHAT_ERR_MESSAGE_TOO_LARGE:
		return "message_too_large";
	case CHAT_ERR_RATE_LIMITED:
		return "rate_limited";
	case CHAT_ERR_LIMIT_EXCEEDED:
		return "limit_exceeded";
	case CHAT_ERR_HISTORY_UNAVAILABLE:
		return "history_unavailable";
	case CHAT_ERR_INTERNAL:
		break;
	case CHAT_ERR_BAD_OPTION:
		return "bad_option";
	case CHAT_ERR_BAD_STATE_FILE:
		return "bad_state_file";
	}
	return "internal";
}
