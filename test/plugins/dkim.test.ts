/**
 * dkim against a real DNS server on loopback, with keys made in the test: verification results per
 * signature (pass, tampered body, tampered header, missing key, DNS failure, unsigned), the
 * refusal policy, and signing a relay client's mail with a key from config/dkim/ that then
 * verifies, through a second server, against the DNS record.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { Header, authResolver, dkimTxtRecord, signDkim, verifyDkim, DnsResolver } from 'qpsmtpd';
import { buildMessage, startDnsServer, testServer, type TestDnsServer, type TestServer } from 'qpsmtpd/testing';
import { generateDkimKey } from '../../src/senderauth/dkim-keys.ts';
import { parseNameServer } from '../../src/dns/servers.ts';

const pair = (): { privateKey: string; publicKey: string } =>
  generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
const signer = pair();
const other = pair();

let dns: TestDnsServer;
const servers: TestServer[] = [];

before(async () => {
  dns = await startDnsServer({
    records: [
      ['sel._domainkey.signer.example', 'TXT', dkimTxtRecord(signer.publicKey)],
      ['two._domainkey.other.example', 'TXT', dkimTxtRecord(other.publicKey)],
    ],
    silent: ['*.slow.example'],
  });
});
after(async () => {
  for (const s of servers) await s.close();
  await dns.close();
});

/** dns_timeout: generous for the live server (a loaded machine answers slowly), short for the silent one. */
async function server(plugin = 'dkim', dnsTimeout = '3'): Promise<TestServer> {
  const s = await testServer({
    plugins: [plugin],
    config: { me: 'mx.receiver.example', dns_servers: dns.address, dns_timeout: dnsTimeout, dns_tries: 1 },
    acceptAllRecipients: true,
    replyTimeoutMs: 30_000,
  });
  servers.push(s);
  return s;
}

/** A message signed by `domain`/`selector` with `privateKey`, as a string with CRLF line ends. */
async function signed(privateKey: string, domain: string, selector: string, body = 'Hello, this is signed.\r\n', subject = 'signed'): Promise<string> {
  const message = buildMessage({ from: `alice@${domain}`, subject, body }).replace(/\r?\n/g, '\r\n');
  const field = await signDkim(Buffer.from(message), { domain, selector, privateKey });
  return `${field.name}: ${field.value}\r\n${message}`;
}

async function deliver(s: TestServer, message: string, from = 'alice@signer.example', options: { relayClient?: boolean } = {}) {
  const session = await s.connect({ remoteIp: '192.0.2.50', ...options });
  const r = await session.sendMail(from, ['rcpt@receiver.example'], message);
  await session.quit();
  return r;
}

function dkimEntries(ar: string | undefined): string[] {
  return (ar ?? '').split(';').map((p) => p.trim()).filter((p) => p.startsWith('dkim='));
}

describe('dkim: verifying', () => {
  test('a good signature: dkim=pass with d, s, a and b, notes, karma', async () => {
    const s = await server();
    const r = await deliver(s, await signed(signer.privateKey, 'signer.example', 'sel'));
    assert.equal(r.code, 250);
    const entries = dkimEntries(r.queued!.header.get('Authentication-Results'));
    assert.equal(entries.length, 1);
    // A signature's first 8 characters with a '/' in them are a quoted string (RFC 8601 values are
    // MIME tokens, and '/' is a tspecial), so the value is quoted or not depending on the signature.
    assert.match(entries[0]!, /^dkim=pass header\.d=signer\.example header\.s=sel header\.a=rsa-sha256 header\.b=(?:[A-Za-z0-9+]{8}|"[A-Za-z0-9+/]{8}")$/);
    const notes = r.queued!.notes;
    assert.equal(notes['dkim_result'], 'pass');
    assert.deepEqual(notes['dkim_pass_domains'], ['signer.example']);
    const results = notes['dkim_results'] as { domain: string; result: string; aligned: boolean }[];
    assert.equal(results[0]!.result, 'pass');
    assert.equal(results[0]!.aligned, true);
    assert.ok(s.logged(/karma 1/, 'dkim').length > 0);
  });

  test('a tampered body: dkim=fail (body hash did not verify), refused at data_post with reject 1 (552)', async () => {
    const message = (await signed(signer.privateKey, 'signer.example', 'sel')).replace('Hello, this is signed.', 'Hello, this is forged.');
    const refused = await deliver(await server(), message);
    assert.equal(refused.step, 'message');
    assert.equal(refused.code, 552);
    assert.match(refused.text, /signature invalid: body hash did not verify/);
    const r = await deliver(await server('dkim reject 0'), message);
    assert.equal(r.code, 250);
    const entries = dkimEntries(r.queued!.header.get('Authentication-Results'));
    assert.match(entries[0]!, /^dkim=fail \(body hash did not verify\) header\.d=signer\.example header\.s=sel /);
    assert.equal(r.queued!.notes['dkim_result'], 'fail');
    assert.deepEqual(r.queued!.notes['dkim_pass_domains'], []);
  });

  test('a tampered signed header: dkim=fail (bad signature)', async () => {
    const message = (await signed(signer.privateKey, 'signer.example', 'sel')).replace('Subject: signed', 'Subject: changed on the way');
    const r = await deliver(await server('dkim reject 0'), message);
    assert.equal(r.code, 250);
    assert.match(dkimEntries(r.queued!.header.get('Authentication-Results'))[0]!, /^dkim=fail \(bad signature\) header\.d=signer\.example/);
    const naughty = await server('dkim reject naughty');
    const n = await deliver(naughty, message);
    assert.equal(n.code, 250, 'naughty: noted for the naughty plugin, not refused here');
    assert.ok(naughty.logged(/fail, NAUGHTY/, 'dkim').length > 0);
  });

  test('a key that is not in DNS: dkim=permerror (no key); not refused', async () => {
    const r = await deliver(await server(), await signed(other.privateKey, 'signer.example', 'gone'));
    assert.equal(r.code, 250);
    assert.match(dkimEntries(r.queued!.header.get('Authentication-Results'))[0]!, /^dkim=permerror \(no key\) header\.d=signer\.example header\.s=gone/);
    assert.equal(r.queued!.notes['dkim_result'], 'permerror');
  });

  test('a signature whose key is on a name server that never answers: temperror in time, deferred with reject 1', async () => {
    const message = await signed(signer.privateKey, 'slow.example', 'sel');
    const started = Date.now();
    const deferred = await deliver(await server('dkim', '0.5'), message, 'alice@slow.example');
    assert.ok(Date.now() - started < 10_000);
    assert.equal(deferred.code, 452);
    const s = await server('dkim reject 0', '0.5');
    const r = await deliver(s, message, 'alice@slow.example');
    assert.equal(r.code, 250);
    assert.match(dkimEntries(r.queued!.header.get('Authentication-Results'))[0]!, /^dkim=temperror \(DNS failure: (ETIMEOUT|ECANCELLED)\) header\.d=slow\.example/);
    assert.ok(s.logged(/temperror, slow\.example\/sel/, 'dkim').length > 0);
  });

  test('two signatures, one good and one broken: an entry each, the message passes', async () => {
    const once = await signed(signer.privateKey, 'signer.example', 'sel');
    const field = await signDkim(Buffer.from(once), { domain: 'other.example', selector: 'two', privateKey: signer.privateKey });
    const r = await deliver(await server(), `${field.name}: ${field.value}\r\n${once}`);
    assert.equal(r.code, 250);
    const entries = dkimEntries(r.queued!.header.get('Authentication-Results'));
    assert.equal(entries.length, 2);
    assert.match(entries[0]!, /^dkim=fail \(bad signature\) header\.d=other\.example header\.s=two/);
    assert.match(entries[1]!, /^dkim=pass header\.d=signer\.example header\.s=sel/);
    assert.equal(r.queued!.notes['dkim_result'], 'pass');
  });

  test('an unsigned message: dkim=none', async () => {
    const r = await deliver(await server(), buildMessage({ from: 'alice@signer.example' }));
    assert.equal(r.code, 250);
    assert.deepEqual(dkimEntries(r.queued!.header.get('Authentication-Results')), ['dkim=none']);
    assert.equal(r.queued!.notes['dkim_result'], 'none');
  });

  test('forged Authentication-Results fields naming us are renamed, ours is the only one', async () => {
    const message = buildMessage({
      from: 'alice@signer.example',
      headers: [
        ['Authentication-Results', 'mx.receiver.example; dkim=pass header.d=bank.example'],
        ['Authentication-Results', '(sneaky) "MX.Receiver.Example"; dmarc=pass'],
        ['Authentication-Results', 'upstream.example; spf=pass smtp.mailfrom=x@y.example'],
      ],
    });
    const r = await deliver(await server(), message);
    const ars = r.queued!.header.getAll('Authentication-Results');
    assert.deepEqual(ars, ['mx.receiver.example;\tdkim=none', 'upstream.example; spf=pass smtp.mailfrom=x@y.example']);
    assert.equal(r.queued!.header.getAll('Original-Authentication-Results').length, 2);
  });
});

describe('dkim: signing', () => {
  test('a relay client\'s message is signed with config/dkim/<domain>/ and verifies against DNS, here and at a second server', async () => {
    const s = await server();
    const key = generateDkimKey({ configDir: join(s.root, 'config'), domain: 'relay.example', selector: 'k2026' });
    dns.add([key.dnsName, 'TXT', key.txt]);
    const r = await deliver(s, buildMessage({ from: 'bob@relay.example', subject: 'from a customer' }), 'bob@relay.example', { relayClient: true });
    assert.equal(r.code, 250);
    const sig = r.queued!.header.get('DKIM-Signature')!;
    assert.match(sig, /d=relay\.example;/);
    assert.match(sig, /s=k2026;/);
    assert.match(sig, /c=relaxed\/relaxed;/);
    assert.match(sig, /a=rsa-sha256;/);
    assert.match(sig, /h=[^;]*From/i);
    assert.deepEqual(r.queued!.notes['dkim_signed'], { domain: 'relay.example', selector: 'k2026' });
    assert.equal(r.queued!.header.names()[0], 'DKIM-Signature', 'on top');

    // What was queued verifies against the record in DNS.
    const resolver = new DnsResolver({ servers: [parseNameServer(dns.address)], timeoutMs: 500, tries: 1 });
    const verification = await verifyDkim(r.queued!.raw, { resolver: authResolver(resolver) });
    assert.deepEqual(
      verification.signatures.map((v) => [v.domain, v.selector, v.result]),
      [['relay.example', 'k2026', 'pass']],
    );

    // And through a second server's session: dkim=pass in its Authentication-Results.
    const receiver = await server();
    const passed = await deliver(receiver, r.queued!.message, 'bob@relay.example');
    assert.match(dkimEntries(passed.queued!.header.get('Authentication-Results'))[0]!, /^dkim=pass header\.d=relay\.example header\.s=k2026/);

    // A changed byte, and the signature fails.
    const broken = await deliver(await server('dkim reject 0'), r.queued!.message.replace('from a customer', 'from someone else'), 'bob@relay.example');
    assert.match(dkimEntries(broken.queued!.header.get('Authentication-Results'))[0]!, /^dkim=fail /);
  });

  test('a subdomain without a key uses its parent\'s; a domain without one is sent unsigned, logged', async () => {
    const s = await server();
    const key = generateDkimKey({ configDir: join(s.root, 'config'), domain: 'parent.example', selector: 'p1' });
    dns.add([key.dnsName, 'TXT', key.txt]);
    const sub = await deliver(s, buildMessage({ from: 'c@mail.parent.example' }), 'c@mail.parent.example', { relayClient: true });
    assert.match(sub.queued!.header.get('DKIM-Signature')!, /d=parent\.example;/);
    const none = await deliver(s, buildMessage({ from: 'd@nokey.example' }), 'd@nokey.example', { relayClient: true });
    assert.equal(none.code, 250);
    assert.equal(none.queued!.header.get('DKIM-Signature'), undefined);
    assert.ok(s.logged(/skip, DKIM not configured for nokey\.example/, 'dkim').length > 0);
  });

  test('signing only the configured headers', async () => {
    const s = await server('dkim headers From:Subject:Date');
    const key = generateDkimKey({ configDir: join(s.root, 'config'), domain: 'few.example', selector: 'f' });
    dns.add([key.dnsName, 'TXT', key.txt]);
    const r = await deliver(s, buildMessage({ from: 'e@few.example' }), 'e@few.example', { relayClient: true });
    const h = /h=([^;]+);/.exec(Header.parse(`DKIM-Signature: ${r.queued!.header.get('DKIM-Signature')!}`).get('DKIM-Signature')!)![1]!;
    assert.deepEqual(h.replace(/\s+/g, '').toLowerCase().split(':').sort(), ['date', 'from', 'subject']);
  });
});
