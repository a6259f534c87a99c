/**
 * queue/smtp-forward against a real Postfix on loopback (master + smtpd + cleanup + qmgr + virtual,
 * its own config and queue in a temp folder): byte-exact relay of a message with dot lines and
 * 8-bit text, SMTPUTF8, the null sender, XCLIENT, STARTTLS, a next hop without PIPELINING, and
 * every error path (refused recipient, refused content, 4xx after the dot, next hop down, silent).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { generateSelfSigned } from '../../../src/tls/self-signed.ts';
import { DataEncoder } from '../../../src/mail/line-ends.ts';
import { testApp, type TestApp } from '../../helpers/test-app.ts';
import { Postfix, afterLine, freePort, hasMessage, lf, send, sleep, tricky, waitForMessage } from './support.ts';

const RCPTHOSTS = ['example.com'];

async function withForward(args: string, fn: (t: TestApp) => Promise<void>): Promise<void> {
  const t = await testApp({ config: { plugins: ['rcpt_ok', `queue/smtp-forward ${args}`], rcpthosts: RCPTHOSTS } });
  try {
    await fn(t);
  } finally {
    await t.cleanup();
  }
}

describe('queue/smtp-forward: the message encoder', () => {
  const encode = (...chunks: string[]): string => {
    const e = new DataEncoder();
    return chunks.map((c) => e.encode(Buffer.from(c, 'latin1')).toString('latin1')).join('') + e.end().toString('latin1');
  };
  it('doubles dots at line starts, across chunk boundaries too', () => {
    assert.equal(encode('.a\r\nb\r\n.\r\n'), '..a\r\nb\r\n..\r\n.\r\n');
    assert.equal(encode('a\r', '\n', '.b\r\n'), 'a\r\n..b\r\n.\r\n');
    assert.equal(encode('a\r\n', '.', '.\r\n'), 'a\r\n...\r\n.\r\n');
    assert.equal(encode('x.y\r\n'), 'x.y\r\n.\r\n');
  });
  it('writes CRLF for bare LF and bare CR, and ends an unterminated last line', () => {
    assert.equal(encode('a\nb\rc'), 'a\r\nb\r\nc\r\n.\r\n');
    assert.equal(encode('a\r'), 'a\r\n.\r\n');
    assert.equal(encode(''), '.\r\n');
  });
});

describe('queue/smtp-forward against Postfix', { timeout: 60_000 }, () => {
  let postfix: Postfix;

  before(async () => {
    const pair = await generateSelfSigned({ host: 'next-hop.test', days: 2 });
    postfix = await Postfix.start({
      files: { 'tls.crt': pair.cert, 'tls.key': pair.key },
      listeners: {
        noXclient: ['smtpd_authorized_xclient_hosts='],
        noPipelining: ['smtpd_discard_ehlo_keywords=pipelining'],
        tls: ['smtpd_tls_security_level=may', 'smtpd_tls_cert_file=$config_directory/tls.crt', 'smtpd_tls_key_file=$config_directory/tls.key'],
      },
    });
  });
  after(async () => {
    await postfix?.stop();
  });

  it('relays byte-exact: dot lines, 8-bit text, a long line; 250 with the next hop\'s queue id', async () => {
    const message = tricky('relay test', 'relay-1@origin.example');
    await withForward(`127.0.0.1 ${postfix.port}`, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>', '<other@example.com>'], mailParams: ' BODY=8BITMIME', message });
      assert.equal(reply.code, 250, reply.raw);
      const m = /^2\.0\.0 Queued as ([0-9A-Za-z]+)$/.exec(reply.text);
      assert.ok(m, reply.text);
      for (const user of ['user', 'other']) {
        const content = await waitForMessage(postfix.maildir(user), 'relay-1@origin.example');
        // Postfix's trace fields, its Received line, then ours, then the message unchanged.
        const ours = afterLine(content, 'Received: from client.example ([192.0.2.10])');
        assert.ok(ours.toString('utf8').endsWith(lf(message).toString('utf8')), ours.toString('utf8'));
        assert.ok(ours.subarray(ours.length - lf(message).length).equals(lf(message)), 'byte-exact');
        assert.match(content.toString('utf8'), new RegExp(`by next-hop\\.test \\(Postfix\\) with ESMTP id ${m[1]}`));
        assert.match(content.toString('utf8'), /^Return-Path: <sender@origin\.example>$/m);
      }
      assert.match(postfix.log(), new RegExp(`${m[1]}: from=<sender@origin\\.example>, size=\\d+, nrcpt=2`));
    });
  });

  it('carries SMTPUTF8 and the null sender', async () => {
    const message = 'Subject: utf8\r\nMessage-ID: <utf8-1@origin.example>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nhej\r\n';
    await withForward(`127.0.0.1 ${postfix.port}`, async (t) => {
      const reply = await send(t, { from: '<jörg@origin.example>', mailParams: ' SMTPUTF8', to: ['<user@example.com>'], message });
      assert.equal(reply.code, 250, reply.raw);
      const bounce = await send(t, { from: '<>', to: ['<user@example.com>'], message: message.replace('utf8-1', 'null-1') });
      assert.equal(bounce.code, 250, bounce.raw);
      const utf8 = (await waitForMessage(postfix.maildir('user'), 'utf8-1@origin.example')).toString('utf8');
      assert.ok(utf8.startsWith('Return-Path: <jörg@origin.example>\n'), utf8);
      const nullSender = (await waitForMessage(postfix.maildir('user'), 'null-1@origin.example')).toString('utf8');
      assert.ok(nullSender.startsWith('Return-Path: <>\n'), nullSender);
    });
  });

  it('refuses the whole message (5xx) when the next hop refuses a recipient; nobody gets it', async () => {
    await withForward(`127.0.0.1 ${postfix.port}`, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>', '<nobody@example.com>'], message: tricky('partial', 'partial-1@origin.example') });
      assert.equal(reply.code, 552, reply.raw);
      assert.match(reply.text, /^5\.1\.1 <nobody@example\.com>: Recipient address rejected/);
      await sleep(300);
      assert.ok(!hasMessage(postfix.maildir('user'), 'partial-1@origin.example'));
    });
  });

  it('defers the whole message (4xx) when the next hop defers a recipient; nobody gets it', async () => {
    await withForward(`127.0.0.1 ${postfix.port}`, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>', '<later@example.com>', '<nobody@example.com>'], message: tricky('later', 'later-1@origin.example') });
      assert.equal(reply.code, 452, reply.raw);
      assert.equal(reply.text, '4.2.1 <later@example.com>: Recipient address rejected: mailbox busy, says the test');
      await sleep(300);
      assert.ok(!hasMessage(postfix.maildir('user'), 'later-1@origin.example'));
    });
  });

  it('passes on a 5xx to the final dot as DENY with the next hop\'s reason', async () => {
    await withForward(`127.0.0.1 ${postfix.port}`, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>'], message: tricky('reject me please', 'reject-1@origin.example') });
      assert.equal(reply.code, 552, reply.raw);
      assert.equal(reply.text, '5.7.1 content refused by the test');
    });
  });

  it('passes on a 4xx to the final dot as DENYSOFT', async () => {
    await withForward(`127.0.0.1 ${postfix.port}`, async (t) => {
      const reply = await send(t, { from: '<defer@origin.example>', to: ['<user@example.com>'], message: tricky('defer', 'defer-1@origin.example') });
      assert.equal(reply.code, 452, reply.raw);
      assert.match(reply.text, /^4\.3\.0 <defer@origin\.example>: Sender address rejected: try again later, says the test$/);
    });
  });

  it('XCLIENT: Postfix logs and stamps the original client, not us', async () => {
    await withForward(`127.0.0.1 ${postfix.port} xclient`, async (t) => {
      const reply = await send(t, { helo: 'original-helo.example', to: ['<other@example.com>'], message: tricky('xclient', 'xclient-1@origin.example') });
      assert.equal(reply.code, 250, reply.raw);
      const text = (await waitForMessage(postfix.maildir('other'), 'xclient-1@origin.example')).toString('utf8');
      assert.match(text, /^Received: from original-helo\.example \(unknown \[192\.0\.2\.10\]\)$/m);
      assert.match(postfix.log(), /client=unknown\[192\.0\.2\.10\]/);
    });
  });

  it('XCLIENT not offered to us: 4xx, nothing sent as if we were the client', async () => {
    await withForward(`127.0.0.1 ${postfix.ports['noXclient']} xclient`, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>'], message: tricky('no xclient', 'noxclient-1@origin.example') });
      assert.equal(reply.code, 452, reply.raw);
      assert.match(reply.text, /^4\.3\.5 Next hop does not offer XCLIENT/);
    });
  });

  it('works without PIPELINING, one command at a time', async () => {
    await withForward(`127.0.0.1 ${postfix.ports['noPipelining']}`, async (t) => {
      const ok = await send(t, { to: ['<user@example.com>'], message: tricky('no pipelining', 'nopipe-1@origin.example') });
      assert.equal(ok.code, 250, ok.raw);
      await waitForMessage(postfix.maildir('user'), 'nopipe-1@origin.example');
      const refused = await send(t, { to: ['<nobody@example.com>'], message: tricky('no pipelining', 'nopipe-2@origin.example') });
      assert.equal(refused.code, 552, refused.raw);
    });
  });

  it('starttls: encrypts the hop when offered (Postfix stamps ESMTPS)', async () => {
    await withForward(`127.0.0.1 ${postfix.ports['tls']} starttls`, async (t) => {
      const reply = await send(t, { to: ['<other@example.com>'], message: tricky('tls', 'tls-1@origin.example') });
      assert.equal(reply.code, 250, reply.raw);
      const text = (await waitForMessage(postfix.maildir('other'), 'tls-1@origin.example')).toString('utf8');
      assert.match(text, /\(Postfix\) with ESMTPS id /);
    });
  });

  it('streams a 3 MB message with thousands of dot lines unchanged', async () => {
    const lines: string[] = ['Subject: big', 'Message-ID: <big-1@origin.example>', 'Date: Mon, 1 Jan 2024 00:00:00 +0000', ''];
    for (let i = 0; i < 40_000; i++) lines.push(i % 3 === 0 ? `.${i} starts with a dot ${'y'.repeat(60)}` : `${i} ${'z'.repeat(70)}`);
    const message = lines.join('\r\n') + '\r\n';
    await withForward(`127.0.0.1 ${postfix.port}`, async (t) => {
      const reply = await send(t, { to: ['<other@example.com>'], message });
      assert.equal(reply.code, 250, reply.raw);
      const content = await waitForMessage(postfix.maildir('other'), 'big-1@origin.example');
      assert.ok(content.subarray(content.length - lf(message).length).equals(lf(message)));
    });
  });

  it('next hop down: 4xx at once', async () => {
    const port = await freePort();
    await withForward(`127.0.0.1 ${port}`, async (t) => {
      const started = Date.now();
      const reply = await send(t, { to: ['<user@example.com>'], message: tricky('down', 'down-1@origin.example') });
      assert.equal(reply.code, 452, reply.raw);
      assert.equal(reply.text, '4.4.1 Next hop unavailable, try again later');
      assert.ok(Date.now() - started < 5000);
    });
  });

  it('next hop silent: 4xx after its own time-out', async () => {
    // A listener that accepts and never says a word (a hung MTA).
    const sockets: Socket[] = [];
    const silent = createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const address = silent.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      await withForward(`127.0.0.1 ${port} timeout 1`, async (t) => {
        const started = Date.now();
        const reply = await send(t, { to: ['<user@example.com>'], message: tricky('silent', 'silent-1@origin.example') });
        assert.equal(reply.code, 452, reply.raw);
        assert.equal(reply.text, '4.4.2 Next hop unavailable, try again later');
        const took = Date.now() - started;
        assert.ok(took >= 900 && took < 5000, `took ${took} ms`);
      });
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  it('leaves nothing in the Postfix queue', async () => {
    await sleep(200);
    assert.deepEqual(postfix.queued(), []);
  });

  it('refuses bad arguments at load time', async () => {
    await assert.rejects(testApp({ config: { plugins: ['queue/smtp-forward'] } }), /no next hop/);
    await assert.rejects(testApp({ config: { plugins: ['queue/smtp-forward host;rm 25'] } }), /not a host name/);
    await assert.rejects(testApp({ config: { plugins: ['queue/smtp-forward 127.0.0.1 25 bogus'] } }), /unknown argument "bogus"/);
  });
});
