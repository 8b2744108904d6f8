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
 * The errors a client can be sent: enum chat_err in chat_error.h up to its operator errors
 * (never sent), without CHAT_OK, each by the wire name chat_err_str() in chat_error.c gives it.
 * CHAT_ERR_INTERNAL's name is the function's last return, after the switch.
 */
function pluginErrorCodes() {
  const enumBody = readFileSync(CHAT_ERROR_H, 'utf8').match(/enum\s+chat_err\s*\{([^}]*)\}/);
  assert.ok(enumBody, 'chat_error.h should define enum chat_err');
  const wirePart = enumBody[1].split(/Operator errors/)[0];
  const errors = wirePart.match(/\bCHAT_ERR_\w+/g) || [];
  assert.ok(errors.includes('CHAT_ERR_INTERNAL'), 'CHAT_ERR_INTERNAL should be a wire error');
  const body = functionBody(readFileSync(CHAT_ERROR_C, 'utf8'), 'chat_err_str');
  const last = [...body.matchAll(/return\s+"([^"]*)"\s*;/g)].pop();
  return errors.map((error) => {
    if (error === 'CHAT_ERR_INTERNAL') return last[1];
    const named = body.match(new RegExp(`case\\s+${error}\\s*:\\s*return\\s+"([^"]*)"`));
    assert.ok(named, `chat_err_str() in chat_error.c should name ${error}`);
    return named[1];
  });
}

test('the plugin\'s error codes are read from its source', () => {
  const codes = pluginErrorCodes();
  assert.equal(new Set(codes).size, codes.length, `a wire name repeats in ${codes.join(', ')}`);
  assert.ok(codes.length >= 15, `expected at least 15 wire codes, got ${codes.join(', ')}`);
  assert.ok(codes.includes('internal'), `"internal" should be among ${codes.join(', ')}`);
  assert.ok(codes.includes('limit_exceeded'), `"limit_exceeded" should be among ${codes.join(', ')}`);
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
