import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startDnsServer, type TestDnsServer } from '../../src/testing/dns-server.ts';
import { tempDir, type TestApp } from '../helpers/test-app.ts';
import { assertLogged, assertReply, closed, ehloed, probe, quit, type AppOptions } from './connection-policy-support.ts';
import { DNS_TIMEOUT_S, sendMessage, timed, withDnsApp } from './dns-support.ts';

let dns: TestDnsServer;
let dir: string;

before(async () => {
  dns = await startDnsServer({
    records: [
      ['30.2.0.192.in-addr.arpa', 'PTR', 'Good.test'],
      ['good.test', 'A', '192.0.2.30'],
      ['0.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa', 'PTR', 'good6.test'],
      ['good6.test', 'AAAA', '2001:db8::30'],
      ['31.2.0.192.in-addr.arpa', 'PTR', 'liar.test'],
      ['liar.test', 'A', '198.51.100.1'],
      ['35.2.0.192.in-addr.arpa', 'PTR', 'nohost.test'],
      ['33.2.0.192.in-addr.arpa', 'PTR', 'two.test'],
      ['33.2.0.192.in-addr.arpa', 'PTR', 'other.test'],
      ['other.test', 'A', '192.0.2.33'],
      ['34.2.0.192.in-addr.arpa', 'PTR', 'pool.test'],
      ['pool.test', 'A', '192.0.2.99'],
    ],
    silent: ['36.2.0.192.in-addr.arpa'],
    servfail: ['37.2.0.192.in-addr.arpa'],
  });
  dir = tempDir();
});
after(async () => {
  await dns.close();
  rmSync(dir, { recursive: true, force: true });
});

let queues = 0;
function app(plugins: string[], fn: (t: TestApp, queue: string) => Promise<void>, options: AppOptions = {}): Promise<void> {
  const queue = join(dir, `q${++queues}`);
  return withDnsApp(dns, [...plugins, 'accept_all', `queue_capture ${queue}`, 'probe'], (t) => fn(t, queue), {
    ...options,
    config: { me: 'mx.ours.example', ...options.config },
  });
}

const MESSAGE = 'Subject: hi\r\nFrom: <a@example.org>\r\n\r\nbody\r\n';

/** The Authentication-Results field of a queued message (unfolded), or undefined. */
function authResults(queued: string | undefined): string | undefined {
  const header = queued?.split('\r\n\r\n')[0] ?? '';
  const m = /^Authentication-Results:(.*(?:\r\n[ \t].*)*)/im.exec(header);
  return m?.[1]!.replace(/\r\n[ \t]*/g, ' ').trim();
}

async function notesOf(t: TestApp, ip: string): Promise<Record<string, unknown>> {
  const session = await ehloed(t, ip);
  const notes = (await probe(session.client)).connection;
  await quit(session);
  return notes;
}

describe('fcrdns: the outcomes, in notes and in Authentication-Results', () => {
  it('pass: the PTR name maps back to the address (IPv4); karma +1', async () => {
    await app(['fcrdns'], async (t, queue) => {
      const { reply, queued } = await sendMessage(t, queue, MESSAGE, { ip: '192.0.2.30' });
      assertReply(reply, 250);
      assert.equal(authResults(queued), 'mx.ours.example; iprev=pass (good.test) smtp.remote-ip=192.0.2.30');
      const notes = await notesOf(t, '192.0.2.30');
      assert.equal(notes['fcrdns'], 'pass');
      assert.equal(notes['fcrdns_name'], 'good.test');
      assert.deepEqual(notes['fcrdns_ptr'], ['good.test']);
      assert.equal(notes['karma'], 1);
      assertLogged(t, 'fcrdns: pass, good.test has 192.0.2.30');
    });
  });

  it('pass for an IPv6 client (the address is quoted in the header)', async () => {
    await app(['fcrdns'], async (t, queue) => {
      const { queued } = await sendMessage(t, queue, MESSAGE, { ip: '2001:db8::30' });
      assert.equal(authResults(queued), 'mx.ours.example; iprev=pass (good6.test) smtp.remote-ip="2001:db8::30"');
    });
  });

  it('one of several PTR names is enough', async () => {
    await app(['fcrdns'], async (t) => {
      const notes = await notesOf(t, '192.0.2.33');
      assert.equal(notes['fcrdns'], 'pass');
      assert.equal(notes['fcrdns_name'], 'other.test');
    });
  });

  it('fail: the PTR name has other addresses, or none; karma -1; not refused by default', async () => {
    await app(['fcrdns'], async (t, queue) => {
      const { reply, queued } = await sendMessage(t, queue, MESSAGE, { ip: '192.0.2.31' });
      assertReply(reply, 250);
      assert.equal(authResults(queued), 'mx.ours.example; iprev=fail (liar.test) smtp.remote-ip=192.0.2.31');
      const notes = await notesOf(t, '192.0.2.31');
      assert.equal(notes['fcrdns'], 'fail');
      assert.equal(notes['karma'], -1);
      assert.equal((await notesOf(t, '192.0.2.35'))['fcrdns'], 'fail');
      assertLogged(t, 'fail, tolerated, no PTR host has 192.0.2.31 (liar.test)');
      assertLogged(t, 'fail, tolerated, no PTR hosts have forward DNS (nohost.test)');
    });
  });

  it('permerror: no PTR record', async () => {
    await app(['fcrdns'], async (t, queue) => {
      const { queued } = await sendMessage(t, queue, MESSAGE, { ip: '192.0.2.32' });
      assert.equal(authResults(queued), 'mx.ours.example; iprev=permerror smtp.remote-ip=192.0.2.32');
      assert.equal((await notesOf(t, '192.0.2.32'))['fcrdns'], 'permerror');
    });
  });

  it('temperror: the PTR lookup times out (within the DNS time-out) or SERVFAILs; never refused', async () => {
    await app(['fcrdns reject 1'], async (t, queue) => {
      const ms = await timed(async () => {
        const { reply, queued } = await sendMessage(t, queue, MESSAGE, { ip: '192.0.2.36' });
        assertReply(reply, 250);
        assert.equal(authResults(queued), 'mx.ours.example; iprev=temperror smtp.remote-ip=192.0.2.36');
      });
      assert.ok(ms < DNS_TIMEOUT_S * 1000 + 1500, `took ${ms} ms`);
      assert.equal((await notesOf(t, '192.0.2.37'))['fcrdns'], 'temperror');
      assertLogged(t, 'skip, temporary error: PTR of 192.0.2.36: ETIMEOUT');
      assertLogged(t, 'skip, temporary error: PTR of 192.0.2.37: ESERVFAIL');
    });
  });

  it('a name in the client\'s /24 is a network match: not refused, but no iprev pass', async () => {
    await app(['fcrdns reject 1'], async (t, queue) => {
      const { reply, queued } = await sendMessage(t, queue, MESSAGE, { ip: '192.0.2.34' });
      assertReply(reply, 250);
      assert.equal(authResults(queued), 'mx.ours.example; iprev=fail (network match only) smtp.remote-ip=192.0.2.34');
      assert.equal((await notesOf(t, '192.0.2.34'))['fcrdns'], 'network');
    });
  });
});

describe('fcrdns: reject', () => {
  it('reject 1: fail and permerror are refused at connect (temp by default, and the connection closed)', async () => {
    await app(['fcrdns reject 1'], async (t) => {
      let session = t.connect({ remoteIp: '192.0.2.31' });
      assertReply(await session.client.reply(), 450, '4.7.1 Reverse DNS of 192.0.2.31 does not match its forward DNS');
      await closed(session);
      session = t.connect({ remoteIp: '192.0.2.32' });
      assertReply(await session.client.reply(), 450, '4.7.1 No reverse DNS for 192.0.2.32');
      await closed(session);
    });
  });

  it('reject_type disconnect closes the connection', async () => {
    await app(['fcrdns reject 1 reject_type disconnect'], async (t) => {
      const session = t.connect({ remoteIp: '192.0.2.32' });
      assertReply(await session.client.reply(), 550, /No reverse DNS/);
      await closed(session);
    });
  });

  it('loopback and relay clients are not looked up', async () => {
    await app(['relay', 'fcrdns reject 1'], async (t) => {
      const before = dns.queries.length;
      assert.equal((await notesOf(t, '127.0.0.1'))['karma'], 1);
      assert.notEqual(typeof (await notesOf(t, '192.0.2.32'))['fcrdns'], 'string');
      assert.equal(dns.queries.length, before);
      assertLogged(t, 'fcrdns: skip, relay client');
    }, { config: { relayclients: ['192.0.2.32'] } });
  });
});
