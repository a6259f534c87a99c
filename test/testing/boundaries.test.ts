/** The kit is for any test runner: nothing in src/testing imports one, or an assertion library. */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { test } from 'node:test';

const DIR = new URL('../../src/testing/', import.meta.url);

test('src/testing imports no test runner and no assertion module', () => {
  const offenders: string[] = [];
  for (const name of readdirSync(DIR)) {
    // Template literals are text (the test new-plugin writes imports node:test), not imports.
    const source = readFileSync(new URL(name, DIR), 'utf8').replace(/`(?:\\[\s\S]|[^`\\])*`/g, '``');
    if (/from\s+['"](node:test|node:assert(\/strict)?|assert)['"]/.test(source)) offenders.push(name);
  }
  assert.deepEqual(offenders, []);
});

test('package.json exports qpsmtpd/testing beside qpsmtpd, types and code from the sources', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { exports: Record<string, unknown>; scripts: Record<string, string> };
  assert.deepEqual(pkg.exports['./testing'], { types: './src/testing/index.ts', default: './src/testing/index.ts' });
  assert.equal(pkg.scripts['docs'], 'node scripts/docs.mjs');
});
