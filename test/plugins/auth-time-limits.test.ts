/**
 * sender_permitted_from, dkim, dmarc and arc each bound their DNS work with a time limit
 * (`timeout`). A limit must end with the check: left running, each one would hold its timer, its
 * AbortController and the hook's signal for the whole `timeout` (20 s by default) after every
 * message, and then build an error nobody reads.
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

before(async () => {
  dns = await startDnsServer({
    records: [
      ['sender.example', 'TXT', 'v=spf1 ip4:192.0.2.0/24 -all'],
      ['_dmarc.sender.example', 'TXT', 'v=DMARC1; p=reject'],
      ['k._domainkey.sender.example', 'TXT', dkimTxtRecord(key.publicKey)],
    ],
  });
  server = await testServer({
    plugins: [`sender_permitted_from timeout ${LIMIT_S}`, `dkim timeout ${LIMIT_S}`, `arc timeout ${LIMIT_S}`, `dmarc timeout ${LIMIT_S}`],
    config: { me: 'mx.receiver.example', dns_servers: dns.address, dns_timeout: '3', dns_tries: 1 },
    acceptAllRecipients: true,
    replyTimeoutMs: 30_000,
  });
});
after(async () => {
  await server.close();
  await dns.close();
});

test('every time limit of the sender checks is stopped once its check is done', async () => {
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
    const unsigned = buildMessage({ from: 'someone@sender.example', subject: 'limits' }).replace(/\r?\n/g, '\r\n');
    const field = await signDkim(Buffer.from(unsigned), { domain: 'sender.example', selector: 'k', privateKey: key.privateKey });
    const message = `${field.name}: ${field.value}\r\n${unsigned}`;
    const session = await server.connect({ remoteIp: '192.0.2.7' });
    const result = await session.sendMail('someone@sender.example', ['rcpt@receiver.example'], message, { helo: 'client.sender.example' });
    await session.quit();
    assert.equal(result.accepted, true, JSON.stringify(result));
  } finally {
    globalThis.setTimeout = realSet;
    globalThis.clearTimeout = realClear;
  }
  assert.equal(started.size, 4, 'one limit per check: SPF, DKIM, ARC, DMARC');
  assert.equal(running.size, 0, `${running.size} of ${started.size} limits still running`);
});
