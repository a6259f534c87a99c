/**
 * dmarc after sender_permitted_from and dkim, against a real DNS server on loopback: alignment
 * through SPF and through DKIM (relaxed and strict, organizational domains), p=none, quarantine,
 * reject, sp= for subdomains, pct, no record; the Authentication-Results entry and the notes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { dkimTxtRecord, signDkim } from 'qpsmtpd';
import { buildMessage, startDnsServer, testServer, type TestDnsServer, type TestServer } from 'qpsmtpd/testing';

const key = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
const GOOD_IP = '192.0.2.7';
const BAD_IP = '198.51.100.9';
const SPF = 'v=spf1 ip4:192.0.2.0/24 -all';

let dns: TestDnsServer;
const servers: TestServer[] = [];

before(async () => {
  dns = await startDnsServer({
    records: [
      // reject.example: p=reject, with a relaxed and a strict twin
      ['reject.example', 'TXT', SPF],
      ['bounces.reject.example', 'TXT', SPF],
      ['_dmarc.reject.example', 'TXT', 'v=DMARC1; p=reject; rua=mailto:d@reject.example'],
      ['k._domainkey.reject.example', 'TXT', dkimTxtRecord(key.publicKey)],
      ['strict.example', 'TXT', SPF],
      ['bounces.strict.example', 'TXT', SPF],
      ['_dmarc.strict.example', 'TXT', 'v=DMARC1; p=reject; adkim=s; aspf=s'],
      ['k._domainkey.strict.example', 'TXT', dkimTxtRecord(key.publicKey)],
      // p=none, quarantine, pct
      ['none.example', 'TXT', SPF],
      ['_dmarc.none.example', 'TXT', 'v=DMARC1; p=none'],
      ['quarantine.example', 'TXT', SPF],
      ['_dmarc.quarantine.example', 'TXT', 'v=DMARC1; p=quarantine'],
      ['sampled.example', 'TXT', SPF],
      ['_dmarc.sampled.example', 'TXT', 'v=DMARC1; p=reject; pct=0'],
      ['all.example', 'TXT', SPF],
      ['_dmarc.all.example', 'TXT', 'v=DMARC1; p=reject; pct=100'],
      // subdomain policies: sp= from the organizational domain's record
      ['_dmarc.lenient-sub.example', 'TXT', 'v=DMARC1; p=reject; sp=none'],
      ['_dmarc.strict-sub.example', 'TXT', 'v=DMARC1; p=none; sp=reject'],
      ['_dmarc.own.strict-sub.example', 'TXT', 'v=DMARC1; p=none'],
      // no record at all
      ['nodmarc.example', 'TXT', SPF],
    ],
    silent: ['_dmarc.slow.example'],
  });
});
after(async () => {
  for (const s of servers) await s.close();
  await dns.close();
});

/** dns_timeout: generous for the live server (a loaded machine answers slowly), short for the silent one. */
async function server(dmarcArgs = '', dnsTimeout = '3'): Promise<TestServer> {
  const s = await testServer({
    plugins: ['sender_permitted_from', 'dkim reject 0', `dmarc${dmarcArgs ? ' ' + dmarcArgs : ''}`],
    config: { me: 'mx.receiver.example', dns_servers: dns.address, dns_timeout: dnsTimeout, dns_tries: 1 },
    acceptAllRecipients: true,
    replyTimeoutMs: 30_000,
  });
  servers.push(s);
  return s;
}

interface Send {
  readonly mailFrom: string;
  readonly from: string;
  readonly ip?: string;
  readonly signAs?: string;
}

async function send(s: TestServer, m: Send) {
  let message = buildMessage({ from: m.from }).replace(/\r?\n/g, '\r\n');
  if (m.signAs !== undefined) {
    const field = await signDkim(Buffer.from(message), { domain: m.signAs, selector: 'k', privateKey: key.privateKey });
    message = `${field.name}: ${field.value}\r\n${message}`;
  }
  const session = await s.connect({ remoteIp: m.ip ?? GOOD_IP });
  const r = await session.sendMail(m.mailFrom, ['rcpt@receiver.example'], message);
  await session.quit();
  return r;
}

const dmarcEntry = (ar: string | undefined): string | undefined => (ar ?? '').split(';').map((p) => p.trim()).find((p) => p.startsWith('dmarc='));

describe('dmarc', () => {
  test('pass through aligned SPF (relaxed: the MAIL FROM domain is a subdomain of the From domain)', async () => {
    const r = await send(await server(), { mailFrom: 'b@bounces.reject.example', from: 'alice@reject.example' });
    assert.equal(r.code, 250);
    assert.equal(dmarcEntry(r.queued!.header.get('Authentication-Results')), 'dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=reject.example');
    const note = r.queued!.notes['dmarc_result'] as { result: string; alignedSpf: string; disposition: string };
    assert.equal(note.result, 'pass');
    assert.equal(note.alignedSpf, 'bounces.reject.example', 'the SPF domain that aligned');
    assert.equal(note.disposition, 'none');
  });

  test('pass through an aligned DKIM signature when SPF fails', async () => {
    const r = await send(await server(), { mailFrom: 'b@elsewhere.example', from: 'alice@reject.example', ip: BAD_IP, signAs: 'reject.example' });
    assert.equal(r.code, 250);
    assert.equal(dmarcEntry(r.queued!.header.get('Authentication-Results')), 'dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=reject.example');
    assert.equal((r.queued!.notes['dmarc_result'] as { alignedDkim: string }).alignedDkim, 'reject.example');
  });

  test('fail with p=reject: refused at data_post, with the entry and the notes logged; reject 0 lets it through', async () => {
    const s = await server();
    const r = await send(s, { mailFrom: 'b@elsewhere.example', from: 'alice@reject.example', ip: BAD_IP, signAs: 'elsewhere.example' });
    assert.equal(r.step, 'message');
    assert.equal(r.code, 552);
    assert.match(r.text, /failed DMARC policy/);
    assert.ok(s.logged(/fail, reject\.example, policy reject, disposition reject/, 'dmarc').length > 0);
    assert.ok(s.logged(/karma -3/, 'dmarc').length > 0);
    const tolerated = await send(await server('reject 0'), { mailFrom: 'b@elsewhere.example', from: 'alice@reject.example', ip: BAD_IP });
    assert.equal(tolerated.code, 250);
    assert.equal(dmarcEntry(tolerated.queued!.header.get('Authentication-Results')), 'dmarc=fail (p=REJECT sp=REJECT dis=REJECT) header.from=reject.example');
    assert.equal((tolerated.queued!.notes['dmarc_result'] as { disposition: string }).disposition, 'reject');
  });

  test('strict alignment: a subdomain\'s SPF pass and signature do not align', async () => {
    const r = await send(await server('reject 0'), { mailFrom: 'b@bounces.strict.example', from: 'alice@strict.example', signAs: 'bounces.strict.example' });
    assert.equal(dmarcEntry(r.queued!.header.get('Authentication-Results')), 'dmarc=fail (p=REJECT sp=REJECT dis=REJECT) header.from=strict.example');
    const exact = await send(await server(), { mailFrom: 'b@strict.example', from: 'alice@strict.example' });
    assert.equal(exact.code, 250);
    assert.match(dmarcEntry(exact.queued!.header.get('Authentication-Results'))!, /^dmarc=pass/);
  });

  test('p=none: fail, monitored only', async () => {
    const r = await send(await server(), { mailFrom: 'b@none.example', from: 'alice@none.example', ip: BAD_IP });
    assert.equal(r.code, 250);
    assert.equal(dmarcEntry(r.queued!.header.get('Authentication-Results')), 'dmarc=fail (p=NONE sp=NONE dis=NONE) header.from=none.example');
    assert.equal(r.queued!.header.get('X-DMARC-Quarantine'), undefined);
  });

  test('p=quarantine: accepted with the note and the header (a forged one removed); quarantine reject refuses', async () => {
    const s = await server();
    const message = { mailFrom: 'b@quarantine.example', from: 'alice@quarantine.example', ip: BAD_IP };
    const r = await send(s, message);
    assert.equal(r.code, 250);
    assert.equal(dmarcEntry(r.queued!.header.get('Authentication-Results')), 'dmarc=fail (p=QUARANTINE sp=QUARANTINE dis=QUARANTINE) header.from=quarantine.example');
    assert.equal(r.queued!.notes['dmarc_quarantine'], 'quarantine.example');
    assert.deepEqual(r.queued!.header.getAll('X-DMARC-Quarantine'), ['quarantine.example (p=quarantine)']);
    const clean = await send(s, { mailFrom: 'b@quarantine.example', from: 'alice@quarantine.example' });
    assert.equal(clean.queued!.notes['dmarc_quarantine'], undefined);
    assert.equal(clean.queued!.header.get('X-DMARC-Quarantine'), undefined);
    const refused = await send(await server('quarantine reject'), message);
    assert.equal(refused.code, 552);
  });

  test('subdomains: sp= of the organizational domain\'s record applies; a subdomain\'s own record wins', async () => {
    const s = await server();
    // The org domain itself: p=reject.
    const org = await send(s, { mailFrom: 'b@elsewhere.example', from: 'alice@lenient-sub.example', ip: BAD_IP });
    assert.equal(org.code, 552);
    // Its subdomain: sp=none.
    const sub = await send(s, { mailFrom: 'b@elsewhere.example', from: 'alice@mail.lenient-sub.example', ip: BAD_IP });
    assert.equal(sub.code, 250);
    assert.equal(dmarcEntry(sub.queued!.header.get('Authentication-Results')), 'dmarc=fail (p=REJECT sp=NONE dis=NONE) header.from=mail.lenient-sub.example');
    const note = sub.queued!.notes['dmarc_result'] as { policy: string; orgDomain: string };
    assert.equal(note.policy, 'none');
    assert.equal(note.orgDomain, 'lenient-sub.example');
    // p=none sp=reject: the subdomain is refused, the org domain is not.
    assert.equal((await send(s, { mailFrom: 'b@elsewhere.example', from: 'alice@deep.strict-sub.example', ip: BAD_IP })).code, 552);
    assert.equal((await send(s, { mailFrom: 'b@elsewhere.example', from: 'alice@strict-sub.example', ip: BAD_IP })).code, 250);
    // A subdomain with a record of its own (p=none) is not governed by sp=.
    assert.equal((await send(s, { mailFrom: 'b@elsewhere.example', from: 'alice@own.strict-sub.example', ip: BAD_IP })).code, 250);
  });

  test('relaxed DKIM alignment through the organizational domain: d=reject.example signs for news.reject.example', async () => {
    const r = await send(await server(), { mailFrom: 'b@elsewhere.example', from: 'alice@news.reject.example', ip: BAD_IP, signAs: 'reject.example' });
    assert.equal(r.code, 250);
    assert.match(dmarcEntry(r.queued!.header.get('Authentication-Results'))!, /^dmarc=pass .*header\.from=news\.reject\.example$/);
  });

  test('pct: pct=0 leaves every message out of the sample (reject becomes quarantine), pct=100 takes all', async () => {
    const r = await send(await server(), { mailFrom: 'b@elsewhere.example', from: 'alice@sampled.example', ip: BAD_IP });
    assert.equal(r.code, 250);
    assert.equal(dmarcEntry(r.queued!.header.get('Authentication-Results')), 'dmarc=fail (p=REJECT sp=REJECT dis=QUARANTINE) header.from=sampled.example');
    const note = r.queued!.notes['dmarc_result'] as { pct: number; sampledOut: boolean; disposition: string };
    assert.deepEqual([note.pct, note.sampledOut, note.disposition], [0, true, 'quarantine']);
    assert.equal(r.queued!.notes['dmarc_quarantine'], 'sampled.example');
    assert.equal((await send(await server(), { mailFrom: 'b@elsewhere.example', from: 'alice@all.example', ip: BAD_IP })).code, 552);
  });

  test('no record: dmarc=none, nothing refused; a silent DNS server: temperror in time', async () => {
    const r = await send(await server(), { mailFrom: 'b@elsewhere.example', from: 'alice@nodmarc.example', ip: BAD_IP });
    assert.equal(r.code, 250);
    assert.equal(dmarcEntry(r.queued!.header.get('Authentication-Results')), 'dmarc=none header.from=nodmarc.example');
    const started = Date.now();
    const slow = await send(await server('', '0.5'), { mailFrom: 'b@elsewhere.example', from: 'alice@slow.example', ip: BAD_IP });
    assert.ok(Date.now() - started < 10_000);
    assert.equal(slow.code, 250);
    assert.equal(dmarcEntry(slow.queued!.header.get('Authentication-Results')), 'dmarc=temperror header.from=slow.example');
  });

  test('one Authentication-Results field with spf, dkim and dmarc, in that order', async () => {
    const r = await send(await server(), { mailFrom: 'b@reject.example', from: 'alice@reject.example', signAs: 'reject.example' });
    const all = r.queued!.header.getAll('Authentication-Results');
    assert.equal(all.length, 1);
    const methods = all[0]!.split(';').slice(1).map((p) => p.trim().split('=')[0]);
    assert.deepEqual(methods, ['spf', 'dkim', 'dmarc']);
    assert.match(all[0]!, /^mx\.receiver\.example;/);
  });

  test('no From address, or two: refused; relay clients are not checked', async () => {
    const s = await server();
    const session = await s.connect({ remoteIp: GOOD_IP });
    const none = await session.sendMail('b@reject.example', ['r@receiver.example'], 'Subject: no from\n\nbody\n');
    assert.equal(none.code, 552);
    assert.match(none.text, /empty from address/);
    const two = await session.sendMail('b@reject.example', ['r@receiver.example'], 'From: a@reject.example, b@none.example\nSubject: two\n\nbody\n');
    assert.equal(two.code, 552);
    assert.match(two.text, /multiple From addresses/);
    const relay = await s.connect({ remoteIp: BAD_IP, relayClient: true });
    const out = await relay.sendMail('b@elsewhere.example', ['r@far.example'], buildMessage({ from: 'alice@reject.example' }));
    assert.equal(out.code, 250);
    assert.equal(out.queued!.notes['dmarc_result'], undefined);
  });
});
