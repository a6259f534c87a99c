/**
 * `qpsmtpd new-plugin NAME [--hook HOOK ...] [--dir DIR]`: a typed plugin file with one method per
 * hook (its arguments typed as the hook map says, a comment saying what each result does) and a
 * test for it that runs it through SMTP sessions with qpsmtpd/testing. Nothing is overwritten.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { HOOK_NAMES, toHookName, type HookName } from '../hooks/hook-map.ts';
import { describeResults } from './hook-docs.ts';
import { HOOK_SIGNATURES, type HookSignature } from './hook-signatures.ts';

/** A usage problem (bad name, unknown hook): exit 64. */
export class ScaffoldUsageError extends Error {}
/** A file is there already: exit 73, nothing written. */
export class ScaffoldExistsError extends Error {}

export interface NewPluginOptions {
  /** The plugin's name as config/plugins will list it: `my_check`, `queue/my_queue`. */
  readonly name: string;
  /** Hook names (`rcpt`, `pre-connection`, `pre_connection`, `auth-plain` ...); none: `rcpt`. */
  readonly hooks: readonly string[];
  /** The plugin folder to write into. */
  readonly dir: string;
}

export interface NewPluginResult {
  readonly pluginFile: string;
  readonly testFile: string;
  readonly hooks: readonly HookName[];
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.\-]*(?:\/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*$/;

/** The types that the hook arguments name and `qpsmtpd` exports. */
const API_TYPES = ['Address', 'EsmtpParams', 'PreConnectionInfo', 'LogLevel', 'Code', 'Message'];

export function newPlugin(options: NewPluginOptions): NewPluginResult {
  const name = options.name.replace(/\.(ts|js|mjs)$/, '');
  if (!NAME.test(name) || name.split('/').some((part) => part === '..' || part === '.')) {
    throw new ScaffoldUsageError(`invalid plugin name "${options.name}": letters, digits, _ - . and / only (e.g. my_check, queue/my_queue)`);
  }
  const hooks = resolveHooks(options.hooks.length > 0 ? options.hooks : ['rcpt']);
  const pluginFile = join(options.dir, `${name}.ts`);
  const testFile = join(options.dir, `${name}.test.ts`);
  for (const file of [pluginFile, testFile]) {
    if (existsSync(file)) throw new ScaffoldExistsError(`${file} exists already; nothing was written (remove it, or choose another name)`);
  }
  const depth = name.split('/').length - 1;
  mkdirSync(dirname(pluginFile), { recursive: true });
  writeFileSync(pluginFile, renderPlugin(name, hooks), { flag: 'wx' });
  writeFileSync(testFile, renderTest(name, hooks, depth === 0 ? '.' : Array(depth).fill('..').join('/')), { flag: 'wx' });
  return { pluginFile, testFile, hooks };
}

function resolveHooks(names: readonly string[]): HookName[] {
  const out: HookName[] = [];
  for (const given of names) {
    for (const word of given.split(',').map((w) => w.trim()).filter((w) => w !== '')) {
      const hook = toHookName(word.replace(/^hook_/, ''));
      if (hook === undefined) throw new ScaffoldUsageError(`unknown hook "${word}"; the hooks are: ${HOOK_NAMES.join(', ')}`);
      if (!out.includes(hook)) out.push(hook);
    }
  }
  return out;
}

function signatureOf(hook: HookName): HookSignature {
  const signature = HOOK_SIGNATURES.find((s) => s.hook === hook);
  if (signature === undefined) throw new Error(`no signature for hook ${hook}: run npm run docs`);
  return signature;
}

/** `my_check` to `MyCheck`, `queue/pipe-it` to `PipeIt`. */
export function className(name: string): string {
  const base = name.split('/').pop()!;
  const words = base.split(/[^A-Za-z0-9]+/).filter((w) => w !== '');
  const joined = words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
  return /^[A-Za-z]/.test(joined) ? joined : `Plugin${joined}`;
}

function parameterList(signature: HookSignature): string {
  const params = signature.params.map((p) => (p.rest ? `...${p.name}: ${p.type}[]` : `${p.name}: ${p.type}`));
  return ['tx: Transaction', ...params].join(', ');
}

/** The comment over a hook method: when it runs and what each result does. */
function hookComment(signature: HookSignature): string[] {
  const lines = [`${signature.hook}: ${signature.when}`, 'Results:'];
  for (const line of describeResults(signature)) lines.push(`  ${line.replace(/`/g, '')}`);
  if (signature.sync) lines.push('Called synchronously: return the result, not a Promise.');
  else lines.push('May be async. Return a code, or [code, message] for a reply text of your own; nothing means DECLINED.');
  return ['  /**', ...lines.map((l) => `   * ${l}`.trimEnd()), '   */'];
}

export function renderPlugin(name: string, hooks: readonly HookName[]): string {
  const signatures = hooks.map(signatureOf);
  const used = new Set<string>(['PluginHost', 'Transaction']);
  for (const s of signatures) for (const p of s.params) for (const t of API_TYPES) if (new RegExp(`\\b${t}\\b`).test(p.type)) used.add(t);
  const methods = signatures.map((s) => [...hookComment(s), `  ${s.method}(${parameterList(s)}) {`, '    return DECLINED;', '  }'].join('\n'));
  return `/**
 * ${name}: TODO say what it does.
 *
 * config/plugins:  ${name} [ARGUMENTS]
 * Hooks: ${hooks.join(', ')}
 *
 * Written by \`qpsmtpd new-plugin\`. Every hook, its arguments and what each result does are in
 * qpsmtpd's docs/plugins.md; test it with \`qpsmtpd test\` (${name}.test.ts beside this file).
 */
import { Plugin, DECLINED, LOGDEBUG } from 'qpsmtpd';
import type { ${[...used].sort().join(', ')} } from 'qpsmtpd';

export default class ${className(name)} extends Plugin {
  /** Runs once when the plugin loads, with the words after its name in config/plugins. */
  register(_qp: PluginHost, ...args: string[]): void {
    this.log(LOGDEBUG, 'arguments:', args.join(' ') || '(none)');
  }

${methods.join('\n\n')}
}
`;
}

export function renderTest(name: string, hooks: readonly HookName[], pluginDir: string): string {
  const queues = hooks.includes('queue');
  const expectation = queues
    ? `  // A queue plugin that declines leaves the message unqueued: 451. Once hook_queue hands the
  // message on and answers OK, expect 250 here.
  assert.equal(result.code, 451, result.raw);`
    : `  assert.equal(result.code, 250, result.raw);
  assert.ok(result.queued, 'the message reached the queue');
  assert.equal(result.queued.recipients[0], 'rcpt@example.test');`;
  return `/**
 * Tests of the ${name} plugin: SMTP sessions in this process, no socket (qpsmtpd/testing).
 * Run them with \`qpsmtpd test\` (all tests in the plugin folder) or \`qpsmtpd test ${name}.test.ts\`.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildMessage, testServer, type TestServer } from 'qpsmtpd/testing';

/** The plugin folder, where the test server finds ${name}. */
const PLUGIN_DIR = fileURLToPath(new URL('${pluginDir}/', import.meta.url));

let server: TestServer;
before(async () => {
  server = await testServer({
    plugins: ['${name}'],
    pluginDirs: [PLUGIN_DIR],
    // Recipients no plugin decided on are accepted (a stand-in for rcpt_ok)${queues ? '' : ', and messages go to\n    // the kit\'s capturing queue (server.queued, result.queued)'}.
    acceptAllRecipients: true,
  });
});
after(async () => {
  await server?.close();
});

test('${name} lets an ordinary message through', async () => {
  const session = await server.connect({ remoteIp: '192.0.2.10' });
  assert.equal(session.greeting?.code, 220);
  const result = await session.sendMail('sender@example.org', ['rcpt@example.test'], buildMessage({ subject: 'hello' }));
${expectation}
  assert.equal((await session.quit()).code, 221);
});

// Once ${name} refuses something, test that too, e.g.:
// test('${name} refuses ...', async () => {
//   const session = await server.connect({ remoteIp: '198.51.100.1', relayClient: false });
//   const result = await session.sendMail('someone@bad.example', ['rcpt@example.test'], buildMessage());
//   assert.equal(result.step, 'rcpt');
//   assert.equal(result.code, 550);
//   assert.equal(result.text, 'your reply text');
//   assert.ok(server.logged('your log line', '${name}').length > 0);
// });
`;
}

/** Where the files went, for the command's output. */
export function describeNewPlugin(result: NewPluginResult, cwd: string): string {
  const show = (f: string): string => {
    const r = relative(cwd, f);
    return r.startsWith('..') ? f : r;
  };
  return [
    `wrote ${show(result.pluginFile)} (hooks: ${result.hooks.join(', ')})`,
    `wrote ${show(result.testFile)}`,
    `Run its test with: qpsmtpd test ${show(result.testFile)}`,
    '',
  ].join('\n');
}
