/**
 * Sender authentication for plugins: SPF (RFC 7208), DKIM (RFC 6376), DMARC (RFC 7489) and ARC
 * (RFC 8617) through mailauth 4.13.3, which does the record parsing and the cryptography. This
 * module turns its results into small plain values, maps them onto RFC 8601 result words, and
 * makes every DNS question go through the daemon's resolver with the hook's AbortSignal.
 *
 * Plugins reach this through 'qpsmtpd' (src/index.ts): sender_permitted_from, dkim, dmarc, arc.
 */
import { createPrivateKey } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { ARCData, DKIMResult, DNSResolver } from 'mailauth';
import type { DnsResolver } from '../dns/resolver.ts';
import { authComment } from '../message/auth-results.ts';
import type { RecordType } from '../dns/wire.ts';

/**
 * mailauth, loaded on first use: it pulls in joi, undici, nodemailer ... (about half a second of
 * CPU), which a daemon without these plugins, and `qpsmtpd check`, should not pay for.
 */
let loading: Promise<typeof import('mailauth')> | undefined;
function mailauth(): Promise<typeof import('mailauth')> {
  loading ??= import('mailauth');
  return loading;
}

/**
 * Load mailauth now: the sender-authentication plugins call this from `register`, so that the
 * daemon pays for it at start-up, not in the middle of the first message's MAIL or DATA.
 */
export async function preloadMailauth(): Promise<void> {
  await mailauth();
}

/** What mailauth calls to look things up: our resolver, every lookup bound to `signal`. */
export function authResolver(dns: DnsResolver, signal?: AbortSignal): DNSResolver {
  return (name: string, rrtype: string) => dns.resolve(name, rrtype.toUpperCase() as RecordType, { signal }) as Promise<string[][] | string[]>;
}

// ---- SPF -------------------------------------------------------------------------------------

export type SpfResult = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'permerror' | 'temperror';

export interface SpfCheck {
  readonly result: SpfResult;
  /** Why, for logs and the Received-SPF comment. */
  readonly explanation: string;
  /** mfrom: the MAIL FROM domain was checked; helo: the HELO name (null sender). */
  readonly scope: 'mfrom' | 'helo';
  /** The identity checked: the sender, or `postmaster@<helo>`. */
  readonly identity: string;
  /** The domain whose policy decided. */
  readonly domain: string;
  readonly clientIp: string;
  readonly helo: string | undefined;
  /** The SPF record that was evaluated, when one was found. */
  readonly record: string | undefined;
  /** DNS lookups counted against the limits (10 lookups, 2 void lookups). */
  readonly lookups: { readonly count: number; readonly void: number; readonly limit: number } | undefined;
}

export interface SpfOptions {
  /** The client's address. */
  readonly ip: string;
  /** The MAIL FROM address (`user@domain`), `''` for the null sender. */
  readonly sender: string;
  /** The HELO/EHLO name. */
  readonly helo: string | undefined;
  /** Our host name, for the explanation (`%{r}`). */
  readonly receiver: string;
  readonly resolver: DNSResolver;
}

const SPF_RESULTS: readonly string[] = ['pass', 'fail', 'softfail', 'neutral', 'none', 'permerror', 'temperror'];

/** Check the MAIL FROM identity, or the HELO identity (`postmaster@<helo>`) for the null sender. */
export async function checkSpf(options: SpfOptions): Promise<SpfCheck> {
  const scope = options.sender === '' ? 'helo' : 'mfrom';
  const identity = scope === 'mfrom' ? options.sender : `postmaster@${options.helo ?? ''}`;
  const r = await (await mailauth()).spf({ ip: options.ip, sender: identity, helo: options.helo ?? '', mta: options.receiver, resolver: options.resolver });
  const raw = r.status.result as string;
  const result = (SPF_RESULTS.includes(raw) ? raw : raw === 'temperr' ? 'temperror' : 'permerror') as SpfResult;
  const lookups = r.lookups === undefined ? undefined : { count: r.lookups.count, void: r.lookups.void, limit: r.lookups.limit };
  return {
    result,
    explanation: typeof r.status.comment === 'string' ? r.status.comment : result,
    scope,
    identity,
    domain: r.domain,
    clientIp: options.ip,
    helo: options.helo,
    record: r.rr,
    lookups,
  };
}

/** The value of a Received-SPF field (RFC 7208 §9.1) for a check. */
export function receivedSpfValue(check: SpfCheck, receiver: string): string {
  const pairs = [`client-ip=${check.clientIp};`, `envelope-from=${quoteIfNeeded(check.identity)};`];
  if (check.helo !== undefined && check.helo !== '') pairs.push(`helo=${quoteIfNeeded(check.helo)};`);
  pairs.push(`receiver=${quoteIfNeeded(receiver)};`, `identity=${check.scope === 'mfrom' ? 'mailfrom' : 'helo'};`);
  // mailauth's explanations start with the receiver's name already (`mx.example: domain of ...`).
  const text = check.explanation.startsWith(`${receiver}:`) ? check.explanation : `${receiver}: ${check.explanation}`;
  return `${check.result} ${authComment(text)}\n\t${pairs.join(' ')}`;
}

function quoteIfNeeded(value: string): string {
  return /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.@:[\]]+$/.test(value) ? value : `"${value.replace(/(["\\])/g, '\\$1')}"`;
}

// ---- DKIM verification ---------------------------------------------------------------------

export type DkimResult = 'pass' | 'fail' | 'neutral' | 'policy' | 'temperror' | 'permerror';

export interface DkimSignatureCheck {
  /** d= */
  readonly domain: string;
  /** s= */
  readonly selector: string;
  /** a= */
  readonly algorithm: string | undefined;
  /** i=, when the signature names one. */
  readonly identity: string | undefined;
  /** The first 8 characters of b= (RFC 6008 header.b), to tell signatures apart. */
  readonly b: string | undefined;
  readonly result: DkimResult;
  /** Why it did not pass (`body hash did not verify`, `no key` ...). */
  readonly comment: string | undefined;
  /** d= aligns (relaxed) with the From domain. */
  readonly aligned: boolean;
}

export interface DkimVerification {
  /** Every DKIM-Signature, in the order they appear. */
  readonly signatures: readonly DkimSignatureCheck[];
  /** The From addresses (one, unless the message is malformed). */
  readonly headerFrom: readonly string[];
  /** The ARC chain as parsed while verifying (for `verifyArc`, which then needs no second pass). */
  readonly arcData: ARCData;
}

/**
 * Verify every DKIM signature of a message. mailauth's results are mapped onto RFC 8601's words:
 * a body hash that does not verify is `fail` (RFC 6376 §6.1.3: PERMFAIL), a missing or unusable
 * key is `permerror`, a DNS failure `temperror`.
 */
export async function verifyDkim(message: Readable | Buffer, options: { resolver: DNSResolver; sender?: string | undefined; minBitLength?: number | undefined }): Promise<DkimVerification> {
  const r = await (await mailauth()).dkimVerify(message, { resolver: options.resolver, sender: options.sender, minBitLength: options.minBitLength });
  const signatures = (r.results ?? []).filter((s) => s.signingDomain !== undefined && s.status.result !== 'none').map(signatureCheck);
  const arcData = (r.arc ?? { chain: [] }) as ARCData;
  return { signatures, headerFrom: r.headerFrom ?? [], arcData };
}

const KEY_PROBLEMS = /^(no key|unknown key version|unknown key type|invalid public key)$/;

function signatureCheck(s: DKIMResult): DkimSignatureCheck {
  const status = s.status;
  const comment = typeof status.comment === 'string' ? status.comment : undefined;
  let result: DkimResult;
  switch (status.result) {
    case 'pass':
    case 'fail':
    case 'policy':
    case 'temperror':
    case 'permerror':
      result = status.result;
      break;
    case 'temperr':
      result = 'temperror';
      break;
    default:
      result = comment === 'body hash did not verify' ? 'fail' : comment !== undefined && KEY_PROBLEMS.test(comment) ? 'permerror' : 'neutral';
  }
  const header = (status.header ?? {}) as Record<string, unknown>;
  const identity = typeof header['i'] === 'string' ? header['i'] : undefined;
  return {
    domain: s.signingDomain,
    selector: s.selector ?? '',
    algorithm: s.algorithm ?? (typeof header['a'] === 'string' ? header['a'] : undefined),
    identity: identity !== undefined && identity !== `@${s.signingDomain}` ? identity : undefined,
    b: typeof header['b'] === 'string' ? header['b'] : undefined,
    result,
    comment: result === 'pass' ? undefined : (comment ?? (status.policy?.['dkim-rules'] === 'weak-key' ? 'weak key' : undefined)),
    aligned: typeof status.aligned === 'string' ? true : status.aligned === true,
  };
}

/** The message's verdict over all its signatures: pass if one passes, else the most telling failure. */
export function overallDkimResult(signatures: readonly DkimSignatureCheck[]): DkimResult | 'none' {
  if (signatures.length === 0) return 'none';
  for (const word of ['pass', 'temperror', 'fail', 'permerror', 'policy'] as const) {
    if (signatures.some((s) => s.result === word)) return word;
  }
  return 'neutral';
}

// ---- DKIM signing ----------------------------------------------------------------------------

export interface SigningKey {
  /** d= */
  readonly domain: string;
  /** s= */
  readonly selector: string;
  /** PEM private key (RSA or Ed25519). */
  readonly privateKey: string;
}

/**
 * A DKIM-Signature for the message (relaxed/relaxed, rsa-sha256 or ed25519-sha256 by the key's
 * type), as `{ name, value }` ready for `Header.add(name, value, 0)`.
 */
export async function signDkim(message: Readable | Buffer, key: SigningKey, headerList?: readonly string[]): Promise<{ name: string; value: string }> {
  const algorithm = /BEGIN PRIVATE KEY/.test(key.privateKey) && isEd25519(key.privateKey) ? 'ed25519-sha256' : 'rsa-sha256';
  const r = await (await mailauth()).dkimSign(message, {
    canonicalization: 'relaxed/relaxed',
    algorithm,
    signingDomain: key.domain,
    selector: key.selector,
    privateKey: key.privateKey,
    // mailauth reads a colon-separated string here (its typings say string[], which it ignores).
    ...(headerList !== undefined && headerList.length > 0 ? { headerList: headerList.join(':') as unknown as string[] } : {}),
    signatureData: [{ signingDomain: key.domain, selector: key.selector, privateKey: key.privateKey, algorithm, canonicalization: 'relaxed/relaxed' }],
  });
  if (r.errors.length > 0) throw r.errors[0]!;
  const field = splitField(r.signatures.trimEnd());
  if (field === undefined || field.name.toLowerCase() !== 'dkim-signature') throw new Error('mailauth returned no DKIM-Signature');
  return field;
}

/**
 * Whether a PEM private key is Ed25519, remembered by its text: parsing an RSA key costs about
 * 0.6 ms, and one key signs message after message (mailauth parses it once more to sign).
 */
const ed25519ByPem = new Map<string, boolean>();
const KEY_TYPES_KEPT = 64;

function isEd25519(pem: string): boolean {
  let known = ed25519ByPem.get(pem);
  if (known === undefined) {
    try {
      known = createPrivateKey(pem).asymmetricKeyType === 'ed25519';
    } catch {
      known = false;
    }
    // Keys are few and change seldom; a config with more than this many simply parses again.
    if (ed25519ByPem.size >= KEY_TYPES_KEPT) ed25519ByPem.clear();
    ed25519ByPem.set(pem, known);
  }
  return known;
}

/** `Name: value` (folded, CRLF) into its name and its value as written, continuation lines kept. */
export function splitField(field: string): { name: string; value: string } | undefined {
  const colon = field.indexOf(':');
  if (colon <= 0) return undefined;
  return { name: field.slice(0, colon).trim(), value: field.slice(colon + 1).replace(/^[ \t]+/, '') };
}

// ---- DMARC -----------------------------------------------------------------------------------

export type DmarcResult = 'pass' | 'fail' | 'none' | 'temperror' | 'permerror';
export type DmarcPolicy = 'none' | 'quarantine' | 'reject';

export interface DmarcCheck {
  readonly result: DmarcResult;
  /** The From domain. */
  readonly fromDomain: string;
  /** Its organizational domain (public suffix list). */
  readonly orgDomain: string;
  /** The policy for the From domain (sp= when the record found is the organizational domain's), before pct. */
  readonly policy: DmarcPolicy | undefined;
  readonly p: DmarcPolicy | undefined;
  /** The subdomain policy: sp=, or p= when the record has no sp=. */
  readonly sp: DmarcPolicy | undefined;
  /** pct=, 100 when absent. */
  readonly pct: number;
  /** The record, when one was found. */
  readonly record: string | undefined;
  /** The aligned identifiers, if any. */
  readonly alignedSpf: string | undefined;
  readonly alignedDkim: string | undefined;
  readonly error: string | undefined;
}

export interface DmarcOptions {
  /** The From header's address(es); not exactly one gives permerror. */
  readonly headerFrom: readonly string[];
  /** Domains that passed SPF (the MAIL FROM domain, or the HELO name for the null sender). */
  readonly spfDomains: readonly string[];
  /** Domains of the DKIM signatures that passed. */
  readonly dkimDomains: readonly string[];
  readonly resolver: DNSResolver;
}

const POLICIES: readonly string[] = ['none', 'quarantine', 'reject'];
const asPolicy = (v: unknown): DmarcPolicy | undefined => (typeof v === 'string' && POLICIES.includes(v.trim().toLowerCase()) ? (v.trim().toLowerCase() as DmarcPolicy) : undefined);

/** Check DMARC alignment and find the policy (mailauth: record lookup, org domain, relaxed/strict alignment). */
export async function checkDmarc(options: DmarcOptions): Promise<DmarcCheck> {
  if (options.headerFrom.length !== 1) {
    return { ...EMPTY_DMARC, result: 'permerror', error: `${options.headerFrom.length} From addresses` };
  }
  const from = options.headerFrom[0]!;
  const fromDomain = from.slice(from.lastIndexOf('@') + 1).toLowerCase();
  const r = await (await mailauth()).dmarc({
    headerFrom: from,
    spfDomains: [...options.spfDomains],
    dkimDomains: options.dkimDomains.map((domain) => ({ domain })),
    resolver: options.resolver,
  });
  if (r === false) return { ...EMPTY_DMARC, fromDomain, result: 'permerror', error: 'no From domain' };
  const raw = r as typeof r & { sp?: string; p?: string; policy?: string; rr?: string; error?: string };
  let result = (['pass', 'fail', 'none', 'temperror'].includes(r.status.result) ? r.status.result : 'permerror') as DmarcResult;
  // mailauth 4.13.3 treats adkim=s/aspf=s like relaxed (it compares organizational domains, then
  // falls back to the relaxed test). Strict alignment is an exact match of the domains (RFC 7489
  // §3.1.1), so its verdict is redone here from the same inputs; relaxed verdicts are kept.
  const same = (d: string): boolean => d.toLowerCase().replace(/\.$/, '') === fromDomain;
  let alignedSpf = typeof r.alignment?.spf?.result === 'string' ? r.alignment.spf.result : undefined;
  let alignedDkim = typeof r.alignment?.dkim?.result === 'string' ? r.alignment.dkim.result : undefined;
  if (r.alignment?.spf?.strict === true) alignedSpf = options.spfDomains.find(same);
  if (r.alignment?.dkim?.strict === true) alignedDkim = options.dkimDomains.find(same);
  if (result === 'pass' || result === 'fail') result = alignedSpf !== undefined || alignedDkim !== undefined ? 'pass' : 'fail';
  // pct= absent or not a number from 0 to 100: 100 (RFC 7489 §6.3).
  const pctMatch = raw.rr === undefined ? null : /(?:^|;)\s*pct\s*=\s*(\d{1,3})\s*(?:;|$)/i.exec(raw.rr);
  const pct = pctMatch !== null && Number(pctMatch[1]) <= 100 ? Number(pctMatch[1]) : 100;
  return {
    result,
    fromDomain,
    orgDomain: r.domain,
    policy: asPolicy(raw.policy),
    p: asPolicy(raw.p),
    sp: asPolicy(raw.sp),
    pct,
    record: raw.rr,
    alignedSpf,
    alignedDkim,
    error: raw.error,
  };
}

const EMPTY_DMARC: DmarcCheck = {
  result: 'none',
  fromDomain: '',
  orgDomain: '',
  policy: undefined,
  p: undefined,
  sp: undefined,
  pct: 100,
  record: undefined,
  alignedSpf: undefined,
  alignedDkim: undefined,
  error: undefined,
};

// ---- ARC -------------------------------------------------------------------------------------

export type ArcResult = 'pass' | 'fail' | 'none';

export interface ArcCheck {
  /** none: no ARC sets; pass: the chain and the latest ARC-Message-Signature verify; fail: otherwise. */
  readonly result: ArcResult;
  /** How many ARC sets the message carries (the latest instance), 0 for none. */
  readonly instance: number;
  readonly comment: string | undefined;
  /** The chain may be sealed on: none or pass, or a failure found after a set that said pass. */
  readonly sealable: boolean;
  /** The cv= to seal with. */
  readonly cv: ArcResult;
}

/** Verify the ARC chain found by `verifyDkim` (DNS for the ARC-Seal keys only: the AMS was checked then). */
export async function verifyArc(verification: DkimVerification, resolver: DNSResolver, minBitLength?: number): Promise<ArcCheck> {
  const r = await (await mailauth()).arc(verification.arcData, { resolver, ...(minBitLength !== undefined ? { minBitLength } : {}) });
  const result = (r.status.result === 'pass' || r.status.result === 'fail' ? r.status.result : 'none') as ArcResult;
  const instance = typeof r.i === 'number' ? r.i : 0;
  const comment = typeof r.status.comment === 'string' ? r.status.comment : undefined;
  return { result, instance, comment, sealable: result !== 'fail' || r.status.shouldSeal === true, cv: result };
}

export interface SealOptions extends SigningKey {
  /** cv= from `verifyArc`. */
  readonly cv: ArcResult;
  /** Our Authentication-Results value (`mx.example; spf=pass ...`), copied into ARC-Authentication-Results. */
  readonly authResults: string;
  readonly headerList?: readonly string[] | undefined;
}

/**
 * An ARC set for the message as it is now (ARC-Seal, ARC-Message-Signature,
 * ARC-Authentication-Results, in the order to add on top, first on top), instance = last + 1.
 */
export async function sealArc(message: Readable | Buffer, options: SealOptions): Promise<{ name: string; value: string }[]> {
  const algorithm = isEd25519(options.privateKey) ? 'ed25519-sha256' : 'rsa-sha256';
  const { headers } = await (await mailauth()).createSeal(message, {
    seal: {
      signingDomain: options.domain,
      selector: options.selector,
      privateKey: options.privateKey,
      algorithm,
      cv: options.cv,
      authResults: options.authResults,
      signTime: new Date(),
      ...(options.headerList !== undefined && options.headerList.length > 0 ? { headerList: options.headerList.join(':') } : {}),
    },
  });
  const fields = headers.map((h) => splitField(String(h).trimEnd()));
  if (fields.length !== 3 || fields.some((f) => f === undefined)) throw new Error('mailauth returned no ARC set');
  return fields as { name: string; value: string }[];
}

// ---- Arguments the four plugins share ---------------------------------------------------------

/**
 * `timeout SECONDS` (the check's DNS time budget, default 20: below the default plugin_timeout of
 * 30, so a dead name server ends in temperror rather than a plugin timeout) and `min_bits N`
 * (shortest RSA key accepted when verifying, default 1024), from a plugin's argument pairs.
 * Throws (the plugin does not load) on a value that is not one.
 */
export function authCheckArguments(pluginName: string, pairs: ReadonlyMap<string, string>): { timeoutMs: number; minBits: number } {
  const timeout = Number(pairs.get('timeout') ?? 20);
  if (!(timeout > 0 && timeout <= 3600)) throw new Error(`${pluginName}: timeout "${pairs.get('timeout')}": expected seconds`);
  const minBits = Number(pairs.get('min_bits') ?? 1024);
  if (!Number.isInteger(minBits) || minBits < 512 || minBits > 16384) throw new Error(`${pluginName}: min_bits "${pairs.get('min_bits')}": expected a number of bits`);
  return { timeoutMs: timeout * 1000, minBits };
}
