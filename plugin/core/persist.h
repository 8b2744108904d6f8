/*
 * The chat's saved form: a snapshot document of the users of persistent sessions, the groups
 * with their memberships, and the id counters, and the one strict loader that restores it.
 *
 * Two things are restored through it, once, at start-up: the records the store (store.h) read
 * from the database, which it hands over as a snapshot of version 3, and a state file of an
 * earlier release (plugin_opt_state_file, versions 1 and 2), imported into the database once and
 * renamed PATH.imported. Loading is strict: a document that is not exactly what this module
 * renders is refused as a whole and the core is left empty.
 *
 * Users of clean sessions may be in a snapshot too, only so that a restart can clear their
 * retained directory topics; they are not restored (their connections did not survive the
 * restart). Restored users are offline until their client logs in again.
 */
#ifndef CHAT_PERSIST_H
#define CHAT_PERSIST_H

#include <stdbool.h>
#include <stddef.h>

#include "state.h"

/*
 * Restores state from the text of a snapshot (borrowed) into an empty core. After a clean
 * shutdown the counters continue exactly; otherwise from what was reserved (a gap, never a
 * repeat). On any error the core is left empty and CHAT_ERR_BAD_STATE_FILE is returned with a
 * reason in `err`.
 */
enum chat_err persist_parse(struct chat *chat, const char *text, size_t len, int64_t now_ms,
	char *err, size_t err_len);

/*
 * The snapshot of the core as it is now (version 3); `clean` marks a graceful shutdown. Used
 * by the fuzz target's round trip. Returns a text the caller frees with persist_render_free,
 * with its length in *len, or NULL on no memory.
 */
char *persist_render(const struct chat *chat, bool clean, size_t *len);

/* Frees a text from persist_render. Accepts NULL. */
void persist_render_free(char *text);

/*
 * Imports the state file named by plugin_opt_state_file into an empty core (the store then
 * writes it to the database) and renames it PATH.imported; a file that cannot be imported is
 * renamed PATH.corrupt and the chat starts empty. Logs what it did. True when state was
 * imported.
 */
bool persist_import(struct chat *chat, int64_t now_ms);

#endif
