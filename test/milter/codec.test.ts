/**
 * src/milter: packet framing at every split point, each command and reply encoded and decoded
 * back, the exact bytes of a few packets checked against the layouts of libmilter's mfdef.h, and
 * garbage refused.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PacketReader, encodePacket, cstrings, type Packet } from '../../src/milter/packets.ts';
import { decodeCommand, encodeCommand, type MilterCommand } from '../../src/milter/commands.ts';
import { decodeResponse, encodeResponse, parseReplyCode, type MilterResponse } from '../../src/milter/responses.ts';
import { twoWaySplits, threeWaySplits } from '../helpers/splits.ts';

function readAll(chunks: readonly Buffer[], max?: number): { packets: Packet[]; error?: string } {
  const reader = new PacketReader(max);
  const packets: Packet[] = [];
  for (const chunk of chunks) {
    const out = reader.push(chunk);
    packets.push(...out.packets);
    if (out.error !== undefined) return { packets, error: out.error };
  }
  return { packets };
}

const plain = (packets: readonly Packet[]): { code: string; data: string }[] => packets.map((p) => ({ code: p.code, data: p.data.toString('hex') }));

describe('milter packets', () => {
  it('encodes length (code byte included), code, data', () => {
    assert.deepEqual(encodePacket('c'), Buffer.from([0, 0, 0, 1, 0x63]));
    assert.deepEqual(encodePacket('H', Buffer.from('mx\0')), Buffer.from([0, 0, 0, 4, 0x48, 0x6d, 0x78, 0]));
    assert.throws(() => encodePacket('ab'), /one ASCII character/);
  });

  it('reads the same packets however the stream is cut', () => {
    const stream = Buffer.concat([
      encodePacket('O', Buffer.from('000000060000003f00000000', 'hex')),
      encodePacket('c'),
      encodePacket('h', Buffer.from('X-A\0b\0')),
      encodePacket('b', Buffer.alloc(300, 0x41)),
      encodePacket('a'),
    ]);
    const expected = plain(readAll([stream]).packets);
    assert.equal(expected.length, 5);
    for (const chunks of twoWaySplits(stream)) assert.deepEqual(plain(readAll(chunks).packets), expected);
    const small = Buffer.concat([encodePacket('c'), encodePacket('h', Buffer.from('A\0b\0')), encodePacket('a')]);
    const smallExpected = plain(readAll([small]).packets);
    for (const chunks of threeWaySplits(small)) assert.deepEqual(plain(readAll(chunks).packets), smallExpected);
  });

  it('holds a partial packet until it is complete', () => {
    const reader = new PacketReader();
    const packet = encodePacket('y', Buffer.from('550 5.7.1 no\0'));
    assert.deepEqual(reader.push(packet.subarray(0, 3)).packets, []);
    assert.deepEqual(reader.push(packet.subarray(3, 9)).packets, []);
    assert.equal(reader.pending, 9);
    const out = reader.push(packet.subarray(9));
    assert.equal(out.packets.length, 1);
    assert.equal(out.packets[0]!.data.toString(), '550 5.7.1 no\0');
    assert.equal(reader.pending, 0);
  });

  it('refuses a zero length and a length past the limit, for good', () => {
    assert.match(readAll([Buffer.from([0, 0, 0, 0, 0x63])]).error!, /length 0/);
    assert.deepEqual(readAll([Buffer.from([0, 0, 0x10, 0x01, 0x63])], 4096).error, undefined, 'exactly at the limit');
    const big = readAll([Buffer.from([0, 0, 0x10, 0x02, 0x63])], 4096);
    assert.match(big.error!, /4098 bytes \(the limit is 4097\)/);
    // Text where a length should be (a milter that is something else: an HTTP server, an SMTP banner).
    assert.match(readAll([Buffer.from('220 mail.example.com ESMTP\r\n')]).error!, /bytes \(the limit/);
    const reader = new PacketReader();
    reader.push(Buffer.from([0, 0, 0, 0]));
    assert.ok(reader.push(encodePacket('c')).error, 'a broken stream stays broken');
  });

  it('splits NUL-terminated strings, exactly when asked', () => {
    assert.deepEqual(cstrings(Buffer.from('a\0bc\0')), ['a', 'bc']);
    assert.deepEqual(cstrings(Buffer.from('')), []);
    assert.equal(cstrings(Buffer.from('a\0b')), undefined);
    assert.equal(cstrings(Buffer.from('a\0b\0'), 1), undefined);
    assert.deepEqual(cstrings(Buffer.from('\0\0'), 2), ['', '']);
  });
});

describe('milter commands (MTA to milter)', () => {
  const commands: MilterCommand[] = [
    { type: 'optneg', version: 6, actions: 0x1ff, protocol: 0x1ff7ff },
    { type: 'macro', command: 'C', macros: [['j', 'mx.example'], ['{client_addr}', '192.0.2.1']] },
    { type: 'connect', hostname: 'client.example', family: '4', port: 25, address: '192.0.2.1' },
    { type: 'connect', hostname: '[2001:db8::1]', family: '6', port: 65535, address: '2001:db8::1' },
    { type: 'connect', hostname: 'localhost', family: 'L', port: 0, address: '/run/socket' },
    { type: 'connect', hostname: 'unknown', family: 'U', port: 0, address: '' },
    { type: 'helo', host: 'client.example' },
    { type: 'mail', args: ['<a@example.com>', 'SIZE=100', 'BODY=8BITMIME'] },
    { type: 'rcpt', args: ['<b@example.com>'] },
    { type: 'data' },
    { type: 'header', name: 'Subject', value: 'Grüße\n\tfolded' },
    { type: 'eoh' },
    { type: 'body', chunk: Buffer.from('line\r\n') },
    { type: 'eob', chunk: Buffer.alloc(0) },
    { type: 'unknown', line: 'XYZZY plugh' },
    { type: 'abort' },
    { type: 'quit' },
    { type: 'quit_nc' },
  ];

  for (const cmd of commands) {
    it(`${cmd.type} ${cmd.type === 'connect' ? cmd.family : ''}: encodes and decodes back`, () => {
      const bytes = encodeCommand(cmd);
      const { packets } = readAll([bytes]);
      assert.equal(packets.length, 1);
      assert.deepEqual(decodeCommand(packets[0]!), cmd);
    });
  }

  it('lays out OPTNEG, CONNECT and MACRO as mfdef.h says', () => {
    assert.equal(encodeCommand({ type: 'optneg', version: 6, actions: 0x1ff, protocol: 0x1ff7ff }).toString('hex'), '0000000d4f00000006000001ff001ff7ff');
    // hostname NUL, family '4', port 25 (network order), address NUL
    assert.equal(encodeCommand({ type: 'connect', hostname: 'h', family: '4', port: 25, address: '1.2.3.4' }).toString('latin1'), '\0\0\0\x0eCh\x004\x00\x191.2.3.4\0');
    assert.equal(encodeCommand({ type: 'macro', command: 'M', macros: [['i', 'Q1']] }).toString('latin1'), '\0\0\0\x07DMi\0Q1\0');
    assert.equal(encodeCommand({ type: 'mail', args: ['<a@b>', 'SIZE=1'] }).toString('latin1'), '\0\0\0\x0eM<a@b>\0SIZE=1\0');
  });

  it('refuses malformed commands', () => {
    const bad = (code: string, data: string): void => assert.ok('error' in decodeCommand({ code, data: Buffer.from(data, 'latin1') }), `${code} ${JSON.stringify(data)}`);
    bad('O', 'short');
    bad('C', 'host');
    bad('C', 'host\0X');
    bad('C', 'host\x004\x00');
    bad('H', 'no-nul');
    bad('M', '');
    bad('L', 'only-name\0');
    bad('D', 'Cj\0');
    bad('T', 'x');
    bad('Z', '');
  });
});

describe('milter replies (milter to MTA)', () => {
  const replies: MilterResponse[] = [
    { type: 'optneg', version: 6, actions: 0x1ff, protocol: 0x80, macros: new Map() },
    { type: 'optneg', version: 6, actions: 1, protocol: 0, macros: new Map([[0, ['j', '{client_addr}']], [5, ['i']]]) },
    { type: 'accept' },
    { type: 'continue' },
    { type: 'discard' },
    { type: 'reject' },
    { type: 'tempfail' },
    { type: 'skip' },
    { type: 'progress' },
    { type: 'conn_fail' },
    { type: 'shutdown' },
    { type: 'replycode', code: 554, lines: ['5.7.1 go away'] },
    { type: 'replycode', code: 451, lines: ['4.7.1 one', '4.7.1 two'] },
    { type: 'addheader', name: 'X-Spam', value: 'yes' },
    { type: 'insheader', index: 0, name: 'X-Top', value: 'first' },
    { type: 'chgheader', index: 2, name: 'Subject', value: '' },
    { type: 'addrcpt', address: '<new@example.com>' },
    { type: 'addrcpt', address: '<new@example.com>', args: 'NOTIFY=NEVER' },
    { type: 'delrcpt', address: '<old@example.com>' },
    { type: 'chgfrom', address: '<bounce@example.com>' },
    { type: 'chgfrom', address: '<bounce@example.com>', args: 'SIZE=10' },
    { type: 'replbody', chunk: Buffer.from('new body\r\n') },
    { type: 'quarantine', reason: 'looks bad' },
  ];

  for (const reply of replies) {
    it(`${reply.type}: encodes and decodes back`, () => {
      const { packets } = readAll([encodeResponse(reply)]);
      assert.equal(packets.length, 1);
      assert.deepEqual(decodeResponse(packets[0]!), reply);
    });
  }

  it('reads the macro lists of an OPTNEG reply by stage', () => {
    const data = Buffer.concat([
      Buffer.from('000000060000000100000000', 'hex'),
      Buffer.from('00000000', 'hex'), Buffer.from('j {daemon_name}\0'),
      Buffer.from('00000003', 'hex'), Buffer.from('{rcpt_addr}\0'),
    ]);
    const r = decodeResponse({ code: 'O', data });
    assert.ok(!('error' in r) && r.type === 'optneg');
    assert.deepEqual([...r.macros], [[0, ['j', '{daemon_name}']], [3, ['{rcpt_addr}']]]);
    assert.ok('error' in decodeResponse({ code: 'O', data: Buffer.concat([data, Buffer.from('0000', 'hex')]) }));
  });

  it('parses reply codes: one line, several, and refuses what is none', () => {
    assert.deepEqual(parseReplyCode('550 5.7.1 Rejected'), { code: 550, lines: ['5.7.1 Rejected'] });
    assert.deepEqual(parseReplyCode('421 4.3.2 bye\r\n'), { code: 421, lines: ['4.3.2 bye'] });
    assert.deepEqual(parseReplyCode('550-a\r\n550-b\r\n550 c'), { code: 550, lines: ['a', 'b', 'c'] });
    assert.deepEqual(parseReplyCode('450'), { code: 450, lines: [''] });
    assert.equal(parseReplyCode('250 ok'), undefined, 'only 4xx and 5xx');
    assert.equal(parseReplyCode('550-a\r\n551 b'), undefined, 'one code');
    assert.equal(parseReplyCode('550 a\r\n550 b'), undefined, 'continuation marks');
    assert.equal(parseReplyCode('55x no'), undefined);
    assert.equal(parseReplyCode(''), undefined);
  });

  it('refuses malformed replies', () => {
    const bad = (code: string, data: string): void => assert.ok('error' in decodeResponse({ code, data: Buffer.from(data, 'latin1') }), `${code} ${JSON.stringify(data)}`);
    bad('a', 'x');
    bad('y', '250 fine\0');
    bad('y', '550 no nul');
    bad('h', '\0value\0');
    bad('h', 'name\0');
    bad('h', 'X Bad\0v\0');
    bad('i', '\0\0\0\0X:Y\0v\0');
    bad('i', '\0\0');
    bad('m', '\0\0\0\0Subject');
    bad('+', '');
    bad('2', 'a\0b\0c\0');
    bad('e', '');
    bad('O', '\0\0\0\x06');
    bad('?', '');
  });
});
