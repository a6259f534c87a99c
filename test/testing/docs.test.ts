/** The generated parts of the documentation are what the code says: otherwise `npm run docs`. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { HOOK_NAMES } from '../../src/hooks/hook-map.ts';
import { BEGIN, END, PLUGINS_DOC, outdated } from '../../scripts/docs.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

test('docs/plugins.md and src/testing/hook-signatures.ts are up to date with the hook map and the reply table', () => {
  const stale = outdated(ROOT);
  assert.deepEqual(stale, [], `${stale.join(', ')} out of date: run npm run docs`);
});

test('the hook table of docs/plugins.md has a row for every hook', () => {
  const doc = readFileSync(new URL(`../../${PLUGINS_DOC}`, import.meta.url), 'utf8');
  const table = doc.slice(doc.indexOf(BEGIN), doc.indexOf(END));
  for (const hook of HOOK_NAMES) assert.ok(table.includes(`| \`${hook}\`<br>`), hook);
});
