#!/usr/bin/env node
/**
 * Checks the include structure of plugin/core (README.md, "Layers of the core"): every
 * `#include "x.h"` of a core file must point to a module on a lower layer than its own, or to
 * a module of its own layer listed before it, so the graph has no cycle and reads bottom up.
 * Prints the graph with --print. Exits 1 naming each include that breaks the rule, or a
 * module that is on no layer.
 *
 *   node tools/check-layers.mjs [--print]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

// Bottom first. Within a layer, a module may include only those listed before it (requests.c
// and acl.c implement entry points of chat.h, the interface at the top).
const LAYERS = [
  ['chat_types', 'chat_error', 'chat_config', 'log', 'validate', 'names', 'tokens', 'ids', 'topics'],
  ['state', 'store_db'],
  ['codec', 'outbox'],
  ['directory', 'persist', 'budget', 'store', 'rooms'],
  ['chat', 'requests', 'acl'],
];

const core = join(dirname(fileURLToPath(import.meta.url)), '..', 'plugin', 'core');
const rank = new Map();
LAYERS.forEach((layer, level) => layer.forEach((m, i) => rank.set(m, [level, i])));

const problems = [];
const edges = new Map();
for (const file of readdirSync(core).filter((f) => /\.[ch]$/.test(f)).sort()) {
  const module = file.replace(/\.[ch]$/, '');
  if (!rank.has(module)) {
    problems.push(`${file}: module '${module}' is on no layer of tools/check-layers.mjs`);
    continue;
  }
  const text = readFileSync(join(core, file), 'utf8');
  for (const [, header] of text.matchAll(/^#include "([^"]+)\.h"/gm)) {
    if (header === module) continue; // a module's .c includes its own header
    if (!rank.has(header)) {
      problems.push(`${file}: includes "${header}.h", which is on no layer`);
      continue;
    }
    const [fl, fi] = rank.get(module);
    const [tl, ti] = rank.get(header);
    if (tl > fl || (tl === fl && ti >= fi)) {
      problems.push(`${file}: includes "${header}.h", which is not below it`);
    }
    if (!edges.has(module)) edges.set(module, new Set());
    edges.get(module).add(header);
  }
}

// Independent of the layer table: no cycle at all.
const state = new Map();
function visit(node, path) {
  if (state.get(node) === 'done') return;
  if (state.get(node) === 'open') {
    problems.push(`cycle: ${[...path.slice(path.indexOf(node)), node].join(' -> ')}`);
    return;
  }
  state.set(node, 'open');
  for (const next of edges.get(node) || []) visit(next, [...path, node]);
  state.set(node, 'done');
}
for (const node of edges.keys()) visit(node, []);

if (process.argv.includes('--print')) {
  for (const [from, to] of [...edges].sort()) console.log(`${from} -> ${[...to].sort().join(', ')}`);
}
if (problems.length > 0) {
  console.error(problems.join('\n'));
  console.error(`check-layers: ${problems.length} problem(s)`);
  process.exit(1);
}
console.log(`check-layers: ${edges.size} modules, no include points up, no cycle`);
