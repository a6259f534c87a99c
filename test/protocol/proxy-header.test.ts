/** The PROXY protocol header, v1 and v2. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseProxyHeader } from '../../src/protocol/proxy-header.ts';

const SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

function v2(command: number, family: number, body: Buffer): Buffer {
  const head = Buffer.from([0x20 | command, family, 0, 0]);
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([SIGNATURE, head, body]);
}

test('v1 TCP4 and TCP6, with what follows left over', () => {
  const line = Buffer.from('PROXY TCP4 198.51.100.7 192.0.2.1 40000 25\r\nEHLO x\r\n');
  const parsed = parseProxyHeader(line);
  assert.deepEqual(parsed, { kind: 'ok', version: 1, addresses: { remoteIp: '198.51.100.7', remotePort: 40000, localIp: '192.0.2.1', localPort: 25 }, length: 44 });
  assert.equal(line.subarray(44).toString(), 'EHLO x\r\n');
  const six = parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::7 2001:db8::1 1 2\r\n'));
  assert.equal(six.kind === 'ok' && six.addresses?.remoteIp, '2001:db8::7');
  assert.deepEqual(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n')), { kind: 'ok', version: 1, addresses: undefined, length: 15 });
});

test('v1: incomplete until the CRLF; malformed or too long lines are invalid', () => {
  assert.deepEqual(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3')), { kind: 'incomplete' });
  assert.deepEqual(parseProxyHeader(Buffer.from('PRO')), { kind: 'incomplete' });
  assert.equal(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.999 1.2.3.4 1 2\r\n')).kind, 'invalid');
  assert.equal(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4 1.2.3.4 1 99999\r\n')).kind, 'invalid');
  assert.equal(parseProxyHeader(Buffer.from('PROXY ' + 'x'.repeat(200))).kind, 'invalid');
  assert.equal(parseProxyHeader(Buffer.from('EHLO client\r\n')).kind, 'invalid');
});

test('v2 PROXY over IPv4 and IPv6, TLVs skipped; LOCAL keeps the connection addresses', () => {
  const four = Buffer.from([198, 51, 100, 7, 192, 0, 2, 1, 0x9c, 0x40, 0, 25, 0x04, 0, 1, 0x41]);
  const parsed = parseProxyHeader(Buffer.concat([v2(1, 0x11, four), Buffer.from('EHLO')]));
  assert.deepEqual(parsed, { kind: 'ok', version: 2, addresses: { remoteIp: '198.51.100.7', localIp: '192.0.2.1', remotePort: 40000, localPort: 25 }, length: 32 });
  const six = Buffer.alloc(36);
  six.writeUInt16BE(0x2001, 0);
  six.writeUInt16BE(0x0db8, 2);
  six.writeUInt16BE(7, 14);
  six.writeUInt16BE(0x2001, 16);
  six.writeUInt16BE(0x0db8, 18);
  six.writeUInt16BE(1, 30);
  six.writeUInt16BE(1234, 32);
  six.writeUInt16BE(465, 34);
  const p6 = parseProxyHeader(v2(1, 0x21, six));
  assert.deepEqual(p6.kind === 'ok' && p6.addresses, { remoteIp: '2001:db8::7', localIp: '2001:db8::1', remotePort: 1234, localPort: 465 });
  assert.deepEqual(parseProxyHeader(v2(0, 0x00, Buffer.alloc(0))), { kind: 'ok', version: 2, addresses: undefined, length: 16 });
});

test('v2: incomplete at every cut before its end; a wrong version is invalid', () => {
  const whole = v2(1, 0x11, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]));
  for (let cut = 0; cut < whole.length; cut++) assert.deepEqual(parseProxyHeader(whole.subarray(0, cut)), { kind: 'incomplete' }, `cut ${cut}`);
  const bad = Buffer.from(whole);
  bad[12] = 0x31;
  assert.equal(parseProxyHeader(bad).kind, 'invalid');
});
