/** The hook runner on its own: fake plugins, a fake session, no SMTP. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DECLINED, DENY, DENYSOFT, DONE, OK, type Code } from '../../src/hooks/codes.ts';
import { abortCall, beginCall, makeCallTarget, signalOf } from '../../src/hooks/call-target.ts';
import type { HookName } from '../../src/hooks/hook-map.ts';
import { HookRegistry, type HookEntry, type PluginRecord } from '../../src/hooks/registry.ts';
import { FAULT, HookRunner, type HookCallContext } from '../../src/hooks/runner.ts';
import { Transaction } from '../../src/session/transaction.ts';
import type { LogLevel } from '../../src/log/levels.ts';

type Fn = (this: object, ...args: never[]) => unknown;

function plugin(name: string, index: number, timeoutMs = 1000): PluginRecord {
  return { name, index, instance: { name }, timeoutMs };
}

function registry(entries: [PluginRecord, HookName, Fn, boolean?][]): HookRegistry {
  const plugins = [...new Set(entries.map((e) => e[0]))];
  return new HookRegistry(
    plugins,
    entries.map(([p, hook, fn, first]): HookEntry & { first?: boolean } => ({ plugin: p, hook, fn: fn as HookEntry['fn'], first: first ?? false })),
  );
}

class Ctx implements HookCallContext {
  readonly transaction = new Transaction('t.1', () => ({ threshold: 0, spoolDir: '/tmp', spoolName: () => 'x' }));
  readonly logs: { level: LogLevel; hook: string; plugin: string; message: string }[] = [];
  readonly results: { plugin: string; hook: HookName; code: Code }[] = [];
  private readonly views = new Map<object, object>();
  callTarget(p: PluginRecord, hook: HookName): object {
    let view = this.views.get(p.instance);
    if (!view) this.views.set(p.instance, (view = makeCallTarget(p.instance, this)));
    beginCall(view, hook);
    return view;
  }
  abortCall(target: object): void {
    abortCall(target);
  }
  recordResult(p: PluginRecord, hook: HookName, code: Code): void {
    this.results.push({ plugin: p.name, hook, code });
  }
  report(level: LogLevel, hook: string, plugin: string, message: string): void {
    this.logs.push({ level, hook, plugin, message });
  }
}

test('plugins run in order until the first answer that is not DECLINED', async () => {
  const calls: string[] = [];
  const a = plugin('a', 0);
  const b = plugin('b', 1);
  const c = plugin('c', 2);
  const runner = new HookRunner(
    registry([
      [a, 'rcpt', () => (calls.push('a'), DECLINED)],
      [b, 'rcpt', () => (calls.push('b'), [DENY, 'go away'])],
      [c, 'rcpt', () => (calls.push('c'), OK)],
    ]),
  );
  const outcome = await runner.run('rcpt', new Ctx(), [undefined as never, {}]);
  assert.deepEqual(calls, ['a', 'b']);
  assert.equal(outcome.code, DENY);
  assert.deepEqual(outcome.message, ['go away']);
  assert.equal(outcome.plugin, 'b');
});

test('undefined is DECLINED; [code, line, line] and [code, [lines]] are multi-line messages', async () => {
  const p = plugin('p', 0);
  const q = plugin('q', 1);
  const ctx = new Ctx();
  assert.equal((await new HookRunner(registry([[p, 'noop', () => undefined]])).run('noop', ctx, [])).code, DECLINED);
  const two = await new HookRunner(registry([[q, 'noop', () => [DENY, 'one', 'two']]])).run('noop', ctx, []);
  assert.deepEqual(two.message, ['one', 'two']);
  const arr = await new HookRunner(registry([[q, 'noop', async () => [OK, ['x', 'y']]]])).run('noop', ctx, []);
  assert.deepEqual(arr.message, ['x', 'y']);
});

test('registerHook first: true puts a plugin in front', async () => {
  const calls: string[] = [];
  const a = plugin('a', 0);
  const b = plugin('b', 1);
  const runner = new HookRunner(
    registry([
      [a, 'noop', () => void calls.push('a')],
      [b, 'noop', () => void calls.push('b'), true],
    ]),
  );
  await runner.run('noop', new Ctx(), []);
  assert.deepEqual(calls, ['b', 'a']);
});

test('a throw or a non-code is a FAULT logged at LOGCRIT; on ignored hooks the chain goes on', async () => {
  const ctx = new Ctx();
  const bad = plugin('bad', 0);
  const good = plugin('good', 1);
  const thrower = new HookRunner(
    registry([
      [bad, 'mail', () => {
        throw new Error('kaputt');
      }],
      [good, 'mail', () => OK],
    ]),
  );
  const outcome = await thrower.run('mail', ctx, [undefined as never, {}]);
  assert.equal(outcome.code, FAULT);
  assert.equal(ctx.logs[0]?.level, 2);
  assert.match(ctx.logs[0]!.message, /FATAL PLUGIN ERROR \[bad\].*kaputt/s);

  const ran: string[] = [];
  const ignored = new HookRunner(
    registry([
      [bad, 'disconnect', () => 'nonsense'],
      [good, 'disconnect', () => void ran.push('good')],
    ]),
  );
  assert.equal((await ignored.run('disconnect', ctx, [])).code, DECLINED);
  assert.deepEqual(ran, ['good']);
});

test('a slow plugin times out: DENYSOFT "plugin timeout", its signal fires, its late answer is ignored', async () => {
  const ctx = new Ctx();
  const slow = plugin('slow', 0, 50);
  let signal: AbortSignal | undefined;
  const runner = new HookRunner(
    registry([
      [slow, 'rcpt', function (this: object) {
        signal = signalOf(this);
        return new Promise((resolve) => setTimeout(() => resolve(OK), 300));
      }],
    ]),
  );
  const outcome = await runner.run('rcpt', ctx, [undefined as never, {}]);
  assert.equal(outcome.code, DENYSOFT);
  assert.deepEqual(outcome.message, ['plugin timeout']);
  assert.equal(outcome.timedOut, true);
  assert.equal(signal?.aborted, true);
  assert.ok(ctx.logs.some((l) => /timed out after 50 ms/.test(l.message)));
});

test('deny observers run after denials, ok observers after anything else, DECLINED included', async () => {
  const seen: unknown[][] = [];
  const a = plugin('a', 0);
  const b = plugin('b', 1);
  const watcher = plugin('watcher', 2);
  const runner = new HookRunner(
    registry([
      [a, 'rcpt', () => DECLINED],
      [b, 'rcpt', () => [DENYSOFT, 'later']],
      [watcher, 'deny', (...args: never[]) => void seen.push(['deny', ...(args as unknown[]).slice(1)])],
      [watcher, 'ok', (...args: never[]) => void seen.push(['ok', ...(args as unknown[]).slice(1)])],
    ]),
  );
  await runner.run('rcpt', new Ctx(), [undefined as never, {}]);
  assert.deepEqual(seen, [
    ['ok', 'a', DECLINED, ''],
    ['deny', 'b', DENYSOFT, 'later'],
  ]);
});

test('every result is recorded for other plugins', async () => {
  const ctx = new Ctx();
  const a = plugin('a', 0);
  const b = plugin('b', 1);
  await new HookRunner(
    registry([
      [a, 'data', () => DECLINED],
      [b, 'data', () => DONE],
    ]),
  ).run('data', ctx, []);
  assert.deepEqual(ctx.results, [
    { plugin: 'a', hook: 'data', code: DECLINED },
    { plugin: 'b', hook: 'data', code: DONE },
  ]);
});

test('synchronous hooks: a promise there is an error and the plugin is skipped', () => {
  const ctx = new Ctx();
  const asyncOne = plugin('async', 0);
  const syncOne = plugin('sync', 1);
  const runner = new HookRunner(
    registry([
      [asyncOne, 'config', async () => [OK, 'from async']],
      [syncOne, 'config', () => [OK, ['x', 'y']]],
    ]),
  );
  const outcome = runner.runSync('config', ctx, ['whatever']);
  assert.equal(outcome.code, OK);
  assert.deepEqual(outcome.payload, ['x', 'y']);
  assert.ok(ctx.logs.some((l) => l.plugin === 'async' && /promise/.test(l.message)));
});

test('a hook without plugins is DECLINED at once, without a promise of its own work', async () => {
  const runner = new HookRunner(HookRegistry.empty());
  const outcome = await runner.run('connect', new Ctx(), []);
  assert.equal(outcome.code, DECLINED);
  assert.equal(runner.has('connect'), false);
});
