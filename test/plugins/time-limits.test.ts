/**
 * Plugins bound their DNS work with a time limit (`timeout`): sender_permitted_from, dkim, dmarc
 * and arc always (20 s by default), the DNS list and host plugins when given one. A limit must end
 * with the check: left running, each would hold its timer, its AbortController and the hook's
 * signal for the whole `timeout` after every message, and then build an error nobody reads.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { dkimTxtRecord, signDkim } from 'qpsmtpd';
import { buildMessage, startDnsServer, testServer, type TestDnsServer, type TestServer } from 'qpsmtpd/testing';

/** A time limit no other timer of a session has: 17 s. */
const LIMIT_S = 17;

const key = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
let dns: TestDnsServer;
let server: TestServer;
let dnsPlugins: TestServer;

before(async () => {
  dns = await startDnsServer({
    records: [
      ['sender.example', 'TXT', 'v=spf1 ip4:192.0.2.0/24 -all'],
      ['_dmarc.sender.example', 'TXT', 'v=DMARC1; p=reject'],
      ['k._domainkey.sender.example', 'TXT', dkimTxtRecord(key.publicKey)],
      ['sender.example', 'MX', '10 mail.sender.example'],
      ['mail.sender.example', 'A', '192.0.2.25'],
    ],
  });
  server = await testServer({
    plugins: [`sender_permitted_from timeout ${LIMIT_S}`, `dkim timeout ${LIMIT_S}`, `arc timeout ${LIMIT_S}`, `dmarc timeout ${LIMIT_S}`],
    config: { me: 'mx.receiver.example', dns_servers: dns.address, dns_timeout: '3', dns_tries: 1 },
    acceptAllRecipients: true,
    replyTimeoutMs: 30_000,
  });
  dnsPlugins = await testServer({
    plugins: ['dnsbl', 'rhsbl', 'dns_whitelist_soft', 'fcrdns', 'helo', 'resolvable_fromhost', 'uribl'].map((p) => `${p} timeout ${LIMIT_S}`),
    config: {
      me: 'mx.receiver.example',
      dns_servers: dns.address,
      dns_timeout: '3',
      dns_tries: 1,
      dnsbl_zones: 'zen.test',
      rhsbl_zones: 'dbl.test',
      whitelist_zones: 'list.dnswl.test',
      uribl_zones: 'multi.uribl.test 2,4,8 deny',
    },
    acceptAllRecipients: true,
    replyTimeoutMs: 30_000,
  });
});
after(async () => {
  await server.close();
  await dnsPlugins.close();
  await dns.close();
});

/** Run `session` and return how many limits of LIMIT_S were started, and how many still run. */
async function limitsDuring(session: () => Promise<void>): Promise<{ started: number; running: number }> {
  const started = new Set<unknown>();
  const running = new Set<unknown>();
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  globalThis.setTimeout = ((callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const timer = realSet(callback, ms, ...args);
    if (ms === LIMIT_S * 1000) {
      started.add(timer);
      running.add(timer);
    }
    return timer;
  }) as typeof setTimeout;
  globalThis.clearTimeout = ((timer?: Parameters<typeof clearTimeout>[0]) => {
    running.delete(timer);
    realClear(timer);
  }) as typeof clearTimeout;
  try {
    await session();
  } finally {
    globalThis.setTimeout = realSet;
    globalThis.clearTimeout = realClear;
  }
  return { started: started.size, running: running.size };
}

/** One message from someone@sender.example at 192.0.2.7 through `to`, which must accept it. */
async function deliver(to: TestServer, message: string): Promise<void> {
  const session = await to.connect({ remoteIp: '192.0.2.7' });
  const result = await session.sendMail('someone@sender.example', ['rcpt@receiver.example'], message, { helo: 'client.sender.example' });
  await session.quit();
  assert.equal(result.accepted, true, JSON.stringify(result));
}

test('every time limit of the sender checks is stopped once its check is done', async () => {
  const unsigned = buildMessage({ from: 'someone@sender.example', subject: 'limits' }).replace(/\r?\n/g, '\r\n');
  const field = await signDkim(Buffer.from(unsigned), { domain: 'sender.example', selector: 'k', privateKey: key.privateKey });
  const limits = await limitsDuring(() => deliver(server, `${field.name}: ${field.value}\r\n${unsigned}`));
  assert.equal(limits.started, 4, 'one limit per check: SPF, DKIM, ARC, DMARC');
  assert.equal(limits.running, 0, `${limits.running} of ${limits.started} limits still running`);
});

test('so is every time limit of the DNS list and host checks given a timeout', async () => {
  const message = buildMessage({ from: 'someone@sender.example', body: 'See http://www.example.test/offer now.\n' });
  const limits = await limitsDuring(() => deliver(dnsPlugins, message));
  assert.equal(limits.started, 7, 'one limit per plugin');
  assert.equal(limits.running, 0, `${limits.running} of ${limits.started} limits still running`);
});
