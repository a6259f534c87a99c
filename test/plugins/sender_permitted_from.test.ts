/**
 * sender_permitted_from against a real DNS server on loopback: every SPF result, the reject
 * levels, the Received-SPF and Authentication-Results fields, the notes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildMessage, startDnsServer, testServer, type TestDnsServer, type TestServer } from 'qpsmtpd/testing';

const GOOD_IP = '192.0.2.7';
const OTHER_IP = '198.51.100.9';

let dns: TestDnsServer;
const servers: TestServer[] = [];

// 11 includes in a chain: the 11th lookup is one too many (RFC 7208 §4.6.4).
const chain: [string, 'TXT', string][] = [];
for (let i = 0; i < 11; i++) chain.push([`l${i}.loop.example`, 'TXT', `v=spf1 include:l${i + 1}.loop.example -all`]);
chain.push(['l11.loop.example', 'TXT', 'v=spf1 -all']);

before(async () => {
  dns = await startDnsServer({
    records: [
      ['pass.example', 'TXT', `v=spf1 ip4:192.0.2.0/24 -all`],
      ['fail.example', 'TXT', 'v=spf1 ip4:203.0.113.0/24 -all'],
      ['soft.example', 'TXT', 'v=spf1 ip4:203.0.113.0/24 ~all'],
      ['neutral.example', 'TXT', 'v=spf1 ?all'],
      ['none.example', 'A', '203.0.113.1'],
      ['many.example', 'TXT', 'v=spf1 include:l0.loop.example -all'],
      ...chain,
      ['voids.example', 'TXT', 'v=spf1 a:v1.voids.example a:v2.voids.example a:v3.voids.example -all'],
      ['syntax.example', 'TXT', 'v=spf1 ip4:192.0.2.0/99 -all'],
      ['mx.helo.example', 'TXT', 'v=spf1 ip4:192.0.2.7 -all'],
      ['mx.helo.example', 'A', '192.0.2.7'],
    ],
    silent: ['*.slow.example', 'slow.example'],
  });
});
after(async () => {
  for (const s of servers) await s.close();
  await dns.close();
});

/** dns_timeout: generous for the live server (a loaded machine answers slowly), short for the silent one. */
async function server(args = '', dnsTimeout = '3'): Promise<TestServer> {
  const s = await testServer({
    plugins: [`sender_permitted_from${args ? ' ' + args : ''}`],
    config: { me: 'mx.receiver.example', dns_servers: dns.address, dns_timeout: dnsTimeout, dns_tries: 1 },
    acceptAllRecipients: true,
    replyTimeoutMs: 30_000,
  });
  servers.push(s);
  return s;
}

async function send(s: TestServer, from: string, ip = GOOD_IP, helo = 'client.example') {
  const session = await s.connect({ remoteIp: ip });
  const result = await session.sendMail(from, ['rcpt@receiver.example'], buildMessage({ from: from || 'nobody@x.example' }), { helo });
  await session.quit();
  return result;
}

describe('sender_permitted_from', () => {
  test('pass: Received-SPF and Authentication-Results fields, notes, karma', async () => {
    const s = await server('reject 3');
    const r = await send(s, 'alice@pass.example');
    assert.equal(r.code, 250);
    const q = r.queued!;
    const received = q.header.get('Received-SPF')!;
    assert.match(received, /^pass \(mx\.receiver\.example: domain of alice@pass\.example designates 192\.0\.2\.7 as permitted sender\)/);
    assert.match(received, /client-ip=192\.0\.2\.7; envelope-from=alice@pass\.example; helo=client\.example; receiver=mx\.receiver\.example; identity=mailfrom;/);
    const ar = q.header.get('Authentication-Results')!;
    assert.match(ar, /^mx\.receiver\.example;/);
    assert.match(ar, /spf=pass \(mx\.receiver\.example: domain of alice@pass\.example designates 192\.0\.2\.7 as permitted sender\) smtp\.mailfrom=alice@pass\.example/);
    const note = q.notes['spfquery'] as { code: string; scope: string; record: string };
    assert.equal(note.code, 'pass');
    assert.equal(note.scope, 'mfrom');
    assert.equal(note.record, 'v=spf1 ip4:192.0.2.0/24 -all');
    assert.equal(q.notes['spf_pass_host'], 'pass.example');
    assert.deepEqual(q.notes['dmarc_spf'], { domain: 'pass.example', scope: 'mfrom', result: 'pass' });
    assert.ok(s.logged(/karma 1/, 'sender_permitted_from').length > 0);
    // The header fields are above Received (added at data_post_headers, before the core's trace fields).
    const names = q.header.names();
    assert.ok(names.indexOf('Received-SPF') > names.indexOf('Received'), 'Received-SPF is added first, Received goes on top of it');
  });

  test('fail: refused at MAIL with reject 3 ("SPF - forgery"), deferred with reject 2, annotated with reject 1', async () => {
    const r3 = await send(await server('reject 3'), 'bob@fail.example', OTHER_IP);
    assert.equal(r3.step, 'mail');
    assert.equal(r3.code, 550);
    assert.match(r3.text, /SPF - forgery: .*does not designate 198\.51\.100\.9 as permitted sender/);
    const r2 = await send(await server('reject 2'), 'bob@fail.example', OTHER_IP);
    assert.equal(r2.code, 450);
    const s1 = await server('reject 1');
    const r1 = await send(s1, 'bob@fail.example', OTHER_IP);
    assert.equal(r1.code, 250);
    assert.match(r1.queued!.header.get('Received-SPF')!, /^fail /);
    assert.match(r1.queued!.header.get('Authentication-Results')!, /spf=fail .* smtp\.mailfrom=bob@fail\.example/);
    assert.ok(s1.logged(/karma -1/, 'sender_permitted_from').length > 0);
  });

  test('softfail: deferred at reject 3, refused at reject 4, annotated below', async () => {
    assert.equal((await send(await server('reject 3'), 'c@soft.example', OTHER_IP)).code, 450);
    assert.equal((await send(await server('spf_deny 2'), 'c@soft.example', OTHER_IP)).code, 550, 'spf_deny 2 is reject 4');
    const r = await send(await server('reject 2'), 'c@soft.example', OTHER_IP);
    assert.equal(r.code, 250);
    assert.match(r.queued!.header.get('Received-SPF')!, /^softfail \(mx\.receiver\.example: domain of transitioning c@soft\.example does not designate/);
    assert.match(r.queued!.header.get('Authentication-Results')!, /spf=softfail /);
  });

  test('neutral: refused only from reject 5', async () => {
    const r = await send(await server('reject 4'), 'd@neutral.example', OTHER_IP);
    assert.equal(r.code, 250);
    assert.match(r.queued!.header.get('Received-SPF')!, /^neutral /);
    assert.equal((await send(await server('reject 5'), 'd@neutral.example', OTHER_IP)).code, 550);
  });

  test('none: no SPF record; refused only at reject 6', async () => {
    const r = await send(await server('reject 5'), 'e@none.example', OTHER_IP);
    assert.equal(r.code, 250);
    assert.match(r.queued!.header.get('Received-SPF')!, /^none /);
    assert.match(r.queued!.header.get('Authentication-Results')!, /spf=none /);
    assert.equal((r.queued!.notes['spfquery'] as { code: string }).code, 'none');
    const six = await send(await server('reject 6'), 'e@none.example', OTHER_IP);
    assert.equal(six.code, 550);
    assert.match(six.text, /SPF - none/);
  });

  test('permerror: more than 10 DNS lookups, more than 2 void lookups, a bad record', async () => {
    const s = await server('reject 3');
    const many = await send(s, 'f@many.example', OTHER_IP);
    assert.equal(many.code, 250, 'permerror is only refused from reject 4 (deferred) and 6');
    assert.match(many.queued!.header.get('Received-SPF')!, /^permerror /);
    assert.match(many.queued!.header.get('Authentication-Results')!, /spf=permerror /);
    const note = many.queued!.notes['spfquery'] as { code: string; lookups: { count: number; limit: number } };
    assert.equal(note.lookups.limit, 10);
    const voids = await send(s, 'g@voids.example', OTHER_IP);
    assert.match(voids.queued!.header.get('Received-SPF')!, /^permerror /);
    const bad = await send(s, 'h@syntax.example', OTHER_IP);
    assert.match(bad.queued!.header.get('Received-SPF')!, /^permerror /);
    assert.equal((await send(await server('reject 4'), 'f@many.example', OTHER_IP)).code, 450);
    assert.equal((await send(await server('reject 6'), 'f@many.example', OTHER_IP)).code, 550);
  });

  test('temperror: a DNS server that never answers gives temperror within the time limit, logged; reject 2 defers', async () => {
    const s = await server('reject 1', '0.5');
    const started = Date.now();
    const r = await send(s, 'i@slow.example', OTHER_IP);
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    assert.equal(r.code, 250);
    assert.match(r.queued!.header.get('Received-SPF')!, /^temperror /);
    assert.match(r.queued!.header.get('Authentication-Results')!, /spf=temperror /);
    assert.ok(s.logged(/temperror for i@slow\.example/, 'sender_permitted_from').length > 0);
    const two = await send(await server('reject 2', '0.5'), 'i@slow.example', OTHER_IP);
    assert.equal(two.code, 450);
    assert.match(two.text, /SPF - temperror/);
  });

  test('the time budget bounds a check whose every lookup would be answered in time', async () => {
    const s = await testServer({
      plugins: ['sender_permitted_from reject 2 timeout 0.2'],
      config: { me: 'mx.receiver.example', dns_servers: dns.address, dns_timeout: '15', dns_tries: 1 },
      acceptAllRecipients: true,
      replyTimeoutMs: 30_000,
    });
    servers.push(s);
    const started = Date.now();
    const r = await send(s, 'j@slow.example', OTHER_IP);
    assert.ok(Date.now() - started < 10_000, 'the 0.2 s budget ends it, not the 15 s DNS time-out');
    assert.equal(r.code, 450);
  });

  test('the null sender: the HELO name is checked (postmaster@<helo>)', async () => {
    const r = await send(await server('reject 3'), '', GOOD_IP, 'mx.helo.example');
    assert.equal(r.code, 250);
    assert.match(r.queued!.header.get('Received-SPF')!, /^pass .*envelope-from=postmaster@mx\.helo\.example; helo=mx\.helo\.example;.* identity=helo;/s);
    assert.match(r.queued!.header.get('Authentication-Results')!, /spf=pass .* smtp\.helo=mx\.helo\.example/);
    assert.equal(r.queued!.notes['spf_pass_host'], 'mx.helo.example');
    const refused = await send(await server('reject 3'), '', OTHER_IP, 'mx.helo.example');
    assert.equal(refused.code, 550);
  });

  test('relay clients are not checked: no lookups, no header, dmarc_spf says pass', async () => {
    const s = await server('reject 6');
    const before = dns.queries.length;
    const session = await s.connect({ remoteIp: OTHER_IP, relayClient: true });
    const r = await session.sendMail('k@fail.example', ['x@elsewhere.example'], buildMessage({ from: 'k@fail.example' }));
    assert.equal(r.code, 250);
    assert.equal(r.queued!.header.get('Received-SPF'), undefined);
    assert.equal(r.queued!.header.get('Authentication-Results'), undefined);
    assert.deepEqual(r.queued!.notes['dmarc_spf'], { domain: 'fail.example', scope: 'mfrom', result: 'pass' });
    assert.equal(dns.queries.length, before);
    assert.ok(s.logged(/skip, relay client/, 'sender_permitted_from').length > 0);
  });

  test('bad arguments stop the plugin loading', async () => {
    await assert.rejects(testServer({ plugins: ['sender_permitted_from reject 9'] }), /reject "9"/);
  });
});
