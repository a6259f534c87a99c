/** The config directory in qpsmtpd's format. */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigDir } from '../../src/config/config-dir.ts';
import { buildCdb, cdbHash, Cdb } from '../../src/config/cdb.ts';
import { tempDir } from '../helpers/test-app.ts';

let dirs: string[] = [];
function dir(): string {
  const d = tempDir('qpsmtpd-config-');
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

test('one value per line; comments, blank lines and surrounding white space are dropped', () => {
  const d = dir();
  writeFileSync(join(d, 'rcpthosts'), '# local domains\n\n  example.com  \n\t.example.net\n   # indented comment\nlast\n');
  const config = new ConfigDir(d);
  assert.deepEqual(config.list('rcpthosts'), ['example.com', '.example.net', 'last']);
  assert.equal(config.value('rcpthosts'), 'example.com');
  assert.deepEqual(
    config.entries('rcpthosts').map((e) => e.line),
    [3, 4, 6],
  );
});

test('a missing file means not set; defaults fill in', () => {
  const config = new ConfigDir(dir(), { me: ['host.example'] });
  assert.deepEqual(config.list('nothing'), []);
  assert.equal(config.value('nothing'), undefined);
  assert.equal(config.value('me'), 'host.example');
});

test('$include of a file and of a directory (non-dot files, sorted); relative to the config dir', () => {
  const d = dir();
  mkdirSync(join(d, 'more'));
  writeFileSync(join(d, 'more', 'b'), 'b1\n');
  writeFileSync(join(d, 'more', 'a'), 'a1\na2\n');
  writeFileSync(join(d, 'more', '.hidden'), 'no\n');
  writeFileSync(join(d, 'extra'), 'x1\n');
  writeFileSync(join(d, 'list'), 'first\n$include extra\n$include more\nlast\n');
  const config = new ConfigDir(d);
  assert.deepEqual(config.list('list'), ['first', 'x1', 'a1', 'a2', 'b1', 'last']);
  const fromA = config.entries('list').find((e) => e.value === 'a2')!;
  assert.equal(fromA.file, join(d, 'more', 'a'));
  assert.equal(fromA.line, 2);
});

test('an $include cycle is reported and broken, not followed forever', () => {
  const d = dir();
  writeFileSync(join(d, 'one'), 'a\n$include two\n');
  writeFileSync(join(d, 'two'), 'b\n$include one\n');
  const problems: string[] = [];
  const config = new ConfigDir(d, {}, (p) => problems.push(p));
  assert.deepEqual(config.list('one'), ['a', 'b']);
  assert.ok(problems.some((p) => /circular/.test(p)));
});

test('a file is read once, then cached; a change is seen after the recheck interval', async () => {
  const d = dir();
  const file = join(d, 'databytes');
  writeFileSync(file, '1000\n');
  const config = new ConfigDir(d, {}, undefined, 50);
  assert.equal(config.value('databytes'), '1000');
  writeFileSync(file, '2000\n');
  utimesSync(file, new Date(), new Date(Date.now() + 5000));
  assert.equal(config.value('databytes'), '1000', 'cached within the interval');
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(config.value('databytes'), '2000');
});

test('names outside the config directory are refused', () => {
  const config = new ConfigDir(dir());
  assert.throws(() => config.list('../etc/passwd'), /invalid config name/);
  assert.throws(() => config.list('/etc/passwd'), /invalid config name/);
  assert.deepEqual(config.list('dkim/example.com/selector'), []);
});

test('map(): NAME.cdb when it exists, else the plain file of key [value] lines', () => {
  const d = dir();
  writeFileSync(join(d, 'morercpthosts'), 'plain.example\n');
  const config = new ConfigDir(d);
  assert.equal(config.map('morercpthosts').has('plain.example'), true);
  writeFileSync(join(d, 'morercpthosts.cdb'), buildCdb([['cdb.example', ''], ['other.example', 'v']]));
  const fresh = new ConfigDir(d);
  const map = fresh.map('morercpthosts');
  assert.equal(map.has('cdb.example'), true);
  assert.equal(map.get('other.example'), 'v');
  assert.equal(map.has('plain.example'), false, 'the cdb wins');
});

test('cdb: the hash of the format, and many keys with colliding buckets', () => {
  assert.equal(cdbHash(Buffer.from('')), 5381);
  const entries: [string, string][] = Array.from({ length: 2000 }, (_, i) => [`key${i}.example`, `value${i}`]);
  const cdb = new Cdb(buildCdb(entries));
  for (const [k, v] of entries) assert.equal(cdb.get(k)?.toString(), v);
  assert.equal(cdb.get('absent.example'), undefined);
  assert.throws(() => new Cdb(Buffer.alloc(10)), /not a cdb file/);
});
