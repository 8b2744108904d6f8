// The web client's display text against the plugin: every error code the plugin can send has
// a text of the client's own. The codes are read from the plugin's source, so a code added
// there fails here until the client can say what it means.
//
//   node --test tests/browser/select.test.js

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERROR_TEXT, errorText } from '../../web/select.js';

const CHAT_ERROR_C = new URL('../../plugin/core/chat_error.c', import.meta.url);
const CHAT_ERROR_H = new URL('../../plugin/core/chat_error.h', import.meta.url);

/** The body of the C function `name` in `source`: from its first `{` to the matching `}`. */
function functionBody(source, name) {
  const start = source.search(new RegExp(`\\b${name}\\s*\\([^)]*\\)\\s*\\{`));
  assert.notEqual(start, -1, `no definition of ${name}() found`);
  const open = source.indexOf('{', start);
  let depth = 0;
  for (let i = open; i < source.length; i++) {
    if (source[i] === '{') depth++;
    else if (source[i] === '}' && --depth === 0) return source.slice(open, i + 1);
  }
  assert.fail(`${name}() has no closing brace`);
}

/**
 * The wire names chat_err_str() returns, but the one for CHAT_OK ("success", the result of a
 * login that worked, which is no error).
 */
function pluginErrorCodes() {
  const body = functionBody(readFileSync(CHAT_ERROR_C, 'utf8'), 'chat_err_str');
  const names = [...body.matchAll(/return\s+"([^"]*)"\s*;/g)].map((m) => m[1]);
  const ok = body.match(/case\s+CHAT_OK\s*:\s*return\s+"([^"]*)"/);
  assert.ok(ok, 'chat_err_str() should return a name for CHAT_OK');
  return names.filter((name) => name !== ok[1]);
}

test('the plugin\'s error codes are read from its source', () => {
  // One name per error in the enum (CHAT_ERR_INTERNAL's comes after the switch), so a parse that
  // missed some cannot let the next test pass with fewer codes.
  const enumBody = readFileSync(CHAT_ERROR_H, 'utf8').match(/enum\s+chat_err\s*\{([^}]*)\}/);
  assert.ok(enumBody, 'chat_error.h should define enum chat_err');
  const errors = enumBody[1].match(/\bCHAT_ERR_\w+/g) || [];
  const codes = pluginErrorCodes();
  assert.equal(new Set(codes).size, codes.length, `a wire name repeats in ${codes.join(', ')}`);
  assert.equal(codes.length, errors.length,
    `chat_error.h has ${errors.length} error codes, chat_err_str() in chat_error.c gave `
    + `${codes.length}: ${codes.join(', ')}`);
  assert.ok(codes.includes('internal'), `"internal" should be among ${codes.join(', ')}`);
});

test('the web client has a display text for every error code the plugin can send', () => {
  const missing = pluginErrorCodes().filter((code) => typeof ERROR_TEXT[code] !== 'string'
    || ERROR_TEXT[code].trim() === '');
  assert.deepEqual(missing, [],
    `no display text in web/select.js (ERROR_TEXT) for ${missing.map((c) => `"${c}"`).join(', ')}, `
    + 'which plugin/core/chat_error.c can send');
});

test('a limit error says which limit when the plugin tells', () => {
  assert.equal(errorText('limit_exceeded', 'group 21 is full (1000 members)'),
    'A limit of this chat was reached: group 21 is full (1000 members).');
  assert.equal(errorText('limit_exceeded'), ERROR_TEXT.limit_exceeded);
  // Every other known code keeps its own text whatever the detail.
  assert.equal(errorText('username_taken', 'someone has it'), ERROR_TEXT.username_taken);
  assert.equal(errorText('no_such_code', 'the detail'), 'the detail');
  assert.equal(errorText('no_such_code'), 'Something went wrong (no_such_code).');
});
