/*
 * The retained directory: chat/contacts (the seed's whole contact list), chat/users/<userid>
 * and chat/groups/<groupid>. State changes only mark what changed; chat_on_tick calls
 * directory_flush, which publishes each marked entity once and the snapshot once, so a burst of
 * logins costs one snapshot per broker tick rather than one per login.
 */
#ifndef CHAT_DIRECTORY_H
#define CHAT_DIRECTORY_H

#include "state.h"

/* Marks a user or group id for republishing (its current record, or an empty payload if gone). */
void directory_mark(struct chat *chat, const char *id);

/* Publishes every marked entity and, if anything changed, the snapshot. */
void directory_flush(struct chat *chat);

/* Forgets every mark without publishing (used by chat_free). */
void directory_clear(struct chat *chat);

#endif
