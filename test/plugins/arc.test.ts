/**
 * arc: a forwarder seals what it passes on, the next hop verifies the chain it sealed (arc=pass
 * in its Authentication-Results), a second forwarder extends the chain (i=2, cv=pass), and a
 * chain broken on the way (body or ARC field changed) fails and is not sealed on. Keys are made
 * in the test with `generateDkimKey` into each server's config/dkim/, records served by a real
 * DNS server on loopback.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { dkimTxtRecord, signDkim } from 'qpsmtpd';
import { buildMessage, startDnsServer, testServer, type TestDnsServer, type TestServer } from 'qpsmtpd/testing';
import { generateDkimKey } from '../../src/senderauth/dkim-keys.ts';

const author = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });

let dns: TestDnsServer;
const servers: TestServer[] = [];

before(async () => {
  dns = await startDnsServer({
    records: [
      ['author.example', 'TXT', 'v=spf1 ip4:192.0.2.0/24 -all'],
      ['a._domainkey.author.example', 'TXT', dkimTxtRecord(author.publicKey)],
    ],
  });
});
after(async () => {
  for (const s of servers) await s.close();
  await dns.close();
});

/** A hop named `me`; with `seal`, it seals as that domain with a key made for it now. */
async function hop(me: string, seal?: string): Promise<TestServer> {
  const s = await testServer({
    plugins: ['sender_permitted_from', 'dkim reject 0', `arc${seal ? ` seal ${seal}` : ''}`],
    config: { me, dns_servers: dns.address, dns_timeout: '3', dns_tries: 1 },
    acceptAllRecipients: true,
    replyTimeoutMs: 30_000,
  });
  servers.push(s);
  if (seal !== undefined) {
    const key = generateDkimKey({ configDir: join(s.root, 'config'), domain: seal, selector: 'arc1' });
    dns.add([key.dnsName, 'TXT', key.txt]);
  }
  return s;
}

async function relay(s: TestServer, message: string, ip: string, mailFrom = 'alice@author.example') {
  const session = await s.connect({ remoteIp: ip });
  const r = await session.sendMail(mailFrom, ['list@forwarder.example'], message);
  await session.quit();
  assert.equal(r.code, 250, r.text);
  return r.queued!;
}

async function authored(): Promise<string> {
  const message = buildMessage({ from: 'alice@author.example', subject: 'to the list', body: 'Hello list.\n' }).replace(/\r?\n/g, '\r\n');
  const field = await signDkim(Buffer.from(message), { domain: 'author.example', selector: 'a', privateKey: author.privateKey });
  return `${field.name}: ${field.value}\r\n${message}`;
}

const arcEntry = (ar: string | undefined): string | undefined => (ar ?? '').split(';').map((p) => p.trim()).find((p) => p.startsWith('arc='));

describe('arc', () => {
  test('seal, then verify what was sealed: arc=pass at the next hop; a second seal makes i=2 cv=pass', async () => {
    const forwarder = await hop('mx.forwarder.example', 'forwarder.example');
    const sealed = await relay(forwarder, await authored(), '192.0.2.10');
    // The forwarder saw no chain: arc=none in its own A-R, copied into the ARC-Authentication-Results.
    assert.equal(arcEntry(sealed.header.get('Authentication-Results')), 'arc=none');
    const names = sealed.header.names();
    assert.deepEqual(names.slice(0, 3), ['ARC-Seal', 'ARC-Message-Signature', 'ARC-Authentication-Results']);
    assert.match(sealed.header.get('ARC-Seal')!, /^i=1; a=rsa-sha256; t=\d+; cv=none; d=forwarder\.example; s=arc1; b=/);
    assert.match(sealed.header.get('ARC-Message-Signature')!, /^i=1; a=rsa-sha256; c=relaxed\/relaxed; d=forwarder\.example;/);
    const aar = sealed.header.get('ARC-Authentication-Results')!;
    assert.match(aar, /^i=1; mx\.forwarder\.example;/);
    assert.match(aar, /spf=pass .*smtp\.mailfrom=alice@author\.example/);
    assert.match(aar, /dkim=pass header\.d=author\.example/);
    assert.deepEqual(sealed.notes['arc_sealed'], { domain: 'forwarder.example', selector: 'arc1', instance: 1, cv: 'none' });

    // The next hop gets it from the forwarder's address: SPF fails there, ARC tells what the forwarder saw.
    const second = await hop('mx.second.example', 'second.example');
    const twice = await relay(second, sealed.message, '203.0.113.5', 'list-bounces@forwarder.example');
    assert.equal(arcEntry(twice.header.get('Authentication-Results')), 'arc=pass (i=1 spf=pass dkim=pass)');
    assert.equal((twice.notes['arc_result'] as { result: string; instance: number }).result, 'pass');
    assert.match(twice.header.get('ARC-Seal')!, /^i=2; a=rsa-sha256; t=\d+; cv=pass; d=second\.example;/);

    const last = await hop('mx.final.example');
    const final = await relay(last, twice.message, '203.0.113.6', 'list-bounces@second.example');
    assert.match(arcEntry(final.header.get('Authentication-Results'))!, /^arc=pass \(i=2 /);
    assert.deepEqual(final.notes['arc_result'], { result: 'pass', instance: 2, comment: (final.notes['arc_result'] as { comment: string }).comment, sealable: true, cv: 'pass' });
  });

  test('a broken chain: a changed body fails the ARC-Message-Signature, a changed ARC field fails the seal; neither is sealed on', async () => {
    const forwarder = await hop('mx.forwarder2.example', 'forwarder2.example');
    const sealed = await relay(forwarder, await authored(), '192.0.2.11');

    const next = await hop('mx.next.example', 'next.example');
    const body = await relay(next, sealed.message.replace('Hello list.', 'Hello list, buy now.'), '203.0.113.7', 'x@forwarder2.example');
    assert.match(arcEntry(body.header.get('Authentication-Results'))!, /^arc=fail \(i=1 no valid signature\)$/);
    // The chain arrived with a pass/none seal, so RFC 8617 lets us seal with cv=fail.
    assert.match(body.header.get('ARC-Seal')!, /cv=fail;/);

    const aar = sealed.message.replace(/^(ARC-Authentication-Results: i=1; )/m, '$1(edited) ');
    assert.notEqual(aar, sealed.message);
    const seal = await relay(await hop('mx.next2.example'), aar, '203.0.113.8', 'x@forwarder2.example');
    assert.match(arcEntry(seal.header.get('Authentication-Results'))!, /^arc=fail \(i=1 seal signature validation failed\)$/);

    // And a chain whose last seal already says cv=fail is not sealed again.
    const third = await hop('mx.third.example', 'third.example');
    const after = await relay(third, body.message, '203.0.113.9', 'x@next.example');
    assert.match(arcEntry(after.header.get('Authentication-Results'))!, /^arc=fail /);
    assert.equal(after.header.getAll('ARC-Seal').length, 2, 'no third seal on a failed chain');
    assert.ok(third.logged(/not sealed/, 'arc').length > 0);
  });

  test('relay clients\' mail is not sealed unless seal_relay 1; no key: logged, sent unsealed', async () => {
    const s = await hop('mx.out.example', 'out.example');
    const session = await s.connect({ relayClient: true });
    const r = await session.sendMail('a@out.example', ['b@far.example'], buildMessage({ from: 'a@out.example' }));
    assert.equal(r.queued!.header.get('ARC-Seal'), undefined);
    const nokey = await testServer({ plugins: ['arc seal missing.example'], config: { dns_servers: dns.address }, acceptAllRecipients: true, replyTimeoutMs: 30_000 });
    servers.push(nokey);
    assert.ok(nokey.logged(/seal missing\.example: DKIM not configured/, 'arc').length > 0);
    const c = await nokey.connect({ remoteIp: '192.0.2.99' });
    const m = await c.sendMail('a@author.example', ['b@x.example'], buildMessage({ from: 'a@author.example' }));
    assert.equal(m.code, 250);
    assert.equal(m.queued!.header.get('ARC-Seal'), undefined);
    assert.equal(arcEntry(m.queued!.header.get('Authentication-Results')), 'arc=none');
  });
});
