/**
 * Just enough HTTP/1.x for a scanner's answer (rspamd): the status line, the header fields, and a
 * body sized by Content-Length, sent chunked, or running to the close. Requests are written by
 * the caller; this reads the one response on a `Connection: close` exchange.
 */
import { Buffer } from 'node:buffer';
import { ScanError } from './socket-request.ts';

export interface HttpResponse {
  readonly status: number;
  readonly reason: string;
  /** Header fields by lower-case name (the last of a repeated one). */
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Buffer;
}

const HEAD_END = Buffer.from('\r\n\r\n');

/** For `socketRequest`'s replyComplete: the whole response has arrived (not for bodies that run to the close). */
export function httpResponseComplete(reply: Buffer): boolean {
  const head = reply.indexOf(HEAD_END);
  if (head === -1) return false;
  const fields = parseHead(reply.subarray(0, head)).headers;
  const body = reply.subarray(head + 4);
  const length = fields.get('content-length');
  if (length !== undefined) return body.length >= Number(length);
  if (/\bchunked\b/i.test(fields.get('transfer-encoding') ?? '')) return dechunk(body) !== undefined;
  return false;
}

/** Parse a complete response; anything that is not one is a ScanError ('protocol'). */
export function parseHttpResponse(reply: Buffer, peer: string): HttpResponse {
  const head = reply.indexOf(HEAD_END);
  if (head === -1) throw new ScanError(`${peer}: incomplete HTTP response ${JSON.stringify(reply.subarray(0, 200).toString('latin1'))}`, 'protocol');
  const { status, reason, headers } = parseHead(reply.subarray(0, head));
  if (status === 0) throw new ScanError(`${peer}: not an HTTP response ${JSON.stringify(reply.subarray(0, Math.min(head, 200)).toString('latin1'))}`, 'protocol');
  let body = reply.subarray(head + 4);
  const length = headers.get('content-length');
  if (length !== undefined) {
    if (body.length < Number(length)) throw new ScanError(`${peer}: HTTP body cut short (${body.length} of ${length} bytes)`, 'protocol');
    body = body.subarray(0, Number(length));
  } else if (/\bchunked\b/i.test(headers.get('transfer-encoding') ?? '')) {
    const whole = dechunk(body);
    if (whole === undefined) throw new ScanError(`${peer}: chunked HTTP body cut short`, 'protocol');
    body = whole;
  }
  return { status, reason, headers, body };
}

function parseHead(head: Buffer): { status: number; reason: string; headers: Map<string, string> } {
  const [statusLine = '', ...lines] = head.toString('latin1').split('\r\n');
  const match = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: match === null ? 0 : Number(match[1]), reason: match?.[2] ?? '', headers };
}

/** The body of a chunked transfer, or undefined while the last chunk has not arrived. */
function dechunk(data: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at);
    if (lineEnd === -1) return undefined;
    const size = parseInt(data.subarray(at, lineEnd).toString('latin1').split(';')[0]!, 16);
    if (!Number.isFinite(size)) throw new ScanError('bad chunk size in an HTTP body', 'protocol');
    if (size === 0) return Buffer.concat(parts);
    const start = lineEnd + 2;
    if (data.length < start + size + 2) return undefined;
    parts.push(data.subarray(start, start + size));
    at = start + size + 2;
  }
}
