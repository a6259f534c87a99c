/**
 * Authentication-Results (RFC 8601): the entries ("resinfo", §2.2) that the plugins which
 * authenticate something add (fcrdns's iprev, SPF, DKIM, DMARC, ARC), and reading the
 * authserv-id of a field, which is how we recognise (and rename) a field that claims to be ours.
 * The core writes the header itself (session/trace-headers.ts), after `data_post_headers`: the
 * authserv-id, then the entries of `connection.authResults` (true for every message of the
 * session: iprev, auth) and of `transaction.authResults` (this message: spf, dkim, dmarc, arc).
 *
 *   addAuthResult(this.connection.authResults, { method: 'iprev', result: 'pass',
 *     properties: { 'smtp.remote-ip': ip }, comment: 'mx.example.net' });
 *   // -> "iprev=pass (mx.example.net) smtp.remote-ip=192.0.2.1"
 *
 * addAuthResult replaces an earlier entry with the same method and the same properties (the same
 * check made again: a second message, a plugin run twice), so each check is reported once; entries
 * of one method about different things (two DKIM signatures: different header.d/header.b) are all
 * kept. Values that are not RFC 2045 tokens (an IPv6 address, text with spaces) are written as
 * quoted strings; addresses (`user@domain`) as they are.
 */

export interface AuthResult {
  /** `iprev`, `spf`, `dkim`, `dmarc`, `arc`, `auth` ... (written in lower case). */
  readonly method: string;
  /** `pass`, `fail`, `softfail`, `neutral`, `none`, `temperror`, `permerror`, `policy` ... */
  readonly result: string;
  /** `reason="..."`: free text for a human. */
  readonly reason?: string | undefined;
  /** `ptype.property` to value, in the order to write them: `{ 'smtp.mailfrom': 'a@b.example' }`. Undefined or empty values are left out. */
  readonly properties?: Readonly<Record<string, string | undefined>> | undefined;
  /** A comment after the result, without its parentheses: `mx.example.net`. */
  readonly comment?: string | undefined;
}

// RFC 2045 token: no tspecials, no space, no controls.
const TOKEN = /^[^\x00-\x20\x7f()<>@,;:\\"/[\]?=]+$/;
// RFC 8601 pvalue also takes [local-part] "@" domain-name without quotes.
const MAILBOX_VALUE = /^(?:[^\x00-\x20\x7f()<>@,;:\\"[\]]*)@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/;

/** A `value`: a token as it is, anything else as a quoted-string (line ends folded to spaces). */
export function authResultValue(value: string): string {
  if (TOKEN.test(value)) return value;
  return `"${value.replace(/[\r\n]+/g, ' ').replace(/(["\\])/g, '\\$1')}"`;
}

/** A comment's text with its parentheses and backslashes escaped, line ends folded to spaces. */
export function authComment(text: string): string {
  return `(${text.replace(/[\r\n]+/g, ' ').replace(/([()\\])/g, '\\$1')})`;
}

/** One entry as text: `method=result [(comment)] [reason="..."] [ptype.property=value ...]`. Throws on a method, result or property name that is no token. */
export function formatAuthResult(entry: AuthResult): string {
  const method = entry.method.toLowerCase();
  const result = entry.result.toLowerCase();
  if (!TOKEN.test(method) || !TOKEN.test(result)) throw new Error(`not an Authentication-Results method or result: ${entry.method}=${entry.result}`);
  const parts = [`${method}=${result}`];
  if (entry.comment !== undefined && entry.comment !== '') parts.push(authComment(entry.comment));
  if (entry.reason !== undefined && entry.reason !== '') parts.push(`reason=${authResultValue(entry.reason)}`);
  for (const [key, value] of Object.entries(entry.properties ?? {})) {
    if (value === undefined || value === '') continue;
    if (!/^[A-Za-z0-9-]+\.[A-Za-z0-9_.-]+$/.test(key)) throw new Error(`not a ptype.property: ${key}`);
    parts.push(`${key.toLowerCase()}=${MAILBOX_VALUE.test(value) ? value : authResultValue(value)}`);
  }
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
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${k.toLowerCase()}=${v!.toLowerCase()}`)
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

/**
 * The authserv-id of an Authentication-Results (or ARC-Authentication-Results, after its `i=N;`)
 * field value, comments and quoting removed; undefined when there is none. `(x) "mx.example" 1;`
 * gives `mx.example`.
 */
export function authservIdOf(value: string): string | undefined {
  let i = 0;
  const skipCfws = (): void => {
    for (;;) {
      while (i < value.length && /\s/.test(value[i]!)) i++;
      if (value[i] !== '(') return;
      let depth = 0;
      for (; i < value.length; i++) {
        const c = value[i];
        if (c === '\\') i++;
        else if (c === '(') depth++;
        else if (c === ')' && --depth === 0) {
          i++;
          break;
        }
      }
    }
  };
  skipCfws();
  if (value[i] === '"') {
    let out = '';
    for (i++; i < value.length && value[i] !== '"'; i++) {
      if (value[i] === '\\') i++;
      out += value[i] ?? '';
    }
    return out === '' ? undefined : out;
  }
  const m = /^[^\s;()]+/.exec(value.slice(i));
  return m === null ? undefined : m[0];
}

/** Does this field value claim `authservId` (case-insensitive, as domain names compare)? */
export function claimsAuthservId(value: string, authservId: string): boolean {
  return authservIdOf(value)?.toLowerCase() === authservId.toLowerCase();
}

/** The authserv-id this server writes: config `me-auth-results` (`none`: no header), else `me`. */
export function ownAuthservId(session: { me: string; config(name: string): string | undefined }): string {
  return session.config('me-auth-results') ?? session.me;
}
