import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildCdb } from '../../src/config/cdb.ts';
import { testApp, type TestApp, type TestAppOptions } from '../helpers/test-app.ts';

const LOCAL = 'user@example.com';
const REMOTE = 'someone@elsewhere.example';

/** An app with `relay` (and its arguments) before `rcpt_ok`, accepting mail for example.com. */
async function withApp(options: { relayArgs?: string; config?: TestAppOptions['config']; env?: TestAppOptions['env'] }, fn: (t: TestApp) => Promise<void>): Promise<void> {
  const t = await testApp({
    config: {
      plugins: [`relay${options.relayArgs ? ' ' + options.relayArgs : ''}`, 'rcpt_ok'],
      rcpthosts: ['example.com'],
      loglevel: '6',
      ...options.config,
    },
    env: options.env ?? {},
  });
  try {
    await fn(t);
  } finally {
    t.cleanup();
  }
}

/** One session from `remoteIp`: the reply codes of RCPT TO for each address. */
async function rcptCodes(t: TestApp, remoteIp: string, ...rcpts: string[]): Promise<number[]> {
  const { client, done } = await t.greeted({ remoteIp });
  assert.equal((await client.command('EHLO client.example')).code, 250);
  assert.equal((await client.command('MAIL FROM:<a@sender.example>')).code, 250);
  const codes: number[] = [];
  for (const rcpt of rcpts) codes.push((await client.command(`RCPT TO:<${rcpt}>`)).code);
  assert.equal((await client.command('QUIT')).code, 221);
  await done;
  return codes;
}

/** Does a client from this IP get to relay? */
async function relays(t: TestApp, remoteIp: string): Promise<boolean> {
  const [code] = await rcptCodes(t, remoteIp, REMOTE);
  assert.ok(code === 250 || code === 550, `unexpected ${code} for ${remoteIp}`);
  return code === 250;
}

describe('relay', () => {
  it('lets an unknown client send to local domains only', async () => {
    await withApp({}, async (t) => {
      const { client, done } = await t.greeted({ remoteIp: '198.51.100.7' });
      assert.equal((await client.command('EHLO client.example')).code, 250);
      assert.equal((await client.command('MAIL FROM:<a@sender.example>')).code, 250);
      assert.equal((await client.command(`RCPT TO:<${LOCAL}>`)).code, 250);
      const refused = await client.command(`RCPT TO:<${REMOTE}>`);
      assert.equal(refused.code, 550);
      assert.match(refused.text, /^5\.7\.1 Relaying denied/);
      await client.command('QUIT');
      await done;
      assert.ok(t.logs.some((l) => l.includes('skip, no match')), t.logs.join('\n'));
    });
  });

  it('relayclients: a full IPv4 address', async () => {
    await withApp({ config: { relayclients: ['10.1.2.3'] } }, async (t) => {
      assert.equal(await relays(t, '10.1.2.3'), true);
      assert.equal(await relays(t, '10.1.2.30'), false);
      assert.equal(await relays(t, '10.1.2.4'), false);
      assert.ok(t.logs.some((l) => l.includes('pass, octet match in relayclients (10.1.2.3')), t.logs.join('\n'));
    });
  });

  it('relayclients: an IPv4 client seen as ::ffff:a.b.c.d matches its IPv4 entry', async () => {
    await withApp({ config: { relayclients: ['10.1.2.3', '172.16.'] } }, async (t) => {
      assert.equal(await relays(t, '::ffff:10.1.2.3'), true);
      assert.equal(await relays(t, '::ffff:172.16.9.9'), true);
      assert.equal(await relays(t, '::ffff:10.1.2.4'), false);
    });
  });

  it('relayclients: a prefix ending in a dot', async () => {
    await withApp({ config: { relayclients: ['192.168.42.', '172.'] } }, async (t) => {
      assert.equal(await relays(t, '192.168.42.77'), true);
      assert.equal(await relays(t, '192.168.43.77'), false);
      assert.equal(await relays(t, '192.168.4.2'), false);
      assert.equal(await relays(t, '172.31.0.1'), true);
    });
  });

  it('relayclients: an IPv4 CIDR block, network and broadcast addresses included', async () => {
    await withApp({ config: { relayclients: ['10.1.0.0/24'] } }, async (t) => {
      assert.equal(await relays(t, '10.1.0.0'), true);
      assert.equal(await relays(t, '10.1.0.77'), true);
      assert.equal(await relays(t, '10.1.0.255'), true);
      assert.equal(await relays(t, '10.1.1.0'), false);
      assert.equal(await relays(t, '10.0.255.255'), false);
      assert.ok(t.logs.some((l) => l.includes('pass, cidr match (10.1.0.77')), t.logs.join('\n'));
    });
  });

  it('relayclients: IPv6 CIDR blocks, prefixes and full addresses', async () => {
    const config = { relayclients: ['2001:db8:e431:ae06::/64', '2001:db8:aaaa:', '2001:DB8:0:0::25'] };
    await withApp({ config }, async (t) => {
      assert.equal(await relays(t, '2001:db8:e431:ae06::1'), true);
      assert.equal(await relays(t, '2001:db8:e431:ae06:ffff:ffff:ffff:ffff'), true);
      assert.equal(await relays(t, '2001:db8:e431:ae07::1'), false);
      assert.equal(await relays(t, '2001:db8:aaaa:1::9'), true);
      assert.equal(await relays(t, '2001:0db8:aaaa:0001:0000:0000:0000:0009'), true);
      assert.equal(await relays(t, '2001:db8:aaab::9'), false);
      assert.equal(await relays(t, '2001:db8::25'), true);
      assert.equal(await relays(t, '2001:db8::26'), false);
    });
  });

  it('does not treat ::1 as a relay client unless it is listed', async () => {
    await withApp({}, async (t) => {
      assert.equal(await relays(t, '::1'), false);
    });
    await withApp({ config: { relayclients: ['::1'] } }, async (t) => {
      assert.equal(await relays(t, '::1'), true);
    });
  });

  it('RELAYCLIENT in the environment makes every client a relay client', async () => {
    await withApp({ env: { RELAYCLIENT: '' } }, async (t) => {
      assert.equal(await relays(t, '203.0.113.9'), true);
      assert.ok(t.logs.some((l) => l.includes('pass, enabled by env')), t.logs.join('\n'));
    });
  });

  it('morerelayclients as a plain file: full addresses and prefixes, not CIDR', async () => {
    const config = { morerelayclients: ['10.7.', '10.8.1.1', '2001:db8:cccc:', '10.9.0.0/16'] };
    await withApp({ config }, async (t) => {
      assert.equal(await relays(t, '10.7.200.1'), true);
      assert.equal(await relays(t, '10.8.1.1'), true);
      assert.equal(await relays(t, '10.8.1.2'), false);
      assert.equal(await relays(t, '2001:db8:cccc::1'), true);
      assert.equal(await relays(t, '10.9.0.1'), false);
      assert.ok(t.logs.some((l) => l.includes('pass, octet match in morerelayclients (10.7.200.1 matches 10.7.)')), t.logs.join('\n'));
    });
  });

  it('morerelayclients.cdb wins over the plain file', async () => {
    await withApp({ config: { morerelayclients: ['10.99.'] } }, async (t) => {
      writeFileSync(
        join(t.configDir, 'morerelayclients.cdb'),
        buildCdb([
          ['10.20.30.', ''],
          ['192.0.2.55', '1'],
          ['2001:db8:dddd:', ''],
        ]),
      );
      assert.equal(await relays(t, '10.20.30.40'), true);
      assert.equal(await relays(t, '192.0.2.55'), true);
      assert.equal(await relays(t, '192.0.2.56'), false);
      assert.equal(await relays(t, '2001:db8:dddd:1::1'), true);
      assert.equal(await relays(t, '10.99.1.1'), false);
    });
  });

  it('norelayclients overrides relayclients, morerelayclients and RELAYCLIENT', async () => {
    const config = {
      relayclients: ['10.1.0.0/16', '2001:db8::/32'],
      morerelayclients: ['10.2.'],
      norelayclients: ['10.1.5.5', '10.1.6.', '10.2.2.2', '2001:db8:bad:'],
    };
    await withApp({ config }, async (t) => {
      assert.equal(await relays(t, '10.1.5.4'), true);
      assert.equal(await relays(t, '10.1.5.5'), false);
      assert.equal(await relays(t, '10.1.6.9'), false);
      assert.equal(await relays(t, '10.2.2.1'), true);
      assert.equal(await relays(t, '10.2.2.2'), false);
      assert.equal(await relays(t, '2001:db8:bad::1'), false);
      assert.equal(await relays(t, '2001:db8:bae::1'), true);
      assert.ok(t.logs.some((l) => l.includes('fail, disabled by norelayclients')), t.logs.join('\n'));
    });
    await withApp({ config: { norelayclients: ['10.1.5.5'] }, env: { RELAYCLIENT: '1' } }, async (t) => {
      assert.equal(await relays(t, '10.1.5.5'), false);
      assert.equal(await relays(t, '10.1.5.6'), true);
    });
  });

  it('local domains stay reachable for a client in norelayclients', async () => {
    await withApp({ config: { norelayclients: ['10.1.5.5'] } }, async (t) => {
      assert.deepEqual(await rcptCodes(t, '10.1.5.5', LOCAL, REMOTE), [250, 550]);
    });
  });

  it('warns about entries it cannot read and uses the rest', async () => {
    await withApp({ config: { relayclients: ['not-an-ip', '10.1.2.3'] } }, async (t) => {
      assert.equal(await relays(t, '10.1.2.3'), true);
      assert.ok(t.logs.some((l) => l.includes('relayclients: ignoring "not-an-ip"')), t.logs.join('\n'));
    });
  });

  it('picks up an edited relayclients for new connections', async () => {
    await withApp({ config: { relayclients: ['10.1.2.3'] } }, async (t) => {
      assert.equal(await relays(t, '10.4.4.4'), false);
      // A different size is enough for the config cache to notice, whatever the mtime granularity.
      t.writeConfig('relayclients', ['10.1.2.3', '10.4.4.4']);
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal(await relays(t, '10.4.4.4'), true);
    });
  });

  describe('only 1', () => {
    it('accepts any recipient from relay clients and refuses everybody else', async () => {
      await withApp({ relayArgs: 'only 1', config: { relayclients: ['10.1.2.3'] } }, async (t) => {
        assert.deepEqual(await rcptCodes(t, '10.1.2.3', LOCAL, REMOTE), [250, 250]);
        assert.deepEqual(await rcptCodes(t, '198.51.100.7', LOCAL, REMOTE), [550, 550]);
      });
    });

    it('refuses with 550 5.7.1', async () => {
      await withApp({ relayArgs: 'only 1' }, async (t) => {
        const { client, done } = await t.greeted({ remoteIp: '198.51.100.7' });
        await client.command('EHLO client.example');
        await client.command('MAIL FROM:<a@sender.example>');
        const r = await client.command(`RCPT TO:<${LOCAL}>`);
        assert.equal(r.code, 550);
        assert.match(r.text, /^5\.7\.1 /);
        await client.command('QUIT');
        await done;
      });
    });

    it('only 0 does not restrict', async () => {
      await withApp({ relayArgs: 'only 0' }, async (t) => {
        assert.deepEqual(await rcptCodes(t, '198.51.100.7', LOCAL, REMOTE), [250, 550]);
      });
    });
  });

  it('always lets the session go on (connect answers DECLINED)', async () => {
    await withApp({ config: { norelayclients: ['198.51.100.7'] } }, async (t) => {
      const { client, done } = await t.greeted({ remoteIp: '198.51.100.7' });
      assert.equal((await client.command('NOOP')).code, 250);
      await client.command('QUIT');
      await done;
    });
  });
});
