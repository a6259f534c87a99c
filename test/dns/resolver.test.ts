import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DnsResolver } from '../../src/dns/resolver.ts';
import { DnsError, isNegativeAnswer } from '../../src/dns/errors.ts';
import { parseNameServer } from '../../src/dns/servers.ts';
import { resolverFromConfig } from '../../src/dns/from-config.ts';
import { ConfigDir } from '../../src/config/config-dir.ts';
import { startDnsServer, type TestDnsServer } from '../../src/testing/dns-server.ts';

const LONG_TXT = `v=DKIM1; k=rsa; p=${'A'.repeat(600)}`;

let dns: TestDnsServer;
let dead: TestDnsServer;

before(async () => {
  dns = await startDnsServer({
    records: [
      ['host.test', 'A', '192.0.2.10', 120],
      ['host.test', 'A', '192.0.2.11', 60],
      ['host.test', 'AAAA', '2001:db8::10'],
      ['host.test', 'MX', '10 mx1.host.test'],
      ['host.test', 'MX', '20 MX2.Host.Test.'],
      ['host.test', 'TXT', 'v=spf1 ip4:192.0.2.0/24 -all'],
      ['split.test', 'TXT', ['part one ', 'part two']],
      ['sel._domainkey.host.test', 'TXT', LONG_TXT],
      ['10.2.0.192.in-addr.arpa', 'PTR', 'host.test'],
      ['neg.test', 'A', '192.0.2.99'],
    ],
    silent: ['*.slow.test'],
    servfail: ['broken.test'],
    negativeTtl: 30,
  });
  dead = await startDnsServer({ silent: ['*.test', 'host.test'] });
});
after(async () => {
  await dns.close();
  await dead.close();
});

function resolverOn(...servers: TestDnsServer[]): DnsResolver {
  return new DnsResolver({ servers: servers.map((s) => parseNameServer(s.address)), timeoutMs: 3000, tries: 1 });
}

describe('answers', () => {
  test('A, AAAA, MX, TXT and PTR come in node:dns shapes, names lower-cased without the final dot', async () => {
    const r = resolverOn(dns);
    assert.deepEqual((await r.resolve('host.test', 'A')).sort(), ['192.0.2.10', '192.0.2.11']);
    assert.deepEqual(await r.resolve('HOST.test.', 'AAAA'), ['2001:db8::10']);
    assert.deepEqual(
      (await r.resolve('host.test', 'MX')).sort((a, b) => a.priority - b.priority),
      [
        { exchange: 'mx1.host.test', priority: 10 },
        { exchange: 'mx2.host.test', priority: 20 },
      ],
    );
    assert.deepEqual(await r.resolve('host.test', 'TXT'), [['v=spf1 ip4:192.0.2.0/24 -all']]);
    assert.deepEqual(await r.resolve('split.test', 'TXT'), [['part one ', 'part two']]);
    assert.deepEqual(await r.resolve('10.2.0.192.in-addr.arpa', 'PTR'), ['host.test']);
  });

  test('an answer too big for UDP is fetched again over TCP, its strings intact', async () => {
    const r = resolverOn(dns);
    const txt = await r.resolve('sel._domainkey.host.test', 'TXT');
    assert.equal(txt.length, 1);
    assert.equal(txt[0]!.join(''), LONG_TXT);
    assert.ok(txt[0]!.every((s) => Buffer.byteLength(s) <= 255));
    assert.equal(r.stats().queries, 2, 'one UDP query, then one over TCP');
  });

  test('NXDOMAIN is ENOTFOUND and NODATA is ENODATA: both negative answers', async () => {
    const r = resolverOn(dns);
    const missing = await r.resolve('nowhere.test', 'A').catch((e: unknown) => e);
    assert.ok(missing instanceof DnsError);
    assert.equal(missing.code, 'ENOTFOUND');
    assert.ok(isNegativeAnswer(missing));
    const nodata = await r.resolve('host.test', 'PTR').catch((e: unknown) => e);
    assert.equal((nodata as DnsError).code, 'ENODATA');
    assert.ok(isNegativeAnswer(nodata));
  });

  test('a negative answer is made without a stack trace; a failure keeps its stack; the limit is restored', () => {
    const limit = Error.stackTraceLimit;
    const answer = new DnsError('ENOTFOUND', 'nowhere.test', 'A');
    assert.equal(answer.message, 'A nowhere.test: ENOTFOUND');
    assert.doesNotMatch(answer.stack ?? '', /\n\s+at /);
    const failure = new DnsError('ETIMEOUT', 'slow.test', 'A');
    assert.match(failure.stack ?? '', /\n\s+at /);
    assert.equal(Error.stackTraceLimit, limit);
  });

  test('SERVFAIL is a temporary failure, not an answer', async () => {
    const r = resolverOn(dns);
    const err = await r.resolve('broken.test', 'A').catch((e: unknown) => e);
    assert.equal((err as DnsError).code, 'ESERVFAIL');
    assert.equal(isNegativeAnswer(err), false);
    assert.equal(r.stats().failures, 1);
  });

  test('a name DNS cannot carry is refused before anything is sent', async () => {
    const r = resolverOn(dns);
    const err = await r.resolve(`${'a'.repeat(64)}.test`, 'A').catch((e: unknown) => e);
    assert.equal((err as DnsError).code, 'EBADNAME');
    assert.equal(r.stats().queries, 0);
  });
});

describe('time limits', () => {
  test('a server that never answers gives ETIMEOUT within the timeout, counted', async () => {
    const r = new DnsResolver({ servers: [parseNameServer(dead.address)], timeoutMs: 150, tries: 2 });
    const started = Date.now();
    const err = await r.resolve('x.slow.test', 'A').catch((e: unknown) => e);
    const took = Date.now() - started;
    assert.equal((err as DnsError).code, 'ETIMEOUT');
    assert.ok(took >= 290 && took < 1500, `two tries of 150 ms took ${took} ms`);
    assert.equal(r.stats().timeouts, 2);
  });

  test('the next server is asked when the first stays silent', async () => {
    const r = new DnsResolver({ servers: [parseNameServer(dead.address), parseNameServer(dns.address)], timeoutMs: 150, tries: 1 });
    assert.deepEqual(await r.resolve('host.test', 'AAAA'), ['2001:db8::10']);
    assert.equal(r.stats().timeouts, 1);
  });

  test("the caller's AbortSignal ends its wait at once with ECANCELLED", async () => {
    const r = new DnsResolver({ servers: [parseNameServer(dead.address)], timeoutMs: 1500, tries: 1 });
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 50);
    const err = await r.resolve('y.slow.test', 'A', { signal: controller.signal }).catch((e: unknown) => e);
    assert.equal((err as DnsError).code, 'ECANCELLED');
    assert.ok(Date.now() - started < 1000);
    assert.equal(r.stats().cancelled, 1);
  });
});

describe('cache', () => {
  test('answers live as long as their smallest TTL; negative ones as long as the SOA says', async () => {
    let now = 1_000_000;
    const r = new DnsResolver({ servers: [parseNameServer(dns.address)], timeoutMs: 500, tries: 1, now: () => now });
    const asked = (): number => dns.queries.filter((q) => q === 'A host.test').length;
    const before = asked();
    await r.resolve('host.test', 'A');
    await r.resolve('Host.Test', 'A');
    assert.equal(asked(), before + 1, 'the second lookup came from the cache');
    now += 59_000;
    await r.resolve('host.test', 'A');
    assert.equal(asked(), before + 1, 'still within the 60 s TTL');
    now += 2_000;
    await r.resolve('host.test', 'A');
    assert.equal(asked(), before + 2, 'asked again after the TTL');

    const missing = (): number => dns.queries.filter((q) => q === 'A gone.test').length;
    const missingBefore = missing();
    await assert.rejects(r.resolve('gone.test', 'A'), { code: 'ENOTFOUND' });
    await assert.rejects(r.resolve('gone.test', 'A'), { code: 'ENOTFOUND' });
    assert.equal(missing(), missingBefore + 1, 'NXDOMAIN cached for the SOA minimum');
    now += 31_000;
    await assert.rejects(r.resolve('gone.test', 'A'), { code: 'ENOTFOUND' });
    assert.equal(missing(), missingBefore + 2);
    assert.ok(r.stats().cacheHits >= 3);
  });

  test('temporary failures are not cached; callers may change what they get without touching the cache', async () => {
    const r = resolverOn(dns);
    await assert.rejects(r.resolve('broken.test', 'A'), { code: 'ESERVFAIL' });
    await assert.rejects(r.resolve('broken.test', 'A'), { code: 'ESERVFAIL' });
    assert.equal(r.stats().queries, 2);
    const first = await r.resolve('neg.test', 'A');
    first.push('tampered');
    assert.deepEqual(await r.resolve('neg.test', 'A'), ['192.0.2.99']);
  });

  test('identical lookups in flight share one query', async () => {
    const r = resolverOn(dns);
    const results = await Promise.all([r.resolve('host.test', 'TXT'), r.resolve('host.test', 'TXT'), r.resolve('host.test', 'TXT')]);
    assert.equal(results.length, 3);
    assert.equal(r.stats().queries, 1);
    assert.equal(r.stats().joined, 2);
  });

  test('nodeStyle is a drop-in for dns.promises.resolve', async () => {
    const r = resolverOn(dns);
    assert.deepEqual(await r.nodeStyle('host.test', 'txt'), [['v=spf1 ip4:192.0.2.0/24 -all']]);
    await assert.rejects(r.nodeStyle('nowhere.test', 'MX'), { code: 'ENOTFOUND' });
  });
});

describe('config', () => {
  test('dns_servers, dns_timeout and dns_tries; a bad line names its file and line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'qpsmtpd-dns-config-'));
    writeFileSync(join(dir, 'dns_servers'), '# ours first\n127.0.0.1:5353\n[::1]:53\nns.example.com\n');
    writeFileSync(join(dir, 'dns_timeout'), '0.5\n');
    writeFileSync(join(dir, 'dns_tries'), 'many\n');
    const { resolver, problems } = resolverFromConfig(new ConfigDir(dir, {}));
    assert.deepEqual(resolver.servers, [
      { host: '127.0.0.1', port: 5353 },
      { host: '::1', port: 53 },
    ]);
    assert.equal(resolver.timeoutMs, 500);
    assert.deepEqual(
      problems.map((p) => `${p.file.replace(dir, '')}:${p.line}: ${p.message}`),
      ['/dns_servers:4: dns_servers: "ns.example.com" is not an IP address (name servers are given by address)', '/dns_tries:1: dns_tries: "many" is not a positive number'],
    );
  });

  test("without dns_servers the system's resolvers are used", () => {
    const dir = mkdtempSync(join(tmpdir(), 'qpsmtpd-dns-config-'));
    const { resolver, problems } = resolverFromConfig(new ConfigDir(dir, {}));
    assert.deepEqual(problems, []);
    assert.ok(resolver.servers.length > 0);
  });
});
