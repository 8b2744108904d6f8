// Helpers for the browser tests: a real mosquitto with the chat plugin serving the assembled web
// folder over http_dir, Debian's Chromium driven by playwright-core, and page-level steps that
// wait for conditions (never for time) and fail with what the page showed instead.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startBroker, repoRoot } from '../lib/broker.js';
import { startProxy } from '../bridge/helpers.js';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || path.join(repoRoot, 'build', 'screenshots');
const LAUNCH_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const WAIT_MS = 8000;

/**
 * Assembles the web folder with tools/build-web.sh into a temporary folder, starts the broker
 * serving it (optionally behind a TCP proxy whose cable a test can pull) and Chromium.
 * `brokerOptions` go to startBroker (plugin `options`, `extraConfig` lines).
 */
export async function startChat({ proxy = false, brokerOptions = {} } = {}) {
  const www = path.join(mkdtempSync(path.join(os.tmpdir(), 'chat-www-')), 'www');
  execFileSync(path.join(repoRoot, 'tools', 'build-web.sh'), [www], { stdio: 'pipe' });
  const broker = await startBroker({ ...brokerOptions, websockets: true, httpDir: www });
  const net = proxy ? await startProxy(broker.wsPort) : null;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS });
  const pages = [];
  return {
    broker,
    browser,
    net,
    url: net ? `${net.httpUrl}/` : `http://127.0.0.1:${broker.wsPort}/`,
    pages,
    async close() {
      await browser.close();
      if (net) await net.close();
      await broker.stop();
      broker.cleanup();
      rmSync(path.dirname(www), { recursive: true, force: true });
    },
  };
}

/**
 * A new browser context (a separate person) with one page on the chat, connected (unless
 * `connect` is false: for a broker that refuses anonymous connections).
 */
export async function openPage(chat, { width = 1100, height = 720, name = 'page', connect = true } = {}) {
  const context = await chat.browser.newContext({ viewport: { width, height } });
  return openTab(chat, context, { name, connect });
}

/** Another page (tab) in an existing context: the same person's browser. */
export async function openTab(chat, context, { name = 'page', connect = true } = {}) {
  const page = await context.newPage();
  page.label = name;
  page.problems = [];
  page.on('pageerror', (err) => page.problems.push(`pageerror: ${err.message}`));
  page.on('dialog', (dialog) => {
    page.problems.push(`dialog: ${dialog.message()}`);
    dialog.dismiss().catch(() => {});
  });
  page.on('console', (msg) => {
    if (msg.type() === 'error') page.problems.push(`console: ${msg.text()}`);
  });
  chat.pages.push(page);
  await page.goto(chat.url);
  if (connect) await connected(page);
  return page;
}

/** What the page shows, for failure messages. */
export async function describe(page) {
  try {
    return await page.evaluate(() => {
      const text = (sel) => [...document.querySelectorAll(sel)].map((n) => n.textContent.trim().replace(/\s+/g, ' '));
      return JSON.stringify({
        view: document.getElementById('app').dataset.view,
        connection: document.getElementById('connection').textContent,
        loginError: document.getElementById('login-error').textContent,
        whoami: document.getElementById('whoami').textContent,
        asksPassword: !document.getElementById('password-row').hidden,
        notice: document.getElementById('notice').hidden ? null : document.getElementById('notice-text').textContent,
        people: text('#people li'),
        groups: text('#groups li'),
        title: document.getElementById('conv-title').textContent,
        messages: text('#messages li'),
      }, null, 1);
    });
  } catch (err) {
    return `(page not readable: ${err.message})`;
  }
}

/**
 * Waits until fn(arg) is truthy in the page; on timeout fails with `what` and what the page
 * showed instead.
 */
export async function until(page, what, fn, arg, timeout = WAIT_MS) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch (err) {
    throw new Error(`${page.label}: expected ${what} within ${timeout} ms; the page showed:\n`
      + `${await describe(page)}\nproblems: ${JSON.stringify(page.problems)}\n(${err.message.split('\n')[0]})`);
  }
}

export function connected(page) {
  return until(page, 'the connection state "Connected"',
    () => document.getElementById('connection').dataset.state === 'connected');
}

/** Logs in through the form and waits for the chat view. */
export async function login(page, username) {
  await page.fill('#username', username);
  await page.press('#username', 'Enter');
  await until(page, `to be logged in as ${username}`,
    (name) => document.getElementById('app').dataset.view === 'chat'
      && document.getElementById('whoami').textContent === name, username);
  page.label = username;
}

export async function userPage(chat, username, opts = {}) {
  const page = await openPage(chat, { ...opts, name: username });
  await login(page, username);
  return page;
}

function rowSelector(list) {
  return `#${list} li`;
}

/** Waits until the sidebar list ('people' or 'groups') has a row whose name is `name`. */
export function seesRow(page, list, name, extra = '') {
  return until(page, `a row "${name}"${extra ? ` (${extra})` : ''} in ${list}`,
    ([sel, n, x]) => [...document.querySelectorAll(sel)].some((li) => {
      if (li.querySelector('.name').textContent !== n) return false;
      if (x === 'online') return li.querySelector('.person.online') !== null;
      if (x === 'offline') return li.querySelector('.person:not(.online)') !== null;
      if (x === 'member') return li.querySelector('.group:not(.not-member)') !== null;
      if (x === 'not member') return li.querySelector('.group.not-member') !== null;
      if (x === 'no unread') return li.querySelector('.badge').hidden;
      if (x.startsWith('unread ')) {
        const badge = li.querySelector('.badge');
        return !badge.hidden && badge.textContent === x.slice(7);
      }
      return true;
    }), [rowSelector(list), name, extra]);
}

export function noRow(page, list, name) {
  return until(page, `no row "${name}" in ${list}`,
    ([sel, n]) => ![...document.querySelectorAll(sel)].some((li) => li.querySelector('.name').textContent === n),
    [rowSelector(list), name]);
}

function exactly(text) {
  return new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
}

/** The sidebar row ('people' or 'groups') whose name is `name`. */
export function row(page, list, name) {
  return page.locator(`#${list} li`).filter({ has: page.locator('.name', { hasText: exactly(name) }) });
}

/** Clicks the row named `name` in a sidebar list ('people' or 'groups'). */
export async function clickRow(page, list, name) {
  await seesRow(page, list, name);
  await row(page, list, name).locator('.item').click();
}

export async function openConversation(page, list, name) {
  await clickRow(page, list, name);
  await until(page, `the conversation "${name}" open`,
    (n) => document.getElementById('conv-title').textContent === n, name);
}

/** Types a message into the composer and presses Enter. */
export async function send(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

/** Waits until the open conversation shows exactly these texts, in order. */
export function showsMessages(page, texts) {
  return until(page, `the messages ${JSON.stringify(texts)} in order`,
    (want) => {
      const got = [...document.querySelectorAll('#messages li .text')].map((n) => n.textContent);
      return JSON.stringify(got) === JSON.stringify(want);
    }, texts);
}

/** Waits until the open conversation shows a message `text` from `sender`. */
export function showsMessage(page, sender, text) {
  return until(page, `a message "${text}" from ${sender}`,
    ([s, t]) => [...document.querySelectorAll('#messages li')].some((li) => li.querySelector('.sender').textContent === s
      && li.querySelector('.text').textContent === t), [sender, text]);
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`) });
}

/** Fails if anything went wrong in a page that the assertions did not look at. */
export function assertNoProblems(pages) {
  const problems = pages.flatMap((p) => p.problems.map((x) => `${p.label}: ${x}`));
  if (problems.length) throw new Error(`unexpected page errors:\n  ${problems.join('\n  ')}`);
}
