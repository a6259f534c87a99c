/** `qpsmtpd new-plugin`'s generator: typed methods from the hook map, comments from the reply table, no overwriting. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { HOOK_NAMES } from '../../src/hooks/hook-map.ts';
import { HOOK_SIGNATURES } from '../../src/testing/hook-signatures.ts';
import { ScaffoldExistsError, ScaffoldUsageError, className, newPlugin } from '../../src/testing/scaffold.ts';
import { testServer } from 'qpsmtpd/testing';

const PROJECT = fileURLToPath(new URL('../../', import.meta.url));
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'qpsmtpd-scaffold-'));
  dirs.push(d);
  return d;
}

describe('new-plugin files', () => {
  test('a plugin class with one typed method per hook, commented with what each result does, and its test', () => {
    const dir = tempDir();
    const result = newPlugin({ name: 'my_check', hooks: ['rcpt', 'pre_connection', 'hook_data_post'], dir });
    assert.deepEqual(result.hooks, ['rcpt', 'pre-connection', 'data_post']);
    assert.equal(result.pluginFile, join(dir, 'my_check.ts'));
    assert.equal(result.testFile, join(dir, 'my_check.test.ts'));
    const plugin = readFileSync(result.pluginFile, 'utf8');
    assert.match(plugin, /^export default class MyCheck extends Plugin \{$/m);
    assert.match(plugin, /^import type \{ Address, EsmtpParams, PluginHost, PreConnectionInfo, Transaction \} from 'qpsmtpd';$/m);
    assert.match(plugin, /^ {2}hook_rcpt\(tx: Transaction, recipient: Address, params: EsmtpParams\) \{$/m);
    assert.match(plugin, /^ {2}hook_pre_connection\(tx: Transaction, info: PreConnectionInfo\) \{$/m);
    assert.match(plugin, /^ {2}hook_data_post\(tx: Transaction\) \{$/m);
    assert.match(plugin, /^ {3}\* rcpt: Per recipient/m);
    assert.match(plugin, /^ {3}\* {3}DENY: 550 5\.7\.1 relaying denied$/m);
    assert.match(plugin, /^ {3}\* {3}DECLINED: 450 4\.7\.1 No plugin decided if relaying is allowed \(fixed text\)$/m);
    assert.match(plugin, /^ {3}\* {3}DENY: 552 5\.7\.1 Message denied, drops the transaction$/m);
    const testFile = readFileSync(result.testFile, 'utf8');
    assert.match(testFile, /from 'qpsmtpd\/testing';/);
    assert.match(testFile, /plugins: \['my_check'\]/);
    assert.match(testFile, /new URL\('\.\/', import\.meta\.url\)/);
  });

  test('no hook given: rcpt; a name with a folder; a queue plugin expects 451 until it queues', () => {
    const dir = tempDir();
    const plain = newPlugin({ name: 'plain', hooks: [], dir });
    assert.deepEqual(plain.hooks, ['rcpt']);
    const queue = newPlugin({ name: 'queue/to-the-moon', hooks: ['queue'], dir });
    assert.equal(queue.pluginFile, join(dir, 'queue', 'to-the-moon.ts'));
    assert.match(readFileSync(queue.pluginFile, 'utf8'), /class ToTheMoon extends Plugin/);
    const testFile = readFileSync(queue.testFile, 'utf8');
    assert.match(testFile, /new URL\('\.\.\/', import\.meta\.url\)/);
    assert.match(testFile, /plugins: \['queue\/to-the-moon'\]/);
    assert.match(testFile, /assert\.equal\(result\.code, 451/);
    assert.equal(className('9lives'), 'Plugin9lives');
  });

  test('refuses to overwrite either file, and writes nothing then', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'taken.test.ts'), '// mine\n');
    assert.throws(() => newPlugin({ name: 'taken', hooks: [], dir }), ScaffoldExistsError);
    assert.equal(existsSync(join(dir, 'taken.ts')), false);
    assert.equal(readFileSync(join(dir, 'taken.test.ts'), 'utf8'), '// mine\n');
    newPlugin({ name: 'again', hooks: [], dir });
    assert.throws(() => newPlugin({ name: 'again', hooks: ['mail'], dir }), /again\.ts exists already/);
  });

  test('unknown hooks and bad names are usage errors', () => {
    const dir = tempDir();
    assert.throws(() => newPlugin({ name: 'x', hooks: ['rcpt_to'], dir }), (err: Error) => err instanceof ScaffoldUsageError && /unknown hook "rcpt_to"; the hooks are: logging, config/.test(err.message));
    for (const name of ['../escape', 'a b', '', 'x:1']) assert.throws(() => newPlugin({ name, hooks: [], dir }), ScaffoldUsageError, name);
  });

  test('the signatures cover every hook of the hook map', () => {
    assert.deepEqual(
      HOOK_SIGNATURES.map((s) => s.hook),
      [...HOOK_NAMES],
    );
  });
});

describe('a plugin with every hook', () => {
  const dir = tempDir();
  const { pluginFile, testFile } = newPlugin({ name: 'everything', hooks: [...HOOK_NAMES], dir });

  test('type-checks, the plugin and its test, under strict settings', () => {
    writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          lib: ['ES2023'],
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noUncheckedIndexedAccess: true,
          noImplicitReturns: true,
          verbatimModuleSyntax: true,
          allowImportingTsExtensions: true,
          noEmit: true,
          skipLibCheck: true,
          types: ['node'],
          typeRoots: [join(PROJECT, 'node_modules', '@types')],
          paths: { qpsmtpd: [join(PROJECT, 'src', 'index.ts')], 'qpsmtpd/testing': [join(PROJECT, 'src', 'testing', 'index.ts')] },
        },
        files: [pluginFile, testFile],
      }),
    );
    const tsc = spawnSync(process.execPath, [join(PROJECT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.json')], { encoding: 'utf8' });
    assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
  });

  test('loads, and a session runs through all its hooks', async () => {
    const server = await testServer({ plugins: ['everything'], pluginDirs: [dir], acceptAllRecipients: true, config: { loglevel: 7 } });
    try {
      assert.equal(server.hooks().filter((h) => h.plugins.includes('everything')).length, HOOK_NAMES.length);
      const session = await server.connect();
      const result = await session.sendMail('a@example.org', ['b@example.test'], 'Subject: all\n\nhooks\n');
      assert.equal(result.code, 451, 'it serves queue and declines: the capturing queue stands back');
      assert.equal((await session.command('VRFY x')).code, 252);
      assert.equal((await session.command('NOOP')).code, 250);
      assert.equal((await session.quit()).code, 221);
    } finally {
      await server.close();
    }
  });
});
