/**
 * `qpsmtpd check --config DIR` and the same loading at start-up, as a process: the hook table on
 * success; on every kind of broken config a non-zero exit and a message naming the file and line
 * (never a bare stack trace).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ACCEPT_ALL_JS, DENY_RCPT_JS, cleanupAll, makeRoot, runCli, type CliResult, type RootOptions } from '../helpers/daemon.ts';

after(cleanupAll);

const IMPORT_PLUGIN = `import { Plugin } from 'qpsmtpd';`;

/** Plugin sources for the broken cases. */
const BROKEN: Record<string, string> = {
  'syntax_ts.ts': `${IMPORT_PLUGIN}\nconst ok: number = 1;\nexport default class Broken extends Plugin {\n  hook_rcpt() { return ok +; }\n}\n`,
  'syntax_js.js': `${IMPORT_PLUGIN}\nconst ok = 1;\nexport default class Broken extends Plugin {\n  hook_rcpt() { return ok +; }\n}\n`,
  'typo_hook.js': `${IMPORT_PLUGIN}\nexport default class Typo extends Plugin {\n  hook_rpct() { return 900; }\n}\n`,
  'register_throws.ts': `${IMPORT_PLUGIN}\nexport default class Thrower extends Plugin {\n  register() {\n    throw new Error('cannot open the frobnicator');\n  }\n}\n`,
  'no_default.js': `${IMPORT_PLUGIN}\nexport class NotDefault extends Plugin {}\n`,
  'not_a_plugin.js': `export default class JustAClass {\n  hook_rcpt() {}\n}\n`,
};

interface Checked extends CliResult {
  readonly root: string;
  readonly pluginsFile: string;
}

async function check(plugins: readonly string[] | undefined, extra: RootOptions = {}, args: readonly string[] = []): Promise<Checked> {
  const root = makeRoot({
    ...extra,
    config: { ...(plugins ? { plugins } : {}), ...extra.config },
    plugins: { ...BROKEN, 'deny_rcpt.js': DENY_RCPT_JS, 'accept_all.js': ACCEPT_ALL_JS, ...extra.plugins },
  });
  const result = await runCli(args.length > 0 ? ['--config', join(root, 'config'), ...args] : ['check', '--config', join(root, 'config')]);
  return { ...result, root, pluginsFile: join(root, 'config', 'plugins') };
}

/** The failure shape every broken config must have. */
function assertFailure(r: Checked, ...expected: (string | RegExp)[]): void {
  assert.notEqual(r.code, 0, `exit code; stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  assert.equal(r.signal, null);
  assert.doesNotMatch(r.stdout, /: OK$/m, 'no success report');
  for (const e of expected) {
    if (typeof e === 'string') assert.ok(r.stderr.includes(e), `stderr should contain ${JSON.stringify(e)}:\n${r.stderr}`);
    else assert.match(r.stderr, e);
  }
  // A readable report, not an uncaught exception.
  assert.match(r.stderr, /^qpsmtpd: cannot load the configuration:/m);
  assert.doesNotMatch(r.stderr, /^\s+at .*\(?(node:internal|file:|\/)/m, `a stack trace in:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^Node\.js v\d+/m);
}

describe('qpsmtpd check: a good config', { concurrency: 3 }, () => {
  test('prints each hook with its plugins in config order and exits 0', async () => {
    const r = await check(['relay only 1', 'deny_rcpt:0 first', 'accept_all', 'deny_rcpt:1 second', 'rcpt_ok', 'queue/maildir var/maildir']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[0], `config ${join(r.root, 'config')}: OK`);
    assert.deepEqual(lines.slice(1), [
      'connect: relay',
      'rcpt: relay, deny_rcpt:0, accept_all, deny_rcpt:1, rcpt_ok',
      'queue: queue/maildir',
    ]);
  });

  test('without --config, QPSMTPD_CONFIG names the directory', async () => {
    const root = makeRoot({ config: { plugins: ['relay', 'rcpt_ok'] } });
    const r = await runCli(['check'], { env: { QPSMTPD_CONFIG: join(root, 'config') } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `config ${join(root, 'config')}: OK\nconnect: relay\nrcpt: rcpt_ok\n`);
  });

  test('the shipped config passes', async () => {
    const r = await check(undefined, { shipped: true });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^connect: relay$/m);
    assert.match(r.stdout, /^rcpt: rcpt_ok$/m);
    assert.match(r.stdout, /^queue: queue\/maildir$/m);
  });

  test('old qpsmtpd names load the plugin that replaced them', async () => {
    const r = await check(['check_relay', 'check_norelay', 'relay_only only 1', 'rcpt_ok', 'queue/maildir var/maildir']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^connect: check_relay, check_norelay, relay_only$/m);
    assert.match(r.stdout, /^rcpt: relay_only, rcpt_ok$/m);
  });

  test('require_resolvable_fromhost loads resolvable_fromhost, listed under its own name', async () => {
    const r = await check(['check_relay', 'require_resolvable_fromhost reject_type perm', 'rcpt_ok']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^mail: require_resolvable_fromhost$/m);
  });
});

describe('qpsmtpd check: errors name the file and line', { concurrency: 3 }, () => {
  test('an invalid plugin line', async () => {
    const r = await check(['relay', 'rcpt_ok', 'bad$name arg']);
    assertFailure(r, `${r.pluginsFile}:3: plugin "bad$name": invalid plugin name`);
  });

  test('a plugin that climbs out of the plugin folders', async () => {
    const r = await check(['relay', '../../etc/passwd']);
    assertFailure(r, `${r.pluginsFile}:2:`, /invalid plugin name/);
  });

  test('the same plugin twice without instance numbers', async () => {
    const r = await check(['relay', 'rcpt_ok', 'relay']);
    assertFailure(r, `${r.pluginsFile}:3: plugin "relay": plugin "relay" is already loaded on line 1`);
  });

  test('a plugin that does not exist', async () => {
    const r = await check(['# comment line', 'relay', 'no_such_plugin 1 2']);
    assertFailure(r, `${r.pluginsFile}:3: plugin "no_such_plugin": not found: looked for no_such_plugin.ts, no_such_plugin.js, no_such_plugin.mjs`);
    assert.ok(r.stderr.includes(join(r.root, 'plugins')), 'names the folders searched');
  });

  test('a .ts plugin with a syntax error: the config line and the line in the plugin', async () => {
    const r = await check(['relay', 'syntax_ts']);
    const file = join(r.root, 'plugins', 'syntax_ts.ts');
    assertFailure(r, `${r.pluginsFile}:2: plugin "syntax_ts": cannot load ${file}`, /syntax_ts\.ts:4:\d+/);
    // One problem per line: the report stays one line per problem.
    assert.equal(r.stderr.trim().split('\n').length, 2, r.stderr);
  });

  test('a .js plugin with a syntax error: the config line and the line in the plugin', async () => {
    const r = await check(['relay', 'syntax_js']);
    const file = join(r.root, 'plugins', 'syntax_js.js');
    assertFailure(r, `${r.pluginsFile}:2: plugin "syntax_js": cannot load ${file}`, /SyntaxError/, /syntax_js\.js:4\b/);
    assert.equal(r.stderr.trim().split('\n').length, 2, r.stderr);
  });

  test('a .js plugin after a .ts plugin loads (module format of a folder without package.json)', async () => {
    const r = await check(['register_throws', 'typo_hook', 'deny_rcpt']);
    // Both fail for their own reasons, not because the TypeScript loader took over plain .js files.
    assertFailure(r, `${r.pluginsFile}:1: plugin "register_throws": register() failed`, `${r.pluginsFile}:2: plugin "typo_hook": unknown hook method hook_rpct()`);
    assert.doesNotMatch(r.stderr, /deny_rcpt|require\(\)|cycle/);
  });

  test('a hook method with an unknown hook name (hook_rpct)', async () => {
    const r = await check(['relay', 'typo_hook']);
    assertFailure(r, `${r.pluginsFile}:2: plugin "typo_hook": unknown hook method hook_rpct() in ${join(r.root, 'plugins', 'typo_hook.js')}`);
  });

  test('register() throws', async () => {
    const r = await check(['relay', 'rcpt_ok', 'register_throws']);
    assertFailure(r, `${r.pluginsFile}:3: plugin "register_throws": register() failed: cannot open the frobnicator`, /register_throws\.ts:4:\d+/);
  });

  test('a file without a default export', async () => {
    const r = await check(['no_default']);
    assertFailure(r, `${r.pluginsFile}:1: plugin "no_default": ${join(r.root, 'plugins', 'no_default.js')} must have a default export: a class that extends Plugin`);
  });

  test('a default export that is not a Plugin class', async () => {
    const r = await check(['relay', 'not_a_plugin']);
    assertFailure(r, `${r.pluginsFile}:2: plugin "not_a_plugin":`, /must have a default export: a class that extends Plugin/);
  });

  test('a bundled plugin given bad arguments (queue/maildir without a path)', async () => {
    const r = await check(['relay', 'rcpt_ok', 'queue/maildir']);
    assertFailure(r, `${r.pluginsFile}:3: plugin "queue/maildir": register() failed: the Maildir path is missing`);
  });

  test('no config/plugins', async () => {
    const r = await check(undefined);
    assertFailure(r, `${r.pluginsFile}:`, /no plugins configured/);
  });

  test('a config directory that does not exist', async () => {
    const r = await runCli(['check', '--config', '/nonexistent/qpsmtpd/config']);
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes('/nonexistent/qpsmtpd/config/plugins'), r.stderr);
    assert.doesNotMatch(r.stderr, /^\s+at /m);
  });

  test('every problem is reported, not only the first', async () => {
    const r = await check(['relay', 'no_such_plugin', 'typo_hook', 'rcpt_ok', 'no_default']);
    assertFailure(r, `${r.pluginsFile}:2:`, `${r.pluginsFile}:3:`, `${r.pluginsFile}:5:`);
    assert.doesNotMatch(r.stderr, new RegExp(`${r.pluginsFile}:[14]:`));
  });
});

describe('start-up with a broken config', { concurrency: 3 }, () => {
  const everything = ['relay', 'bad$name', 'no_such_plugin', 'syntax_ts', 'syntax_js', 'typo_hook', 'register_throws', 'no_default', 'not_a_plugin'];

  /** The problem lines (`  FILE:LINE: ...`) of a report. */
  const problems = (stderr: string): string[] => stderr.split('\n').filter((l) => /^ {2}\S+:\d+: /.test(l));

  test('exits non-zero with the same messages as check, without listening', async () => {
    const checked = await check(everything);
    assertFailure(checked);
    const root = checked.root;
    const started = await runCli(['--config', join(root, 'config'), '--listen', '127.0.0.1:0']);
    assertFailure({ ...started, root, pluginsFile: checked.pluginsFile });
    assert.doesNotMatch(started.stderr, /listening on/);
    assert.deepEqual(problems(started.stderr), problems(checked.stderr));
    assert.equal(problems(checked.stderr).length, everything.length - 1);
  });

  test('--stdio with a broken config exits non-zero with the message', async () => {
    const r = await check(['relay', 'typo_hook'], {}, ['--stdio']);
    assertFailure(r, `${r.pluginsFile}:2: plugin "typo_hook": unknown hook method hook_rpct()`);
  });

  test('--workers 3 with a broken config exits non-zero with the message, no restart loop, no crash of the primary', async () => {
    const r = await check(['relay', 'no_such_plugin'], {}, ['--listen', '127.0.0.1:0', '--workers', '3']);
    assert.notEqual(r.code, 0, r.stderr);
    assert.ok(r.stderr.includes(`${r.pluginsFile}:2: plugin "no_such_plugin": not found`), r.stderr);
    assert.match(r.stderr, /worker \d+ could not load the configuration: stopping/);
    // Several workers fail at once: telling a worker whose channel is already closed must not crash the primary.
    assert.doesNotMatch(r.stderr, /^\s+at |ERR_IPC_CHANNEL_CLOSED|^Node\.js v/m);
    assert.equal(r.code, 1);
  });
});
