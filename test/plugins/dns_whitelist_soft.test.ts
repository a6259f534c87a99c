import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type TestDnsServer } from '../../src/testing/dns-server.ts';
import { assertLogged, assertReply, ehloed, probe, quit } from './connection-policy-support.ts';
import { withDnsApp } from './dns-support.ts';

let dns: TestDnsServer;
const REV6 = '5.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2';

before(async () => {
  dns = await startDnsServer({
    records: [
      ['55.2.0.192.wl.test', 'A', '127.0.10.1'],
      ['55.2.0.192.wl.test', 'TXT', 'good sender, see https://wl.test'],
      [`${REV6}.wl.test`, 'A', '127.0.10.1'],
      ['55.2.0.192.bl.test', 'A', '127.0.0.2'],
    ],
    silent: ['*.dead.test'],
  });
});
after(() => dns.close());

describe('dns_whitelist_soft', () => {
  it('a listed client gets the whitelisthost note (the TXT text), and dnsbl after it skips the client', async () => {
    await withDnsApp(dns, ['dns_whitelist_soft', 'dnsbl', 'accept_all', 'probe'], async (t) => {
      const session = await ehloed(t, '192.0.2.55');
      const notes = (await probe(session.client)).connection;
      assert.equal(notes['whitelisthost'], 'good sender, see https://wl.test');
      assert.deepEqual(notes['dns_whitelist_soft_zones'], ['wl.test']);
      assertReply(await session.client.command('MAIL FROM:<a@example.org>'), 250);
      assertReply(await session.client.command('RCPT TO:<b@example.test>'), 250);
      await quit(session);
      assertLogged(t, 'dns_whitelist_soft: pass, host 192.0.2.55 is whitelisted: good sender, see https://wl.test');
      assertLogged(t, 'dnsbl: skip, whitelisted host');
    }, { config: { whitelist_zones: ['wl.test', 'dead.test'], dnsbl_zones: ['bl.test'] } });
  });

  it('an IPv6 client is looked up by nibbles; an unlisted client gets no note', async () => {
    await withDnsApp(dns, ['dns_whitelist_soft', 'probe'], async (t) => {
      let session = await ehloed(t, '2001:db8::55');
      assert.equal((await probe(session.client)).connection['whitelisthost'], 'Listed by wl.test');
      await quit(session);
      session = await ehloed(t, '192.0.2.56');
      assert.equal((await probe(session.client)).connection['whitelisthost'], undefined);
      await quit(session);
      assertLogged(t, 'skip, 192.0.2.56 is not listed');
    }, { config: { whitelist_zones: ['wl.test'] } });
  });

  it('a zone that does not answer whitelists nobody and is logged', async () => {
    await withDnsApp(dns, ['dns_whitelist_soft', 'probe'], async (t) => {
      const session = await ehloed(t, '192.0.2.55');
      assert.equal((await probe(session.client)).connection['whitelisthost'], undefined);
      await quit(session);
      assertLogged(t, 'dead.test: temporary error (ETIMEOUT)');
    }, { config: { whitelist_zones: ['dead.test'] } });
  });
});
