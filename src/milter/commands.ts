/**
 * What the MTA sends a milter (SMFIC_*): each command as a value, its encoding into a packet, and
 * the decoding back (what a milter does; our tests' fake milter uses it).
 *
 * Layouts (after the code byte):
 *   OPTNEG   version, actions, protocol (3 x uint32)
 *   MACRO    the code of the command the macros belong to (1 byte), then name NUL value NUL ...
 *   CONNECT  hostname NUL, family (1 byte); unless family is U: port (uint16), address NUL
 *   HELO     host NUL
 *   MAIL     sender NUL, then each ESMTP argument NUL     (RCPT the same)
 *   HEADER   name NUL value NUL
 *   BODY     raw body bytes (at most 65535)               (BODYEOB the same, usually empty)
 *   UNKNOWN  the command line NUL
 *   DATA, EOH, ABORT, QUIT, QUIT_NC: nothing
 */
import { Cmd, Family, type FamilyCode } from './protocol.ts';
import { cstring, cstrings, encodePacket, uint32, type Packet } from './packets.ts';

export type MilterCommand =
  | { readonly type: 'optneg'; readonly version: number; readonly actions: number; readonly protocol: number }
  | { readonly type: 'macro'; readonly command: string; readonly macros: readonly (readonly [string, string])[] }
  | { readonly type: 'connect'; readonly hostname: string; readonly family: FamilyCode; readonly port: number; readonly address: string }
  | { readonly type: 'helo'; readonly host: string }
  | { readonly type: 'mail'; readonly args: readonly string[] }
  | { readonly type: 'rcpt'; readonly args: readonly string[] }
  | { readonly type: 'data' }
  | { readonly type: 'header'; readonly name: string; readonly value: string | Buffer }
  | { readonly type: 'eoh' }
  | { readonly type: 'body'; readonly chunk: Buffer }
  | { readonly type: 'eob'; readonly chunk: Buffer }
  | { readonly type: 'unknown'; readonly line: string }
  | { readonly type: 'abort' }
  | { readonly type: 'quit' }
  | { readonly type: 'quit_nc' };

export function encodeCommand(cmd: MilterCommand): Buffer {
  switch (cmd.type) {
    case 'optneg':
      return encodePacket(Cmd.OPTNEG, uint32(cmd.version), uint32(cmd.actions), uint32(cmd.protocol));
    case 'macro':
      return encodePacket(Cmd.MACRO, Buffer.from(cmd.command, 'latin1'), ...cmd.macros.flatMap(([name, value]) => [cstring(name), cstring(value)]));
    case 'connect': {
      if (cmd.family === Family.UNKNOWN) return encodePacket(Cmd.CONNECT, cstring(cmd.hostname), cmd.family);
      const port = Buffer.allocUnsafe(2);
      port.writeUInt16BE(cmd.port & 0xffff, 0);
      return encodePacket(Cmd.CONNECT, cstring(cmd.hostname), cmd.family, port, cstring(cmd.address));
    }
    case 'helo':
      return encodePacket(Cmd.HELO, cstring(cmd.host));
    case 'mail':
      return encodePacket(Cmd.MAIL, ...cmd.args.map((a) => cstring(a)));
    case 'rcpt':
      return encodePacket(Cmd.RCPT, ...cmd.args.map((a) => cstring(a)));
    case 'data':
      return encodePacket(Cmd.DATA);
    case 'header':
      return encodePacket(Cmd.HEADER, cstring(cmd.name), cstring(cmd.value));
    case 'eoh':
      return encodePacket(Cmd.EOH);
    case 'body':
      return encodePacket(Cmd.BODY, cmd.chunk);
    case 'eob':
      return encodePacket(Cmd.BODYEOB, cmd.chunk);
    case 'unknown':
      return encodePacket(Cmd.UNKNOWN, cstring(cmd.line));
    case 'abort':
      return encodePacket(Cmd.ABORT);
    case 'quit':
      return encodePacket(Cmd.QUIT);
    case 'quit_nc':
      return encodePacket(Cmd.QUIT_NC);
  }
}

/** A packet from an MTA as a command, or an error text when it is not a valid one. */
export function decodeCommand(packet: Packet): MilterCommand | { readonly error: string } {
  const { code, data } = packet;
  const bad = (what: string): { error: string } => ({ error: `bad ${what} command (${data.length} bytes)` });
  const none = (value: MilterCommand): MilterCommand | { error: string } => (data.length === 0 ? value : bad(value.type));
  switch (code) {
    case Cmd.OPTNEG:
      if (data.length < 12) return bad('OPTNEG');
      return { type: 'optneg', version: data.readUInt32BE(0), actions: data.readUInt32BE(4), protocol: data.readUInt32BE(8) };
    case Cmd.MACRO: {
      if (data.length < 1) return bad('MACRO');
      const strings = cstrings(data.subarray(1));
      if (strings === undefined || strings.length % 2 !== 0) return bad('MACRO');
      const macros: [string, string][] = [];
      for (let i = 0; i < strings.length; i += 2) macros.push([strings[i]!, strings[i + 1]!]);
      return { type: 'macro', command: String.fromCharCode(data[0]!), macros };
    }
    case Cmd.CONNECT: {
      const end = data.indexOf(0);
      if (end === -1 || end + 1 >= data.length) return bad('CONNECT');
      const hostname = data.toString('utf8', 0, end);
      const family = String.fromCharCode(data[end + 1]!) as FamilyCode;
      if (family === Family.UNKNOWN) return end + 2 === data.length ? { type: 'connect', hostname, family, port: 0, address: '' } : bad('CONNECT');
      if (family !== Family.INET && family !== Family.INET6 && family !== Family.UNIX) return bad('CONNECT');
      if (data.length < end + 4) return bad('CONNECT');
      const address = cstrings(data.subarray(end + 4), 1);
      if (address === undefined) return bad('CONNECT');
      return { type: 'connect', hostname, family, port: data.readUInt16BE(end + 2), address: address[0]! };
    }
    case Cmd.HELO: {
      const s = cstrings(data, 1);
      return s === undefined ? bad('HELO') : { type: 'helo', host: s[0]! };
    }
    case Cmd.MAIL:
    case Cmd.RCPT: {
      const args = cstrings(data);
      if (args === undefined || args.length === 0) return bad(code === Cmd.MAIL ? 'MAIL' : 'RCPT');
      return { type: code === Cmd.MAIL ? 'mail' : 'rcpt', args };
    }
    case Cmd.HEADER: {
      const s = cstrings(data, 2);
      return s === undefined ? bad('HEADER') : { type: 'header', name: s[0]!, value: s[1]! };
    }
    case Cmd.BODY:
      return { type: 'body', chunk: data };
    case Cmd.BODYEOB:
      return { type: 'eob', chunk: data };
    case Cmd.UNKNOWN: {
      const s = cstrings(data, 1);
      return s === undefined ? bad('UNKNOWN') : { type: 'unknown', line: s[0]! };
    }
    case Cmd.DATA:
      return none({ type: 'data' });
    case Cmd.EOH:
      return none({ type: 'eoh' });
    case Cmd.ABORT:
      return none({ type: 'abort' });
    case Cmd.QUIT:
      return none({ type: 'quit' });
    case Cmd.QUIT_NC:
      return none({ type: 'quit_nc' });
    default:
      return { error: `unknown command code ${JSON.stringify(code)}` };
  }
}
