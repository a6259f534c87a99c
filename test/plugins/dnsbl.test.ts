import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type TestDnsServer } from '../../src/testing/dns-server.ts';
import { testApp, type TestApp } from '../helpers/test-app.ts';
import { assertLogged, assertReply, closed, ehloed, logged, probe, quit } from './connection-policy-support.ts';
import { DNS_TIMEOUT_S, timed, withDnsApp } from './dns-support.ts';
import type { AppOptions } from './connection-policy-support.ts';

const LISTED = '192.0.2.66';
const LISTED6 = '2001:db8::66';
const REV6 = '6.6.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2';

let dns: TestDnsServer;

before(async () => {
  dns = await startDnsServer({
    records: [
      // bl.test: A and TXT
      ['66.2.0.192.bl.test', 'A', '127.0.0.2'],
      ['66.2.0.192.bl.test', 'TXT', 'Listed in bl.test, see https://bl.test/66'],
      [`${REV6}.bl.test`, 'A', '127.0.0.3'],
      [`${REV6}.bl.test`, 'TXT', 'IPv6 listed in bl.test'],
      // a.test: A only (the zone's own message is used)
      ['66.2.0.192.a.test', 'A', '127.0.0.4'],
      ['77.2.0.192.a.test', 'A', '127.0.0.4'],
      // txtonly.test: TXT only
      ['88.2.0.192.txtonly.test', 'TXT', 'only TXT here'],
      // hijack.test answers every name with a public address: no listing
      ['*.hijack.test', 'A', '198.51.100.1'],
      // refused.test answers Spamhaus's "query refused" code
      ['*.refused.test', 'A', '127.255.255.254'],
    ],
    silent: ['*.dead.test'],
    servfail: ['*.broken.test'],
  });
});
after(() => dns.close());

/** MAIL and RCPT to `rcpt`: the RCPT reply. */
async function rcptFrom(t: TestApp, ip: string, rcpt = 'user@example.test') {
  const session = await ehloed(t, ip);
  assertReply(await session.client.command('MAIL FROM:<sender@example.org>'), 250);
  const reply = await session.client.command(`RCPT TO:<${rcpt}>`);
  return { session, reply };
}

function app(plugins: string[], fn: (t: TestApp) => Promise<void>, zones: string[] = ['bl.test'], options: AppOptions = {}): Promise<void> {
  return withDnsApp(dns, plugins, fn, { ...options, config: { dnsbl_zones: zones, ...options.config } });
}

describe('dnsbl: listed and unlisted clients', () => {
  it('a listed IPv4 client: the TXT record is the reply, at RCPT; notes dnsbl, dnsbl_zones and karma', async () => {
    await app(['dnsbl', 'accept_all', 'probe'], async (t) => {
      const { session, reply } = await rcptFrom(t, LISTED);
      assertReply(reply, 550, '5.7.1 Listed in bl.test, see https://bl.test/66');
      const notes = (await probe(session.client)).connection;
      assert.equal(notes['dnsbl'], 'Listed in bl.test, see https://bl.test/66');
      assert.deepEqual(notes['dnsbl_zones'], ['bl.test']);
      assert.equal(notes['karma'], -1);
      await quit(session);
      assertLogged(t, 'fail, 192.0.2.66 listed by bl.test; refusing recipients');
    });
  });

  it('a listed IPv6 client is looked up by its 32 nibbles', async () => {
    await app(['dnsbl', 'accept_all'], async (t) => {
      const { session, reply } = await rcptFrom(t, LISTED6);
      assertReply(reply, 550, '5.7.1 IPv6 listed in bl.test');
      await quit(session);
      assert.ok(dns.queries.includes(`A ${REV6}.bl.test`));
    });
  });

  it('an unlisted client (IPv4 and IPv6) is accepted and logged as pass; no dnsbl note', async () => {
    await app(['dnsbl', 'accept_all', 'probe'], async (t) => {
      for (const ip of ['192.0.2.10', '2001:db8::10']) {
        const { session, reply } = await rcptFrom(t, ip);
        assertReply(reply, 250);
        const notes = (await probe(session.client)).connection;
        assert.notEqual(typeof notes['dnsbl'], 'string');
        assert.equal(notes['dnsbl_zones'], undefined);
        assert.equal(notes['karma'], undefined);
        await quit(session);
      }
      assertLogged(t, 'dnsbl: pass');
    });
  });

  it('a zone with a message of its own: A is enough, %IP% is replaced; dnsbl_rejectmsg comes first', async () => {
    await app(['dnsbl', 'accept_all'], async (t) => {
      const { session, reply } = await rcptFrom(t, '192.0.2.77');
      assertReply(reply, 550);
      assert.deepEqual(reply.lines, ['5.7.1 If you think this is wrong, write to postmaster.', '5.7.1 Go away 192.0.2.77, see https://a.test/?ip=192.0.2.77']);
      await quit(session);
    }, ['a.test:Go away %IP%, see https://a.test/?ip=%IP%'], { config: { dnsbl_rejectmsg: ['If you think this is wrong, write to postmaster.'] } });
  });

  it('a zone without message and without TXT says "Blocked by <zone>"; a TXT-only zone lists too', async () => {
    await app(['dnsbl', 'accept_all'], async (t) => {
      let { session, reply } = await rcptFrom(t, '192.0.2.77');
      assertReply(reply, 550, '5.7.1 Blocked by a.test');
      await quit(session);
      ({ session, reply } = await rcptFrom(t, '192.0.2.88'));
      assertReply(reply, 550, '5.7.1 only TXT here');
      await quit(session);
    }, ['a.test', 'txtonly.test']);
  });

  it('the first zone of dnsbl_zones decides the reply; every listing zone is noted', async () => {
    await app(['dnsbl', 'accept_all', 'probe'], async (t) => {
      const { session, reply } = await rcptFrom(t, LISTED);
      assertReply(reply, 550, '5.7.1 A says no to 192.0.2.66');
      assert.deepEqual((await probe(session.client)).connection['dnsbl_zones'], ['a.test', 'bl.test']);
      await quit(session);
    }, ['a.test:A says no to %IP%', 'bl.test']);
  });

  it('answers outside 127/8 are no listing; 127.255.255.x is logged as an error', async () => {
    await app(['dnsbl', 'accept_all'], async (t) => {
      const { session, reply } = await rcptFrom(t, LISTED);
      assertReply(reply, 250);
      await quit(session);
      assertLogged(t, 'refused.test: temporary error (EREFUSED), not counted');
      assertLogged(t, 'dnsbl: pass');
    }, ['hijack.test', 'refused.test']);
  });
});

describe('dnsbl: RCPT', () => {
  it('postmaster, abuse, mailer-daemon and root are still accepted from a listed client', async () => {
    await app(['dnsbl', 'accept_all'], async (t) => {
      const { session, reply } = await rcptFrom(t, LISTED, 'postmaster@example.test');
      assertReply(reply, 250);
      assertReply(await session.client.command('RCPT TO:<Abuse@example.test>'), 250);
      assertReply(await session.client.command('RCPT TO:<mailer-daemon@example.test>'), 250);
      assertReply(await session.client.command('RCPT TO:<someone@example.test>'), 550);
      await quit(session);
      assertLogged(t, "skip, don't blacklist special account: postmaster");
    });
  });

  it('reject_type disconnect: 550 and the connection closed; the old single-word form does the same', async () => {
    for (const line of ['dnsbl reject_type disconnect', 'dnsbl disconnect']) {
      await app([line, 'accept_all'], async (t) => {
        const { session, reply } = await rcptFrom(t, LISTED);
        assertReply(reply, 550, '5.7.1 Listed in bl.test, see https://bl.test/66');
        await closed(session);
      });
    }
  });

  it('reject_type temp: 450', async () => {
    await app(['dnsbl reject_type temp', 'accept_all'], async (t) => {
      const { session, reply } = await rcptFrom(t, LISTED);
      assertReply(reply, 450, '4.7.1 Listed in bl.test, see https://bl.test/66');
      await quit(session);
    });
  });

  it('reject 0: logged and noted, recipients accepted', async () => {
    await app(['dnsbl reject 0', 'accept_all', 'probe'], async (t) => {
      const { session, reply } = await rcptFrom(t, LISTED);
      assertReply(reply, 250);
      assert.equal((await probe(session.client)).connection['dnsbl'], 'Listed in bl.test, see https://bl.test/66');
      await quit(session);
      assertLogged(t, 'fail, tolerated, 192.0.2.66 listed by bl.test');
    });
  });

  it('reject naughty: noted at connect, the naughty plugin refuses', async () => {
    await app(['dnsbl reject naughty', 'naughty reject rcpt', 'accept_all', 'probe'], async (t) => {
      const session = await ehloed(t, LISTED);
      assert.equal((await probe(session.client)).connection['naughty'], '(dnsbl) Listed in bl.test, see https://bl.test/66');
      assertReply(await session.client.command('MAIL FROM:<a@example.org>'), 250);
      assertReply(await session.client.command('RCPT TO:<b@example.test>'), 550, /bl\.test/);
      await quit(session);
    });
  });

  it('a relay client and a whitelisted host are not looked up', async () => {
    await app(['relay', 'whitelist', 'dnsbl', 'accept_all'], async (t) => {
      const before = dns.queries.length;
      for (const ip of [LISTED, LISTED6]) {
        const { session, reply } = await rcptFrom(t, ip);
        assertReply(reply, 250);
        await quit(session);
      }
      assertLogged(t, 'dnsbl: skip, relay client');
      assertLogged(t, 'whitelist: pass, 2001:db8::66 is a whitelisted host'); // answers OK: dnsbl's connect does not run
      assert.equal(dns.queries.length, before, 'no queries');
    }, ['bl.test'], { config: { relayclients: [LISTED], whitelisthosts: [LISTED6] } });
  });
});

describe('dnsbl: dnsbl_allow and RBLSMTPD', () => {
  it('dnsbl_allow: full addresses, prefixes and CIDR blocks are never looked up', async () => {
    await app(['dnsbl', 'accept_all'], async (t) => {
      const before = dns.queries.length;
      for (const ip of [LISTED, '192.0.2.77', LISTED6]) {
        const { session, reply } = await rcptFrom(t, ip);
        assertReply(reply, 250);
        await quit(session);
      }
      assert.equal(dns.queries.length, before, 'no queries');
      assertLogged(t, 'skip, 192.0.2.66 is in dnsbl_allow (192.0.2.66)');
      assertLogged(t, 'skip, 192.0.2.77 is in dnsbl_allow (192.0.2.)');
    }, ['bl.test', 'a.test'], { config: { dnsbl_allow: ['192.0.2.66', '192.0.2.', '2001:db8::/32'] } });
  });

  it('RBLSMTPD empty: no lookups, no refusal', async () => {
    await app(['dnsbl', 'accept_all'], async (t) => {
      const { session, reply } = await rcptFrom(t, LISTED);
      assertReply(reply, 250);
      await quit(session);
      assertLogged(t, 'skip, RBLSMTPD set, but empty for 192.0.2.66');
    }, ['bl.test'], { env: { RBLSMTPD: '' } });
  });

  it('RBLSMTPD text: recipients refused temporarily with it (%IP% replaced), postmaster still reachable', async () => {
    await app(['dnsbl', 'accept_all'], async (t) => {
      const { session, reply } = await rcptFrom(t, '192.0.2.10');
      assertReply(reply, 450);
      assert.deepEqual(reply.lines, ['4.7.1 Blocked here.', '4.7.1 You (192.0.2.10) are blocked locally']);
      assertReply(await session.client.command('RCPT TO:<postmaster@example.test>'), 250);
      await quit(session);
    }, ['bl.test'], { env: { RBLSMTPD: 'You (%IP%) are blocked locally' }, config: { dnsbl_rejectmsg: ['Blocked here.'] } });
  });

  it('RBLSMTPD starting with "-": refused permanently, without the "-"', async () => {
    await app(['dnsbl', 'accept_all'], async (t) => {
      const { session, reply } = await rcptFrom(t, '192.0.2.10');
      assertReply(reply, 550, '5.7.1 go away');
      await quit(session);
    }, ['bl.test'], { env: { RBLSMTPD: '-go away' } });
  });
});

describe('dnsbl: zones that do not answer', () => {
  it('a silent zone: the session goes on within the DNS time-out; a temporary error is logged; other zones still count', async () => {
    await app(['dnsbl', 'accept_all'], async (t) => {
      let ms = await timed(async () => {
        const { session, reply } = await rcptFrom(t, '192.0.2.10');
        assertReply(reply, 250);
        await quit(session);
      });
      assert.ok(ms < DNS_TIMEOUT_S * 1000 + 1500, `took ${ms} ms`);
      assertLogged(t, 'dead.test: temporary error (ETIMEOUT), not counted');
      ms = await timed(async () => {
        const { session, reply } = await rcptFrom(t, LISTED);
        assertReply(reply, 550, '5.7.1 Listed in bl.test, see https://bl.test/66');
        await quit(session);
      });
      assert.ok(ms < DNS_TIMEOUT_S * 1000 + 1500, `took ${ms} ms`);
    }, ['dead.test', 'bl.test']);
  });

  it('SERVFAIL: a temporary error, no refusal', async () => {
    await app(['dnsbl', 'accept_all'], async (t) => {
      const { session, reply } = await rcptFrom(t, LISTED);
      assertReply(reply, 250);
      await quit(session);
      assertLogged(t, 'broken.test: temporary error (ESERVFAIL), not counted');
      assert.ok(!logged(t, 'dnsbl: fail'));
    }, ['broken.test']);
  });

  it('the hook\'s time limit bounds the lookups too (plugin_timeout, timeout argument)', async () => {
    await app(['dnsbl timeout 0.2', 'accept_all'], async (t) => {
      const ms = await timed(async () => {
        const { session, reply } = await rcptFrom(t, '192.0.2.10');
        assertReply(reply, 250);
        await quit(session);
      });
      assert.ok(ms < 2000, `took ${ms} ms`);
      assertLogged(t, 'dead.test: temporary error (ECANCELLED), not counted');
    }, ['dead.test'], { config: { dns_timeout: '5' } });
  });
});

describe('dnsbl: loading', () => {
  it('refuses a bad reject_type or timeout', async () => {
    for (const args of ['reject_type never', 'timeout soon', 'reject']) {
      await assert.rejects(testApp({ config: { plugins: [`dnsbl ${args}`] } }), /dnsbl/);
    }
  });
});
