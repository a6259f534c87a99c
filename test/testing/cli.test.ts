/**
 * `qpsmtpd new-plugin` and `qpsmtpd test` end to end, as a user outside the project runs them:
 * bin/qpsmtpd (the build in dist/) in a folder of its own with config/ and nothing installed.
 * The generated test passes; an edit that makes the plugin refuse makes the run fail.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';

const BIN = fileURLToPath(new URL('../../bin/qpsmtpd', import.meta.url));
if (!existsSync(fileURLToPath(new URL('../../dist/src/cli.js', import.meta.url)))) throw new Error('dist/ is missing: run `npm run build` first');

const site = mkdtempSync(join(tmpdir(), 'qpsmtpd-site-'));
mkdirSync(join(site, 'config'));
after(() => rmSync(site, { recursive: true, force: true }));

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** bin/qpsmtpd in `cwd`, with an environment like a user's shell (not a test runner's). */
function qpsmtpd(args: readonly string[], cwd = site): Promise<Run> {
  const env: Record<string, string | undefined> = { ...process.env, NODE_TEST_CONTEXT: undefined, QPSMTPD_CONFIG: undefined, NODE_OPTIONS: undefined };
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill(), 60_000);
  return new Promise((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('new-plugin and test, from a folder outside the project', () => {
  const plugin = join(site, 'plugins', 'hello_check.ts');
  const testFile = join(site, 'plugins', 'hello_check.test.ts');

  test('new-plugin writes the plugin and its test into plugins/ beside the config directory', async () => {
    const r = await qpsmtpd(['new-plugin', 'hello_check', '--hook', 'rcpt', '--hook', 'data_post']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'wrote plugins/hello_check.ts (hooks: rcpt, data_post)\nwrote plugins/hello_check.test.ts\nRun its test with: qpsmtpd test plugins/hello_check.test.ts\n');
    assert.ok(existsSync(plugin) && existsSync(testFile));
  });

  test('qpsmtpd test runs the generated test, and it passes', async () => {
    const r = await qpsmtpd(['test']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /✔ hello_check lets an ordinary message through/);
    assert.match(r.stdout, /pass 1\b/);
  });

  test('after an edit that makes the plugin refuse every recipient, the run fails', async () => {
    const source = readFileSync(plugin, 'utf8');
    const edited = source
      .replace("import { Plugin, DECLINED, LOGDEBUG } from 'qpsmtpd';", "import { Plugin, DECLINED, DENY, LOGDEBUG } from 'qpsmtpd';")
      .replace(/(hook_rcpt\([^)]*\) \{\n\s+)return DECLINED;/, "$1return [DENY, 'not today'];");
    assert.notEqual(edited, source);
    writeFileSync(plugin, edited);
    const r = await qpsmtpd(['test', 'plugins/hello_check.test.ts']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /✖ hello_check lets an ordinary message through/);
    assert.match(r.stdout, /550 5\.7\.1 not today/);
  });

  test('new-plugin never overwrites: exit 73', async () => {
    const before = readFileSync(plugin, 'utf8');
    const r = await qpsmtpd(['new-plugin', 'hello_check']);
    assert.equal(r.code, 73);
    assert.match(r.stderr, /^qpsmtpd new-plugin: .*hello_check\.ts exists already; nothing was written/);
    assert.equal(readFileSync(plugin, 'utf8'), before);
  });

  test('--dir and --config choose the folder; a .js test runs too', async () => {
    const other = join(site, 'elsewhere');
    const r = await qpsmtpd(['new-plugin', 'queue/note_it', '--hook', 'queue', '--dir', other]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(other, 'queue', 'note_it.ts')));
    writeFileSync(
      join(other, 'plain.test.mjs'),
      "import { test } from 'node:test';\nimport assert from 'node:assert/strict';\nimport { testServer } from 'qpsmtpd/testing';\n" +
        "test('js', async () => { const s = await testServer({ plugins: ['queue/note_it'], pluginDirs: [new URL('.', import.meta.url).pathname] }); await s.close(); assert.ok(true); });\n",
    );
    const run = await qpsmtpd(['test', 'elsewhere']);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /pass 2\b/);

    const configured = join(site, 'srv');
    mkdirSync(join(configured, 'etc'), { recursive: true });
    const viaConfig = await qpsmtpd(['new-plugin', 'site_rule', '--config', join(configured, 'etc')]);
    assert.equal(viaConfig.code, 0, viaConfig.stderr);
    assert.ok(existsSync(join(configured, 'plugins', 'site_rule.ts')));
  });

  test('usage errors: an unknown hook (64), --hook without new-plugin (64), nothing to test (1), a missing file (66)', async () => {
    const hook = await qpsmtpd(['new-plugin', 'x', '--hook', 'rcpt_to']);
    assert.equal(hook.code, 64);
    assert.match(hook.stderr, /unknown hook "rcpt_to"/);
    const stray = await qpsmtpd(['check', '--hook', 'rcpt']);
    assert.equal(stray.code, 64);
    assert.match(stray.stderr, /--hook and --dir belong to the new-plugin command/);
    const empty = mkdtempSync(join(tmpdir(), 'qpsmtpd-empty-'));
    try {
      const none = await qpsmtpd(['test', '.'], empty);
      assert.equal(none.code, 1);
      assert.match(none.stderr, /no test files/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
    const missing = await qpsmtpd(['test', 'nope.test.ts']);
    assert.equal(missing.code, 66);
    assert.match(missing.stderr, /nope\.test\.ts: no such file or folder/);
  });

  test('--help lists both commands', async () => {
    const r = await qpsmtpd(['--help']);
    assert.match(r.stdout, /^ {2}qpsmtpd new-plugin NAME \[--hook HOOK \.\.\.\] \[--dir DIR\] \[--config DIR\]$/m);
    assert.match(r.stdout, /^ {2}qpsmtpd test \[--config DIR\] \[FILE\|DIR \.\.\.\]$/m);
  });
});
