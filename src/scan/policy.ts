/**
 * What the content-scanner plugins share besides the wire: their argument words, what a scanner
 * that failed becomes (a temporary failure or a pass, as configured), the X-Spam-* headers an
 * earlier server left, and what a virus verdict does to the transaction.
 */
import { DECLINED, DENY, DENYSOFT } from '../hooks/codes.ts';
import type { HookResult } from '../hooks/hook-map.ts';
import { LOGERROR, LOGINFO, LOGNOTICE } from '../log/levels.ts';
import type { Header } from '../message/header.ts';
import { adjustKarma } from '../plugins/policy.ts';
import type { Plugin } from '../plugins/plugin.ts';
import type { Transaction } from '../session/transaction.ts';
import { ScanError } from './socket-request.ts';

/** yes/no, 1/0, on/off, true/false (any case) as a boolean; anything else is a load error naming `key`. */
export function parseFlag(key: string, value: string): boolean {
  if (/^(yes|1|on|true)$/i.test(value)) return true;
  if (/^(no|0|off|false)$/i.test(value)) return false;
  throw new Error(`${key} "${value}": expected yes or no`);
}

/** The flag `key` from a plugin's argument pairs (`pairArguments`), or `fallback` when not given. */
export function flagArgument(pairs: ReadonlyMap<string, string>, key: string, fallback: boolean): boolean {
  const value = pairs.get(key);
  return value === undefined ? fallback : parseFlag(key, value);
}

/** One of `allowed` (any case) for `key` from a plugin's argument pairs, or `fallback`; else a load error. */
export function choiceArgument<T extends string>(pairs: ReadonlyMap<string, string>, key: string, allowed: readonly T[], fallback: T): T {
  const value = pairs.get(key)?.toLowerCase();
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) throw new Error(`${key} "${value}": expected ${allowed.join(' or ')}`);
  return value as T;
}

/** A number of seconds above zero (fractions allowed) as milliseconds; else a load error naming `key`. */
export function parseSeconds(key: string, value: string): number {
  if (!/^\d+(\.\d+)?$/.test(value) || Number(value) <= 0) throw new Error(`${key} "${value}": expected a number of seconds above 0`);
  return Math.round(Number(value) * 1000);
}

/** A whole number of at least 0 (`500_000` and `500000` alike); else a load error naming `key`. */
export function parseCount(key: string, value: string): number {
  const digits = value.replace(/_/g, '');
  if (!/^\d+$/.test(digits)) throw new Error(`${key} "${value}": expected a whole number`);
  return Number(digits);
}

/**
 * A scanner that could not give a verdict (down, silent, confused, or the message unreadable):
 * logged (LOGERROR), then a temporary failure `4.3.0 <text>` when `defer` is set — the client
 * keeps the message and retries — else a pass, noted in the log, so that mail keeps flowing
 * while the scanner is broken.
 */
export function scanFailure(plugin: Plugin, err: unknown, defer: boolean, text: string): HookResult {
  const reason = err instanceof ScanError || err instanceof Error ? err.message : String(err);
  if (defer) {
    plugin.log(LOGERROR, `error, ${reason}: deferring the message`);
    return [DENYSOFT, `4.3.0 ${text}`];
  }
  plugin.log(LOGERROR, `error, ${reason}: passing the message unscanned`);
  return DECLINED;
}

/** What to do with X-Spam-* fields the message already has (qpsmtpd's leave_old_headers). */
export type OldHeaders = 'drop' | 'rename' | 'keep';

export function parseOldHeaders(value: string): OldHeaders {
  const mode = value.toLowerCase();
  if (mode === 'drop' || mode === 'rename' || mode === 'keep') return mode;
  throw new Error(`leave_old_headers "${value}": expected drop, rename or keep`);
}

/**
 * Before adding `name`: drop the fields of that name the message has, or rename them (`X-Spam-Flag`
 * to `X-Old-Spam-Flag`, `Spam-Foo` to `Old-Spam-Foo`) so that nobody trusts another server's
 * verdict as ours, or keep them.
 */
export function clearOldHeader(header: Header, name: string, mode: OldHeaders): void {
  if (mode === 'keep' || header.count(name) === 0) return;
  if (mode === 'drop') header.delete(name);
  else header.rename(name, /^X-/i.test(name) ? `X-Old-${name.slice(2)}` : `Old-${name}`);
}

/** A virus scanner's verdict on a message. */
export type VirusVerdict = { readonly clean: true } | { readonly clean: false; readonly name: string };

/** The transaction note `virus` (the last scanner's verdict; a virus found is never overwritten by a clean one). */
export interface VirusNote {
  readonly scanner: string;
  readonly found: boolean;
  readonly name?: string;
}

export interface VirusVerdictOptions {
  /** Names the scanner in X-Virus-Checked (`ClamAV 1.4.6`). */
  readonly scanner: string;
  /** Refuse an infected message (552 `5.7.1 Virus found: NAME`); else mark it with headers. */
  readonly deny: boolean;
}

/**
 * What a verdict does, for every virus plugin alike. Clean: `X-Virus-Found: No` and
 * `X-Virus-Checked: by SCANNER on ME` on top. Infected: karma -1, then a refusal, or
 * `X-Virus-Found: Yes` and `X-Virus-Details: NAME` when the message is to be delivered marked.
 * Both set the transaction note `virus` (VirusNote).
 */
export function applyVirusVerdict(plugin: Plugin, tx: Transaction, verdict: VirusVerdict, options: VirusVerdictOptions): HookResult {
  const previous = tx.notes['virus'] as VirusNote | undefined;
  if (verdict.clean) {
    plugin.log(LOGINFO, 'pass, clean');
    if (previous?.found !== true) tx.notes['virus'] = { scanner: options.scanner, found: false } satisfies VirusNote;
    tx.header.add('X-Virus-Found', 'No', 0);
    tx.header.add('X-Virus-Checked', `by ${options.scanner} on ${plugin.config('me') ?? 'localhost'}`, 0);
    return DECLINED;
  }
  const name = verdict.name.replace(/[\r\n]+/g, ' ').trim() || 'unknown';
  tx.notes['virus'] = { scanner: options.scanner, found: true, name } satisfies VirusNote;
  adjustKarma(plugin, -1);
  if (options.deny) {
    plugin.log(LOGNOTICE, `fail, found virus ${name}`);
    return [DENY, `5.7.1 Virus found: ${name}`];
  }
  plugin.log(LOGNOTICE, `fail, tolerated, found virus ${name}: marked with X-Virus-Found`);
  tx.header.add('X-Virus-Found', 'Yes', 0);
  tx.header.add('X-Virus-Details', name, 0);
  return DECLINED;
}
