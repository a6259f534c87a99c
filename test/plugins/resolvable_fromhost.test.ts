import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type TestDnsServer } from '../../src/testing/dns-server.ts';
import type { TestApp } from '../helpers/test-app.ts';
import { assertLogged, assertReply, ehloed, probe, quit, type AppOptions } from './connection-policy-support.ts';
import { DNS_TIMEOUT_S, timed, withDnsApp } from './dns-support.ts';

let dns: TestDnsServer;

before(async () => {
  dns = await startDnsServer({
    records: [
      ['mx.test', 'MX', '10 mail.mx.test'],
      ['mx.test', 'MX', '20 backup.mx.test'],
      ['mail.mx.test', 'A', '192.0.2.25'],
      ['backup.mx.test', 'A', '10.1.1.1'],
      ['mx6.test', 'MX', '10 mail.mx6.test'],
      ['mail.mx6.test', 'AAAA', '2001:db8::25'],
      ['a.test', 'A', '198.51.100.7'],
      ['aaaa.test', 'AAAA', '2001:db8::7'],
      ['nothing.test', 'TXT', 'v=spf1 -all'],
      ['private.test', 'MX', '10 mail.private.test'],
      ['mail.private.test', 'A', '192.168.1.1'],
      ['mail.private.test', 'A', '127.0.0.1'],
      ['loopback6.test', 'AAAA', '::1'],
      ['dangling.test', 'MX', '10 gone.dangling.test'],
      ['nullmx.test', 'MX', '0 .'],
      ['slowmx.test', 'MX', '10 mail.slow.test'],
    ],
    silent: ['slow.test', '*.slow.test'],
    servfail: ['broken.test'],
  });
});
after(() => dns.close());

function app(plugins: string[], fn: (t: TestApp) => Promise<void>, options: AppOptions = {}): Promise<void> {
  return withDnsApp(dns, plugins, fn, options);
}

/** MAIL FROM `sender`: the reply and the transaction notes (after a successful MAIL). */
async function mailFrom(t: TestApp, sender: string) {
  const session = await ehloed(t);
  const reply = await session.client.command(`MAIL FROM:<${sender}>`);
  const notes = reply.code === 250 ? (await probe(session.client)).transaction : {};
  await quit(session);
  return { reply, notes };
}

describe('resolvable_fromhost: resolvable senders', () => {
  it('an MX with a usable address passes (note mx), even when another MX is in a private network', async () => {
    await app(['resolvable_fromhost', 'probe'], async (t) => {
      const { reply, notes } = await mailFrom(t, 'a@MX.test');
      assertReply(reply, 250);
      assert.equal(notes['resolvable_fromhost'], 'mx');
      assert.equal(notes['resolvable_fromhost_host'], 'mx.test');
      assertLogged(t, 'pass, mx.test has MX at mail.mx.test, backup.mx.test');
    });
  });

  it('an MX with an IPv6 address only passes', async () => {
    await app(['resolvable_fromhost', 'probe'], async (t) => {
      const { reply, notes } = await mailFrom(t, 'a@mx6.test');
      assertReply(reply, 250);
      assert.equal(notes['resolvable_fromhost'], 'mx');
    });
  });

  it('no MX but an A or AAAA record passes (note a)', async () => {
    await app(['resolvable_fromhost', 'probe'], async (t) => {
      for (const domain of ['a.test', 'aaaa.test']) {
        const { reply, notes } = await mailFrom(t, `someone@${domain}`);
        assertReply(reply, 250);
        assert.equal(notes['resolvable_fromhost'], 'a');
      }
      assertLogged(t, 'pass, found A for a.test');
    });
  });

  it('the null sender and an address literal are not looked up', async () => {
    await app(['resolvable_fromhost', 'probe'], async (t) => {
      const before = dns.queries.length;
      let { reply, notes } = await mailFrom(t, '');
      assertReply(reply, 250);
      assert.equal(notes['resolvable_fromhost'], 'null');
      ({ reply, notes } = await mailFrom(t, 'x@[192.0.2.1]'));
      assertReply(reply, 250);
      assert.equal(notes['resolvable_fromhost'], 'ip');
      assert.equal(dns.queries.length, before);
    });
  });
});

describe('resolvable_fromhost: unresolvable senders', () => {
  it('no such domain, and a domain without MX, A or AAAA: 450 4.1.8 by default, karma -1', async () => {
    await app(['resolvable_fromhost', 'probe'], async (t) => {
      for (const [domain, why] of [
        ['nowhere.test', 'nowhere.test does not exist'],
        ['nothing.test', 'nothing.test has no MX or A'],
      ] as const) {
        const session = await ehloed(t);
        assertReply(await session.client.command(`MAIL FROM:<a@${domain}>`), 450, '4.1.8 FQDN required in the envelope sender');
        assert.equal((await probe(session.client)).connection['karma'], -1);
        await quit(session);
        assertLogged(t, `resolvable_fromhost: fail, ${why}`);
      }
    });
  });

  it('MX hosts only in invalid networks, or without addresses, fail; reject_type perm gives 550', async () => {
    await app(['resolvable_fromhost reject_type perm'], async (t) => {
      assertReply((await mailFrom(t, 'a@private.test')).reply, 550, '5.1.8 FQDN required in the envelope sender');
      assertLogged(t, 'fail, invalid MX for private.test: MX hosts in invalid networks (192.168.1.1, 127.0.0.1)');
      assertReply((await mailFrom(t, 'a@dangling.test')).reply, 550, '5.1.8 FQDN required in the envelope sender');
      assertLogged(t, 'fail, invalid MX for dangling.test: MX hosts without addresses');
      assertReply((await mailFrom(t, 'a@loopback6.test')).reply, 550);
      assertLogged(t, 'loopback6.test has no MX, and its addresses are in invalid networks (::1)');
    });
  });

  it('invalid_resolvable_fromhost replaces the default networks', async () => {
    await app(['resolvable_fromhost', 'probe'], async (t) => {
      assertReply((await mailFrom(t, 'a@private.test')).reply, 250);
      assertReply((await mailFrom(t, 'a@a.test')).reply, 450);
    }, { config: { invalid_resolvable_fromhost: ['198.51.100.0/24'] } });
  });

  it('a null MX (RFC 7505) is refused permanently, 550 5.7.27, whatever reject_type says', async () => {
    await app(['resolvable_fromhost'], async (t) => {
      assertReply((await mailFrom(t, 'a@nullmx.test')).reply, 550, '5.7.27 Sender address has null MX');
      assertLogged(t, 'fail, nullmx.test has a null MX');
    });
  });

  it('reject 0: only logged, the sender is accepted; the note says what failed', async () => {
    await app(['resolvable_fromhost reject 0', 'probe'], async (t) => {
      const { reply, notes } = await mailFrom(t, 'a@nothing.test');
      assertReply(reply, 250);
      assert.equal(notes['resolvable_fromhost'], 'nothing.test has no MX or A');
      assertLogged(t, 'fail, tolerated, nothing.test has no MX or A');
    });
  });

  it('relay clients are not checked', async () => {
    await app(['relay', 'resolvable_fromhost', 'probe'], async (t) => {
      assertReply((await mailFrom(t, 'a@nothing.test')).reply, 250);
      assertLogged(t, 'resolvable_fromhost: skip, relay client');
    }, { config: { relayclients: ['192.0.2.10'] } });
  });
});

describe('resolvable_fromhost: temporary failures', () => {
  it('a time-out, of the MX or of an MX host, defers (450 4.4.3) within the DNS time-out', async () => {
    await app(['resolvable_fromhost reject_type perm'], async (t) => {
      for (const domain of ['slow.test', 'slowmx.test']) {
        const ms = await timed(async () => {
          assertReply((await mailFrom(t, `a@${domain}`)).reply, 450, '4.4.3 Temporary address resolution failure');
        });
        assert.ok(ms < DNS_TIMEOUT_S * 1000 + 1500, `took ${ms} ms`);
      }
      assertLogged(t, 'fail, MX of slow.test: ETIMEOUT');
      assertLogged(t, 'fail, MX host of slowmx.test: A mail.slow.test: ETIMEOUT');
    });
  });

  it('SERVFAIL defers too', async () => {
    await app(['resolvable_fromhost'], async (t) => {
      assertReply((await mailFrom(t, 'a@broken.test')).reply, 450, '4.4.3 Temporary address resolution failure');
      assertLogged(t, 'fail, MX of broken.test: ESERVFAIL');
    });
  });
});

describe('resolvable_fromhost: loading', () => {
  it('loads under its old name require_resolvable_fromhost', async () => {
    await app(['require_resolvable_fromhost', 'probe'], async (t) => {
      assertReply((await mailFrom(t, 'a@nothing.test')).reply, 450);
      assertReply((await mailFrom(t, 'a@mx.test')).reply, 250);
    });
  });
});
