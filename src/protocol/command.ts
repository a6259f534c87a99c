/**
 * Command lines into parts (RFC 5321 §4.1, RFC 1869 parameters).
 *
 *   command      = verb [SP rest]
 *   Mail         = "MAIL FROM:" Reverse-path [SP Mail-parameters]
 *   Rcpt         = "RCPT TO:" Forward-path [SP Rcpt-parameters]
 *   esmtp-param  = esmtp-keyword ["=" esmtp-value]
 *   esmtp-keyword= (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
 *   esmtp-value  = 1*(%d33-60 / %d62-126 / UTF8-non-ascii)   ; any CHAR except "=", SP, controls
 *
 * Lenient where real clients are: spaces after the colon and several spaces between parameters are
 * accepted. A path without angle brackets is passed on as it is, so the `mail_pre`/`rcpt_pre`
 * hooks can repair it (as `dont_require_anglebrackets` does) before the address parser refuses it.
 */

/** ESMTP parameters, keyword lower-cased; a keyword without `=value` maps to `true`. */
export type EsmtpParams = Readonly<Record<string, string | true>>;

export interface SplitCommand {
  /** Upper-case verb. */
  readonly verb: string;
  /** Everything after the verb and the spaces that follow it, trailing white space removed. */
  readonly rest: string;
}

const VERB = /^[A-Za-z][A-Za-z0-9_-]{0,19}$/;
const KEYWORD = /^[A-Za-z0-9][A-Za-z0-9-]*$/;
const VALUE = /^[^\x00-\x20=\x7f]+$/;

/** Split a command line; null when the verb is not a word (empty line, binary junk). */
export function splitCommand(line: string): SplitCommand | null {
  const trimmed = trimEndBlanks(line);
  const space = trimmed.search(/[ \t]/);
  const verb = space === -1 ? trimmed : trimmed.slice(0, space);
  if (!VERB.test(verb)) return null;
  const rest = space === -1 ? '' : trimmed.slice(space).replace(/^[ \t]+/, '');
  return { verb: verb.toUpperCase(), rest };
}

// Not `replace(/[ \t]+$/, '')`: that regex retries from every blank of a run that is not at the
// end, quadratic in the run's length (a 64 KiB line of spaces took seconds).
function trimEndBlanks(line: string): string {
  let end = line.length;
  while (end > 0 && (line[end - 1] === ' ' || line[end - 1] === '\t')) end--;
  return end === line.length ? line : line.slice(0, end);
}

export type PathArgument = { readonly path: string; readonly params: EsmtpParams } | { readonly error: string };

/**
 * The argument of MAIL (`keyword` "FROM") or RCPT ("TO"): the path as written (with its angle
 * brackets) and the parameters.
 */
export function parsePathArgument(rest: string, keyword: 'FROM' | 'TO'): PathArgument {
  const prefix = keyword + ':';
  if (rest.slice(0, prefix.length).toUpperCase() !== prefix) {
    return { error: `Syntax error: expected ${keyword}:<address>` };
  }
  const arg = rest.slice(prefix.length).replace(/^[ \t]+/, '');
  if (arg === '') return { error: 'Syntax error: missing address' };
  let end: number;
  if (arg[0] === '<') {
    end = closingBracket(arg);
    if (end === -1) return { error: 'Syntax error: unterminated address' };
    end += 1;
    if (end < arg.length && arg[end] !== ' ' && arg[end] !== '\t') {
      return { error: 'Syntax error: junk after address' };
    }
  } else {
    const space = arg.search(/[ \t]/);
    end = space === -1 ? arg.length : space;
  }
  const params = parseParams(arg.slice(end));
  if ('error' in params) return params;
  return { path: arg.slice(0, end), params: params.params };
}

/** Index of the `>` that closes the path starting at 0, honouring quoted local parts. */
function closingBracket(arg: string): number {
  let quoted = false;
  for (let i = 1; i < arg.length; i++) {
    const ch = arg[i];
    if (quoted) {
      if (ch === '\\') i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') {
      quoted = true;
    } else if (ch === '>') {
      return i;
    }
  }
  return -1;
}

/** RFC 1869 parameters after the path. */
export function parseParams(text: string): { params: EsmtpParams } | { error: string } {
  const params: Record<string, string | true> = Object.create(null);
  for (const word of text.split(/[ \t]+/)) {
    if (word === '') continue;
    const eq = word.indexOf('=');
    const key = eq === -1 ? word : word.slice(0, eq);
    if (!KEYWORD.test(key)) return { error: `Syntax error in parameter "${key}"` };
    if (eq === -1) {
      params[key.toLowerCase()] = true;
    } else {
      const value = word.slice(eq + 1);
      if (!VALUE.test(value)) return { error: `Syntax error in value of parameter "${key}"` };
      params[key.toLowerCase()] = value;
    }
  }
  return { params };
}

/** The HELO/EHLO argument: the first word, or an error when there is none. */
export function parseHelloArgument(rest: string): { host: string } | { error: string } {
  const host = rest.split(/[ \t]+/).find((w) => w !== '') ?? '';
  if (host === '') return { error: 'requires domain/address - see RFC-5321 4.1.1.1' };
  return { host };
}

/** `AUTH mechanism [initial-response]` (RFC 4954 §4). */
export function parseAuthArgument(rest: string): { mechanism: string; initialResponse?: string } | { error: string } {
  const words = rest.split(/[ \t]+/).filter((w) => w !== '');
  const mechanism = words[0];
  if (mechanism === undefined || !/^[A-Za-z0-9_-]{1,20}$/.test(mechanism)) {
    return { error: 'Syntax error: AUTH mechanism [initial-response]' };
  }
  if (words.length > 2) return { error: 'Syntax error: AUTH mechanism [initial-response]' };
  const initialResponse = words[1];
  return initialResponse === undefined ? { mechanism: mechanism.toUpperCase() } : { mechanism: mechanism.toUpperCase(), initialResponse };
}
