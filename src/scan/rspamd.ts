/**
 * rspamd's HTTP protocol (`POST /checkv2`): the message as the body, the envelope and the
 * connection in request header fields (IP, Helo, Hostname, From, Rcpt per recipient, Queue-Id,
 * User, MTA-Name, TLS-Cipher, TLS-Version, Settings-ID); the answer is JSON with the score, the
 * action rspamd recommends, the symbols that fired, a rewritten Subject, an SMTP message, and the
 * header changes (`milter.add_headers`, `milter.remove_headers`) rspamd's modules ask for.
 */
import { Buffer } from 'node:buffer';
import type { Header } from '../message/header.ts';
import type { Transaction } from '../session/transaction.ts';
import { messageSize } from '../mail/envelope.ts';
import { parseHttpResponse } from './http.ts';
import { messageSource } from './message.ts';
import { ScanError } from './socket-request.ts';

/** The longest rspamd answer taken (JSON with every symbol and its options). */
export const RSPAMD_MAX_REPLY = 4 * 1024 * 1024;

/** What rspamd is told besides the message. Missing fields are not sent. */
export interface RspamdEnvelope {
  readonly ip?: string;
  readonly helo?: string;
  /** The client's verified host name. */
  readonly hostname?: string;
  /** The envelope sender; none for the null sender. */
  readonly from?: string;
  readonly rcpts: readonly string[];
  readonly queueId?: string;
  /** The authenticated user. */
  readonly user?: string;
  readonly mtaName?: string;
  readonly tlsCipher?: string;
  readonly tlsVersion?: string;
  readonly settingsId?: string;
}

/** The request: head, then the message streamed. `host` is the Host field (the target, for logs on rspamd's side). */
export async function* rspamdCheckRequest(tx: Transaction, envelope: RspamdEnvelope, host: string): AsyncGenerator<Buffer> {
  const fields: [string, string | undefined][] = [
    ['Host', host],
    ['Connection', 'close'],
    ['Content-Length', String(messageSize(tx))],
    ['IP', envelope.ip],
    ['Helo', envelope.helo],
    ['Hostname', envelope.hostname],
    ['From', envelope.from],
    ...envelope.rcpts.map((r): [string, string] => ['Rcpt', r]),
    ['Queue-Id', envelope.queueId],
    ['User', envelope.user],
    ['MTA-Name', envelope.mtaName],
    ['TLS-Cipher', envelope.tlsCipher],
    ['TLS-Version', envelope.tlsVersion],
    ['Settings-ID', envelope.settingsId],
  ];
  // A client's HELO can hold anything: no control characters may reach the request head.
  const head = fields
    .filter((f): f is [string, string] => f[1] !== undefined && f[1] !== '')
    .map(([name, value]) => `${name}: ${value.replace(/[\x00-\x1f\x7f]+/g, ' ')}\r\n`)
    .join('');
  yield Buffer.from(`POST /checkv2 HTTP/1.1\r\n${head}\r\n`, 'utf8');
  yield* messageSource(tx);
}

/** One symbol that fired. */
export interface RspamdSymbol {
  readonly score: number;
  readonly options?: readonly string[];
}

/** A header change rspamd asks for: value and position (`order` -1 or absent: at the end; N: before the N-th field, 0 on top). */
export interface RspamdHeaderAdd {
  readonly value: string;
  readonly order: number;
}

export interface RspamdResult {
  readonly score: number;
  readonly requiredScore: number;
  /** `no action`, `greylist`, `add header`, `rewrite subject`, `soft reject`, `reject`. */
  readonly action: string;
  readonly isSkipped: boolean;
  readonly symbols: Readonly<Record<string, RspamdSymbol>>;
  /** The Subject for `rewrite subject`. */
  readonly subject?: string;
  /** rspamd's text for the client (`messages.smtp_message`). */
  readonly smtpMessage?: string;
  readonly messageId?: string;
  readonly addHeaders: readonly (readonly [string, RspamdHeaderAdd])[];
  /** Fields to remove: name and which (0: all; N: the N-th; -N: the N-th from the end). */
  readonly removeHeaders: readonly (readonly [string, number])[];
}

/** Parse rspamd's HTTP answer; a status other than 200, or JSON that is not a result, is a ScanError. */
export function parseRspamdReply(reply: Buffer, peer: string): RspamdResult {
  const response = parseHttpResponse(reply, peer);
  const text = response.body.toString('utf8');
  if (response.status !== 200) throw new ScanError(`${peer}: HTTP ${response.status} ${response.reason} ${text.slice(0, 200)}`.trim(), 'protocol');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ScanError(`${peer}: the answer is not JSON: ${JSON.stringify(text.slice(0, 200))}`, 'protocol');
  }
  const data = record(json);
  const score = data['score'];
  const action = data['action'];
  if (typeof score !== 'number' || typeof action !== 'string') throw new ScanError(`${peer}: no score or action in the answer`, 'protocol');
  const required = data['required_score'];
  const symbols: Record<string, RspamdSymbol> = {};
  for (const [name, raw] of Object.entries(record(data['symbols']))) {
    const symbol = record(raw);
    const options = Array.isArray(symbol['options']) ? symbol['options'].map(String) : undefined;
    symbols[name] = { score: typeof symbol['score'] === 'number' ? symbol['score'] : 0, ...(options ? { options } : {}) };
  }
  const milter = record(data['milter']);
  const message = record(data['messages'])['smtp_message'];
  return {
    score,
    requiredScore: typeof required === 'number' ? required : NaN,
    action,
    isSkipped: data['is_skipped'] === true,
    symbols,
    ...(typeof data['subject'] === 'string' ? { subject: data['subject'] } : {}),
    ...(typeof message === 'string' && message !== '' ? { smtpMessage: message } : {}),
    ...(typeof data['message-id'] === 'string' ? { messageId: data['message-id'] } : {}),
    addHeaders: Object.entries(record(milter['add_headers'])).flatMap(([name, value]) => headerAdds(value).map((add) => [name, add] as const)),
    removeHeaders: Object.entries(record(milter['remove_headers'])).flatMap(([name, value]) =>
      (Array.isArray(value) ? value : [value]).filter((n): n is number => typeof n === 'number').map((n) => [name, n] as const),
    ),
  };
}

/** `"value"`, `{ value, order }`, or a list of either. */
function headerAdds(value: unknown): RspamdHeaderAdd[] {
  if (typeof value === 'string') return [{ value, order: -1 }];
  if (Array.isArray(value)) return value.flatMap(headerAdds);
  const item = record(value);
  if (typeof item['value'] !== 'string') return [];
  return [{ value: item['value'], order: typeof item['order'] === 'number' ? item['order'] : -1 }];
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/**
 * Make the header changes rspamd asked for: removals first (so that a removal and an addition of
 * the same name replace it), then additions at their positions. Returns the names of additions
 * left out because they are no field names.
 */
export function applyRspamdHeaderChanges(header: Header, result: RspamdResult): string[] {
  const refused: string[] = [];
  for (const [name, which] of result.removeHeaders) {
    const count = header.count(name);
    if (which === 0) header.delete(name);
    else if (which > 0 && which <= count) header.delete(name, which - 1);
    else if (which < 0 && -which <= count) header.delete(name, count + which);
  }
  for (const [name, add] of result.addHeaders) {
    if (!/^[\x21-\x39\x3b-\x7e]+$/.test(name)) refused.push(name);
    else if (add.order >= 0) header.add(name, add.value, add.order);
    else header.add(name, add.value);
  }
  return refused;
}
