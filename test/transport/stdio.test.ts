/**
 * `--stdio`: one session on stdin/stdout, as under tcpserver (the client's address from the TCP*
 * variables), inetd or systemd Accept=yes (a connected socket as fd 0 and 1: the address comes
 * from the socket).
 */
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ACCEPT_ALL_JS, PROBE_JS, SmtpClient, cleanupAll, maildirNew, makeRoot, message, parseProbe, spawnDaemon } from '../helpers/daemon.ts';

after(cleanupAll);

function stdioRoot(): string {
  return makeRoot({
    config: { plugins: ['probe', 'accept_all', 'queue/maildir var/maildir'], me: 'mx.example.test' },
    plugins: { 'probe.js': PROBE_JS, 'accept_all.js': ACCEPT_ALL_JS },
  });
}

test('--stdio over pipes: the client address comes from TCPREMOTEIP/TCPREMOTEPORT', async () => {
  const root = stdioRoot();
  const daemon = spawnDaemon(['--config', join(root, 'config'), '--stdio'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    session: true,
    env: { TCPREMOTEIP: '198.51.100.7', TCPREMOTEPORT: '4242', TCPLOCALIP: '203.0.113.25', TCPLOCALPORT: '25' },
  });
  const client = SmtpClient.overStreams(daemon.child.stdout!, daemon.child.stdin!);
  const greeting = await client.reply();
  assert.equal(greeting.code, 220, 'the first thing on stdout is the greeting (logs go to stderr)');
  assert.deepEqual(parseProbe(greeting.text), { pid: daemon.pid, remote: '198.51.100.7:4242', local: '203.0.113.25:25' });

  const reply = await client.sendMail('sender@example.test', ['rcpt@example.test'], message('over stdio'));
  assert.equal(reply.code, 250, reply.raw);
  await client.quit();
  const { code, signal } = await daemon.waitExit();
  assert.equal(signal, null);
  assert.equal(code, 0, daemon.stderr);

  const delivered = maildirNew(join(root, 'var', 'maildir'));
  assert.equal(delivered.length, 1);
  assert.match(delivered[0]!, /^Received: from client\.example\.test \(\[198\.51\.100\.7\]\)$/m);
  assert.match(delivered[0]!, /^\s+by mx\.example\.test \(qpsmtpd\/[^)]+\) with ESMTP id /m);
  assert.match(delivered[0]!, /^X-Probe: pid=\d+ remote=198\.51\.100\.7:4242 local=203\.0\.113\.25:25$/m);
  assert.match(delivered[0]!, /^Subject: over stdio$/m);
});

test('--stdio: the client closing stdin ends the session and the process (exit 0)', async () => {
  const root = stdioRoot();
  const daemon = spawnDaemon(['--config', join(root, 'config'), '--stdio'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    session: true,
    env: { TCPREMOTEIP: '198.51.100.8', TCPREMOTEPORT: '1' },
  });
  const client = SmtpClient.overStreams(daemon.child.stdout!, daemon.child.stdin!);
  assert.equal((await client.reply()).code, 220);
  await client.expect('EHLO client.example.test', 250);
  await client.expect('MAIL FROM:<sender@example.test>', 250);
  client.end();
  const { code } = await daemon.waitExit();
  assert.equal(code, 0, daemon.stderr);
  assert.equal(maildirNew(join(root, 'var', 'maildir')).length, 0);
});

test('--stdio on a connected socket (inetd, systemd Accept=yes): the address comes from the socket', async () => {
  const root = stdioRoot();
  // A local server hands its accepted socket to the daemon as fd 0 and 1, as inetd does.
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const clientSocket = connect({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve) => clientSocket.once('connect', () => resolve()));
  const serverSide = await accepted;
  server.close();
  const clientPort = clientSocket.localPort!;

  const daemon = spawnDaemon(['--config', join(root, 'config'), '--stdio'], { stdio: [serverSide, serverSide, 'pipe'], session: true });
  // The daemon has its own copy of the descriptor now; ours must not keep the connection open.
  serverSide.destroy();

  const client = SmtpClient.overSocket(clientSocket);
  const greeting = await client.reply();
  assert.equal(greeting.code, 220, greeting.raw);
  assert.deepEqual(parseProbe(greeting.text), {
    pid: daemon.pid,
    remote: `127.0.0.1:${clientPort}`,
    local: `127.0.0.1:${port}`,
  });
  const reply = await client.sendMail('sender@example.test', ['rcpt@example.test'], message('over an inherited socket'));
  assert.equal(reply.code, 250, reply.raw);
  await client.quit();
  const { code } = await daemon.waitExit();
  assert.equal(code, 0, daemon.stderr);

  const delivered = maildirNew(join(root, 'var', 'maildir'));
  assert.equal(delivered.length, 1);
  assert.match(delivered[0]!, /^Received: from client\.example\.test \(\[127\.0\.0\.1\]\)$/m);
  assert.match(delivered[0]!, new RegExp(`^X-Probe: pid=\\d+ remote=127\\.0\\.0\\.1:${clientPort} local=127\\.0\\.0\\.1:${port}$`, 'm'));
});

test('--stdio: SIGTERM during DATA: the message is finished and delivered, then 421, exit 0', async () => {
  const root = stdioRoot();
  const daemon = spawnDaemon(['--config', join(root, 'config'), '--stdio'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    session: true,
    env: { TCPREMOTEIP: '198.51.100.7', TCPREMOTEPORT: '4242' },
  });
  const client = SmtpClient.overStreams(daemon.child.stdout!, daemon.child.stdin!);
  assert.equal((await client.reply()).code, 220);
  await client.expect('EHLO client.example.test', 250);
  await client.expect('MAIL FROM:<sender@example.test>', 250);
  await client.expect('RCPT TO:<rcpt@example.test>', 250);
  await client.expect('DATA', 354);
  client.send('Subject: stdio at SIGTERM\r\n\r\nfirst part\r\n');
  const from = daemon.stderr.length;
  daemon.signal('SIGTERM');
  await daemon.waitForLog(/stopping/i, from);
  client.send('second part\r\n.\r\n');
  assert.equal((await client.reply()).code, 250);
  const next = await client.replyOrClose();
  if (next !== 'closed') assert.equal(next.code, 421);
  const { code, signal } = await daemon.waitExit();
  assert.equal(signal, null);
  assert.equal(code, 0, daemon.stderr);
  const delivered = maildirNew(join(root, 'var', 'maildir'));
  assert.equal(delivered.length, 1);
  assert.match(delivered[0]!, /^Subject: stdio at SIGTERM$/m);
  assert.match(delivered[0]!, /\n\nfirst part\nsecond part\n$/);
});

test('--stdio: console.log from a plugin or a library goes to stderr, not into the SMTP session', async () => {
  const root = makeRoot({
    config: { plugins: ['chatty', 'accept_all', 'queue/maildir var/maildir'], me: 'mx.example.test' },
    plugins: {
      'chatty.js': `import { Plugin, DECLINED } from 'qpsmtpd';\nexport default class Chatty extends Plugin {\n  hook_connect() { console.log('TOTAL 10 EXPECTING 20'); return DECLINED; }\n  hook_helo() { console.info('helo seen'); return DECLINED; }\n}\n`,
      'accept_all.js': ACCEPT_ALL_JS,
    },
  });
  const daemon = spawnDaemon(['--config', join(root, 'config'), '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'], session: true, env: { TCPREMOTEIP: '198.51.100.9', TCPREMOTEPORT: '2' } });
  const client = SmtpClient.overStreams(daemon.child.stdout!, daemon.child.stdin!);
  assert.equal((await client.reply()).code, 220);
  await client.expect('HELO client.example.test', 250);
  await client.quit();
  await daemon.waitExit();
  assert.match(daemon.stderr, /TOTAL 10 EXPECTING 20/);
  assert.match(daemon.stderr, /helo seen/);
});
