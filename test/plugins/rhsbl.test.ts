import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type TestDnsServer } from '../../src/testing/dns-server.ts';
import type { TestApp } from '../helpers/test-app.ts';
import { assertLogged, assertReply, ehloed, probe, quit, type AppOptions } from './connection-policy-support.ts';
import { withDnsApp } from './dns-support.ts';

let dns: TestDnsServer;

before(async () => {
  dns = await startDnsServer({
    records: [
      ['spammer.example.rhs.test', 'A', '127.0.0.2'],
      ['spammer.example.rhs.test', 'TXT', 'is a known spam source'],
      ['noabuse.example.aonly.test', 'A', '127.0.0.2'],
      ['*.hijack.test', 'A', '198.51.100.1'],
    ],
    silent: ['*.dead.test'],
  });
});
after(() => dns.close());

function app(plugins: string[], fn: (t: TestApp) => Promise<void>, zones: string[], options: AppOptions = {}): Promise<void> {
  return withDnsApp(dns, [...plugins, 'probe'], fn, { ...options, config: { rhsbl_zones: zones, ...options.config } });
}

async function mailFrom(t: TestApp, sender: string) {
  const session = await ehloed(t);
  const reply = await session.client.command(`MAIL FROM:<${sender}>`);
  const notes = reply.code === 250 ? await probe(session.client) : undefined;
  await quit(session);
  return { reply, notes };
}

describe('rhsbl', () => {
  it('a listed sender domain is refused at MAIL with the TXT text; karma -1', async () => {
    await app(['rhsbl'], async (t) => {
      const session = await ehloed(t);
      assertReply(await session.client.command('MAIL FROM:<joe@Spammer.example>'), 550, '5.7.1 Mail from spammer.example rejected because it is a known spam source');
      assert.equal((await probe(session.client)).connection['karma'], -1);
      await quit(session);
      assertLogged(t, 'rhsbl: fail, spammer.example listed by rhs.test');
      assert.ok(dns.queries.includes('A spammer.example.rhs.test'));
    }, ['rhs.test']);
  });

  it('a zone with a message: A is enough, the message is the reply', async () => {
    await app(['rhsbl'], async (t) => {
      const { reply } = await mailFrom(t, 'x@noabuse.example');
      assertReply(reply, 550, '5.7.1 Mail from noabuse.example rejected because it does not support abuse@domain');
    }, ['aonly.test does not support abuse@domain']);
  });

  it('an unlisted domain, the null sender and an address literal pass; answers outside 127/8 are no listing', async () => {
    await app(['rhsbl'], async (t) => {
      for (const sender of ['a@clean.example', '', 'a@[192.0.2.1]']) assertReply((await mailFrom(t, sender)).reply, 250);
      assertLogged(t, 'rhsbl: pass');
      assertLogged(t, 'rhsbl: pass, null sender');
    }, ['rhs.test', 'hijack.test']);
  });

  it('reject 0: logged, the sender accepted, the transaction note names the zones', async () => {
    await app(['rhsbl reject 0'], async (t) => {
      const { reply, notes } = await mailFrom(t, 'joe@spammer.example');
      assertReply(reply, 250);
      assert.deepEqual(notes?.transaction['rhsbl'], ['rhs.test']);
      assertLogged(t, 'fail, tolerated, spammer.example listed by rhs.test');
    }, ['rhs.test']);
  });

  it('a zone that does not answer: a temporary error is logged, the sender accepted', async () => {
    await app(['rhsbl'], async (t) => {
      assertReply((await mailFrom(t, 'joe@spammer.example')).reply, 250);
      assertLogged(t, 'dead.test: temporary error (ETIMEOUT), not counted');
    }, ['dead.test']);
  });

  it('relay clients are not checked', async () => {
    await app(['relay', 'rhsbl'], async (t) => {
      assertReply((await mailFrom(t, 'joe@spammer.example')).reply, 250);
      assertLogged(t, 'rhsbl: skip, relay client');
    }, ['rhs.test'], { config: { relayclients: ['192.0.2.10'] } });
  });
});
