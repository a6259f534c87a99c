/**
 * The daemon's one DNS resolver: every plugin's lookups go through it (`this.dns` in a plugin).
 *
 * - Servers from config `dns_servers` (else the system's), asked in order; `dns_timeout` seconds
 *   per try (default 3, fractions allowed), `dns_tries` rounds over the servers (default 2). A
 *   truncated UDP answer is asked again over TCP.
 * - An in-process cache that honours the answers' TTLs (capped at a day), negative answers for
 *   as long as their SOA says (RFC 2308; without an SOA they are not cached). Temporary failures
 *   are never cached. Identical lookups in flight share one query.
 * - Every lookup takes the hook's AbortSignal: when the plugin's time is up the caller gets
 *   ECANCELLED at once (a shared query still finishes for the others and fills the cache).
 * - Counters of lookups, cache hits, queries sent, timeouts and failures (`stats()`).
 *
 * Records come in node:dns/promises shapes and errors with its codes (see errors.ts), so the
 * resolver can be handed to code written for node:dns, such as mailauth.
 */
import { DnsError } from './errors.ts';
import { askTcp, askUdp } from '../transport/dns-exchange.ts';
import { canonicalName, loadCodec, type ParsedAnswer, type RecordType, type RecordsOf } from './wire.ts';
import type { NameServer } from './servers.ts';

export interface ResolverOptions {
  /** The servers, or where to find them when first needed (the system's list: see from-config.ts). */
  readonly servers: readonly NameServer[] | (() => readonly NameServer[]);
  /** Per try, in milliseconds. */
  readonly timeoutMs?: number;
  /** Rounds over the server list. */
  readonly tries?: number;
  /** Most entries the cache holds; the oldest go first. */
  readonly cacheSize?: number;
  /** Clock for the cache (tests). */
  readonly now?: () => number;
}

export interface LookupOptions {
  readonly signal?: AbortSignal | undefined;
}

export interface DnsStats {
  /** resolve() calls. */
  lookups: number;
  /** ... answered from the cache. */
  cacheHits: number;
  /** ... that joined an identical lookup already in flight. */
  joined: number;
  /** Questions sent on the wire (UDP and TCP, every try). */
  queries: number;
  /** Tries that timed out. */
  timeouts: number;
  /** Lookups that ended in a temporary failure (no answer from any server). */
  failures: number;
  /** Lookups cancelled by their caller's signal. */
  cancelled: number;
}

/** A lookup's outcome, as cached: records, or a negative answer. */
type Outcome = { readonly records: unknown[] } | { readonly error: DnsError };

interface CacheEntry {
  readonly expires: number;
  readonly outcome: Outcome;
}

const DEFAULT_TIMEOUT_MS = 3000;
const DEFAULT_TRIES = 2;
const DEFAULT_CACHE_SIZE = 20000;
const MAX_TTL_S = 86400;

export class DnsResolver {
  private serverList: readonly NameServer[] | (() => readonly NameServer[]);
  readonly timeoutMs: number;
  readonly tries: number;
  private readonly cacheSize: number;
  private readonly now: () => number;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inFlight = new Map<string, Promise<Outcome>>();
  private readonly counters: DnsStats = { lookups: 0, cacheHits: 0, joined: 0, queries: 0, timeouts: 0, failures: 0, cancelled: 0 };

  get servers(): readonly NameServer[] {
    if (typeof this.serverList === 'function') this.serverList = this.serverList();
    return this.serverList;
  }

  constructor(options: ResolverOptions) {
    this.serverList = options.servers;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.tries = Math.max(1, options.tries ?? DEFAULT_TRIES);
    this.cacheSize = options.cacheSize ?? DEFAULT_CACHE_SIZE;
    this.now = options.now ?? Date.now;
  }

  /** The records of `type` at `name`; rejects with a DnsError (see errors.ts for the codes). */
  async resolve<T extends RecordType>(name: string, type: T, options: LookupOptions = {}): Promise<RecordsOf[T]> {
    this.counters.lookups++;
    const qname = canonicalName(name);
    const badName = nameProblem(qname);
    if (badName !== undefined) throw new DnsError('EBADNAME', name, type, badName);
    const key = `${type} ${qname}`;

    const cached = this.cache.get(key);
    if (cached !== undefined) {
      if (cached.expires > this.now()) {
        this.counters.cacheHits++;
        return unwrap(cached.outcome) as RecordsOf[T];
      }
      this.cache.delete(key);
    }

    let pending = this.inFlight.get(key);
    if (pending === undefined) {
      pending = this.lookUp(qname, type).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    } else {
      this.counters.joined++;
    }
    const outcome = await this.raceSignal(pending, name, type, options.signal);
    return unwrap(outcome) as RecordsOf[T];
  }

  /** node:dns/promises `resolve(name, rrtype)` in shape, for libraries that take such a function. */
  readonly nodeStyle = (name: string, rrtype = 'A'): Promise<unknown[]> => this.resolve(name, rrtype.toUpperCase() as RecordType);

  /** A copy of the counters. */
  stats(): DnsStats {
    return { ...this.counters };
  }

  /** Forget every cached answer (a reload, a test). */
  clearCache(): void {
    this.cache.clear();
  }

  private async lookUp(name: string, type: RecordType): Promise<Outcome> {
    await loadCodec();
    let lastError: DnsError | undefined;
    for (let round = 0; round < this.tries; round++) {
      for (const server of this.servers) {
        try {
          const answer = await this.ask(server, name, type);
          const outcome = outcomeOf(answer, name, type);
          if (outcome !== undefined) {
            this.remember(`${type} ${name}`, outcome, answer.ttl);
            return outcome;
          }
          lastError = new DnsError(answer.rcode === 'REFUSED' ? 'EREFUSED' : answer.rcode === 'FORMERR' ? 'EFORMERR' : 'ESERVFAIL', name, type);
        } catch (err) {
          if (!(err instanceof DnsError)) throw err;
          if (err.code === 'ETIMEOUT') this.counters.timeouts++;
          lastError = err;
        }
      }
    }
    this.counters.failures++;
    throw lastError ?? new DnsError('ESERVFAIL', name, type, 'no name servers configured');
  }

  private async ask(server: NameServer, name: string, type: RecordType): Promise<ParsedAnswer> {
    this.counters.queries++;
    const options = { timeoutMs: this.timeoutMs };
    const answer = await askUdp(server, name, type, options);
    if (!answer.truncated) return answer;
    this.counters.queries++;
    return askTcp(server, name, type, options);
  }

  private remember(key: string, outcome: Outcome, ttl: number | undefined): void {
    if (ttl === undefined || ttl <= 0) return;
    if (this.cache.size >= this.cacheSize) {
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(key, { expires: this.now() + Math.min(ttl, MAX_TTL_S) * 1000, outcome });
  }

  private raceSignal(pending: Promise<Outcome>, name: string, type: RecordType, signal: AbortSignal | undefined): Promise<Outcome> {
    if (signal === undefined) return pending;
    if (signal.aborted) {
      this.counters.cancelled++;
      return Promise.reject(new DnsError('ECANCELLED', name, type));
    }
    return new Promise<Outcome>((resolvePromise, rejectPromise) => {
      const onAbort = (): void => {
        this.counters.cancelled++;
        rejectPromise(new DnsError('ECANCELLED', name, type));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      pending.then(
        (outcome) => {
          signal.removeEventListener('abort', onAbort);
          resolvePromise(outcome);
        },
        (err: unknown) => {
          signal.removeEventListener('abort', onAbort);
          rejectPromise(err);
        },
      );
    });
  }
}

/** The final outcome an answer gives, or undefined when another server should be asked. */
function outcomeOf(answer: ParsedAnswer, name: string, type: RecordType): Outcome | undefined {
  if (answer.rcode === 'NXDOMAIN') return { error: new DnsError('ENOTFOUND', name, type) };
  if (answer.rcode !== 'NOERROR') return undefined;
  if (answer.records.length === 0) return { error: new DnsError('ENODATA', name, type) };
  return { records: answer.records };
}

function unwrap(outcome: Outcome): unknown[] {
  if ('error' in outcome) throw outcome.error;
  // A copy: callers may sort or splice what they get without touching the cache.
  return outcome.records.slice();
}

/** Why a name cannot be asked (RFC 1035 §2.3.4 sizes), or undefined. */
function nameProblem(name: string): string | undefined {
  if (name === '') return 'empty name';
  if (name.length > 253) return 'name longer than 253 characters';
  for (const label of name.split('.')) {
    if (label === '') return 'empty label';
    if (Buffer.byteLength(label) > 63) return 'label longer than 63 bytes';
  }
  return undefined;
}
