/**
 * Envelope addresses: the RFC 5321 §4.1.2 `Path`, with the RFC 6531 (SMTPUTF8) extensions.
 *
 *   Path           = "<" Mailbox ">"            ; source routes ("<@a,@b:u@c>") are refused
 *   Mailbox        = Local-part "@" ( Domain / address-literal )
 *   Local-part     = Dot-string / Quoted-string
 *   Dot-string     = Atom *("." Atom)           ; empty atoms ("a..b", "a.") are tolerated, as qpsmtpd does
 *   Atom           = 1*atext                    ; atext also takes any UTF-8 non-ASCII character (RFC 6531)
 *   Quoted-string  = DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE
 *   Domain         = sub-domain *("." sub-domain)
 *   sub-domain     = Let-dig [Ldh-str]           ; a U-label character counts as a letter (RFC 6531)
 *   address-literal= "[" ( IPv4-address-literal / "IPv6:" IPv6-addr ) "]"
 *
 * Like qpsmtpd's Qpsmtpd::Address: the local part is stored unquoted and unescaped (re-quoted on
 * output), the host is kept as written, `<>` is the null sender, and a bare `<postmaster>` is allowed.
 * A second `@` outside quotes (`<a@b@c>`) is a routing form and refused.
 */

const DOT_STRING = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.\u0080-\u{10FFFF}]+$/u;
const SUB_DOMAIN = /^[A-Za-z0-9\u0080-\u{10FFFF}](?:[A-Za-z0-9\-\u0080-\u{10FFFF}]*[A-Za-z0-9\u0080-\u{10FFFF}])?$/u;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HEX4 = /^[0-9A-Fa-f]{1,4}$/;
const NON_ASCII = /[^\x00-\x7f]/;

export type AddressError = { readonly error: string };

/** Look up per-address configuration (the `user_config` hook, then the normal config). */
export type AddressConfigLookup = (address: Address, name: string) => string[];

export class Address {
  /** Local part, unquoted. Empty for the null sender. */
  user: string;
  /** Domain or address literal as written; empty for the null sender and a bare `<postmaster>`. */
  host: string;
  /** Plugin notes attached to this address. */
  readonly notes: Record<string, unknown> = {};
  #configLookup: AddressConfigLookup | undefined;

  constructor(user: string, host: string) {
    this.user = user;
    this.host = host;
  }

  /** The null reverse-path `<>`. */
  static nullSender(): Address {
    return new Address('', '');
  }

  /** Parse a path such as `<user@example.com>`; returns an error with the reason when it is not one. */
  static parse(path: string): Address | AddressError {
    const result = parsePath(path);
    if ('error' in result) return result;
    return new Address(result.user, result.host);
  }

  /** `user@host` without brackets; `''` for the null sender; `postmaster` for a bare postmaster. */
  get address(): string {
    if (this.host === '') return this.user;
    return `${this.user}@${this.host}`;
  }

  /** True for `<>`. */
  get isNull(): boolean {
    return this.user === '' && this.host === '';
  }

  /** True when the address needs SMTPUTF8 to be carried (RFC 6531). */
  get isInternational(): boolean {
    return NON_ASCII.test(this.user) || NON_ASCII.test(this.host);
  }

  /** `<user@host>`, quoting the local part where RFC 5321 requires it; `<>` for the null sender. */
  toString(): string {
    if (this.isNull) return '<>';
    const user = needsQuoting(this.user) ? quote(this.user) : this.user;
    return this.host === '' ? `<${user}>` : `<${user}@${this.host}>`;
  }

  /** Compare like qpsmtpd: by domain (case-insensitive), then by local part. */
  static compare(a: Address, b: Address): number {
    const ha = a.host.toLowerCase();
    const hb = b.host.toLowerCase();
    if (ha !== hb) return ha < hb ? -1 : 1;
    return a.user < b.user ? -1 : a.user > b.user ? 1 : 0;
  }

  /** Same mailbox: local part exact, domain case-insensitive. */
  equals(other: Address): boolean {
    return this.user === other.user && this.host.toLowerCase() === other.host.toLowerCase();
  }

  /** Used by the session so that `config()` can run the `user_config` hook. */
  bindConfig(lookup: AddressConfigLookup): this {
    this.#configLookup = lookup;
    return this;
  }

  /** First value of a per-address config setting (the `user_config` hook, then the config dir). */
  config(name: string): string | undefined {
    return this.configList(name)[0];
  }

  /** All values of a per-address config setting. */
  configList(name: string): string[] {
    return this.#configLookup ? this.#configLookup(this, name) : [];
  }
}

function needsQuoting(user: string): boolean {
  if (user === '') return true;
  if (!DOT_STRING.test(user)) return true;
  return user.startsWith('.') || user.endsWith('.') || user.includes('..');
}

function quote(user: string): string {
  return '"' + user.replace(/(["\\])/g, '\\$1') + '"';
}

/** The path grammar above; returns the parts or why it failed. */
export function parsePath(path: string): { user: string; host: string } | AddressError {
  if (path.length < 2 || path[0] !== '<' || path[path.length - 1] !== '>') {
    return { error: 'address must be in angle brackets' };
  }
  const inner = path.slice(1, -1);
  if (inner === '') return { user: '', host: '' };
  if (inner[0] === '@') return { error: 'source routes are not accepted' };
  if (/^postmaster$/i.test(inner)) return { user: inner, host: '' };

  let user: string;
  let rest: string;
  if (inner[0] === '"') {
    const q = parseQuoted(inner);
    if ('error' in q) return q;
    user = q.user;
    rest = inner.slice(q.end);
  } else {
    const at = inner.indexOf('@');
    if (at === -1) return { error: 'address has no domain' };
    const local = inner.slice(0, at);
    if (local === '' || !DOT_STRING.test(local)) return { error: 'invalid local part' };
    user = local;
    rest = inner.slice(at);
  }
  if (rest[0] !== '@') return { error: 'address has no domain' };
  const host = rest.slice(1);
  if (host.includes('@')) return { error: 'more than one @: routing is not accepted' };
  const hostError = checkDomain(host);
  if (hostError) return { error: hostError };
  return { user, host };
}

function parseQuoted(inner: string): { user: string; end: number } | AddressError {
  let user = '';
  for (let i = 1; i < inner.length; i++) {
    const ch = inner[i]!;
    if (ch === '"') return { user, end: i + 1 };
    if (ch === '\\') {
      const next = inner[i + 1];
      if (next === undefined || next < ' ' || next === '\x7f') return { error: 'invalid quoted local part' };
      user += next;
      i++;
      continue;
    }
    const code = ch.charCodeAt(0);
    // qtextSMTP: %d32-33 / %d35-91 / %d93-126, plus UTF-8 (RFC 6531)
    if (code < 32 || code === 127) return { error: 'invalid quoted local part' };
    user += ch;
  }
  return { error: 'unterminated quoted local part' };
}

function checkDomain(host: string): string | undefined {
  if (host === '') return 'empty domain';
  if (host[0] === '[') {
    if (host[host.length - 1] !== ']') return 'invalid address literal';
    const literal = host.slice(1, -1);
    if (IPV4.test(literal)) return undefined;
    if (/^IPv6:/i.test(literal) && isIPv6(literal.slice(5))) return undefined;
    return 'invalid address literal';
  }
  if (host.length > 255) return 'domain too long';
  const labels = host.split('.');
  for (const label of labels) {
    if (label.length > 63 || !SUB_DOMAIN.test(label)) return 'invalid domain';
  }
  return undefined;
}

/** RFC 4291 text form: eight groups, `::` for a run of zero groups, an optional IPv4 tail. */
export function isIPv6(text: string): boolean {
  let groups = 8;
  let body = text;
  const lastColon = body.lastIndexOf(':');
  if (lastColon !== -1 && body.slice(lastColon + 1).includes('.')) {
    if (!IPV4.test(body.slice(lastColon + 1))) return false;
    body = body.slice(0, lastColon + 1) + '0';
    groups = 7;
  }
  const halves = body.split('::');
  if (halves.length > 2) return false;
  const part = (s: string): string[] | null => {
    if (s === '') return [];
    const g = s.split(':');
    return g.every((x) => HEX4.test(x)) ? g : null;
  };
  const head = part(halves[0]!);
  if (head === null) return false;
  if (halves.length === 1) return head.length === groups;
  const tail = part(halves[1]!);
  if (tail === null) return false;
  return head.length + tail.length < groups;
}

/** RFC 6531: a string that needs SMTPUTF8 to be carried. */
export function isNonAscii(text: string): boolean {
  return NON_ASCII.test(text);
}
