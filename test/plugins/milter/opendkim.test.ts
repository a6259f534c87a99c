/**
 * plugins/milter against a real milter: OpenDKIM from Debian, in sign-and-verify mode.
 *   - A message from an internal client (127.0.0.1) is signed: OpenDKIM adds a DKIM-Signature
 *     field (a header change at the end of the message), and the signature verifies (mailauth,
 *     with the test's public key) over the message exactly as it was queued: every header field
 *     and every body byte reached the milter as it is stored.
 *   - The signed message from an external client verifies: OpenDKIM adds Authentication-Results.
 *   - The same message with its body changed: On-BadSignature reject, a 5xx after the final dot.
 *   - An unsigned message from outside: On-NoSignature tempfail, a 4xx.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { testServer, type TestServer } from '../../../src/testing/index.ts';
import { OpenDkim, dkimKey, type DkimKey } from './opendkim.ts';

function message(id: string, body: string): string {
  return [
    'From: Sender <sender@example.com>',
    'To: rcpt@example.net',
    // A folded field among the signed ones: folds must reach the milter as they are queued.
    'Subject: a message with a long subject that',
    '\tgoes on in a folded line',
    `Message-ID: <${id}@example.com>`,
    'Date: Mon, 1 Jan 2024 00:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    body,
  ].join('\r\n');
}

const BODY = ['Hello,', '', '.a line that starts with a dot', 'Grüße aus Köln', 'x'.repeat(900), '', 'Bye.', ''].join('\r\n');

describe('milter with OpenDKIM', () => {
  let opendkim: OpenDkim;
  let key: DkimKey;
  let server: TestServer;

  before(async () => {
    key = dkimKey();
    opendkim = await OpenDkim.start({ domain: 'example.com', selector: 'test', key, conf: ['On-BadSignature reject', 'On-NoSignature tempfail'] });
    server = await testServer({ plugins: [`milter ${opendkim.socket} eom_timeout 20`], acceptAllRecipients: true });
  });

  after(async () => {
    await server?.close();
    await opendkim?.stop();
  });

  const resolver = async (name: string, type: string): Promise<string[][]> => {
    if (type === 'TXT' && name === 'test._domainkey.example.com') return [[key.record]];
    throw Object.assign(new Error(`no ${type} for ${name}`), { code: 'ENOTFOUND' });
  };

  /** The message as it was queued, without our Received field and the Authentication-Results. */
  async function signed(id: string): Promise<string> {
    const session = await server.connect({ remoteIp: '127.0.0.1' });
    const result = await session.sendMail('sender@example.com', 'rcpt@example.net', message(id, BODY));
    await session.quit();
    assert.equal(result.code, 250, `${result.raw}\n${opendkim.log}`);
    return result.queued!.message;
  }

  it('signs a message from an internal client: a DKIM-Signature that verifies over the queued message', async () => {
    const queued = await signed('sign-1');
    assert.match(queued, /^DKIM-Signature: v=1; a=rsa-sha256; c=[a-z/]+; d=example\.com;\s+s=test;/m);
    const verified = await dkimVerify(Buffer.from(queued), { resolver });
    assert.equal(verified.results.length, 1);
    assert.equal(verified.results[0]!.status.result, 'pass', JSON.stringify(verified.results[0]!.status));
    assert.equal(verified.results[0]!.signingDomain, 'example.com');
    // The signature covers the folded Subject.
    const h = /\bh=([^;]+)/.exec(queued.slice(queued.indexOf('DKIM-Signature')))![1]!.replace(/\s/g, '');
    assert.match(h.toLowerCase(), /(^|:)subject(:|$)/);
  });

  it('verifies the signed message from an external client (Authentication-Results), rejects it with a changed body', async () => {
    const queued = await signed('verify-1');
    // Hand the signed message in again from outside, without our own trace fields.
    const original = queued.slice(queued.indexOf('DKIM-Signature:'));
    const session = await server.connect({ remoteIp: '192.0.2.80' });
    const good = await session.sendMail('sender@example.com', 'rcpt@example.net', original);
    assert.equal(good.code, 250, `${good.raw}\n${opendkim.log}`);
    const results = good.queued!.header.getAll('Authentication-Results').join('\n');
    assert.match(results, /mx\.example\.test;\s+dkim=pass/, results);

    const tampered = original.replace('Bye.', 'Bye!');
    const bad = await session.sendMail('sender@example.com', 'rcpt@example.net', tampered);
    assert.equal(bad.step, 'message');
    assert.equal(Math.floor(bad.code / 100), 5, `${bad.raw}`);
    assert.equal(server.queued.length, 3, 'the rejected message is not queued');
    await session.quit();
    assert.match(server.logs.map((l) => l.text).join('\n'), /milter: data_post: (reject|replycode 5)/);
  });

  it('an unsigned message from outside: On-NoSignature tempfail is a 4xx after the final dot', async () => {
    const session = await server.connect({ remoteIp: '192.0.2.81' });
    const result = await session.sendMail('sender@example.com', 'rcpt@example.net', message('unsigned-1', BODY));
    assert.equal(Math.floor(result.code / 100), 4, result.raw);
    await session.quit();
  });
});
