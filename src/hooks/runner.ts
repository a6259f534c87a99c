/**
 * Running a hook: the plugins on it in order until one answers something other than DECLINED.
 *
 * - A plugin that throws, or returns something that is not a code, is logged at LOGCRIT and the
 *   hook ends in FAULT, which the reply table answers with a temporary failure; on hooks whose
 *   result is ignored the chain simply goes on.
 * - An async call is raced against the plugin's time limit; on expiry its AbortSignal fires, its
 *   late answer is ignored and the hook ends in DENYSOFT "plugin timeout".
 * - After every call the `deny` or `ok` observers run, and the result is recorded for other plugins.
 * - A synchronous plugin costs no promise, timer or allocation beyond its own call.
 *
 * The runner knows nothing of SMTP replies: the session hands the outcome to the reply table.
 */
import { DECLINED, DENYSOFT, codeName, isCode, isDenial, type Code } from './codes.ts';
import type { HookArgs, HookName, SyncHookName } from './hook-map.ts';
import type { HookEntry, HookRegistry, PluginRecord } from './registry.ts';
import type { Transaction } from '../session/transaction.ts';
import { LOGCRIT, LOGERROR, type LogLevel } from '../log/levels.ts';

/** The outcome of a hook whose plugin failed (threw or answered nonsense). */
export const FAULT = -1 as const;
export type OutcomeCode = Code | typeof FAULT;

export interface HookOutcome {
  readonly code: OutcomeCode;
  /** Reply lines the plugin gave, if any. */
  readonly message?: readonly string[];
  /** What a parse, `_pre`, or config hook returned after its code. */
  readonly payload?: unknown;
  /** The plugin that decided. */
  readonly plugin?: string;
  /** True when the outcome is a time-out. */
  readonly timedOut?: boolean;
}

export const DECLINED_OUTCOME: HookOutcome = Object.freeze({ code: DECLINED });

/** What the runner needs from the session it runs in. */
export interface HookCallContext {
  readonly transaction: Transaction;
  /** The `this` of a plugin's hook call in this session, prepared for `hook`. */
  callTarget(plugin: PluginRecord, hook: HookName): object;
  /** Tell a plugin whose call timed out to stop (fires its AbortSignal). */
  abortCall(target: object): void;
  /** Keep a plugin's result where other plugins can read it. */
  recordResult(plugin: PluginRecord, hook: HookName, code: Code, message: readonly string[] | undefined): void;
  /** Log a line about a plugin (its failures, its time-outs). */
  report(level: LogLevel, hook: string, plugin: string, message: string): void;
}

/** Hooks whose results make no reply: a failing plugin there is logged and the chain goes on. */
const RESULT_IGNORED: ReadonlySet<HookName> = new Set<HookName>([
  'logging',
  'deny',
  'ok',
  'reset_transaction',
  'disconnect',
  'post-connection',
  'queue_post',
]);

/** Hooks that never trigger the deny/ok observers: the observers themselves and the hot sync hooks. */
const NOT_OBSERVED: ReadonlySet<HookName> = new Set<HookName>(['deny', 'ok', 'logging', 'config', 'user_config']);

/** Hooks whose `[code, x]` carries a value rather than a reply message. */
const PAYLOAD_HOOKS: ReadonlySet<HookName> = new Set<HookName>([
  'helo_parse',
  'ehlo_parse',
  'mail_parse',
  'rcpt_parse',
  'auth_parse',
  'mail_pre',
  'rcpt_pre',
  'config',
  'user_config',
]);

type Normalized = { code: Code; message?: string[]; payload?: unknown; plugin: string };

class Failure {
  constructor(readonly reason: string) {}
}
const TIMED_OUT = Symbol('timed out');

export class HookRunner {
  private readonly observed: boolean;

  constructor(readonly registry: HookRegistry) {
    this.observed = registry.has('deny') || registry.has('ok');
  }

  has(hook: HookName): boolean {
    return this.registry.has(hook);
  }

  /** Run an (async-capable) hook to its outcome. */
  async run<H extends HookName>(hook: H, ctx: HookCallContext, args: HookArgs[H]): Promise<HookOutcome> {
    const entries = this.registry.entries(hook);
    if (entries.length === 0) return DECLINED_OUTCOME;
    const observe = this.observed && !NOT_OBSERVED.has(hook);
    const callArgs = [ctx.transaction, ...args] as never[];
    for (const entry of entries) {
      const target = ctx.callTarget(entry.plugin, hook);
      let raw: unknown;
      try {
        raw = entry.fn.apply(target, callArgs);
        if (isThenable(raw)) raw = await this.settle(raw, entry, target, ctx);
      } catch (err) {
        raw = new Failure(describeError(err));
      }
      const outcome = this.interpret(hook, entry, raw, ctx);
      if (outcome === undefined) continue;
      if (observe && outcome.code !== FAULT) await this.notifyObservers(ctx, entry.plugin, outcome);
      if (outcome.code !== DECLINED) return outcome;
    }
    return DECLINED_OUTCOME;
  }

  /**
   * Run a synchronous hook (`config`, `user_config`, `logging`). A plugin that returns a promise
   * there is a plugin error: it is logged and skipped.
   */
  runSync<H extends SyncHookName>(hook: H, ctx: HookCallContext, args: HookArgs[H]): HookOutcome {
    const entries = this.registry.entries(hook);
    if (entries.length === 0) return DECLINED_OUTCOME;
    const callArgs = [ctx.transaction, ...args] as never[];
    for (const entry of entries) {
      const target = ctx.callTarget(entry.plugin, hook);
      let raw: unknown;
      try {
        raw = entry.fn.apply(target, callArgs);
        if (isThenable(raw)) {
          raw.then(undefined, () => undefined);
          raw = new Failure(`returned a promise from the synchronous ${hook} hook`);
        }
      } catch (err) {
        raw = new Failure(describeError(err));
      }
      const outcome = this.interpret(hook, entry, raw, ctx);
      if (outcome === undefined) continue;
      if (outcome.code === FAULT) continue;
      if (outcome.code !== DECLINED) return outcome;
    }
    return DECLINED_OUTCOME;
  }

  /** Turn what a plugin returned into an outcome; undefined means "skip this plugin". */
  private interpret(hook: HookName, entry: HookEntry, raw: unknown, ctx: HookCallContext): HookOutcome | undefined {
    const plugin = entry.plugin;
    if (raw === TIMED_OUT) {
      ctx.report(LOGCRIT, hook, plugin.name, `plugin timed out after ${plugin.timeoutMs} ms on ${hook}`);
      if (RESULT_IGNORED.has(hook)) return undefined;
      return { code: DENYSOFT, message: ['plugin timeout'], plugin: plugin.name, timedOut: true };
    }
    const normalized = raw instanceof Failure ? raw : normalize(hook, raw, plugin.name);
    if (normalized instanceof Failure) {
      // Logging plugins must not log their own failures through the logging hook.
      if (hook !== 'logging') ctx.report(LOGCRIT, hook, plugin.name, `FATAL PLUGIN ERROR [${plugin.name}] on ${hook}: ${normalized.reason}`);
      if (RESULT_IGNORED.has(hook) || hook === 'config' || hook === 'user_config') return undefined;
      return { code: FAULT, plugin: plugin.name };
    }
    if (!NOT_OBSERVED.has(hook)) ctx.recordResult(plugin, hook, normalized.code, normalized.message);
    return normalized;
  }

  private async notifyObservers(ctx: HookCallContext, plugin: PluginRecord, outcome: HookOutcome): Promise<void> {
    const observer = isDenial(outcome.code) ? 'deny' : 'ok';
    if (!this.registry.has(observer)) return;
    await this.run(observer, ctx, [plugin.name, outcome.code as Code, (outcome.message ?? []).join('\n')]);
  }

  /** Wait for a plugin's promise, at most its time limit. */
  private settle(promise: PromiseLike<unknown>, entry: HookEntry, target: object, ctx: HookCallContext): Promise<unknown> {
    return new Promise((resolve) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        ctx.abortCall(target);
        resolve(TIMED_OUT);
      }, entry.plugin.timeoutMs);
      promise.then(
        (value) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve(value);
        },
        (err: unknown) => {
          if (settled) {
            ctx.report(LOGERROR, entry.hook, entry.plugin.name, `failed after its time-out: ${describeError(err)}`);
            return;
          }
          settled = true;
          clearTimeout(timer);
          resolve(new Failure(describeError(err)));
        },
      );
    });
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function';
}

/** What a plugin returned, as an outcome naming the plugin (built once: this runs for every call). */
function normalize(hook: HookName, raw: unknown, plugin: string): Normalized | Failure {
  if (raw === undefined || raw === null) return { code: DECLINED, plugin };
  if (typeof raw === 'number') {
    return isCode(raw) ? { code: raw, plugin } : new Failure(`returned ${raw}, which is not a return code`);
  }
  if (Array.isArray(raw)) {
    const [code, ...rest] = raw as unknown[];
    if (!isCode(code)) return new Failure(`returned [${String(code)}, ...]: the first element is not a return code`);
    if (PAYLOAD_HOOKS.has(hook)) return { code, payload: rest.length > 1 ? rest : rest[0], plugin };
    const lines: string[] = [];
    for (const part of rest) {
      if (part === undefined || part === null) continue;
      if (typeof part === 'string') lines.push(part);
      else if (Array.isArray(part) && part.every((l) => typeof l === 'string')) lines.push(...(part as string[]));
      else return new Failure(`returned [${codeName(code)}, ...] with a message that is not a string`);
    }
    return lines.length > 0 ? { code, message: lines, plugin } : { code, plugin };
  }
  return new Failure(`returned ${typeof raw === 'string' ? JSON.stringify(raw) : typeof raw}, which is not a return code`);
}

function describeError(err: unknown): string {
  if (err instanceof Error) return err.stack ?? `${err.name}: ${err.message}`;
  return String(err);
}
