/** The Mail::Header-like header block. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Header } from '../../src/message/header.ts';

const BLOCK = [
  'Received: from a.example by b.example;',
  '\tWed, 25 Nov 2026 10:00:00 +0000',
  'Subject: a folded',
  '  subject line',
  'From: Alice <alice@example.org>',
  'received: second',
  'X-Empty:',
].join('\r\n');

test('get: first value, unfolded, without the name, trimmed; case-insensitive names', () => {
  const h = Header.parse(BLOCK);
  assert.equal(h.get('subject'), 'a folded  subject line');
  assert.equal(h.get('RECEIVED'), 'from a.example by b.example;\tWed, 25 Nov 2026 10:00:00 +0000');
  assert.equal(h.get('X-Empty'), '');
  assert.equal(h.get('Missing'), undefined);
});

test('getAll and count keep the order; names() as written', () => {
  const h = Header.parse(BLOCK);
  assert.deepEqual(h.getAll('Received'), ['from a.example by b.example;\tWed, 25 Nov 2026 10:00:00 +0000', 'second']);
  assert.equal(h.count('received'), 2);
  assert.deepEqual(h.names(), ['Received', 'Subject', 'From', 'received', 'X-Empty']);
});

test('toString gives the block back byte for byte, folding included', () => {
  assert.equal(Header.parse(BLOCK).toString(), BLOCK + '\r\n');
  assert.equal(Header.parse(BLOCK.replace(/\r\n/g, '\n')).toString(), BLOCK + '\r\n', 'LF input is written with CRLF');
});

test('add at the end or at an index; a multi-line value is folded so it stays one field', () => {
  const h = Header.parse('From: a@example.org');
  h.add('X-Tag', 'one');
  h.add('Received', 'from x\nby y', 0);
  assert.equal(h.toString(), 'Received: from x\r\n\tby y\r\nFrom: a@example.org\r\nX-Tag: one\r\n');
  assert.equal(h.get('Received'), 'from x\tby y');
  assert.throws(() => h.add('Bad Name', 'x'), /invalid header field name/);
  assert.throws(() => h.add('Bad:Name', 'x'), /invalid header field name/);
});

test('delete all or the n-th; replace the n-th or add', () => {
  const h = Header.parse('A: 1\r\nB: 2\r\nA: 3\r\nA: 4');
  assert.equal(h.delete('a', 1), 1);
  assert.deepEqual(h.getAll('A'), ['1', '4']);
  h.replace('a', 'first');
  assert.deepEqual(h.getAll('A'), ['first', '4']);
  h.replace('C', 'new');
  assert.equal(h.get('C'), 'new');
  assert.equal(h.delete('A'), 2);
  assert.equal(h.count('A'), 0);
  assert.equal(h.delete('A', 5), 0);
});

test('rename keeps position and value; only fields the filter picks', () => {
  const h = Header.parse('Authentication-Results: mx.example; spf=pass\r\nAuthentication-Results: other.example; dkim=pass');
  h.rename('Authentication-Results', 'Original-Authentication-Results', (v) => v.startsWith('mx.example'));
  assert.deepEqual(h.names(), ['Original-Authentication-Results', 'Authentication-Results']);
  assert.equal(h.get('Original-Authentication-Results'), 'mx.example; spf=pass');
});

test('8-bit header bytes that are not UTF-8 go back out unchanged', () => {
  const raw = Buffer.from('Subject: caf\xe9\r\n', 'latin1');
  const h = Header.parse(raw.toString('latin1').trimEnd(), 'latin1');
  h.add('X-Added', 'naïve');
  assert.deepEqual(h.toBuffer(), Buffer.concat([raw, Buffer.from('X-Added: naïve\r\n', 'utf8')]));
});
