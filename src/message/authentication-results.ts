/**
 * Authentication-Results (RFC 8601): formatting one method's result (a `resinfo`), and reading the
 * authserv-id of a field, which is how we recognise (and refuse) a field that claims to be ours.
 *
 * A plugin adds its result with `tx.authResults.push(formatAuthResult({...}))` (or
 * `connection.authResults` for results that hold for the whole session); the core writes them all
 * as one `Authentication-Results: <authserv-id>; ...` field (see session/trace-headers.ts), after
 * `data_post_headers`.
 */

/** One method's result: `dkim=pass (good signature) header.d=example.com header.s=sel`. */
export interface AuthResult {
  /** spf, dkim, dmarc, arc, iprev, auth ... */
  readonly method: string;
  /** pass, fail, softfail, neutral, none, temperror, permerror, policy ... */
  readonly result: string;
  /** `reason="..."`, for a human (RFC 8601 §2.2). */
  readonly reason?: string | undefined;
  /** A comment after the result, in parentheses. */
  readonly comment?: string | undefined;
  /** `ptype.property` to value, in order: `{ 'smtp.mailfrom': 'a@example.com' }`. Undefined or empty values are left out. */
  readonly props?: Readonly<Record<string, string | undefined>> | undefined;
}

// RFC 2045 token: no tspecials, no space, no controls.
const TOKEN = /^[^\x00-\x20\x7f()<>@,;:\\"/[\]?=]+$/;
// RFC 8601 pvalue also takes [local-part] "@" domain-name without quotes.
const MAILBOX_VALUE = /^(?:[^\x00-\x20\x7f()<>@,;:\\"[\]]*)@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/;

/** A `value`: a token as it is, anything else as a quoted-string. */
export function authValue(value: string): string {
  if (TOKEN.test(value)) return value;
  return `"${value.replace(/[\r\n]+/g, ' ').replace(/(["\\])/g, '\\$1')}"`;
}

/** A comment's text with its parentheses and backslashes escaped, line ends folded to spaces. */
export function authComment(text: string): string {
  return `(${text.replace(/[\r\n]+/g, ' ').replace(/([()\\])/g, '\\$1')})`;
}

/** `method=result [reason="..."] [(comment)] [ptype.prop=value ...]`. */
export function formatAuthResult(r: AuthResult): string {
  const method = r.method.toLowerCase();
  const result = r.result.toLowerCase();
  if (!TOKEN.test(method) || !TOKEN.test(result)) throw new Error(`not an Authentication-Results method or result: ${r.method}=${r.result}`);
  const parts = [`${method}=${result}`];
  if (r.comment !== undefined && r.comment !== '') parts.push(authComment(r.comment));
  if (r.reason !== undefined && r.reason !== '') parts.push(`reason=${authValue(r.reason)}`);
  for (const [key, value] of Object.entries(r.props ?? {})) {
    if (value === undefined || value === '') continue;
    if (!/^[A-Za-z0-9-]+\.[A-Za-z0-9_.-]+$/.test(key)) throw new Error(`not a ptype.property: ${key}`);
    parts.push(`${key}=${MAILBOX_VALUE.test(value) ? value : authValue(value)}`);
  }
  return parts.join(' ');
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
