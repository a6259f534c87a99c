/** The app: reload swaps the plugin set for new sessions only, and retires the old one. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { testApp, tempDir } from './helpers/test-app.ts';

const LIFECYCLE = (log: string): string => `import { Plugin, DENY } from 'qpsmtpd';
import type { PluginHost } from 'qpsmtpd';
import { appendFileSync } from 'node:fs';
export default class Lifecycle extends Plugin {
  tag = '';
  register(_qp: PluginHost, tag: string) { this.tag = tag; appendFileSync(${JSON.stringify(log)}, 'register ' + tag + '\\n'); }
  hook_rcpt() { return [DENY, 'generation ' + this.tag]; }
  async shutdown() { await new Promise((r) => setTimeout(r, 5)); appendFileSync(${JSON.stringify(log)}, 'shutdown ' + this.tag + '\\n'); }
}
`;

test('reload: the open session keeps its plugins; the old ones shut down once it ends; close shuts down the rest', async () => {
  const dir = tempDir('qpsmtpd-app-');
  const log = join(dir, 'log');
  writeFileSync(log, '');
  const t = await testApp({ plugins: { 'lifecycle.ts': LIFECYCLE(log) }, config: { plugins: ['lifecycle one'] } });
  try {
    const { client: old, done } = await t.greeted();
    await old.command('EHLO x');
    t.writeConfig('plugins', ['lifecycle two']);
    assert.deepEqual(await t.app.reload(), []);
    assert.equal(readFileSync(log, 'utf8'), 'register one\nregister two\n', 'the old plugins live on while a session uses them');

    await old.command('MAIL FROM:<a@example.org>');
    assert.match((await old.command('RCPT TO:<b@example.net>')).text, /generation one/);
    const { client: fresh } = await t.greeted();
    await fresh.command('EHLO y');
    await fresh.command('MAIL FROM:<a@example.org>');
    assert.match((await fresh.command('RCPT TO:<b@example.net>')).text, /generation two/);

    await old.command('QUIT');
    await done;
    assert.equal(readFileSync(log, 'utf8'), 'register one\nregister two\nshutdown one\n');

    await t.app.close(0);
    assert.equal(readFileSync(log, 'utf8'), 'register one\nregister two\nshutdown one\nshutdown two\n');
  } finally {
    await t.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failed reload keeps the running plugins and reports file and line', async () => {
  const dir = tempDir('qpsmtpd-app-');
  const log = join(dir, 'log');
  writeFileSync(log, '');
  const t = await testApp({ plugins: { 'lifecycle.ts': LIFECYCLE(log) }, config: { plugins: ['lifecycle one'] } });
  try {
    t.writeConfig('plugins', ['lifecycle one', 'missing_plugin']);
    const problems = await t.app.reload();
    assert.equal(problems.length, 1);
    assert.equal(problems[0]!.line, 2);
    const { client } = await t.greeted();
    await client.command('EHLO x');
    await client.command('MAIL FROM:<a@example.org>');
    assert.match((await client.command('RCPT TO:<b@example.net>')).text, /generation one/);
    assert.equal(readFileSync(log, 'utf8'), 'register one\nregister one\nshutdown one\n', 'what the failed reload loaded was shut down');
    assert.ok(t.logs.some((l) => /reload failed, keeping the running configuration: .*plugins:2: plugin "missing_plugin"/.test(l)), t.logs.join('\n'));
  } finally {
    await t.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the DNS resolver's counters are logged when its config retires (stop or reload)", async () => {
  const { startDnsServer } = await import('../src/testing/dns-server.ts');
  const dns = await startDnsServer({ records: [['known.test', 'A', '192.0.2.1']], silent: ['slow.test'] });
  const LOOKER = `import { Plugin, DECLINED } from 'qpsmtpd';
export default class Looker extends Plugin {
  async hook_helo(_tx: unknown, host: string) {
    await this.dns.resolve(host, 'A', { signal: this.signal }).catch(() => undefined);
    return DECLINED;
  }
}
`;
  const t = await testApp({ plugins: { 'looker.ts': LOOKER }, config: { plugins: ['looker'], loglevel: ['6'], dns_servers: [dns.address], dns_timeout: ['0.2'], dns_tries: ['1'] } });
  try {
    for (const host of ['known.test', 'known.test', 'slow.test']) {
      const { client } = await t.greeted();
      await client.command(`HELO ${host}`);
      await client.command('QUIT');
    }
    await t.app.close(0);
    const line = t.logs.find((l) => / dns: /.test(l));
    assert.ok(line, t.logs.join('\n'));
    assert.match(line, /^\d+ dns: 3 lookups \(33% answered from the cache, 0 joined one in flight\), 2 queries sent, 1 timed out, 1 failed, 0 cancelled by their plugin$/);
  } finally {
    await t.cleanup();
    await dns.close();
  }
});
