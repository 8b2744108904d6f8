/*
 * The state file (plugin_opt_state_file): users of persistent sessions, groups, memberships and
 * the id counters, kept across broker restarts.
 *
 * The file is one JSON document, written on the broker's tick at most once a second when the
 * state changed, atomically: write PATH.new, fsync, rename over PATH. It is never written on the
 * message path. Loading is strict: a file that is not exactly what persist_save writes is moved
 * aside (PATH.corrupt-<time>), logged, and the chat starts empty; a missing file starts empty.
 *
 * Users of clean sessions are saved too, only so that a restart can clear their retained
 * directory topics; they are not restored (their connections did not survive the restart).
 * Restored users are offline until their client logs in again.
 */
#ifndef CHAT_PERSIST_H
#define CHAT_PERSIST_H

#include <stdbool.h>
#include <stddef.h>

#include "state.h"

/*
 * Ids are reserved in blocks, recorded in the file before any of them is issued, so that a
 * crash can never make one be issued twice; after a crash the counters continue from the end
 * of the reserved block (a gap, never a repeat). User and group blocks are small because a
 * restart clears the directory topic of every id below the counter that does not exist; when a
 * block runs out between two saves (over 500 logins in a second) the file is written at once.
 */
#define PERSIST_ID_BLOCK 1000u
#define PERSIST_MESSAGE_BLOCK 1000000u

/*
 * Restores state from the text of a state file (borrowed) into an empty core. On any error the
 * core is left empty and CHAT_ERR_BAD_STATE_FILE is returned with a reason in `err`.
 */
enum chat_err persist_parse(struct chat *chat, const char *text, size_t len, int64_t now_ms,
	char *err, size_t err_len);

/*
 * The text of the state file for the core as it is now; `clean` marks the last save of a
 * graceful shutdown. Returns a text the caller frees with persist_render_free, with its length
 * in *len, or NULL on no memory.
 */
char *persist_render(const struct chat *chat, bool clean, size_t *len);

/* Frees a text from persist_render. Accepts NULL. */
void persist_render_free(char *text);

/*
 * Writes the state file now; `clean` marks the last save of a graceful shutdown. Returns CHAT_OK
 * or CHAT_ERR_INTERNAL (logged).
 */
enum chat_err persist_save(struct chat *chat, bool clean);

/*
 * Writes the state file if it is behind (the records changed since the last save, or ids were
 * reserved) and the last write was over a second ago; moves the id reserves ahead first.
 */
void persist_tick(struct chat *chat, int64_t now_ms);

/*
 * Restores the state file named by the configuration into a new core. A missing, unreadable or
 * corrupt file is logged and the chat starts empty (an unusable file is moved aside, never
 * overwritten). Returns true when state was restored from a file.
 */
bool persist_load(struct chat *chat, int64_t now_ms);

/*
 * True when a state file is kept and `counter` has issued every id it reserved: the caller must
 * call persist_reserve_now before taking another id from it.
 */
bool persist_reserve_exhausted(const struct chat *chat, const struct id_counter *counter);

/*
 * Moves every counter's reserve a block ahead and writes the state file now, synchronously.
 * Only for when a reserve ran out between two ticks (see PERSIST_ID_BLOCK).
 */
void persist_reserve_now(struct chat *chat);

#endif
