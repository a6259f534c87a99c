/** Messages for tests: a small builder, and the wire form a client sends after DATA. */

export interface MessageParts {
  readonly from?: string;
  readonly to?: string | readonly string[];
  readonly subject?: string;
  /** Default: now. */
  readonly date?: Date;
  /** More header fields, in order: `{ 'X-Test': '1' }` or `[['Received', '...'], ...]`. */
  readonly headers?: Readonly<Record<string, string>> | readonly (readonly [string, string])[];
  readonly body?: string;
}

let counter = 0;

/**
 * A plain RFC 5322 message with From, To, Subject, Date and Message-ID (what the `headers` checks
 * want), `\n` line ends (sendMail makes them CRLF).
 */
export function buildMessage(parts: MessageParts = {}): string {
  const from = parts.from ?? 'sender@example.test';
  const to = parts.to === undefined ? ['rcpt@example.test'] : typeof parts.to === 'string' ? [parts.to] : parts.to;
  const fields: [string, string][] = [
    ['From', `<${from}>`],
    ['To', to.map((a) => `<${a}>`).join(', ')],
    ['Subject', parts.subject ?? 'test'],
    ['Date', (parts.date ?? new Date()).toUTCString().replace('GMT', '+0000')],
    ['Message-ID', `<${Date.now().toString(36)}.${++counter}@example.test>`],
  ];
  const extra = parts.headers === undefined ? [] : Array.isArray(parts.headers) ? parts.headers : Object.entries(parts.headers);
  for (const [name, value] of extra as Iterable<readonly [string, string]>) fields.push([name, value]);
  return fields.map(([n, v]) => `${n}: ${v}\n`).join('') + '\n' + (parts.body ?? 'Hello.\n');
}

/**
 * A message as a client sends it after the 354, without the final dot: line ends made CRLF, a
 * missing last line end added, lines starting with `.` dot-stuffed. A Buffer is treated as bytes
 * (latin1), so 8-bit content passes unchanged.
 */
export function toWire(message: string | Buffer): Buffer {
  const text = typeof message === 'string' ? message : message.toString('latin1');
  let wire = text.replace(/\r?\n/g, '\r\n');
  if (wire !== '' && !wire.endsWith('\r\n')) wire += '\r\n';
  wire = wire.replace(/^\./gm, '..');
  return Buffer.from(wire, typeof message === 'string' ? 'utf8' : 'latin1');
}

/** `<user@host>` for `user@host`, `<>` for `''`; a path already in brackets is left alone. */
export function toPath(address: string): string {
  const a = address.trim();
  return a.startsWith('<') ? a : `<${a}>`;
}
