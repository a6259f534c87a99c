/**
 * Entries ("resinfo", RFC 8601 §2.2) of the Authentication-Results header, for the plugins that
 * authenticate something (fcrdns's iprev, SPF, DKIM, DMARC, ARC). The core writes the header
 * itself (session/trace-headers.ts): the authserv-id, then the entries of
 * `connection.authResults` (true for every message of the session: iprev, auth) and of
 * `transaction.authResults` (this message: spf, dkim, dmarc), joined with `;`.
 *
 *   addAuthResult(this.connection.authResults, { method: 'iprev', result: 'pass',
 *     properties: { 'smtp.remote-ip': ip }, comment: 'mx.example.net' });
 *   // -> "iprev=pass (mx.example.net) smtp.remote-ip=192.0.2.1"
 *
 * An entry replaces an earlier one with the same method and the same properties (the same check
 * made again: a second message, a plugin run twice), so each check is reported once; entries of
 * one method about different things (two DKIM signatures: different header.d/header.b) are all
 * kept. Property values that are not RFC 2045 tokens (an IPv6 address, text with spaces) are
 * written as quoted strings; addresses (`user@domain`) and domain names as they are.
 */

export interface AuthResult {
  /** `iprev`, `spf`, `dkim`, `dmarc`, `arc`, `auth` ... (lower case). */
  readonly method: string;
  /** `pass`, `fail`, `softfail`, `neutral`, `none`, `temperror`, `permerror` ... */
  readonly result: string;
  /** `reason="..."`: free text. */
  readonly reason?: string | undefined;
  /** `ptype.property` to value, in the order to write them: `{ 'smtp.mailfrom': 'a@b.example' }`. */
  readonly properties?: Readonly<Record<string, string>> | undefined;
  /** A comment after the result, without its parentheses: `mx.example.net`. */
  readonly comment?: string | undefined;
}

/** RFC 2045 token: no tspecials, spaces or controls. */
const TOKEN = /^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+$/;
/** A dot-atom local part and/or a domain name: RFC 8601's pvalue alternatives to `value`. */
const ADDRESS = /^(?:[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]*@)?[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/;

/** A value as RFC 8601 allows it: a token, an address or domain as is, else a quoted string. */
export function authResultValue(value: string): string {
  if (value !== '' && (TOKEN.test(value) || ADDRESS.test(value))) return value;
  return `"${value.replace(/[\\"]/g, '\\$&').replace(/[\r\n]+/g, ' ')}"`;
}

/** One entry as text: `method=result [(comment)] [reason="..."] [ptype.property=value ...]`. */
export function formatAuthResult(entry: AuthResult): string {
  const parts = [`${entry.method.toLowerCase()}=${entry.result.toLowerCase()}`];
  if (entry.comment !== undefined && entry.comment !== '') parts.push(`(${entry.comment.replace(/[()\\\r\n]/g, '')})`);
  if (entry.reason !== undefined && entry.reason !== '') parts.push(`reason=${authResultValue(entry.reason)}`);
  for (const [name, value] of Object.entries(entry.properties ?? {})) parts.push(`${name.toLowerCase()}=${authResultValue(value)}`);
  return parts.join(' ');
}

/**
 * Read an entry back (one `;`-separated part of the header, or an element of an `authResults`
 * list): its method, result, reason and properties; comments are dropped. Undefined when it does
 * not start with `method=result`.
 */
export function parseAuthResult(text: string): AuthResult | undefined {
  const words = tokenize(text);
  const first = words.shift();
  const m = first === undefined ? null : /^([A-Za-z0-9_-]+)(?:\/\d+)?=([A-Za-z0-9_-]+)$/.exec(first);
  if (m === null) return undefined;
  let reason: string | undefined;
  const properties: Record<string, string> = {};
  for (const word of words) {
    const eq = word.indexOf('=');
    if (eq <= 0) continue;
    const name = word.slice(0, eq).toLowerCase();
    const value = unquote(word.slice(eq + 1));
    if (name === 'reason') reason = value;
    else properties[name] = value;
  }
  return { method: m[1]!.toLowerCase(), result: m[2]!.toLowerCase(), reason, properties };
}

/**
 * Add an entry to an `authResults` list (the connection's or the transaction's), replacing any
 * earlier entry of the same method about the same things (equal properties). Returns the text added.
 */
export function addAuthResult(list: string[], entry: AuthResult | string): string {
  const text = typeof entry === 'string' ? entry.trim() : formatAuthResult(entry);
  const parsed = typeof entry === 'string' ? parseAuthResult(text) : entry;
  if (parsed !== undefined) {
    const key = identity(parsed);
    for (let i = list.length - 1; i >= 0; i--) {
      const other = parseAuthResult(list[i]!);
      if (other !== undefined && identity(other) === key) list.splice(i, 1);
    }
  }
  list.push(text);
  return text;
}

/** Method and properties, lower-cased and sorted: what an entry is about. */
function identity(entry: AuthResult): string {
  const props = Object.entries(entry.properties ?? {})
    .map(([k, v]) => `${k.toLowerCase()}=${v.toLowerCase()}`)
    .sort();
  return [entry.method.toLowerCase(), ...props].join(' ');
}

/** Words of an entry: comments removed, quoted strings kept whole (with their quotes). */
function tokenize(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      word += ch;
      if (ch === '\\' && i + 1 < text.length) word += text[++i];
      else if (ch === '"') quoted = false;
    } else if (depth > 0) {
      if (ch === '\\') i++;
      else if (ch === '(') depth++;
      else if (ch === ')') depth--;
    } else if (ch === '(') {
      depth = 1;
    } else if (ch === '"') {
      quoted = true;
      word += ch;
    } else if (/\s/.test(ch) || ch === ';') {
      if (word !== '') words.push(word);
      word = '';
    } else {
      word += ch;
    }
  }
  if (word !== '') words.push(word);
  // `method = result` and `prop = value` with spaces (CFWS is allowed around "="): glue them.
  const glued: string[] = [];
  for (const w of words) {
    const last = glued[glued.length - 1];
    if (last !== undefined && (last.endsWith('=') || w.startsWith('='))) glued[glued.length - 1] = last + w;
    else glued.push(w);
  }
  return glued;
}

function unquote(value: string): string {
  if (value.length < 2 || !value.startsWith('"') || !value.endsWith('"')) return value;
  return value.slice(1, -1).replace(/\\(.)/g, '$1');
}
