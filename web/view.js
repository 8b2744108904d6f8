/**
 * The web client's rendering: `createView(document, actions)` returns `render(state)`, which
 * brings the page (the skeleton in index.html) in line with the state, as select.js derives it.
 * Nothing here changes the state; user input is handed to `actions`.
 *
 * Always true:
 *  - Every text that came from the network (names, messages) reaches the DOM through
 *    textContent or an attribute, never as HTML.
 *  - Lists are updated in place, keyed by id, so a re-render keeps focus, scroll position and
 *    whatever the user is typing.
 */

import {
  people, groups, conversation, totalUnread, screen, asksPassword,
} from '#app/select';

const CONNECTION_TEXT = {
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  offline: 'Disconnected',
  'taken-over': 'Continued in another tab',
  refused: 'Not signed in',
};

// How close to the top of a conversation scrolling asks for older messages.
const OLDER_AT_PX = 60;

function el(doc, tag, className, text) {
  const node = doc.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * Makes `list`'s children match `items`: one child per key, in order, created by `create` and
 * brought up to date by `update`. Children are reused, so focus inside them survives.
 */
function syncList(list, items, keyOf, create, update) {
  const existing = new Map();
  for (const child of list.children) existing.set(child.dataset.key, child);
  let previous = null;
  for (const item of items) {
    const key = keyOf(item);
    let node = existing.get(key);
    if (node) existing.delete(key);
    else {
      node = create(item);
      node.dataset.key = key;
    }
    update(node, item);
    const wanted = previous ? previous.nextSibling : list.firstChild;
    if (node !== wanted) list.insertBefore(node, wanted);
    previous = node;
  }
  for (const node of existing.values()) node.remove();
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function formatTime(ts) {
  const date = new Date(ts);
  const now = new Date();
  const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (date.toDateString() === now.toDateString()) return time;
  return `${date.toLocaleDateString([], { day: 'numeric', month: 'short' })} ${time}`;
}

function setBadge(badge, count) {
  badge.hidden = count === 0;
  setText(badge, count > 99 ? '99+' : String(count));
  badge.setAttribute('aria-label', `${count} unread`);
}

export function createView(doc, actions) {
  const $ = (id) => doc.getElementById(id);
  const app = $('app');
  const ui = {
    connection: $('connection'),
    whoami: $('whoami'),
    logout: $('logout'),
    notice: $('notice'),
    noticeText: $('notice-text'),
    noticeClose: $('notice-close'),
    loginForm: $('login-form'),
    username: $('username'),
    passwordRow: $('password-row'),
    password: $('password'),
    loginButton: $('login-button'),
    loginError: $('login-error'),
    people: $('people'),
    peopleCount: $('people-count'),
    groups: $('groups'),
    newGroup: $('new-group'),
    picker: $('picker'),
    pickerText: $('picker-text'),
    createGroup: $('create-group'),
    cancelGroup: $('cancel-group'),
    conversation: $('conversation'),
    back: $('back'),
    title: $('conv-title'),
    subtitle: $('conv-sub'),
    leave: $('leave'),
    messages: $('messages'),
    empty: $('empty'),
    joinBar: $('join-bar'),
    join: $('join'),
    composer: $('composer'),
    text: $('text'),
  };
  let current = null;          // the state last rendered
  let renderedRoom = null;     // the room whose messages are in the list

  /* ---- input ---- */

  ui.loginForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const password = asksPassword(current) ? ui.password.value : undefined;
    // A password is typed again after a refusal; it is never kept in the page.
    ui.password.value = '';
    actions.login(ui.username.value.trim(), password);
  });
  ui.logout.addEventListener('click', () => actions.logout());
  ui.noticeClose.addEventListener('click', () => actions.dismiss());
  ui.newGroup.addEventListener('click', () => actions.pickStart());
  ui.cancelGroup.addEventListener('click', () => actions.pickCancel());
  ui.createGroup.addEventListener('click', () => actions.createGroup());
  ui.back.addEventListener('click', () => actions.close());
  ui.leave.addEventListener('click', () => actions.leave(current.active));
  ui.join.addEventListener('click', () => actions.join(current.active));
  ui.composer.addEventListener('submit', (event) => {
    event.preventDefault();
    send();
  });
  ui.text.addEventListener('keydown', (event) => {
    // Enter sends, Shift+Enter starts a new line; an IME composition keeps its Enter.
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  ui.text.addEventListener('input', autosize);
  // Scrolling to the top of a conversation loads the messages before the oldest shown.
  ui.messages.addEventListener('scroll', () => {
    if (current && current.active && ui.messages.scrollTop < OLDER_AT_PX) actions.loadOlder(current.active);
  }, { passive: true });
  doc.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape' || !current) return;
    if (current.picking) actions.pickCancel();
    else if (current.notice) actions.dismiss();
    else if (current.active && app.dataset.narrow === 'true') actions.close();
  });
  const narrow = doc.defaultView.matchMedia('(max-width: 700px)');
  const onWidth = () => { app.dataset.narrow = String(narrow.matches); };
  narrow.addEventListener('change', onWidth);
  onWidth();

  function send() {
    const text = ui.text.value;
    if (text.trim() === '' || !current || !current.active) return;
    actions.send(current.active, text);
    ui.text.value = '';
    autosize();
  }

  function autosize() {
    ui.text.style.height = 'auto';
    ui.text.style.height = `${Math.min(ui.text.scrollHeight, 160)}px`;
  }

  /* ---- output ---- */

  function renderHeader(state) {
    ui.connection.dataset.state = state.connection;
    setText(ui.connection, CONNECTION_TEXT[state.connection] || state.connection);
    const chat = screen(state) === 'chat';
    ui.whoami.hidden = !chat;
    setText(ui.whoami, chat ? state.me.username : '');
    ui.logout.hidden = !chat;
    const unread = totalUnread(state);
    doc.title = unread ? `(${unread}) mosquitto-chat` : 'mosquitto-chat';
    ui.notice.hidden = !state.notice;
    if (state.notice) setText(ui.noticeText, state.notice.text);
  }

  function renderLogin(state, previous) {
    const pending = Boolean(state.login.pending);
    ui.loginButton.disabled = pending;
    setText(ui.loginButton, pending ? 'Logging in…' : 'Log in');
    ui.loginError.hidden = !state.login.error;
    setText(ui.loginError, state.login.error || '');
    ui.username.setAttribute('aria-invalid', String(Boolean(state.login.error)));
    const password = asksPassword(state);
    ui.passwordRow.hidden = !password;
    ui.password.required = password;
    const suggested = state.login.suggested;
    if (suggested && ui.username.value === '' && (!previous || previous.login.suggested !== suggested
        || screen(previous) !== 'login')) {
      ui.username.value = suggested;
    }
    const back = previous && screen(previous) === 'chat' && screen(state) === 'login';
    const nowAsks = password && previous && !asksPassword(previous);
    if (back || nowAsks || (password && previous && !previous.login.error && state.login.error)) {
      // Back at the login form, or it now wants a password: the cursor goes where one types.
      (password && ui.username.value !== '' ? ui.password : ui.username).focus();
    }
  }

  function renderPeople(state) {
    const list = people(state);
    setText(ui.peopleCount, String(list.filter((p) => p.online).length));
    const picking = state.picking;
    syncList(ui.people, list, (p) => p.userid, () => {
      const li = el(doc, 'li');
      const button = el(doc, 'button', 'item person');
      button.type = 'button';
      const mark = el(doc, 'span', 'pick-mark');
      mark.setAttribute('aria-hidden', 'true');
      button.append(mark, el(doc, 'span', 'dot'), el(doc, 'span', 'name'),
        el(doc, 'span', 'status'), el(doc, 'span', 'badge'));
      button.addEventListener('click', () => {
        const userid = li.dataset.key;
        if (current.picking) actions.pickToggle(userid);
        else actions.open(userid);
      });
      li.append(button);
      return li;
    }, (li, p) => {
      const button = li.firstChild;
      button.dataset.room = p.userid;
      button.classList.toggle('online', p.online);
      setText(button.querySelector('.name'), p.username);
      setText(button.querySelector('.status'), p.online ? 'online' : 'offline');
      setBadge(button.querySelector('.badge'), picking ? 0 : p.unread);
      if (picking) {
        button.setAttribute('aria-pressed', String(picking.includes(p.userid)));
        button.removeAttribute('aria-current');
      } else {
        button.removeAttribute('aria-pressed');
        if (state.active === p.userid) button.setAttribute('aria-current', 'true');
        else button.removeAttribute('aria-current');
      }
    });
    if (list.length === 0) {
      ui.people.dataset.empty = 'Nobody else is here yet.';
    } else {
      delete ui.people.dataset.empty;
    }
  }

  function renderGroups(state) {
    ui.picker.hidden = !state.picking;
    ui.newGroup.hidden = Boolean(state.picking);
    if (state.picking) {
      const n = state.picking.length;
      setText(ui.pickerText, n === 0 ? 'Pick people above for the new group.'
        : `${n} ${n === 1 ? 'person' : 'people'} picked.`);
      setText(ui.createGroup, n === 0 ? 'Create group (just me)' : `Create group (${n + 1})`);
    }
    const list = groups(state);
    syncList(ui.groups, list, (g) => g.groupid, () => {
      const li = el(doc, 'li', 'group-row');
      const open = el(doc, 'button', 'item group');
      open.type = 'button';
      open.append(el(doc, 'span', 'group-icon', '#'), el(doc, 'span', 'name'),
        el(doc, 'span', 'status'), el(doc, 'span', 'badge'));
      open.addEventListener('click', () => actions.open(li.dataset.key));
      const join = el(doc, 'button', 'join small', 'Join');
      join.type = 'button';
      join.addEventListener('click', () => actions.join(li.dataset.key));
      li.append(open, join);
      return li;
    }, (li, g) => {
      const [open, join] = li.children;
      open.dataset.room = g.groupid;
      open.classList.toggle('not-member', !g.member);
      setText(open.querySelector('.name'), g.title);
      setText(open.querySelector('.status'), `${g.size}`);
      open.querySelector('.status').setAttribute('aria-label', `${g.size} members`);
      setBadge(open.querySelector('.badge'), g.unread);
      if (state.active === g.groupid) open.setAttribute('aria-current', 'true');
      else open.removeAttribute('aria-current');
      join.hidden = g.member;
      join.setAttribute('aria-label', `Join ${g.title}`);
    });
    if (list.length === 0) ui.groups.dataset.empty = 'No groups yet.';
    else delete ui.groups.dataset.empty;
  }

  function renderConversation(state) {
    const conv = conversation(state);
    app.dataset.pane = conv ? 'conversation' : 'list';
    ui.empty.hidden = Boolean(conv);
    for (const node of [ui.title.parentElement, ui.messages, ui.composer]) node.hidden = !conv;
    if (!conv) {
      ui.leave.hidden = true;
      ui.joinBar.hidden = true;
      ui.back.hidden = true;
      syncList(ui.messages, [], () => '', () => null, () => {});
      renderedRoom = null;
      return;
    }
    ui.back.hidden = false;
    ui.conversation.dataset.kind = conv.kind;
    setText(ui.title, conv.title);
    setText(ui.subtitle, conv.subtitle);
    ui.leave.hidden = !(conv.kind === 'group' && conv.member);
    ui.joinBar.hidden = !(conv.kind === 'group' && !conv.member && conv.exists);
    ui.composer.hidden = !conv.member;
    ui.text.setAttribute('aria-label', `Message to ${conv.title}`);

    const switched = renderedRoom !== conv.room;
    if (switched) syncList(ui.messages, [], () => '', () => null, () => {});
    const box = ui.messages;
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    const before = box.children.length;
    const firstKey = box.firstElementChild ? box.firstElementChild.dataset.key : null;
    const heightBefore = box.scrollHeight;
    box.dataset.older = conv.older;
    syncList(box, conv.messages, (m) => m.key, (m) => {
      const li = el(doc, 'li', 'msg');
      const meta = el(doc, 'div', 'meta');
      const time = el(doc, 'time');
      meta.append(el(doc, 'span', 'sender'), time, el(doc, 'span', 'delivery'));
      li.append(meta, el(doc, 'p', 'text'));
      li.classList.toggle('mine', m.mine);
      return li;
    }, (li, m) => {
      setText(li.querySelector('.sender'), m.mine ? 'You' : m.senderName);
      const time = li.querySelector('time');
      time.dateTime = new Date(m.ts).toISOString();
      time.title = new Date(m.ts).toLocaleString();
      setText(time, formatTime(m.ts));
      setText(li.querySelector('.text'), m.text);
      li.classList.toggle('pending', Boolean(m.pending));
      li.classList.toggle('failed', Boolean(m.failed));
      setText(li.querySelector('.delivery'), m.pending ? 'Sending…' : m.failed ? 'Not sent' : '');
    });
    const last = conv.messages[conv.messages.length - 1];
    const prepended = !switched && firstKey !== null && box.firstElementChild
      && box.firstElementChild.dataset.key !== firstKey;
    if (switched || (box.children.length !== before && (nearBottom || (last && last.mine)))) {
      box.scrollTop = box.scrollHeight;
    } else if (prepended) {
      // Older messages came in above: what the reader was looking at stays where it was.
      box.scrollTop += box.scrollHeight - heightBefore;
    }
    if (conv.older === 'more' && box.scrollHeight <= box.clientHeight && conv.messages.length > 0) {
      // Nothing to scroll yet, so no way to ask for more by scrolling: ask now.
      actions.loadOlder(conv.room);
    }
    if (switched) {
      renderedRoom = conv.room;
      // Opening a conversation puts the cursor where one writes.
      if (conv.member && !ui.composer.hidden) ui.text.focus({ preventScroll: true });
    }
  }

  return function render(state, previous) {
    current = state;
    app.dataset.view = screen(state);
    renderHeader(state);
    renderLogin(state, previous);
    if (screen(state) !== 'chat') return;
    renderPeople(state);
    renderGroups(state);
    renderConversation(state);
  };
}
