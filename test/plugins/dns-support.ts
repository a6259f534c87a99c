/**
 * Shared by the tests of the DNS plugins (dnsbl, rhsbl, uribl, dns_whitelist_soft, fcrdns,
 * resolvable_fromhost, helo): a test app whose resolver asks the loopback test DNS server, with
 * short time-outs so that a zone that never answers costs a fraction of a second.
 */
import type { TestDnsServer } from '../../src/testing/dns-server.ts';
import type { TestApp } from '../helpers/test-app.ts';
import { withApp, type AppOptions } from './connection-policy-support.ts';

/** Seconds per try, one try: what the tests' resolver waits for a silent server. */
export const DNS_TIMEOUT_S = 0.4;

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
