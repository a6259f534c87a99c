/**
 * The layering rules of architecture.md, checked on the import lines of every source file:
 * the protocol core is pure, the session never touches sockets or plugins, only transports open
 * sockets, only the CLI reads the environment, and plugins use nothing but the public API.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SOURCE_ENTRY_POINTS } from '../scripts/entry-points.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));

function files(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...files(path));
    else if (/\.(ts|mjs|js)$/.test(entry.name)) out.push(path);
  }
  return out;
}

interface Import {
  readonly specifier: string;
  readonly typeOnly: boolean;
  /** For relative imports: the target, relative to the project root. */
  readonly target?: string;
}

function importsOf(file: string): Import[] {
  const source = readFileSync(join(root, file), 'utf8');
  const out: Import[] = [];
  const pattern = /^\s*(import|export)\s+(type\s+)?[^'"]*?from\s+['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm;
  for (const m of source.matchAll(pattern)) {
    const specifier = m[3] ?? m[4] ?? m[5]!;
    const typeOnly = m[2] !== undefined;
    const target = specifier.startsWith('.') ? relative(root, resolve(dirname(join(root, file)), specifier)) : undefined;
    out.push(target === undefined ? { specifier, typeOnly } : { specifier, typeOnly, target });
  }
  return out;
}

function violations(dir: string, allowed: (i: Import, file: string) => boolean): string[] {
  const out: string[] = [];
  for (const file of files(dir)) for (const i of importsOf(file)) if (!allowed(i, file)) out.push(`${file} imports ${i.specifier}`);
  return out;
}

test('src/protocol imports nothing but itself (and node:buffer)', () => {
  assert.deepEqual(
    violations('src/protocol', (i) => i.target?.startsWith('src/protocol/') === true || i.specifier === 'node:buffer'),
    [],
  );
});

test('src/session never imports a socket, a transport, the plugin loader or a plugin', () => {
  assert.deepEqual(
    violations('src/session', (i) => {
      if (/^node:(net|tls|dgram|cluster|child_process)$/.test(i.specifier)) return false;
      if (i.target === undefined) return true;
      return !/^(src\/transport|src\/plugins|plugins)\//.test(i.target) && !i.target.startsWith('src/app');
    }),
    [],
  );
});

test('src/hooks depends only on protocol, log and types of the session', () => {
  assert.deepEqual(
    violations('src/hooks', (i) => {
      if (i.specifier.startsWith('node:')) return false;
      if (i.target === undefined) return false;
      if (/^src\/(hooks|protocol|log)\//.test(i.target)) return true;
      return i.typeOnly && i.target.startsWith('src/session/');
    }),
    [],
  );
});

test('in the core, only src/transport opens sockets or forks', () => {
  // Plugins may open connections of their own (syslog, spamd, a next hop); the client's socket
  // they never see: it lives in src/transport.
  const outside = files('src').filter((f) => !f.startsWith('src/transport/'));
  const offenders = outside.filter((f) => importsOf(f).some((i) => /^node:(net|tls|cluster)$/.test(i.specifier)));
  assert.deepEqual(offenders, []);
  // Nor loads them on first use (require or import() of the name: src/transport/lazy-builtins.ts).
  const loaders = outside.filter((f) => /\(\s*['"]node:(net|tls|dgram|cluster)['"]\s*\)/.test(readFileSync(join(root, f), 'utf8')));
  assert.deepEqual(loaders, []);
});

test('only src/cli.ts reads process.env and process.argv', () => {
  const offenders = files('src')
    .filter((f) => f !== 'src/cli.ts')
    .filter((f) => /process\.(env|argv)\b/.test(readFileSync(join(root, f), 'utf8')));
  assert.deepEqual(offenders, []);
});

test('bundled and example plugins import only the public API and node builtins', () => {
  const check = (dir: string): string[] =>
    violations(dir, (i) => i.specifier === 'qpsmtpd' || i.specifier.startsWith('node:'));
  assert.deepEqual([...check('plugins'), ...check('examples/plugins')], []);
});

test('a module that finds files by import.meta.url spells them from its parent folder (dist/ bundles it into a chunk)', () => {
  // scripts/build.mjs puts shared code into dist/src/chunks/, one level below dist/src like every
  // src/<folder>/: '../x' resolves alike from both, './x' does not. The entry points stay in place.
  const entries = new Set<string>(SOURCE_ENTRY_POINTS);
  const offenders = files('src')
    .filter((f) => f.endsWith('.ts') && !entries.has(f))
    .filter((f) => /new URL\(\s*['"`]\.\/[^'"`]*['"`]\s*,\s*import\.meta\.url/.test(readFileSync(join(root, f), 'utf8').replace(/`[^`]*\$\{[^`]*`/g, '')));
  assert.deepEqual(offenders, []);
});
