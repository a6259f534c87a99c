/**
 * Lookup failures, with node:dns's error codes so that code written for node:dns (mailauth's SPF,
 * DKIM and DMARC) reads them the same way: ENOTFOUND and ENODATA are answers ("there is no such
 * record"); every other code is a temporary failure (the answer is unknown).
 */
import type { RecordType } from './wire.ts';

export type DnsErrorCode =
  | 'ENOTFOUND' // NXDOMAIN: the name does not exist
  | 'ENODATA' // the name exists, without records of this type
  | 'ETIMEOUT' // no server answered in time
  | 'ESERVFAIL'
  | 'EREFUSED'
  | 'EFORMERR'
  | 'EBADRESP' // an answer we could not read
  | 'ECONNREFUSED'
  | 'ECANCELLED' // the caller's AbortSignal fired
  | 'EBADNAME';

export class DnsError extends Error {
  readonly code: DnsErrorCode;
  readonly hostname: string;
  readonly rrtype: RecordType;

  constructor(code: DnsErrorCode, hostname: string, rrtype: RecordType, detail?: string) {
    // A negative answer is a result, not a fault: one is made for every clean address a DNS list is
    // asked about. Its stack would show the resolver's answer handling, which helps nobody, and
    // capturing it was a few µs of every such lookup.
    const stackLimit = Error.stackTraceLimit;
    if (code === 'ENOTFOUND' || code === 'ENODATA') Error.stackTraceLimit = 0;
    try {
      super(`${rrtype} ${hostname}: ${code}${detail ? ` (${detail})` : ''}`);
    } finally {
      Error.stackTraceLimit = stackLimit;
    }
    this.name = 'DnsError';
    this.code = code;
    this.hostname = hostname;
    this.rrtype = rrtype;
  }

  /** Does this error say something about the name (cacheable, final), or only that we don't know? */
  get isNegativeAnswer(): boolean {
    return this.code === 'ENOTFOUND' || this.code === 'ENODATA';
  }

  static fromSocket(err: Error, hostname: string, rrtype: RecordType): DnsError {
    const code = (err as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? 'ECONNREFUSED' : 'EBADRESP';
    return new DnsError(code, hostname, rrtype, err.message);
  }
}

/** True for an error that means "no such record" rather than "could not find out". */
export function isNegativeAnswer(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ENOTFOUND' || code === 'ENODATA';
}
