/**
 * `qpsmtpd dkim-key DOMAIN [SELECTOR]` through bin/qpsmtpd: the files in config/dkim/DOMAIN/, the
 * record printed (its key is the private key's), no overwriting without --force, usage errors;
 * and the key it made signs a relay client's mail that verifies against the printed record.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPublicKey, createPrivateKey, sign, verify } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { buildMessage, startDnsServer, testServer } from 'qpsmtpd/testing';

const BIN = fileURLToPath(new URL('../../bin/qpsmtpd', import.meta.url));
if (!existsSync(fileURLToPath(new URL('../../dist/src/cli.js', import.meta.url)))) throw new Error('dist/ is missing: run `npm run build` first');

const site = mkdtempSync(join(tmpdir(), 'qpsmtpd-dkim-key-'));
const config = join(site, 'config');
mkdirSync(config);
after(() => rmSync(site, { recursive: true, force: true }));

function qpsmtpd(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: Record<string, string | undefined> = { ...process.env, NODE_TEST_CONTEXT: undefined, QPSMTPD_CONFIG: undefined, NODE_OPTIONS: undefined };
  const child = spawn(process.execPath, [BIN, ...args], { cwd: site, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

/** The TXT record's strings, joined, from the zone line the command prints. */
function recordOf(stdout: string): { name: string; txt: string } {
  const line = stdout.split('\n').find((l) => l.includes('._domainkey.'))!;
  const m = /^(\S+)\. IN TXT (.*)$/.exec(line)!;
  return { name: m[1]!, txt: [...m[2]!.matchAll(/"([^"]*)"/g)].map((x) => x[1]).join('') };
}

describe('qpsmtpd dkim-key', () => {
  test('writes selector, private (0600), public and dns, and prints the TXT record of the same key', async () => {
    const r = await qpsmtpd(['dkim-key', 'Example.ORG', 'sel2026', '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    const dir = join(config, 'dkim', 'example.org');
    assert.equal(readFileSync(join(dir, 'selector'), 'utf8'), 'sel2026\n');
    assert.equal(statSync(join(dir, 'private')).mode & 0o777, 0o600);
    assert.match(r.stdout, /^wrote a DKIM key for example\.org \(RSA 2048-bit, selector sel2026\)/);
    const { name, txt } = recordOf(r.stdout);
    assert.equal(name, 'sel2026._domainkey.example.org');
    assert.match(txt, /^v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]+$/);
    assert.match(readFileSync(join(dir, 'dns'), 'utf8'), /_dmarc\.example\.org\. IN TXT "v=DMARC1; p=reject;/);
    // The record's key verifies what the private key signs.
    const publicKey = createPublicKey({ key: Buffer.from(txt.replace(/^.*p=/, ''), 'base64'), format: 'der', type: 'spki' });
    const privateKey = createPrivateKey(readFileSync(join(dir, 'private'), 'utf8'));
    assert.equal(verify('sha256', Buffer.from('x'), publicKey, sign('sha256', Buffer.from('x'), privateKey)), true);
  });

  test('refuses to replace a key (73) unless --force; usage errors are 64', async () => {
    const again = await qpsmtpd(['dkim-key', 'example.org', '--config', config]);
    assert.equal(again.code, 73);
    assert.match(again.stderr, /exists; --force replaces it/);
    const forced = await qpsmtpd(['dkim-key', 'example.org', 'sel2027', '--config', config, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(readFileSync(join(config, 'dkim', 'example.org', 'selector'), 'utf8'), 'sel2027\n');
    assert.equal((await qpsmtpd(['dkim-key', '--config', config])).code, 64);
    assert.equal((await qpsmtpd(['dkim-key', 'not_a domain', '--config', config])).code, 64);
    assert.equal((await qpsmtpd(['dkim-key', 'a.example', 'bad selector!', '--config', config])).code, 64);
    assert.equal((await qpsmtpd(['dkim-key', 'a.example', '--bits', '512', '--config', config])).code, 64);
    assert.equal((await qpsmtpd(['tls-cert', '--bits', '2048', '--config', config])).code, 64);
  });

  test('the default selector is the month and year; --type ed25519 makes an Ed25519 key', async () => {
    const r = await qpsmtpd(['dkim-key', 'ed.example', '--type', 'ed25519', '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(readFileSync(join(config, 'dkim', 'ed.example', 'selector'), 'utf8'), /^[a-z]{3}\d{4}\n$/);
    assert.match(recordOf(r.stdout).txt, /^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);
  });

  test('the key signs a relay client\'s mail, and the printed record verifies it at another server', async () => {
    const r = await qpsmtpd(['dkim-key', 'signed.example', 'cli', '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    const { name, txt } = recordOf(r.stdout);
    const dns = await startDnsServer({ records: [[name, 'TXT', txt]] });
    const dnsConfig = { dns_servers: dns.address, dns_timeout: '3', dns_tries: 1 };
    const sender = await testServer({ configDir: config, plugins: ['dkim'], config: dnsConfig, acceptAllRecipients: true, replyTimeoutMs: 30_000 });
    const receiver = await testServer({ plugins: ['dkim'], config: { me: 'mx.receiver.example', ...dnsConfig }, acceptAllRecipients: true, replyTimeoutMs: 30_000 });
    try {
      const out = await sender.connect({ relayClient: true });
      const sent = await out.sendMail('a@signed.example', ['b@receiver.example'], buildMessage({ from: 'a@signed.example' }));
      assert.match(sent.queued!.header.get('DKIM-Signature')!, /d=signed\.example; .*s=cli;/s);
      const into = await receiver.connect({ remoteIp: '192.0.2.1' });
      const got = await into.sendMail('a@signed.example', ['b@receiver.example'], sent.queued!.message);
      assert.match(got.queued!.header.get('Authentication-Results')!, /dkim=pass header\.d=signed\.example header\.s=cli/);
    } finally {
      await sender.close();
      await receiver.close();
      await dns.close();
    }
  });
});
