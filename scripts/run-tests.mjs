// Run every test file with node:test. On Node 20 `node --test` finds no .ts files by itself, so the
// list is built here and passed explicitly; an empty list is an error, never a silent pass.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const only = process.argv.slice(2);

function collect(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...collect(path));
    else if (entry.name.endsWith('.test.ts')) out.push(relative(root, path));
  }
  return out;
}

const all = collect(join(root, 'test')).sort();
const files = only.length > 0 ? all.filter((f) => only.some((o) => f.includes(o))) : all;
if (files.length === 0) {
  process.stderr.write(`no test files found${only.length ? ` matching ${only.join(' ')}` : ''}\n`);
  process.exit(1);
}
// Readable output on the terminal, and TAP in a file whose closing counts ("# pass N", "# fail N")
// are printed last, for CI and for people scrolling to the end.
const tap = join(mkdtempSync(join(tmpdir(), 'qpsmtpd-tests-')), 'results.tap');
const result = spawnSync(
  process.execPath,
  [
    '--import',
    './test/setup.mjs',
    '--test',
    '--test-concurrency=2',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    '--test-reporter=tap',
    `--test-reporter-destination=${tap}`,
    ...files,
  ],
  { cwd: root, stdio: 'inherit' },
);
const summary = readFileSync(tap, 'utf8')
  .split('\n')
  .filter((line) => /^# (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) /.test(line));
process.stdout.write(`\n${files.length} test files\n${summary.join('\n')}\n`);
process.exit(result.status ?? 1);
