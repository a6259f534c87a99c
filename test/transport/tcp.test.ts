/**
 * TCP details: a client that half-closes after its last command still gets every reply (and its
 * message is not delivered behind its back without a 250); an IPv4 client on a dual-stack listener
 * is seen as a.b.c.d, and a listener bound to one address gives plugins that address and its port
 * as the local end; an idle client gets 421 after `timeout` seconds. And the same half-close on
 * --stdio: a whole dialogue piped into stdin.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fixedLocal } from '../../src/transport/tcp.ts';
import { ACCEPT_ALL_JS, PROBE_JS, SmtpClient, cleanupAll, maildirNew, makeRoot, parseProbe, spawnDaemon, startDaemon, type Daemon } from '../helpers/daemon.ts';

after(cleanupAll);

const DIALOGUE =
  'EHLO halfclose.example.test\r\nMAIL FROM:<sender@example.test>\r\nRCPT TO:<rcpt@example.test>\r\nDATA\r\n';
const MESSAGE_AND_QUIT = 'Subject: half-closed\r\n\r\nbody\r\n.\r\nQUIT\r\n';

/** Every reply line up to the server's close. */
async function readToClose(client: SmtpClient): Promise<string[]> {
  let all = '';
  client.input.on('data', (s: string) => (all += s));
  await client.waitClosed();
  return all.split('\r\n').filter((l) => l !== '');
}

describe('TCP', () => {
  let daemon: Daemon;
  let root: string;
  before(async () => {
    root = makeRoot({
      config: { plugins: ['probe', 'accept_all', 'queue/maildir var/maildir'], timeout: '1' },
      plugins: { 'probe.js': PROBE_JS, 'accept_all.js': ACCEPT_ALL_JS },
    });
    daemon = await startDaemon(root, ['--listen', ':0']);
  });

  test('a client that shuts down its sending side after QUIT still gets every reply', async () => {
    const client = await SmtpClient.open(daemon.port, '127.0.0.1');
    client.send(DIALOGUE);
    for (const code of [250, 250, 250, 354]) assert.equal((await client.reply()).code, code);
    client.send(MESSAGE_AND_QUIT);
    client.end();
    const lines = await readToClose(client);
    assert.match(lines[0] ?? '', /^250 2\.0\.0 Queued!/, lines.join('\n'));
    assert.match(lines[1] ?? '', /^221 /, lines.join('\n'));
    assert.equal(maildirNew(join(root, 'var', 'maildir')).filter((m) => m.includes('Subject: half-closed')).length, 1);
  });

  test('a half-close without QUIT: the pipelined commands are answered, then the server closes', async () => {
    const client = await SmtpClient.open(daemon.port, '127.0.0.1');
    client.send('EHLO pipelined.example.test\r\nNOOP\r\nRSET\r\n');
    client.end();
    const lines = await readToClose(client);
    assert.ok(lines.some((l) => l.startsWith('250-')), 'the EHLO reply');
    assert.deepEqual(lines.slice(-2).map((l) => l.slice(0, 4)), ['250 ', '250 '], lines.join('\n'));
  });

  test('an IPv4 client of a dual-stack listener (--listen :0) is seen as a.b.c.d', async () => {
    const listening = daemon.listening();
    assert.equal(listening[0]!.host, '::');
    const client = await SmtpClient.connect(daemon.port, '127.0.0.1');
    const greeting = await client.reply();
    const probe = parseProbe(greeting.text);
    assert.match(probe.remote, /^127\.0\.0\.1:\d+$/);
    assert.equal(probe.local, `127.0.0.1:${daemon.port}`);
    await client.quit();
  });

  test('an idle client gets 421 after `timeout` seconds and is disconnected', async () => {
    const client = await SmtpClient.open(daemon.port, '127.0.0.1');
    await client.expect('EHLO idle.example.test', 250);
    const started = Date.now();
    const reply = await client.reply(5000);
    assert.equal(reply.code, 421, reply.raw);
    assert.ok(Date.now() - started >= 900, 'not before the timeout');
    await client.waitClosed();
  });
});

describe('TCP, a listener bound to one address', () => {
  test('plugins see that address and the port the system chose as the local end', async () => {
    const root = makeRoot({ config: { plugins: ['probe', 'accept_all'] }, plugins: { 'probe.js': PROBE_JS, 'accept_all.js': ACCEPT_ALL_JS } });
    const daemon = await startDaemon(root, ['--listen', '127.0.0.1:0']);
    try {
      assert.equal(daemon.listening()[0]!.host, '127.0.0.1');
      assert.notEqual(daemon.port, 0);
      for (let i = 0; i < 2; i++) {
        const client = await SmtpClient.connect(daemon.port, '127.0.0.1');
        const probe = parseProbe((await client.reply()).text);
        assert.equal(probe.local, `127.0.0.1:${daemon.port}`);
        assert.match(probe.remote, /^127\.0\.0\.1:\d+$/);
        await client.quit();
      }
    } finally {
      await daemon.stop();
    }
  });
});

test('fixedLocal: a wildcard bind has no fixed local end; one address has', () => {
  assert.equal(fixedLocal({ address: '::', family: 'IPv6', port: 25 }), undefined);
  assert.equal(fixedLocal({ address: '0.0.0.0', family: 'IPv4', port: 25 }), undefined);
  assert.equal(fixedLocal({ address: '::ffff:0.0.0.0', family: 'IPv6', port: 25 }), undefined);
  assert.equal(fixedLocal(null), undefined);
  assert.deepEqual(fixedLocal({ address: '192.0.2.7', family: 'IPv4', port: 2525 }), { ip: '192.0.2.7', port: 2525 });
  assert.deepEqual(fixedLocal({ address: '::1', family: 'IPv6', port: 587 }), { ip: '::1', port: 587 });
});

test('--stdio: a whole dialogue piped in, stdin closed at once: every reply comes out', async () => {
  const root = makeRoot({
    config: { plugins: ['accept_all', 'queue/maildir var/maildir'] },
    plugins: { 'accept_all.js': ACCEPT_ALL_JS },
  });
  const daemon = spawnDaemon(['--config', join(root, 'config'), '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'], env: { TCPREMOTEIP: '192.0.2.9' } });
  // The message is sent before 354 arrives: refused (RFC 2920), so only the envelope goes through here.
  daemon.child.stdin!.end('EHLO piped.example.test\r\nMAIL FROM:<sender@example.test>\r\nRCPT TO:<rcpt@example.test>\r\nRSET\r\nQUIT\r\n');
  const { code } = await daemon.waitExit();
  assert.equal(code, 0, daemon.stderr);
  const codes = daemon.stdout
    .split('\r\n')
    .filter((l) => / /.test(l.slice(3, 4)))
    .map((l) => l.slice(0, 3));
  assert.deepEqual(codes, ['220', '250', '250', '250', '250', '221'], daemon.stdout);
});
