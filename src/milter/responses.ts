/**
 * What a milter answers (SMFIR_*): each reply as a value, its decoding from a packet, and its
 * encoding (what a milter does; our tests' fake milter uses it).
 *
 * Layouts (after the code byte):
 *   OPTNEG      version, actions, protocol (3 x uint32), then optionally, per macro stage it
 *               wants its own list for: stage (uint32), the names separated by spaces NUL
 *   REPLYCODE   `550 5.7.1 text` NUL (several lines: `550-5.7.1 one\r\n550 5.7.1 two`)
 *   ADDHEADER   name NUL value NUL
 *   INSHEADER   index (uint32, 0 = on top), name NUL value NUL
 *   CHGHEADER   index (uint32, the n-th field of that name, from 1), name NUL value NUL
 *               (an empty value deletes the field)
 *   ADDRCPT, DELRCPT  address NUL;  ADDRCPT_PAR  address NUL args NUL
 *   CHGFROM     address NUL [args NUL]
 *   REPLBODY    raw bytes of the new body (the new body is every REPLBODY of one reply, in order)
 *   QUARANTINE  reason NUL
 *   ACCEPT, CONTINUE, DISCARD, REJECT, TEMPFAIL, SKIP, PROGRESS, CONN_FAIL, SHUTDOWN: nothing
 */
import { Reply } from './protocol.ts';
import { cstring, cstrings, encodePacket, uint32, type Packet } from './packets.ts';

/** The answers that end a stage (or, for `progress`, prolong the wait). */
export type MilterVerdict =
  | { readonly type: 'accept' }
  | { readonly type: 'continue' }
  | { readonly type: 'discard' }
  | { readonly type: 'reject' }
  | { readonly type: 'tempfail' }
  | { readonly type: 'skip' }
  | { readonly type: 'conn_fail' }
  | { readonly type: 'shutdown' }
  | { readonly type: 'replycode'; readonly code: number; readonly lines: readonly string[] };

/** The changes a milter may ask for at the end of a message. */
export type MilterModification =
  | { readonly type: 'addheader'; readonly name: string; readonly value: string }
  | { readonly type: 'insheader'; readonly index: number; readonly name: string; readonly value: string }
  | { readonly type: 'chgheader'; readonly index: number; readonly name: string; readonly value: string }
  | { readonly type: 'addrcpt'; readonly address: string; readonly args?: string }
  | { readonly type: 'delrcpt'; readonly address: string }
  | { readonly type: 'chgfrom'; readonly address: string; readonly args?: string }
  | { readonly type: 'replbody'; readonly chunk: Buffer }
  | { readonly type: 'quarantine'; readonly reason: string };

export interface OptnegReply {
  readonly type: 'optneg';
  readonly version: number;
  readonly actions: number;
  readonly protocol: number;
  /** Macro lists the milter asks for, by macro stage (SMFIM_*). */
  readonly macros: ReadonlyMap<number, readonly string[]>;
}

export type MilterResponse = MilterVerdict | MilterModification | OptnegReply | { readonly type: 'progress' };

const SIMPLE: Readonly<Record<string, MilterResponse['type']>> = {
  [Reply.ACCEPT]: 'accept',
  [Reply.CONTINUE]: 'continue',
  [Reply.DISCARD]: 'discard',
  [Reply.REJECT]: 'reject',
  [Reply.TEMPFAIL]: 'tempfail',
  [Reply.SKIP]: 'skip',
  [Reply.PROGRESS]: 'progress',
  [Reply.CONN_FAIL]: 'conn_fail',
  [Reply.SHUTDOWN]: 'shutdown',
};

/**
 * A reply code and text: `NNN text`, or several lines `NNN-text` ... `NNN text` separated by
 * CRLF (or LF), all with the same 4xx or 5xx code. Returns undefined for anything else.
 */
export function parseReplyCode(text: string): { code: number; lines: string[] } | undefined {
  const raw = text.split(/\r?\n/);
  if (raw[raw.length - 1] === '') raw.pop();
  if (raw.length === 0) return undefined;
  const code = raw[0]!.slice(0, 3);
  if (!/^[45]\d\d$/.test(code)) return undefined;
  const lines: string[] = [];
  for (let i = 0; i < raw.length; i++) {
    const line = raw[i]!;
    const last = i === raw.length - 1;
    if (line.slice(0, 3) !== code) return undefined;
    const sep = line.charAt(3);
    if (sep === '' && last) lines.push('');
    else if (sep === (last ? ' ' : '-')) lines.push(line.slice(4));
    else return undefined;
  }
  return { code: Number(code), lines };
}

/** A packet from a milter as a reply, or an error text when it is not a valid one. */
export function decodeResponse(packet: Packet): MilterResponse | { readonly error: string } {
  const { code, data } = packet;
  const bad = (what: string): { error: string } => ({ error: `bad ${what} reply (${data.length} bytes)` });
  const simple = SIMPLE[code];
  if (simple !== undefined) return data.length === 0 ? ({ type: simple } as MilterResponse) : bad(simple);
  switch (code) {
    case Reply.OPTNEG: {
      if (data.length < 12) return bad('OPTNEG');
      const macros = new Map<number, string[]>();
      let at = 12;
      while (at < data.length) {
        if (at + 4 >= data.length) return bad('OPTNEG');
        const stage = data.readUInt32BE(at);
        const end = data.indexOf(0, at + 4);
        if (end === -1) return bad('OPTNEG');
        macros.set(stage, data.toString('utf8', at + 4, end).split(/[\s,]+/).filter((n) => n !== ''));
        at = end + 1;
      }
      return { type: 'optneg', version: data.readUInt32BE(0), actions: data.readUInt32BE(4), protocol: data.readUInt32BE(8), macros };
    }
    case Reply.REPLYCODE: {
      const s = cstrings(data, 1);
      const parsed = s === undefined ? undefined : parseReplyCode(s[0]!);
      return parsed === undefined ? bad('REPLYCODE') : { type: 'replycode', ...parsed };
    }
    case Reply.ADDHEADER: {
      const s = cstrings(data, 2);
      return s === undefined || !FIELD_NAME.test(s[0]!) ? bad('ADDHEADER') : { type: 'addheader', name: s[0]!, value: s[1]! };
    }
    case Reply.INSHEADER:
    case Reply.CHGHEADER: {
      const type = code === Reply.INSHEADER ? 'insheader' : 'chgheader';
      const s = data.length < 4 ? undefined : cstrings(data.subarray(4), 2);
      return s === undefined || !FIELD_NAME.test(s[0]!) ? bad(type) : { type, index: data.readUInt32BE(0), name: s[0]!, value: s[1]! };
    }
    case Reply.ADDRCPT:
    case Reply.DELRCPT: {
      const s = cstrings(data, 1);
      const type = code === Reply.ADDRCPT ? 'addrcpt' : 'delrcpt';
      return s === undefined || s[0] === '' ? bad(type) : { type, address: s[0]! };
    }
    case Reply.ADDRCPT_PAR: {
      const s = cstrings(data);
      if (s === undefined || s.length < 1 || s.length > 2 || s[0] === '') return bad('ADDRCPT_PAR');
      return s[1] === undefined || s[1] === '' ? { type: 'addrcpt', address: s[0]! } : { type: 'addrcpt', address: s[0]!, args: s[1] };
    }
    case Reply.CHGFROM: {
      const s = cstrings(data);
      if (s === undefined || s.length < 1 || s.length > 2) return bad('CHGFROM');
      return s[1] === undefined || s[1] === '' ? { type: 'chgfrom', address: s[0]! } : { type: 'chgfrom', address: s[0]!, args: s[1] };
    }
    case Reply.REPLBODY:
      return { type: 'replbody', chunk: data };
    case Reply.QUARANTINE: {
      const s = cstrings(data, 1);
      return s === undefined ? bad('QUARANTINE') : { type: 'quarantine', reason: s[0]! };
    }
    default:
      return { error: `unknown reply code ${JSON.stringify(code)}` };
  }
}

/** A header field name (RFC 5322: printable ASCII but the colon). */
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

const CODE_OF: Readonly<Record<string, string>> = Object.fromEntries(Object.entries(SIMPLE).map(([code, type]) => [type, code]));

/** One reply as a packet (for a milter; the tests' fake milter uses it). */
export function encodeResponse(r: MilterResponse): Buffer {
  switch (r.type) {
    case 'optneg': {
      const lists = [...r.macros].flatMap(([stage, names]) => [uint32(stage), cstring(names.join(' '))]);
      return encodePacket(Reply.OPTNEG, uint32(r.version), uint32(r.actions), uint32(r.protocol), ...lists);
    }
    case 'replycode': {
      const text = r.lines.map((line, i) => `${r.code}${i === r.lines.length - 1 ? ' ' : '-'}${line}`).join('\r\n');
      return encodePacket(Reply.REPLYCODE, cstring(text));
    }
    case 'addheader':
      return encodePacket(Reply.ADDHEADER, cstring(r.name), cstring(r.value));
    case 'insheader':
      return encodePacket(Reply.INSHEADER, uint32(r.index), cstring(r.name), cstring(r.value));
    case 'chgheader':
      return encodePacket(Reply.CHGHEADER, uint32(r.index), cstring(r.name), cstring(r.value));
    case 'addrcpt':
      return r.args === undefined ? encodePacket(Reply.ADDRCPT, cstring(r.address)) : encodePacket(Reply.ADDRCPT_PAR, cstring(r.address), cstring(r.args));
    case 'delrcpt':
      return encodePacket(Reply.DELRCPT, cstring(r.address));
    case 'chgfrom':
      return r.args === undefined ? encodePacket(Reply.CHGFROM, cstring(r.address)) : encodePacket(Reply.CHGFROM, cstring(r.address), cstring(r.args));
    case 'replbody':
      return encodePacket(Reply.REPLBODY, r.chunk);
    case 'quarantine':
      return encodePacket(Reply.QUARANTINE, cstring(r.reason));
    default:
      return encodePacket(CODE_OF[r.type]!);
  }
}
