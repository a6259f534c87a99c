import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Header } from '../../src/message/header.ts';
import { decodeQuotedPrintable, messageTexts } from '../../src/message/mime-text.ts';

function texts(head: string, body: string): string[] {
  return messageTexts(Header.parse(head), Buffer.from(body, 'latin1'));
}

describe('messageTexts', () => {
  it('a message without MIME is one text', () => {
    assert.deepEqual(texts('Subject: x', 'hello\r\n'), ['hello\r\n']);
  });

  it('walks nested multiparts and attached messages; decodes base64, quoted-printable and charsets; skips binary parts', () => {
    const inner = ['Content-Type: text/plain; charset=iso-8859-1', 'Content-Transfer-Encoding: quoted-printable', '', 'caf=E9 =', 'au lait', ''].join('\r\n');
    const body = [
      '--a',
      'Content-Type: text/html; charset="utf-8"',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from('<p>été</p>').toString('base64'),
      '--a',
      'Content-Type: message/rfc822',
      '',
      inner,
      '--a',
      'Content-Type: application/octet-stream',
      '',
      'binary',
      '--a--',
      'epilogue',
    ].join('\r\n');
    assert.deepEqual(texts('Content-Type: multipart/mixed; boundary=a', body), ['<p>été</p>', 'café au lait\r\n']);
  });

  it('an unknown charset reads bytes as Latin-1; a multipart without boundary is read whole', () => {
    assert.deepEqual(texts('Content-Type: text/plain; charset=x-unknown', 'abc\xe9'), ['abc\xe9']);
    assert.deepEqual(texts('Content-Type: multipart/mixed', 'raw'), ['raw']);
  });
});

describe('decodeQuotedPrintable', () => {
  it('joins soft line breaks and decodes =XX; a lone = stays', () => {
    assert.equal(decodeQuotedPrintable('a=3Db =\r\nc=\nd =ZZ').toString('latin1'), 'a=b cd =ZZ');
  });
});
