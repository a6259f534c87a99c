/**
 * One DNS lookup as the list and host-checking plugins want it: never throws, and says which of
 * the three things happened: records were found, the name has none ("no record", a final answer),
 * or the answer is unknown for now (a temporary error: time-out, SERVFAIL, the hook's time ran
 * out). Plugins treat the last as "don't decide on this": log it, and let the session go on (or
 * defer, where qpsmtpd did).
 *
 *   const r = await lookUp(this.dns, `${reversed}.${zone}`, 'A', this.signal);
 *   if (r.status === 'found') ... r.records
 *
 * Every lookup is bounded twice: by the resolver (`dns_timeout` per try, `dns_tries` rounds) and
 * by the signal (the hook's time limit, `plugin_timeout`; `withTimeout` adds a plugin's own cap).
 */
import { withDeadline } from '../util/deadline.ts';
import type { DnsResolver } from './resolver.ts';
import type { RecordType, RecordsOf } from './wire.ts';
import { DnsError, type DnsErrorCode } from './errors.ts';

export type LookupResult<T extends RecordType> =
  | { readonly status: 'found'; readonly records: RecordsOf[T] }
  /** NXDOMAIN (ENOTFOUND) or NODATA (ENODATA). */
  | { readonly status: 'none'; readonly code: 'ENOTFOUND' | 'ENODATA' }
  | { readonly status: 'error'; readonly code: DnsErrorCode | 'EUNKNOWN' };

export async function lookUp<T extends RecordType>(resolver: DnsResolver, name: string, type: T, signal?: AbortSignal): Promise<LookupResult<T>> {
  try {
    const records = await resolver.resolve(name, type, { signal });
    return { status: 'found', records };
  } catch (err) {
    if (!(err instanceof DnsError)) return { status: 'error', code: 'EUNKNOWN' };
    if (err.code === 'ENOTFOUND' || err.code === 'ENODATA') return { status: 'none', code: err.code };
    return { status: 'error', code: err.code };
  }
}

/**
 * Run `work` with `signal`, made to fire also after `seconds` (a plugin's `timeout` argument);
 * with `signal` itself when `seconds` is undefined or not positive. The time limit ends with the
 * work: left running, its timer would hold the hook's signal for all those seconds.
 *
 *   const { listed } = await withTimeout(this.signal, this.timeout, (signal) => askZones(..., signal));
 */
export async function withTimeout<T>(signal: AbortSignal, seconds: number | undefined, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  if (seconds === undefined || !(seconds > 0)) return work(signal);
  // A deadline, not AbortSignal.any + AbortSignal.timeout (which Node 20 may lose to GC).
  return withDeadline(Math.round(seconds * 1000), signal, work);
}

/** The text of a TXT answer: each record's strings joined, records separated by a space. */
export function txtText(records: RecordsOf['TXT']): string {
  return records.map((strings) => strings.join('')).join(' ');
}

/** What a DNS list (DNSBL, RHSBL, URIBL, DNSWL) says about one name. */
export type ListAnswer =
  | {
      readonly status: 'listed';
      /** The A records in 127.0.0.0/8 (empty when the zone answered TXT only). */
      readonly addresses: readonly string[];
      /** The TXT answer's text, when asked for and given. */
      readonly txt: string | undefined;
    }
  | { readonly status: 'unlisted' }
  | { readonly status: 'error'; readonly code: string };

/**
 * Ask a DNS list about `query` (`2.0.0.127.zen.example`, `example.com.dbl.example`): A, and TXT
 * too when `txt` is set, both at once. Listed: an A record in 127.0.0.0/8, or (TXT-only lists) a
 * TXT record. Not a listing: A records outside 127.0.0.0/8 (a resolver that answers every name)
 * are ignored, and 127.255.255.0/24 is the lists' code for "query refused" (Spamhaus and others:
 * an open resolver or too many queries), reported as the error `EREFUSED`.
 */
export async function askDnsList(resolver: DnsResolver, query: string, txt: boolean, signal?: AbortSignal): Promise<ListAnswer> {
  const [a, text] = await Promise.all([lookUp(resolver, query, 'A', signal), txt ? lookUp(resolver, query, 'TXT', signal) : undefined]);
  if (a.status === 'error') return { status: 'error', code: a.code };
  const txtAnswer = text?.status === 'found' ? txtText(text.records) : undefined;
  if (a.status === 'found') {
    if (a.records.some((ip) => ip.startsWith('127.255.255.'))) return { status: 'error', code: 'EREFUSED' };
    const addresses = a.records.filter((ip) => ip.startsWith('127.'));
    if (addresses.length > 0) return { status: 'listed', addresses, txt: txtAnswer };
    return { status: 'unlisted' };
  }
  if (txtAnswer !== undefined) return { status: 'listed', addresses: [], txt: txtAnswer };
  return { status: 'unlisted' };
}

/** A zone that listed the name, with what it said. */
export interface ZoneListing {
  readonly zone: string;
  readonly addresses: readonly string[];
  readonly txt: string | undefined;
}

/**
 * Ask several DNS lists about one name at once (`query(zone)` gives the name to ask of each;
 * `txt` says which zones are asked TXT too): the listing zones and the zones that failed, both in
 * the zones' order.
 */
export async function askZones(
  resolver: DnsResolver,
  zones: readonly { readonly zone: string; readonly txt: boolean }[],
  query: (zone: string) => string,
  signal?: AbortSignal,
): Promise<{ listed: ZoneListing[]; failed: { zone: string; code: string }[] }> {
  const answers = await Promise.all(zones.map((z) => askDnsList(resolver, query(z.zone), z.txt, signal)));
  const listed: ZoneListing[] = [];
  const failed: { zone: string; code: string }[] = [];
  answers.forEach((answer, i) => {
    const zone = zones[i]!.zone;
    if (answer.status === 'listed') listed.push({ zone, addresses: answer.addresses, txt: answer.txt });
    else if (answer.status === 'error') failed.push({ zone, code: answer.code });
  });
  return { listed, failed };
}

/**
 * A plugin's `timeout N` argument (seconds, fractions allowed), or undefined when not given;
 * anything but a positive number is an error that stops the plugin loading.
 */
export function timeoutArgument(pluginName: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (!(seconds > 0) || !Number.isFinite(seconds)) throw new Error(`${pluginName}: timeout "${value}" is no number of seconds`);
  return seconds;
}
