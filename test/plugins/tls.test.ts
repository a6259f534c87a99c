/**
 * The `tls` plugin with the real daemon over loopback (a FakeConn cannot do TLS): STARTTLS and
 * what it advertises, the session reset and the CVE-2011-0411 injection, failed handshakes,
 * implicit TLS, SNI, certificate reload on SIGHUP, load errors, tls_protocols, and the
 * `qpsmtpd tls-cert` command. Certificates are made per run with src/tls/self-signed.ts.
 * `npm run build` first: bin/qpsmtpd runs dist/.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, statSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { parseProtocols, SniTable } from '../../plugins/tls.ts';
import { generateSelfSigned, writePair, type SelfSignedPair } from '../../src/tls/self-signed.ts';
import {
  ACCEPT_ALL_JS,
  SmtpClient,
  cleanupAll,
  maildirNew,
  makeRoot,
  message,
  runCli,
  startDaemon,
  writeText,
  type Daemon,
  type RootOptions,
} from '../helpers/daemon.ts';

after(cleanupAll);

/** AUTH PLAIN for alice/secret, nobody else. */
const AUTH_JS = `import { Plugin, OK, DENY } from 'qpsmtpd';
export default class TestAuth extends Plugin {
  hook_auth_plain(_tx, _mechanism, user, pass) { return user === 'alice' && pass === 'secret' ? OK : DENY; }
}
`;

const MAIN_HOST = 'mx.example.test';
let main: SelfSignedPair;
let other: SelfSignedPair;
let sniExact: SelfSignedPair;
let sniWild: SelfSignedPair;

before(async () => {
  [main, other, sniExact, sniWild] = await Promise.all([
    generateSelfSigned({ host: MAIN_HOST, days: 2 }),
    generateSelfSigned({ host: MAIN_HOST, days: 2 }),
    generateSelfSigned({ host: 'a.example.test', days: 2 }),
    generateSelfSigned({ host: '*.wild.example.test', days: 2 }),
  ]);
});

/** A root with the main pair in config/ssl/ and `tls` first in config/plugins. */
function tlsRoot(plugins: readonly string[], options: RootOptions = {}, pair: SelfSignedPair = main): string {
  const root = makeRoot({
    ...options,
    config: { plugins: ['tls', ...plugins], me: MAIN_HOST, ...options.config },
    plugins: { 'accept_all.js': ACCEPT_ALL_JS, 'test_auth.js': AUTH_JS, ...options.plugins },
  });
  const ssl = join(root, 'config', 'ssl');
  writePair(pair, { cert: join(ssl, 'qpsmtpd-server.crt'), key: join(ssl, 'qpsmtpd-server.key') }, false);
  return root;
}

/** STARTTLS is answered 220; then the handshake over the same socket; the client over TLS. */
async function startTls(client: SmtpClient, options: ConnectionOptions = {}): Promise<{ client: SmtpClient; socket: TLSSocket }> {
  const reply = await client.command('STARTTLS');
  assert.equal(reply.code, 220, reply.raw);
  assert.equal(reply.text, '2.0.0 Ready to start TLS');
  const socket = await handshake({ socket: client.input as Socket, ...options });
  return { client: SmtpClient.overSocket(socket), socket };
}

/** A TLS client (the chain is not the point here unless `ca` is given). */
async function handshake(options: ConnectionOptions): Promise<TLSSocket> {
  const socket = tlsConnect({ rejectUnauthorized: false, ...options });
  socket.on('error', () => undefined);
  const [result] = await Promise.race([once(socket, 'secureConnect').then(() => ['ok']), once(socket, 'error').then(([e]) => [e as Error])]);
  if (result !== 'ok') throw result as Error;
  return socket;
}

/** Connect over implicit TLS and read the greeting. */
async function openImplicit(port: number, options: ConnectionOptions = {}): Promise<{ client: SmtpClient; socket: TLSSocket }> {
  const socket = await handshake({ host: '127.0.0.1', port, ...options });
  const client = SmtpClient.overSocket(socket);
  const greeting = await client.reply();
  assert.equal(greeting.code, 220, greeting.raw);
  return { client, socket };
}

function ehloKeywords(lines: readonly string[]): string[] {
  return lines.slice(1).map((l) => l.split(' ')[0]!.toUpperCase());
}

function fingerprint(socket: TLSSocket): string {
  return socket.getPeerX509Certificate()!.fingerprint256;
}

/** No reply within `ms` (nothing was executed behind our back). */
async function assertSilent(client: SmtpClient, ms = 150): Promise<void> {
  await assert.rejects(client.reply(ms), /no reply within/);
}

function implicitPort(daemon: Daemon): number {
  const l = daemon.listening().find((a) => a.implicitTls);
  assert.ok(l, `no implicit-TLS listener in:\n${daemon.stderr}`);
  return l.port;
}

function plainPort(daemon: Daemon): number {
  const l = daemon.listening().find((a) => !a.implicitTls);
  assert.ok(l, `no plaintext listener in:\n${daemon.stderr}`);
  return l.port;
}

describe('tls plugin: STARTTLS', () => {
  let root: string;
  let daemon: Daemon;

  before(async () => {
    root = tlsRoot(['test_auth', 'accept_all', 'queue/maildir var/maildir']);
    daemon = await startDaemon(root);
  });

  test('EHLO advertises STARTTLS in plaintext (and AUTH only after TLS); over TLS a message is delivered with ESMTPS', async () => {
    const plain = await SmtpClient.open(daemon.port);
    const ehlo = await plain.expect('EHLO client.example.test', 250);
    const keywords = ehloKeywords(ehlo.lines);
    assert.ok(keywords.includes('STARTTLS'), ehlo.raw);
    assert.ok(!keywords.includes('AUTH'), `AUTH advertised in plaintext: ${ehlo.raw}`);
    assert.equal((await plain.command('AUTH PLAIN AGFsaWNlAHNlY3JldA==')).code, 530);

    const { client, socket } = await startTls(plain, { servername: MAIN_HOST, ca: main.cert, rejectUnauthorized: true });
    assert.equal(socket.getPeerX509Certificate()!.fingerprint256, new X509Certificate(main.cert).fingerprint256);
    // The session was reset: a MAIL before the new EHLO is refused.
    assert.equal((await client.command('MAIL FROM:<sender@example.test>')).code, 503);
    const secureEhlo = await client.expect('EHLO client.example.test', 250);
    const secureKeywords = ehloKeywords(secureEhlo.lines);
    assert.ok(!secureKeywords.includes('STARTTLS'), `STARTTLS advertised over TLS: ${secureEhlo.raw}`);
    assert.ok(secureEhlo.lines.some((l) => /^AUTH\b.*\bPLAIN\b/.test(l)), `no AUTH over TLS: ${secureEhlo.raw}`);

    const queued = await client.mailTransaction('sender@example.test', ['postmaster@example.test'], message('over TLS'));
    assert.equal(queued.code, 250, queued.raw);
    await client.quit();

    const cipher = socket.getCipher();
    const mail = maildirNew(join(root, 'var', 'maildir')).find((m) => m.includes('Subject: over TLS'));
    assert.ok(mail, 'message delivered');
    const received = /^Received: [\s\S]*?(?=\n\S)/m.exec(mail)![0].replace(/\s+/g, ' ');
    assert.match(received, new RegExp(`with ESMTPS \\(${socket.getProtocol()} ${cipher.standardName ?? cipher.name} encrypted\\)`), received);
  });

  test('AUTH over TLS works and the Received header says ESMTPSA', async () => {
    const plain = await SmtpClient.open(daemon.port);
    await plain.expect('EHLO client.example.test', 250);
    const { client } = await startTls(plain);
    await client.expect('EHLO client.example.test', 250);
    await client.expect(`AUTH PLAIN ${Buffer.from('\0alice\0secret').toString('base64')}`, 235);
    const queued = await client.mailTransaction('alice@example.test', ['postmaster@example.test'], message('authenticated over TLS'));
    assert.equal(queued.code, 250, queued.raw);
    await client.quit();
    const mail = maildirNew(join(root, 'var', 'maildir')).find((m) => m.includes('Subject: authenticated over TLS'));
    assert.ok(mail);
    assert.match(mail, /with ESMTPSA \(TLSv1\.[23] \S+ encrypted\)/);
  });

  test('commands pipelined behind STARTTLS are thrown away (CVE-2011-0411)', async () => {
    const plain = await SmtpClient.open(daemon.port);
    await plain.expect('EHLO client.example.test', 250);
    plain.send('STARTTLS\r\nRSET\r\nMAIL FROM:<evil@example.org>\r\n');
    const ready = await plain.reply();
    assert.equal(ready.code, 220, ready.raw);
    // Had RSET or MAIL run, their replies would follow here in plaintext.
    await assertSilent(plain);
    const socket = await handshake({ socket: plain.input as Socket });
    const client = SmtpClient.overSocket(socket);
    await client.expect('EHLO client.example.test', 250);
    const rcpt = await client.command('RCPT TO:<postmaster@example.test>');
    assert.equal(rcpt.code, 503, rcpt.raw);
    assert.match(rcpt.text, /Use MAIL before RCPT/);
    const noop = await client.command('NOOP');
    assert.equal(noop.code, 250, `a reply out of step: ${noop.raw}`);
    await assertSilent(client);
    await client.quit();
    assert.doesNotMatch(daemon.stderr, /evil@example\.org/);
  });

  test('STARTTLS with an argument is 501; a second STARTTLS over TLS is 503', async () => {
    const plain = await SmtpClient.open(daemon.port);
    await plain.expect('EHLO client.example.test', 250);
    const withArg = await plain.command('STARTTLS now');
    assert.equal(withArg.code, 501, withArg.raw);
    assert.match(withArg.text, /^5\.5\.4 /);
    const { client } = await startTls(plain);
    await client.expect('EHLO client.example.test', 250);
    const again = await client.command('STARTTLS');
    assert.equal(again.code, 503, again.raw);
    assert.match(again.text, /^5\.5\.1 /);
    await client.expect('NOOP', 250);
    await client.quit();
  });

  test('garbage instead of a ClientHello closes the connection without a plaintext reply; the daemon goes on', async () => {
    const plain = await SmtpClient.open(daemon.port);
    await plain.expect('EHLO client.example.test', 250);
    await plain.expect('STARTTLS', 220);
    const raw = plain.input as Socket;
    let after = '';
    raw.on('data', (chunk: string | Buffer) => (after += String(chunk)));
    plain.send('EHLO this is not a TLS record\r\nQUIT\r\n');
    await plain.waitClosed(5000);
    assert.doesNotMatch(after, /^\d{3}[ -]/m, `plaintext after STARTTLS: ${JSON.stringify(after)}`);
    await daemon.waitForLog(/handshake .*failed/i);

    const next = await SmtpClient.open(daemon.port);
    await next.expect('EHLO client.example.test', 250);
    await next.quit();
    assert.ok(daemon.running);
  });

  test('a client that hangs up in the middle of the handshake does no harm', async () => {
    const plain = await SmtpClient.open(daemon.port);
    await plain.expect('STARTTLS', 220);
    // The start of a TLS record, then a reset.
    plain.send(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
    plain.reset();
    const next = await SmtpClient.open(daemon.port);
    await next.quit();
    assert.ok(daemon.running);
  });
});

describe('tls plugin: implicit TLS and SNI', () => {
  let daemon: Daemon;

  before(async () => {
    const root = tlsRoot(['accept_all', 'queue/maildir var/maildir'], {
      config: { tls_sni: ['# host cert key', 'a.example.test ssl/a.crt ssl/a.key', '*.wild.example.test ssl/wild.crt ssl/wild.key'] },
    });
    const ssl = join(root, 'config', 'ssl');
    writePair(sniExact, { cert: join(ssl, 'a.crt'), key: join(ssl, 'a.key') }, false);
    writePair(sniWild, { cert: join(ssl, 'wild.crt'), key: join(ssl, 'wild.key') }, false);
    daemon = await startDaemon(root, ['--listen', '127.0.0.1:0', '--listen-tls', '127.0.0.1:0']);
  });

  test('on a --listen-tls port the greeting comes over TLS, and STARTTLS is not offered', async () => {
    const { client, socket } = await openImplicit(implicitPort(daemon), { servername: MAIN_HOST, ca: main.cert, rejectUnauthorized: true });
    assert.match(socket.getProtocol() ?? '', /^TLSv1\.[23]$/);
    const ehlo = await client.expect('EHLO client.example.test', 250);
    assert.ok(!ehloKeywords(ehlo.lines).includes('STARTTLS'), ehlo.raw);
    assert.equal((await client.command('STARTTLS')).code, 503);
    const queued = await client.mailTransaction('sender@example.test', ['postmaster@example.test'], message('implicit'));
    assert.equal(queued.code, 250, queued.raw);
    await client.quit();
  });

  test('a plaintext client on the implicit-TLS port gets no greeting and is closed', async () => {
    const client = await SmtpClient.connect(implicitPort(daemon));
    await assertSilent(client, 300);
    const raw = client.input as Socket;
    let seen = '';
    raw.on('data', (chunk: string | Buffer) => (seen += String(chunk)));
    client.send('EHLO client.example.test\r\n');
    await client.waitClosed(5000);
    assert.doesNotMatch(seen, /^\d{3}[ -]/m, `plaintext on the TLS port: ${JSON.stringify(seen)}`);
  });

  test('SNI: the client\'s server name picks the certificate (exact, wildcard, otherwise the main one)', async () => {
    const port = implicitPort(daemon);
    const cases: [string | undefined, SelfSignedPair][] = [
      ['a.example.test', sniExact],
      ['A.Example.Test', sniExact],
      ['x.wild.example.test', sniWild],
      ['deep.x.wild.example.test', main],
      ['wild.example.test', main],
      ['other.example.test', main],
      [undefined, main],
    ];
    for (const [servername, expected] of cases) {
      const { client, socket } = await openImplicit(port, servername === undefined ? {} : { servername });
      const peer = socket.getPeerX509Certificate()!;
      assert.equal(peer.fingerprint256, new X509Certificate(expected.cert).fingerprint256, `servername ${servername}: got ${peer.subject}`);
      await client.quit();
    }
    // The exact one verifies against its own certificate, by name.
    const { client, socket } = await openImplicit(port, { servername: 'a.example.test', ca: sniExact.cert, rejectUnauthorized: true });
    const peer = socket.getPeerX509Certificate();
    assert.ok(peer);
    assert.match(peer.subject, /CN=a\.example\.test/);
    assert.match(peer.subjectAltName ?? '', /DNS:a\.example\.test/);
    await client.quit();
  });

  test('SNI works through STARTTLS too', async () => {
    const plain = await SmtpClient.open(plainPort(daemon));
    await plain.expect('EHLO client.example.test', 250);
    const { client, socket } = await startTls(plain, { servername: 'mail.wild.example.test' });
    assert.equal(fingerprint(socket), new X509Certificate(sniWild.cert).fingerprint256);
    await client.expect('EHLO client.example.test', 250);
    await client.quit();
  });
});

describe('tls plugin: a handshake slower than plugin_timeout', () => {
  let daemon: Daemon;

  before(async () => {
    const root = tlsRoot([], { config: { plugin_timeout: '1' } });
    daemon = await startDaemon(root, ['--listen', '127.0.0.1:0', '--listen-tls', '127.0.0.1:0']);
  });

  test('STARTTLS: nothing is written in plaintext while the handshake waits, and the session goes on over TLS', async () => {
    const plain = await SmtpClient.open(plainPort(daemon));
    await plain.expect('EHLO client.example.test', 250);
    await plain.expect('STARTTLS', 220);
    // The hook times out after 1 s; whatever the session answers then must not reach the wire.
    await assertSilent(plain, 1500);
    const socket = await handshake({ socket: plain.input as Socket });
    const client = SmtpClient.overSocket(socket);
    const ehlo = await client.command('EHLO client.example.test');
    assert.equal(ehlo.code, 250, `a stale reply: ${ehlo.raw}`);
    await client.quit();
  });

  test('implicit TLS: a client that stays silent past plugin_timeout is closed without a plaintext byte', async () => {
    const client = await SmtpClient.connect(implicitPort(daemon));
    const raw = client.input as Socket;
    let seen = '';
    raw.on('data', (chunk: string | Buffer) => (seen += String(chunk)));
    await client.waitClosed(5000);
    assert.equal(seen, '', `plaintext on the TLS port: ${JSON.stringify(seen)}`);
  });
});

describe('tls plugin: reload, load errors, protocols', () => {
  test('SIGHUP after replacing the files: new connections get the new certificate, an open TLS session goes on', async () => {
    const root = tlsRoot([]);
    const daemon = await startDaemon(root, ['--listen-tls', '127.0.0.1:0']);
    const port = implicitPort(daemon);
    const first = await openImplicit(port);
    assert.equal(fingerprint(first.socket), new X509Certificate(main.cert).fingerprint256);
    await first.client.expect('EHLO client.example.test', 250);

    const ssl = join(root, 'config', 'ssl');
    writePair(other, { cert: join(ssl, 'qpsmtpd-server.crt'), key: join(ssl, 'qpsmtpd-server.key') }, true);
    const from = daemon.stderr.length;
    daemon.signal('SIGHUP');
    await daemon.waitForLog(/configuration and plugins reloaded/, from);

    const second = await openImplicit(port);
    assert.equal(fingerprint(second.socket), new X509Certificate(other.cert).fingerprint256);
    await second.client.quit();

    // The session opened before the reload still works, on its old certificate.
    await first.client.expect('NOOP', 250);
    await first.client.expect('EHLO again.example.test', 250);
    await first.client.quit();
    await daemon.stop();
  });

  test('qpsmtpd check fails naming a missing certificate or key', async () => {
    const root = makeRoot({ config: { plugins: ['tls'] } });
    const r = await runCli(['check', '--config', join(root, 'config')]);
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(join(root, 'config', 'ssl', 'qpsmtpd-server.crt')), r.stderr);
    assert.match(r.stderr, /plugins:1:/);

    const withFiles = makeRoot({ config: { plugins: ['tls certs/server.crt certs/missing.key'] } });
    writeText(join(withFiles, 'config', 'certs', 'server.crt'), main.cert);
    const r2 = await runCli(['check', '--config', join(withFiles, 'config')]);
    assert.notEqual(r2.code, 0);
    assert.ok(r2.stderr.includes(join(withFiles, 'config', 'certs', 'missing.key')), r2.stderr);
  });

  test('tls_cert and tls_key name the files; a key that does not match is a load error; bad tls_ciphers too', async () => {
    const root = makeRoot({ config: { plugins: ['tls'], tls_cert: 'mine/cert.pem', tls_key: 'mine/key.pem' } });
    writeText(join(root, 'config', 'mine', 'cert.pem'), main.cert);
    writeText(join(root, 'config', 'mine', 'key.pem'), main.key);
    const good = await runCli(['check', '--config', join(root, 'config')]);
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /^connect: tls$/m);

    writeText(join(root, 'config', 'mine', 'key.pem'), other.key);
    const mismatch = await runCli(['check', '--config', join(root, 'config')]);
    assert.notEqual(mismatch.code, 0);
    assert.match(mismatch.stderr, /mine\/cert\.pem with key .*mine\/key\.pem/);
    assert.doesNotMatch(mismatch.stderr, /PRIVATE KEY/);

    writeText(join(root, 'config', 'mine', 'key.pem'), main.key);
    writeText(join(root, 'config', 'tls_ciphers'), 'NO-SUCH-CIPHER');
    const ciphers = await runCli(['check', '--config', join(root, 'config')]);
    assert.notEqual(ciphers.code, 0);
    assert.match(ciphers.stderr, /tls_ciphers "NO-SUCH-CIPHER"/);
  });

  test('tls_protocols limits the versions offered', async () => {
    const root = tlsRoot([], { config: { tls_protocols: 'SSLv23:!SSLv2:!SSLv3:!TLSv1:!TLSv1_1:!TLSv1_2' } });
    const daemon = await startDaemon(root, ['--listen-tls', '127.0.0.1:0']);
    const port = implicitPort(daemon);
    await assert.rejects(handshake({ host: '127.0.0.1', port, maxVersion: 'TLSv1.2' }));
    const { client, socket } = await openImplicit(port);
    assert.equal(socket.getProtocol(), 'TLSv1.3');
    await client.quit();
    await daemon.stop();
  });

  test('tls_protocols syntax', () => {
    assert.deepEqual(parseProtocols('SSLv23:!SSLv2:!SSLv3'), { minVersion: 'TLSv1', maxVersion: 'TLSv1.3' });
    assert.deepEqual(parseProtocols('SSLv23:!SSLv2:!SSLv3:!TLSv1'), { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.3' });
    assert.deepEqual(parseProtocols('!TLSv1:!TLSv1_1'), { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' });
    assert.deepEqual(parseProtocols('TLSv1_2'), { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
    assert.deepEqual(parseProtocols('TLSv1.2:TLSv13'), { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' });
    assert.deepEqual(parseProtocols('tlsv1_3'), { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' });
    assert.deepEqual(parseProtocols('ALL:!TLSv1_3'), { minVersion: 'TLSv1', maxVersion: 'TLSv1.2' });
    assert.throws(() => parseProtocols('SSLv3'), /no protocol version/);
    assert.throws(() => parseProtocols('SSLv23:!TLSv1_2'), /gap/);
    assert.throws(() => parseProtocols('TLSv2'), /unknown protocol "TLSv2"/);
  });

  test('SNI lookup: exact names win over wildcards, a wildcard covers one label', () => {
    const table = new SniTable();
    const exact = {} as never;
    const wild = {} as never;
    table.add('*.example.test', wild);
    table.add('Mail.Example.Test', exact);
    assert.equal(table.lookup('mail.example.test')?.context, exact);
    assert.equal(table.lookup('mail.example.test.')?.context, exact);
    assert.equal(table.lookup('mx.example.test')?.context, wild);
    assert.equal(table.lookup('a.mx.example.test'), undefined);
    assert.equal(table.lookup('example.test'), undefined);
  });
});

describe('qpsmtpd tls-cert', () => {
  test('writes a pair the plugin loads, and refuses to overwrite it without --force', async () => {
    const root = makeRoot({ config: { plugins: ['tls'], me: 'mx.cli.example.test' } });
    const configDir = join(root, 'config');
    const certPath = join(configDir, 'ssl', 'qpsmtpd-server.crt');
    const keyPath = join(configDir, 'ssl', 'qpsmtpd-server.key');

    const made = await runCli(['tls-cert', '--config', configDir]);
    assert.equal(made.code, 0, made.stderr);
    assert.ok(made.stdout.includes(certPath) && made.stdout.includes(keyPath), made.stdout);
    assert.match(made.stdout, /config\/plugins/);
    const cert = new X509Certificate(readFileSync(certPath));
    assert.match(cert.subject, /CN=mx\.cli\.example\.test/);
    assert.equal(cert.subjectAltName, 'DNS:mx.cli.example.test');
    assert.equal(statSync(keyPath).mode & 0o777, 0o600);
    assert.ok(Date.parse(cert.validTo) - Date.now() > 700 * 86400_000);

    const checked = await runCli(['check', '--config', configDir]);
    assert.equal(checked.code, 0, checked.stderr);

    const again = await runCli(['tls-cert', '--config', configDir, '--host', 'other.example.test']);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /exists; use --force/);
    assert.equal(new X509Certificate(readFileSync(certPath)).fingerprint256, cert.fingerprint256, 'unchanged');

    const forced = await runCli(['tls-cert', '--config', configDir, '--host', 'other.example.test', '--days', '10', '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    const replaced = new X509Certificate(readFileSync(certPath));
    assert.equal(replaced.subjectAltName, 'DNS:other.example.test');
    assert.ok(Date.parse(replaced.validTo) - Date.now() < 11 * 86400_000);
    assert.equal(statSync(keyPath).mode & 0o777, 0o600);

    // The daemon serves it.
    const daemon = await startDaemon(root, ['--listen-tls', '127.0.0.1:0']);
    const { client, socket } = await openImplicit(implicitPort(daemon), { servername: 'other.example.test', ca: readFileSync(certPath), rejectUnauthorized: true });
    assert.equal(fingerprint(socket), replaced.fingerprint256);
    await client.quit();
    await daemon.stop();
  });

  test('--host and friends belong to tls-cert only', async () => {
    const r = await runCli(['check', '--host', 'x.example.test']);
    assert.equal(r.code, 64);
  });
});
