/**
 * Shared by the tests of the DNS plugins (dnsbl, rhsbl, uribl, dns_whitelist_soft, fcrdns,
 * resolvable_fromhost, helo): a test app whose resolver asks the loopback test DNS server, with
 * short time-outs so that a zone that never answers costs a fraction of a second.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TestDnsServer } from '../../src/testing/dns-server.ts';
import type { ParsedReply } from '../helpers/fake-conn.ts';
import type { TestApp } from '../helpers/test-app.ts';
import { ehloed, quit, withApp, type AppOptions } from './connection-policy-support.ts';

/** Seconds per try, one try: what the tests' resolver waits for a silent server (room for a loaded machine: the test DNS server shares the event loop). */
export const DNS_TIMEOUT_S = 1.2;

export function withDnsApp(dns: TestDnsServer, plugins: string[], fn: (t: TestApp) => Promise<void>, options: AppOptions = {}): Promise<void> {
  return withApp(plugins, fn, {
    ...options,
    config: { dns_servers: dns.address, dns_timeout: String(DNS_TIMEOUT_S), dns_tries: '1', ...options.config },
  });
}

/** Milliseconds `fn` took. */
export async function timed(fn: () => Promise<void>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

/**
 * One message from `ip` (EHLO `helo`), through to the queue: the DATA reply, and the queued
 * message's text when it was accepted (the app must list `queue_capture <queueDir>`).
 */
export async function sendMessage(
  t: TestApp,
  queueDir: string,
  message: string,
  options: { ip?: string; helo?: string; from?: string } = {},
): Promise<{ reply: ParsedReply; queued: string | undefined }> {
  const session = await ehloed(t, options.ip ?? '192.0.2.10', options.helo);
  assert.equal((await session.client.command(`MAIL FROM:<${options.from ?? 'sender@example.org'}>`)).code, 250);
  assert.equal((await session.client.command('RCPT TO:<user@example.test>')).code, 250);
  assert.equal((await session.client.command('DATA')).code, 354);
  const before = existsSync(queueDir) ? new Set(readdirSync(queueDir)) : new Set<string>();
  const dotted = message.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
  const reply = await session.client.command(`${dotted.replace(/\r\n$/, '')}\r\n.`);
  await quit(session);
  const added = existsSync(queueDir) ? readdirSync(queueDir).filter((f) => !before.has(f)) : [];
  return { reply, queued: added.length === 1 ? readFileSync(join(queueDir, added[0]!), 'utf8') : undefined };
}
