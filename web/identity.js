/**
 * What this browser remembers about who its user is, in localStorage (shared by all its tabs and
 * kept when they close), apart from the page state (state.js, per tab, in sessionStorage):
 *
 *  - the anonymous-mode token of each name: the plugin returns `token` in the login-response that
 *    creates a user, and asks for it when another session (a second tab, the tab opened again
 *    tomorrow) joins that user: `{"username": "alice", "token": "..."}`. Kept under
 *    `mosquitto-chat.token.<name>`, the name in NFC and lower case (the plugin takes `Alice` and
 *    `alice` for one name, so the same token serves both spellings);
 *  - the last name logged in with, and whether the page may log in with it by itself when a tab
 *    opens (yes, until that name logs out: then the name is only pre-filled).
 *
 * Always true:
 *  - A token is only ever sent with the name it was issued for.
 *  - A token the plugin refused (`username_taken` to a login that carried it) is forgotten.
 *  - Storage that is missing, full or refusing never breaks the page: it only remembers less.
 *  - No password is ever stored (MQTT passwords live in the page's memory only).
 */

const TOKEN_PREFIX = 'mosquitto-chat.token.';
const LAST_KEY = 'mosquitto-chat.last';

/** The storage key of a name's token. */
export function tokenKey(username) {
  return TOKEN_PREFIX + String(username).normalize('NFC').toLowerCase();
}

/** `storage` is localStorage (or anything with getItem/setItem/removeItem), or undefined. */
export function createIdentity(storage) {
  function get(key) {
    try {
      return storage ? storage.getItem(key) : null;
    } catch {
      return null;
    }
  }
  function set(key, value) {
    try {
      if (storage) storage.setItem(key, value);
    } catch {
      // Full or refused: this browser just remembers less.
    }
  }
  function remove(key) {
    try {
      if (storage) storage.removeItem(key);
    } catch {
      // As above.
    }
  }

  function last() {
    try {
      const value = JSON.parse(get(LAST_KEY) || 'null');
      if (value && typeof value.username === 'string' && value.username !== '') {
        return { username: value.username, auto: value.auto === true };
      }
    } catch {
      // A damaged record is no record.
    }
    return null;
  }

  return {
    /** The token kept for a name, or null. */
    token(username) {
      const token = get(tokenKey(username));
      return typeof token === 'string' && token !== '' ? token : null;
    },

    /** The login request for a name: with the name's token when this browser has one. */
    loginRequest(username) {
      const token = this.token(username);
      return token ? { username, token } : { username };
    },

    /**
     * Records the answer to a login request: a success makes its name the last one used and
     * keeps a token that came with it; `username_taken` to a request that carried a token means
     * the plugin no longer accepts that token.
     */
    answered(request, response) {
      if (!response) return;
      if (response.result === 'success' && typeof response.username === 'string') {
        if (typeof response.token === 'string' && response.token !== '') {
          set(tokenKey(response.username), response.token);
        }
        set(LAST_KEY, JSON.stringify({ username: response.username, auto: true }));
      } else if (response.result === 'username_taken' && request && request.token
                 && this.token(request.username) === request.token) {
        remove(tokenKey(request.username));
      }
    },

    /**
     * This tab logged out: a tab opened later pre-fills the name but does not log in by itself.
     * The token stays, for the user's other sessions and the next login.
     */
    loggedOut(username) {
      const previous = last();
      set(LAST_KEY, JSON.stringify({ username: previous ? previous.username : username, auto: false }));
    },

    /** The last name used, { username, auto }, or null. */
    last,

    /** The name a newly opened tab logs in with by itself: the last one, if it has a token. */
    autoLogin() {
      const previous = last();
      return previous && previous.auto && this.token(previous.username) ? previous.username : null;
    },
  };
}
