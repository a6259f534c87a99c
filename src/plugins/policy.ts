/**
 * The reject policy every bundled plugin that refuses clients shares (qpsmtpd's get_reject,
 * get_reject_type, store_deferred_reject and is_immune in lib/Qpsmtpd/Plugin.pm).
 *
 * The common plugin arguments (hooks.md):
 *   reject 0|1|naughty    0: only log (and note); naughty: note the rejection for the `naughty`
 *                         plugin, which rejects later at the hook it is told to; 1 (default): reject
 *   reject_type perm|temp|disconnect|temp_disconnect
 *                         perm (alias hard) -> DENY, temp (alias soft) -> DENYSOFT,
 *                         disconnect -> DENY_DISCONNECT, temp_disconnect -> DENYSOFT_DISCONNECT
 * and immunity: relay clients and whitelisted hosts or senders are never refused.
 *
 * The `naughty` convention: connection note `naughty` holds the reject message(s), each
 * `(<plugin name>) <message>`, several joined with CRLF; connection note `naughty_reject_type`
 * holds the reject_type word of the first plugin that stored one.
 *
 * Plain functions over a plugin (inside a hook: `this`); they log through the plugin.
 */
import { ConfigDir } from '../config/config-dir.ts';
import { DECLINED, DENY, DENYSOFT, DENYSOFT_DISCONNECT, DENY_DISCONNECT, DONE, OK, type Code } from '../hooks/codes.ts';
import { LOGDEBUG, LOGERROR, LOGINFO, LOGWARN } from '../log/levels.ts';
import { SETUP, type Plugin } from './plugin.ts';
import type { Address } from '../protocol/address.ts';

/** What `getReject` needs to know. */
export interface RejectArgs {
  /** The plugin that rejects (inside a hook: `this`). */
  readonly plugin: Plugin;
  /**
   * The plugin's `reject` argument: `0` (also `no`, `false`, `off`, empty, or `false`): tolerate;
   * `naughty`: defer to the naughty plugin; anything else, or undefined: reject.
   */
  readonly reject?: string | boolean | undefined;
  /** The plugin's `reject_type` argument (see `rejectCode`); undefined: perm. */
  readonly rejectType?: string | undefined;
  /** The reply text for the client. */
  readonly message?: string | undefined;
  /** Detail for the log line only. */
  readonly logMessage?: string | undefined;
}

/** A falsy `reject` value: qpsmtpd's Perl false (`0`, empty), plus the usual words for "no". */
const TOLERATE = /^(0|no|false|off)?$/i;

/**
 * qpsmtpd's get_reject: what a plugin returns when a client failed its check, following the
 * plugin's `reject` and `reject_type`. Tolerated and naughty both answer DECLINED (the session
 * goes on); naughty notes the message first.
 */
export function getReject(args: RejectArgs): Code | readonly [Code, string] {
  const { plugin } = args;
  const message = args.message !== undefined && args.message !== '' ? args.message : 'unspecified error';
  const detail = args.logMessage !== undefined && args.logMessage !== '' ? `, ${args.logMessage}` : '';
  const reject = args.reject;

  if (reject === false || (typeof reject === 'string' && TOLERATE.test(reject.trim()))) {
    plugin.log(LOGINFO, `fail, tolerated${detail}`);
    return DECLINED;
  }
  if (typeof reject === 'string' && reject.trim().toLowerCase() === 'naughty') {
    plugin.log(LOGINFO, `fail, NAUGHTY${detail}`);
    storeDeferredReject(plugin, `(${plugin.name}) ${message}`, args.rejectType);
    return DECLINED;
  }
  plugin.log(LOGINFO, `fail${detail}`);
  return [rejectCode(args.rejectType), message];
}

/**
 * qpsmtpd's get_reject_type: the code for a `reject_type` word (case-insensitive): perm or hard ->
 * DENY, temp or soft -> DENYSOFT, disconnect -> DENY_DISCONNECT, temp_disconnect ->
 * DENYSOFT_DISCONNECT; undefined or anything else -> `fallback` (DENY).
 */
export function rejectCode(type: string | undefined, fallback: Code = DENY): Code {
  switch (type?.trim().toLowerCase()) {
    case 'perm':
    case 'hard':
      return DENY;
    case 'temp':
    case 'soft':
      return DENYSOFT;
    case 'disconnect':
      return DENY_DISCONNECT;
    case 'temp_disconnect':
      return DENYSOFT_DISCONNECT;
    default:
      return fallback;
  }
}

/**
 * qpsmtpd's is_immune: true (and a `skip, ...` log line) for a relay client (plugins/relay,
 * AUTH), a host whitelisted by another plugin (connection note `whitelisthost`) or a sender
 * whitelisted for this transaction (transaction note `whitelistsender`). Only inside a hook.
 */
export function isImmune(plugin: Plugin): boolean {
  const qp = plugin.qp;
  if (qp.connection.relayClient) {
    plugin.log(LOGINFO, 'skip, relay client');
    return true;
  }
  if (truthy(qp.connection.notes['whitelisthost'])) {
    plugin.log(LOGINFO, 'skip, whitelisted host');
    return true;
  }
  if (truthy(qp.transaction.notes['whitelistsender'])) {
    plugin.log(LOGINFO, 'skip, whitelisted sender');
    return true;
  }
  return false;
}

/** Note the rejection for the naughty plugin (qpsmtpd's store_deferred_reject). */
function storeDeferredReject(plugin: Plugin, message: string, rejectType: string | undefined): void {
  const notes = plugin.qp.connection.notes;
  const previous = notes['naughty'];
  if (typeof previous !== 'string' || previous === '') {
    notes['naughty'] = message;
  } else if (!previous.split('\r\n').includes(message)) {
    // Several plugins (or one plugin at several hooks) may have something to say; once each.
    notes['naughty'] = `${previous}\r\n${message}`;
  }
  if (!truthy(notes['naughty_reject_type']) && rejectType !== undefined) notes['naughty_reject_type'] = rejectType;
}

/** Perl's idea of true for a note: set, and not 0, '' or '0'. */
function truthy(value: unknown): boolean {
  return value !== undefined && value !== null && value !== false && value !== 0 && value !== '' && value !== '0';
}

/**
 * qpsmtpd's adjust_karma: add `value` to the connection note `karma` (the karma plugin reads it at
 * the end of the session) and log it. Returns the new total. Only inside a hook.
 */
export function adjustKarma(plugin: Plugin, value: number): number {
  const notes = plugin.qp.connection.notes;
  const karma = (Number(notes['karma']) || 0) + value;
  notes['karma'] = karma;
  plugin.log(LOGINFO, `karma ${value} (${karma})`);
  return karma;
}

// ---- Sender and recipient lists (badmailfrom, badrcptto, rcpt_regexp, rcpt_map ...) ----------

/**
 * The sender as lists compare it, `user@host` and `host` lower-cased; undefined (logged at
 * LOGDEBUG as the reason to skip) for the null sender and for a sender without local part or
 * domain (`<postmaster>`), which sender lists never apply to.
 */
export function checkableSender(plugin: Plugin, sender: Address): { readonly from: string; readonly host: string } | undefined {
  if (sender.isNull) {
    plugin.log(LOGDEBUG, 'skip, null sender');
    return undefined;
  }
  if (sender.user === '' || sender.host === '') {
    plugin.log(LOGDEBUG, 'skip, missing user or host');
    return undefined;
  }
  const host = sender.host.toLowerCase();
  return { from: `${sender.user.toLowerCase()}@${host}`, host };
}

/**
 * `key value` pairs of a plugin's arguments (qpsmtpd's `$self->{_args} = {@_}`), keys lower-cased.
 * An odd number of words, or a `reject_type` that is no reject type, is an error (the plugin does
 * not load); a key not in `known` is logged and kept. `loglevel` is always known.
 */
export function pairArguments(plugin: Plugin, args: readonly string[], known: readonly string[]): Map<string, string> {
  if (args.length % 2 !== 0) {
    throw new Error(`${plugin.name}: arguments "${args.join(' ')}" are not "name value" pairs`);
  }
  const pairs = new Map<string, string>();
  for (let i = 0; i < args.length; i += 2) {
    const key = args[i]!.toLowerCase();
    const value = args[i + 1]!;
    if (key !== 'loglevel' && !known.includes(key)) plugin.log(LOGWARN, `ignoring unknown argument "${args[i]} ${value}"`);
    pairs.set(key, value);
  }
  const type = pairs.get('reject_type');
  if (type !== undefined && !/^(perm|hard|temp|soft|disconnect|temp_disconnect)$/i.test(type)) {
    throw new Error(`${plugin.name}: reject_type "${type}": expected perm, temp, disconnect or temp_disconnect`);
  }
  return pairs;
}

/**
 * A return code by its qpsmtpd name (Qpsmtpd::Constants::return_code): OK, DENY, DENYSOFT,
 * DENY_DISCONNECT, DENYHARD, DENYSOFT_DISCONNECT, DECLINED, DONE; upper case, as qpsmtpd.
 */
export function returnCodeByName(name: string): Code | undefined {
  switch (name) {
    case 'OK':
      return OK;
    case 'DENY':
      return DENY;
    case 'DENYSOFT':
      return DENYSOFT;
    case 'DENY_DISCONNECT':
    case 'DENYHARD':
      return DENY_DISCONNECT;
    case 'DENYSOFT_DISCONNECT':
      return DENYSOFT_DISCONNECT;
    case 'DECLINED':
      return DECLINED;
    case 'DONE':
      return DONE;
    default:
      return undefined;
  }
}

/**
 * Where a value of a config setting comes from, for a log line: `/path/config/NAME:LINE` (the
 * first line with exactly this value, `$include`d files followed), or a note that it came from
 * the `config` hook (http_config ...). Reads the files again: for error messages only.
 */
export function configLocation(plugin: Plugin, name: string, value: string): string {
  try {
    const dir = new ConfigDir(plugin[SETUP].host.configDir);
    const hit = dir.entries(name).find((e) => e.value === value);
    if (hit !== undefined) return `${hit.file}:${hit.line}`;
  } catch {
    // an unreadable directory: fall through to the generic answer
  }
  return `config ${name} (a value from the config hook)`;
}

/**
 * A value compiled from a config setting, rebuilt only when the setting's values change (the
 * config directory re-reads a changed file within a second; a `config` hook may answer anything).
 * Create it when the plugin is constructed, so that every session shares it; `get` inside a hook
 * or in `register`. The comparison costs one string join per call, never a recompilation.
 */
export class ConfigCache<T> {
  #key: string | undefined;
  #value: T | undefined;

  constructor(
    readonly name: string,
    private readonly build: (lines: readonly string[], plugin: Plugin) => T,
  ) {}

  get(plugin: Plugin): T {
    const lines = plugin.configList(this.name);
    const key = lines.join('\n');
    if (this.#value === undefined || key !== this.#key) {
      this.#value = this.build(lines, plugin);
      this.#key = key;
    }
    return this.#value;
  }
}

/**
 * Is this entry of `badmailfrom`, `badrcptto` or `badhelo` a regular expression? qpsmtpd's rule:
 * it is when it holds one of `/ ^ $ * + ! % ? \`.
 */
export function isListPattern(entry: string): boolean {
  return /[/^$*+!%?\\]/.test(entry);
}

export type PerlRegExpResult = { readonly regexp: RegExp } | { readonly error: string };

const POSIX_CLASSES: Readonly<Record<string, string>> = {
  alpha: 'a-zA-Z',
  digit: '0-9',
  alnum: 'a-zA-Z0-9',
  upper: 'A-Z',
  lower: 'a-z',
  space: '\\s',
  blank: ' \\t',
  punct: '!-\\/:-@\\[-`{-~',
  xdigit: '0-9A-Fa-f',
  word: '\\w',
  cntrl: '\\x00-\\x1f\\x7f',
  print: '\\x20-\\x7e',
  graph: '\\x21-\\x7e',
  ascii: '\\x00-\\x7f',
};
const HORIZONTAL_SPACE = '\\t \\xa0\\u1680\\u180e\\u2000-\\u200a\\u202f\\u205f\\u3000';
const VERTICAL_SPACE = '\\n\\x0b\\f\\r\\x85\\u2028\\u2029';

/**
 * A Perl regular expression, as operators write them in qpsmtpd's control files, compiled as a
 * JavaScript RegExp (never with the g or y flag: `test` stays stateless). The common syntax is the
 * same; these Perl forms are translated: `\A`, `\z`, `\Z`, `\h`, `\v` (Perl: vertical white space),
 * `\e`, `\a`, `\x{HHHH}`, `\xH`, `\Q...\E`, `\k{name}`, `(?P<name>`, `(?#comment)`, POSIX classes
 * (`[[:alpha:]]`), `]` first in a class, and leading modifiers `(?i)`, `(?s)`, `(?m)`. What has
 * no JavaScript equivalent is an error, never silently something else: other letter escapes
 * (`\K`, `\G`, `\R`, `\X`, `\p{..}`, `\N`, `\l`, `\u` ...), the `x` modifier, modifiers that are
 * not at the start, and, from RegExp itself, possessive quantifiers, atomic groups, `(?|`, code.
 * Perl's `$` also matches before a final newline; JavaScript's only at the end (the texts matched
 * here, addresses and host names, hold no newline).
 */
export function perlRegExp(source: string, flags = ''): PerlRegExpResult {
  let out = '';
  let allFlags = flags.replace(/[gy]/g, '');
  let i = 0;
  const lead = /^\(\?\^?([a-z]*)\)/.exec(source);
  if (lead !== null) {
    for (const f of lead[1]!) {
      if (f === 'x') return { error: 'the x modifier is not supported' };
      if (f !== 'i' && f !== 'm' && f !== 's') return { error: `the modifier "${f}" is not supported` };
      if (!allFlags.includes(f)) allFlags += f;
    }
    i = lead[0].length;
  }
  let inClass = false;
  let classBody = -1;
  while (i < source.length) {
    const ch = source[i]!;
    if (ch === '\\') {
      const next = source[i + 1];
      if (next === undefined) return { error: 'trailing backslash' };
      if (next === 'Q') {
        const end = source.indexOf('\\E', i + 2);
        const literal = source.slice(i + 2, end === -1 ? source.length : end);
        out += literal.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
        i = end === -1 ? source.length : end + 2;
        continue;
      }
      const escape = perlEscape(source, i, inClass);
      if ('error' in escape) return escape;
      out += escape.text;
      i = escape.end;
      continue;
    }
    if (inClass) {
      if (ch === ']') {
        // Perl: a `]` first in a class is a literal; JavaScript would end (an empty) class there.
        out += i === classBody ? '\\]' : ']';
        if (i !== classBody) inClass = false;
        i++;
        continue;
      }
      if (ch === '[' && source[i + 1] === ':') {
        const posix = /^\[:(\^?)([a-z]+):\]/.exec(source.slice(i));
        if (posix !== null) {
          const range = POSIX_CLASSES[posix[2]!];
          if (range === undefined) return { error: `unknown POSIX class [:${posix[2]}:]` };
          if (posix[1] !== '') return { error: `negated POSIX class [:^${posix[2]}:] is not supported` };
          out += range;
          i += posix[0].length;
          continue;
        }
      }
      out += ch;
      i++;
      continue;
    }
    if (ch === '[') {
      inClass = true;
      out += '[';
      i++;
      if (source[i] === '^') {
        out += '^';
        i++;
      }
      classBody = i;
      continue;
    }
    if (ch === '(' && source[i + 1] === '?') {
      const rest = source.slice(i + 2);
      if (rest.startsWith('#')) {
        const end = source.indexOf(')', i);
        if (end === -1) return { error: 'unterminated (?# comment' };
        i = end + 1;
        continue;
      }
      if (rest.startsWith('P<')) {
        out += '(?<';
        i += 4;
        continue;
      }
      if (/^[\^a-zA-Z-]+[:)]/.test(rest)) return { error: 'inline modifiers are only supported at the start, as (?i)' };
    }
    out += ch;
    i++;
  }
  if (inClass) return { error: 'unterminated character class' };
  try {
    return { regexp: new RegExp(out, allFlags) };
  } catch (err) {
    // `Invalid regular expression: /SOURCE/FLAGS: Unterminated group`: the reason alone.
    return { error: err instanceof Error ? err.message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '') : String(err) };
  }
}

/** One Perl escape at `at` (the backslash) as JavaScript regex text, and where it ends. */
function perlEscape(source: string, at: number, inClass: boolean): { text: string; end: number } | { error: string } {
  const c = source[at + 1]!;
  const end = at + 2;
  if ('dDwWsSbBnrtf'.includes(c)) return { text: '\\' + c, end };
  if (/[0-9]/.test(c)) return { text: '\\' + c, end }; // backreferences, octal \0NN: the same
  switch (c) {
    case 'v':
      return { text: inClass ? VERTICAL_SPACE : `[${VERTICAL_SPACE}]`, end };
    case 'h':
      return { text: inClass ? HORIZONTAL_SPACE : `[${HORIZONTAL_SPACE}]`, end };
    case 'e':
      return { text: '\\x1b', end };
    case 'a':
      return { text: '\\x07', end };
    case 'A':
    case 'z':
    case 'Z':
      if (inClass) return { error: `\\${c} inside a character class` };
      // Exact whatever the m flag says: start of input, end of input, end or before a final newline.
      return { text: c === 'A' ? '(?<![\\s\\S])' : c === 'z' ? '(?![\\s\\S])' : '(?=\\n?(?![\\s\\S]))', end };
    case 'E':
      return { text: '', end };
    case 'c': {
      const letter = source[at + 2];
      if (letter === undefined || !/[A-Za-z]/.test(letter)) return { error: '\\c must be followed by a letter' };
      return { text: '\\c' + letter, end: at + 3 };
    }
    case 'x': {
      const braced = /^\{([0-9A-Fa-f]{1,6})\}/.exec(source.slice(end));
      if (braced !== null) {
        const code = parseInt(braced[1]!, 16);
        if (code > 0x10ffff) return { error: `\\x{${braced[1]}} is no character` };
        const unit = (n: number): string => '\\u' + n.toString(16).padStart(4, '0');
        if (code <= 0xffff) return { text: unit(code), end: end + braced[0].length };
        // Without the u flag a character above U+FFFF is its two UTF-16 code units.
        if (inClass) return { error: `\\x{${braced[1]}} above U+FFFF inside a character class` };
        const pair = String.fromCodePoint(code);
        return { text: `(?:${unit(pair.charCodeAt(0))}${unit(pair.charCodeAt(1))})`, end: end + braced[0].length };
      }
      const hex = /^[0-9A-Fa-f]{0,2}/.exec(source.slice(end))![0];
      return { text: '\\x' + hex.padStart(2, '0'), end: end + hex.length };
    }
    case 'k': {
      const named = /^(?:<(\w+)>|\{(\w+)\}|'(\w+)')/.exec(source.slice(end));
      if (named === null) return { error: '\\k must name a group' };
      return { text: `\\k<${named[1] ?? named[2] ?? named[3]}>`, end: end + named[0].length };
    }
    default:
      if (/[A-Za-z]/.test(c)) return { error: `\\${c} has no JavaScript equivalent` };
      // Escaped punctuation (`\@`, `\.`, `\-`, `\/` ...) means the character itself in both.
      return { text: '\\' + c, end };
  }
}

/** One entry of an address list such as `badmailfrom` or `badrcptto`. */
export interface AddressListEntry {
  /** The first word of the line, as written. */
  readonly entry: string;
  /** The text after it (the reply for a match), if any. */
  readonly reason: string | undefined;
  readonly kind: 'address' | 'host' | 'pattern';
  /** `user@host` or `@host`, lower-cased (address and host entries). */
  readonly exact?: string;
  /** The compiled pattern (pattern entries). */
  readonly regexp?: RegExp;
}

/**
 * Parse the lines of an address list in qpsmtpd's form: `user@host`, `@host` or a bare Perl
 * pattern (see `isListPattern`; `/re/` between slashes is accepted as well), then an optional
 * reason after white space. A pattern that does not
 * compile and an entry without `@` are logged with their file and line and left out. Use through a
 * `ConfigCache`, so this runs once per change of the list.
 */
export function compileAddressList(plugin: Plugin, name: string, lines: readonly string[], patternFlags = ''): AddressListEntry[] {
  const list: AddressListEntry[] = [];
  for (const line of lines) {
    const match = /^(\S+)(?:\s+(.*))?$/.exec(line.trim());
    if (match === null) continue;
    const entry = match[1]!;
    const reason = match[2] === undefined || match[2] === '' ? undefined : match[2];
    if (isListPattern(entry)) {
      // `/re/` (the delimited form rcpt_regexp and badhelo use) is taken too: the slashes are not
      // part of the pattern. qpsmtpd would have looked for the slashes themselves, never a match.
      const delimited = /^\/(.+)\/$/.exec(entry);
      const compiled = perlRegExp(delimited === null ? entry : delimited[1]!, patternFlags);
      if ('error' in compiled) {
        plugin.log(LOGERROR, `${configLocation(plugin, name, line)}: pattern "${entry}" skipped, not a valid regular expression: ${compiled.error}`);
        continue;
      }
      list.push({ entry, reason, kind: 'pattern', regexp: compiled.regexp });
    } else if (!entry.includes('@')) {
      plugin.log(LOGWARN, `${configLocation(plugin, name, line)}: bad config: no @ sign in "${entry}", entry skipped`);
    } else {
      list.push({ entry, reason, kind: entry.startsWith('@') ? 'host' : 'address', exact: entry.toLowerCase() });
    }
  }
  return list;
}

/**
 * The first entry of `list` matching an address: `address` is `user@host` lower-cased, `host` the
 * lower-cased domain. Host entries match the domain exactly (no subdomains), address entries the
 * whole address, patterns anywhere in `address` unless anchored.
 */
export function matchAddressList(list: readonly AddressListEntry[], address: string, host: string): AddressListEntry | undefined {
  for (const item of list) {
    if (item.kind === 'pattern') {
      if (item.regexp!.test(address)) return item;
    } else if (item.kind === 'host') {
      if (item.exact === `@${host}`) return item;
    } else if (item.exact === address) {
      return item;
    }
  }
  return undefined;
}
