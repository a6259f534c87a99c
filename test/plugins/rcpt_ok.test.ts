import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildCdb } from '../../src/config/cdb.ts';
import type { Endpoints } from '../../src/session/connection.ts';
import type { ParsedReply } from '../helpers/fake-conn.ts';
import { testApp, type TestApp, type TestAppOptions } from '../helpers/test-app.ts';

async function withApp(options: TestAppOptions, fn: (t: TestApp) => Promise<void>): Promise<void> {
  const t = await testApp({
    ...options,
    config: { plugins: ['rcpt_ok'], rcpthosts: ['example.com', '.example.net'], loglevel: '6', ...options.config },
  });
  try {
    await fn(t);
  } finally {
    t.cleanup();
  }
}

/** One session: the RCPT TO replies for each recipient (written as given, brackets included). */
async function rcptReplies(t: TestApp, rcpts: string[], endpoints: Partial<Endpoints> = {}): Promise<ParsedReply[]> {
  const { client, done } = await t.greeted({ remoteIp: '198.51.100.7', ...endpoints });
  assert.equal((await client.command('EHLO client.example')).code, 250);
  assert.equal((await client.command('MAIL FROM:<a@sender.example>')).code, 250);
  const replies: ParsedReply[] = [];
  for (const rcpt of rcpts) replies.push(await client.command(`RCPT TO:${rcpt}`));
  assert.equal((await client.command('QUIT')).code, 221);
  await done;
  return replies;
}

async function rcptCodes(t: TestApp, rcpts: string[], endpoints: Partial<Endpoints> = {}): Promise<number[]> {
  return (await rcptReplies(t, rcpts, endpoints)).map((r) => r.code);
}

describe('rcpt_ok', () => {
  it('accepts the domains of rcpthosts, in any case', async () => {
    await withApp({}, async (t) => {
      assert.deepEqual(await rcptCodes(t, ['<user@example.com>', '<User@EXAMPLE.Com>']), [250, 250]);
      assert.ok(t.logs.some((l) => l.includes('rcpt_ok: pass: example.com in rcpthosts')), t.logs.join('\n'));
    });
  });

  it('accepts config/me', async () => {
    await withApp({ config: { me: 'MX.Example.Test' } }, async (t) => {
      assert.deepEqual(await rcptCodes(t, ['<root@mx.example.test>', '<root@other.example.test>']), [250, 550]);
    });
  });

  it('refuses other domains with 550 5.7.1 Relaying denied', async () => {
    await withApp({}, async (t) => {
      const [r] = await rcptReplies(t, ['<someone@elsewhere.example>']);
      assert.equal(r!.code, 550);
      assert.equal(r!.text, '5.7.1 Relaying denied');
      assert.ok(t.logs.some((l) => l.includes('fail: elsewhere.example not in morercpthosts')), t.logs.join('\n'));
    });
  });

  it('a leading dot accepts every subdomain but not the domain itself', async () => {
    await withApp({}, async (t) => {
      const codes = await rcptCodes(t, [
        '<a@mail.example.net>',
        '<a@deep.sub.EXAMPLE.net>',
        '<a@example.net>',
        '<a@badexample.net>',
        '<a@mail.example.com>',
      ]);
      assert.deepEqual(codes, [250, 250, 550, 550, 550]);
    });
  });

  it('without rcpthosts only config/me is local', async () => {
    const t = await testApp({ config: { plugins: ['rcpt_ok'] } });
    try {
      assert.deepEqual(await rcptCodes(t, ['<a@mx.example.test>', '<a@example.com>']), [250, 550]);
    } finally {
      t.cleanup();
    }
  });

  it('accepts postmaster without a domain', async () => {
    await withApp({}, async (t) => {
      assert.deepEqual(await rcptCodes(t, ['<postmaster>', '<PostMaster>']), [250, 250]);
    });
  });

  it('accepts abuse without a domain, and no other bare local part', async () => {
    // The core's parser only lets <postmaster> through without a domain; this plugin strips the
    // domain before rcpt_ok runs, as a lenient rcpt parser could.
    const strip = `
      import { Plugin, DECLINED } from 'qpsmtpd';
      export default class StripDomain extends Plugin {
        hook_rcpt(_tx, rcpt) { if (rcpt.host === 'strip.invalid') rcpt.host = ''; return DECLINED; }
      }
    `;
    await withApp({ plugins: { 'strip_domain.ts': strip }, config: { plugins: ['strip_domain', 'rcpt_ok'] } }, async (t) => {
      const replies = await rcptReplies(t, ['<abuse@strip.invalid>', '<ABUSE@strip.invalid>', '<someone@strip.invalid>']);
      assert.deepEqual(
        replies.map((r) => r.code),
        [250, 250, 550],
      );
    });
  });

  it('accepts the domains of morercpthosts.cdb', async () => {
    await withApp({}, async (t) => {
      writeFileSync(
        join(t.configDir, 'morercpthosts.cdb'),
        buildCdb([
          ['example.org', ''],
          ['.example.info', ''],
        ]),
      );
      const codes = await rcptCodes(t, ['<a@example.org>', '<a@EXAMPLE.ORG>', '<a@sub.example.org>', '<a@x.example.info>', '<a@example.info>', '<a@example.com>']);
      assert.deepEqual(codes, [250, 250, 550, 250, 550, 250]);
      assert.ok(t.logs.some((l) => l.includes('pass: example.org found in morercpthosts')), t.logs.join('\n'));
    });
  });

  it('accepts the domains of a plain morercpthosts file', async () => {
    await withApp({ config: { morercpthosts: ['example.biz', 'example.xyz 1'] } }, async (t) => {
      assert.deepEqual(await rcptCodes(t, ['<a@example.biz>', '<a@example.xyz>', '<a@example.bizz>']), [250, 250, 550]);
    });
  });

  it('accepts every recipient from a relay client', async () => {
    await withApp({ env: { RELAYCLIENT: '' }, config: { plugins: ['relay', 'rcpt_ok'] } }, async (t) => {
      assert.deepEqual(await rcptCodes(t, ['<a@elsewhere.example>', '<a@example.com>']), [250, 250]);
      assert.ok(t.logs.some((l) => l.includes('rcpt_ok: skip, relay client')), t.logs.join('\n'));
    });
  });

  it('does not let whitelisted hosts or senders relay (unlike qpsmtpd): whitelisting is no relay permission', async () => {
    const whitelist = `
      import { Plugin, DECLINED } from 'qpsmtpd';
      export default class Whitelist extends Plugin {
        hook_connect() { if (this.connection.remoteIp === '192.0.2.1') this.connection.notes.whitelisthost = 1; return DECLINED; }
        hook_mail(tx, sender) { if (sender.host === 'friend.example') tx.notes.whitelistsender = 1; return DECLINED; }
      }
    `;
    await withApp({ plugins: { 'wl.ts': whitelist }, config: { plugins: ['wl', 'rcpt_ok'] } }, async (t) => {
      assert.deepEqual(await rcptCodes(t, ['<a@elsewhere.example>', '<postmaster@example.com>'], { remoteIp: '192.0.2.1' }), [550, 250]);
      assert.deepEqual(await rcptCodes(t, ['<a@elsewhere.example>'], { remoteIp: '192.0.2.2' }), [550]);
      const { client, done } = await t.greeted({ remoteIp: '192.0.2.2' });
      await client.command('EHLO client.example');
      await client.command('MAIL FROM:<pal@friend.example>');
      assert.equal((await client.command('RCPT TO:<a@elsewhere.example>')).code, 550, 'a forged whitelisted sender must not relay');
      await client.command('QUIT');
      await done;
    });
  });

  describe('address literals', () => {
    it('accepts the local IP of the connection, IPv4 and IPv6', async () => {
      await withApp({}, async (t) => {
        const v4 = await rcptCodes(t, ['<a@[127.0.0.1]>', '<a@[192.0.2.99]>'], { localIp: '127.0.0.1' });
        assert.deepEqual(v4, [250, 550]);
        const mapped = await rcptCodes(t, ['<a@[192.0.2.25]>'], { localIp: '::ffff:192.0.2.25' });
        assert.deepEqual(mapped, [250]);
        const v6 = await rcptCodes(t, ['<a@[IPv6:2001:DB8:0:0::25]>', '<a@[IPv6:2001:db8::26]>'], { localIp: '2001:db8::25' });
        assert.deepEqual(v6, [250, 550]);
      });
    });

    it('literals 0 refuses them, unless rcpthosts lists the literal', async () => {
      await withApp({ config: { plugins: ['rcpt_ok literals 0'], rcpthosts: ['example.com', '[192.0.2.30]'] } }, async (t) => {
        assert.deepEqual(await rcptCodes(t, ['<a@[127.0.0.1]>', '<a@[192.0.2.30]>'], { localIp: '127.0.0.1' }), [550, 250]);
      });
    });
  });
});
