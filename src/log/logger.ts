/**
 * Where log lines go: to the `logging` hook when logging plugins are loaded, otherwise to stderr
 * filtered by `loglevel` (qpsmtpd's rule). A message above every sink's threshold is dropped before
 * it is even formatted, so debug logging costs nothing when it is off.
 */
import { inspect } from 'node:util';
import type { LogLevel } from './levels.ts';

export interface LogContext {
  readonly connectionId?: string;
  readonly transactionId?: string;
}

/** One log line, as logging sinks receive it. */
export interface LogRecord extends LogContext {
  readonly level: LogLevel;
  readonly hook: string;
  readonly plugin: string;
  readonly message: string;
}

/** Join log arguments into one line: strings as they are, errors with their stack, the rest inspected. */
export function formatLogParts(parts: readonly unknown[]): string {
  let out = '';
  for (const part of parts) {
    const text =
      typeof part === 'string'
        ? part
        : part instanceof Error
          ? (part.stack ?? part.message)
          : typeof part === 'number' || typeof part === 'boolean' || typeof part === 'bigint'
            ? String(part)
            : inspect(part, { breakLength: Infinity, depth: 4 });
    out = out === '' ? text : out + ' ' + text;
  }
  return out;
}

/** qpsmtpd's stderr format, with the connection id: `1234 [c7] (rcpt) rcpt_ok: message`. */
export function formatStderrLine(pid: number, record: LogRecord): string {
  const where = record.connectionId ? ` [${record.transactionId ?? record.connectionId}]` : '';
  const hook = record.hook ? ` (${record.hook})` : '';
  const plugin = record.plugin ? ` ${record.plugin}:` : '';
  return `${pid}${where}${hook}${plugin} ${record.message}`;
}
