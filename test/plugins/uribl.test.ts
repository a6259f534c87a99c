import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startDnsServer, type TestDnsServer } from '../../src/testing/dns-server.ts';
import { tempDir, testApp, type TestApp } from '../helpers/test-app.ts';
import { assertLogged, assertReply, type AppOptions } from './connection-policy-support.ts';
import { DNS_TIMEOUT_S, sendMessage, timed, withDnsApp } from './dns-support.ts';

let dns: TestDnsServer;
let dir: string;

before(async () => {
  dns = await startDnsServer({
    records: [
      ['spammy.com.multi.test', 'A', '127.0.0.2'],
      ['spammy.com.multi.test', 'TXT', 'Blocked, see https://multi.test/spammy.com'],
      ['other.com.multi.test', 'A', '127.0.0.4'], // a list the mask leaves out
      ['bad.co.uk.multi.test', 'A', '127.0.0.8'],
      ['qp-domain.net.multi.test', 'A', '127.0.0.2'],
      ['b64-domain.org.multi.test', 'A', '127.0.0.10'],
      ['1.2.0.192.multi.test', 'A', '127.0.0.2'],
      ['hidden.com.multi.test', 'A', '127.0.0.2'],
    ],
    silent: ['*.dead.test'],
  });
  dir = tempDir();
});
after(async () => {
  await dns.close();
  rmSync(dir, { recursive: true, force: true });
});

let queues = 0;
function app(plugins: string[], fn: (t: TestApp, queue: string) => Promise<void>, zones: string[] = ['multi.test 2,8'], options: AppOptions = {}): Promise<void> {
  const queue = join(dir, `q${++queues}`);
  return withDnsApp(dns, [...plugins, 'accept_all', `queue_capture ${queue}`], (t) => fn(t, queue), {
    ...options,
    config: { uribl_zones: zones, ...options.config },
  });
}

function headerOf(queued: string | undefined): string {
  assert.ok(queued !== undefined, 'the message was queued');
  return queued.split('\r\n\r\n')[0]!;
}

const PLAIN = [
  'Subject: offer',
  '',
  'Visit http://www.Spammy.com/offer?id=1 now, or https://user@sub.other.com:8080/ or bad.co.uk.',
  'Unlisted: https://clean.example.net/ and mail@spammy-but-address.com',
  '',
].join('\r\n');

describe('uribl: finding links', () => {
  it('plain text: registered domains are asked, listed ones (mask 2,8) get X-URIBL-Match headers', async () => {
    await app(['uribl'], async (t, queue) => {
      const { reply, queued } = await sendMessage(t, queue, PLAIN);
      assertReply(reply, 250);
      const header = headerOf(queued);
      assert.match(header, /^X-URIBL-Match: spammy\.com in multi\.test: Blocked, see https:\/\/multi\.test\/spammy\.com\r\nX-URIBL-Match: bad\.co\.uk in multi\.test: 127\.0\.0\.8\r\n/m);
      assert.doesNotMatch(header, /other\.com/);
      assert.ok(dns.queries.includes('A spammy.com.multi.test'));
      assert.ok(dns.queries.includes('A other.com.multi.test'));
      assert.ok(dns.queries.includes('A bad.co.uk.multi.test'), 'three labels under co.uk');
      assert.ok(!dns.queries.some((q) => q.includes('www.spammy.com') || q.includes('sub.other.com') || q.startsWith('A co.uk.')));
      assertLogged(t, 'uribl: spammy.com in multi.test: Blocked');
    });
  });

  it('quoted-printable: soft line breaks and =XX are undone before looking', async () => {
    const message = [
      'Subject: qp',
      'MIME-Version: 1.0',
      'Content-Type: text/html; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      '<a href=3D"http://www.qp-dom=',
      'ain.net/path">click</a> =C3=A9t=C3=A9',
      '',
    ].join('\r\n');
    await app(['uribl'], async (t, queue) => {
      const { queued } = await sendMessage(t, queue, message);
      assert.match(headerOf(queued), /^X-URIBL-Match: qp-domain\.net in multi\.test: 127\.0\.0\.2$/m);
    });
  });

  it('base64 in a multipart: text parts are decoded, an image part is not read', async () => {
    const text = Buffer.from('Please see https://b64-domain.org/landing for details.\r\n').toString('base64');
    const image = Buffer.from('http://hidden.com/ inside an image').toString('base64');
    const message = [
      'Subject: b64',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="outer"',
      '',
      'preamble with http://hidden.com/',
      '--outer',
      'Content-Type: multipart/alternative; boundary=inner',
      '',
      '--inner',
      'Content-Type: text/plain; charset=us-ascii',
      'Content-Transfer-Encoding: base64',
      '',
      text,
      '--inner--',
      '--outer',
      'Content-Type: image/png',
      'Content-Transfer-Encoding: base64',
      '',
      image,
      '--outer--',
      '',
    ].join('\r\n');
    await app(['uribl'], async (t, queue) => {
      const { queued } = await sendMessage(t, queue, message);
      const header = headerOf(queued);
      assert.match(header, /^X-URIBL-Match: b64-domain\.org in multi\.test: 127\.0\.0\.10$/m);
      assert.doesNotMatch(header, /hidden\.com/);
    });
  });

  it('IPv4 addresses in URLs are asked reversed (checkip yes), also in integer form; checkip no skips them', async () => {
    const message = 'Subject: ip\r\n\r\nhttp://192.0.2.1/x and http://3221225985/y\r\n';
    await app(['uribl'], async (t, queue) => {
      const { queued } = await sendMessage(t, queue, message);
      assert.match(headerOf(queued), /^X-URIBL-Match: 1\.2\.0\.192 in multi\.test: 127\.0\.0\.2$/m);
    });
    await app(['uribl checkip no'], async (t, queue) => {
      const { queued } = await sendMessage(t, queue, message);
      assert.doesNotMatch(headerOf(queued), /X-URIBL-Match/);
      assertLogged(t, 'pass, no URIs found in mail');
    });
  });

  it('uribl_whitelist_domains are never asked', async () => {
    await app(['uribl'], async (t, queue) => {
      const before = dns.queries.length;
      const { queued } = await sendMessage(t, queue, 'Subject: w\r\n\r\nhttp://www.spammy.com/\r\n');
      assert.doesNotMatch(headerOf(queued), /X-URIBL-Match/);
      assert.equal(dns.queries.length, before);
    }, undefined, { config: { uribl_whitelist_domains: ['spammy.com'] } });
  });
});

describe('uribl: actions and failures', () => {
  it('deny (per zone): 552 with the match; denysoft: 452', async () => {
    await app(['uribl'], async (t, queue) => {
      const { reply, queued } = await sendMessage(t, queue, PLAIN);
      assertReply(reply, 552, '5.7.1 spammy.com in multi.test: Blocked, see https://multi.test/spammy.com');
      assert.equal(queued, undefined);
    }, ['multi.test 2 deny']);
    await app(['uribl action denysoft'], async (t, queue) => {
      const { reply } = await sendMessage(t, queue, PLAIN);
      assertReply(reply, 452, /^4\.7\.1 (spammy\.com|bad\.co\.uk) in multi\.test/);
    });
  });

  it('a zone that never answers: logged, the message accepted within the DNS time-out', async () => {
    await app(['uribl'], async (t, queue) => {
      const ms = await timed(async () => {
        const { reply, queued } = await sendMessage(t, queue, PLAIN);
        assertReply(reply, 250);
        assert.doesNotMatch(headerOf(queued), /X-URIBL-Match/);
      });
      assert.ok(ms < DNS_TIMEOUT_S * 1000 * 2 + 2000, `took ${ms} ms`);
      assertLogged(t, 'spammy.com.dead.test: temporary error (ETIMEOUT)');
    }, ['dead.test']);
  });

  it('a bad zone line is logged and skipped; a bad action argument stops loading', async () => {
    await app(['uribl'], async (t, queue) => {
      const { queued } = await sendMessage(t, queue, PLAIN);
      assert.match(headerOf(queued), /X-URIBL-Match: spammy\.com/);
      assertLogged(t, 'uribl_zones: malformed mask "two" for broken.test; zone skipped');
      assertLogged(t, 'uribl_zones: unknown action "explode" for other.test; zone skipped');
    }, ['broken.test two', 'other.test 2 explode', 'multi.test']);
    await assert.rejects(testApp({ config: { plugins: ['uribl action explode'] } }), /uribl/);
  });

  it('relay clients are not checked', async () => {
    await app(['relay', 'uribl'], async (t, queue) => {
      const { queued } = await sendMessage(t, queue, PLAIN);
      assert.doesNotMatch(headerOf(queued), /X-URIBL-Match/);
      assertLogged(t, 'uribl: skip, relay client');
    }, undefined, { config: { relayclients: ['192.0.2.10'] } });
  });
});
