/** `--listen` given twice: one process, two listening sockets, both serve sessions. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ACCEPT_ALL_JS, PROBE_JS, SmtpClient, cleanupAll, maildirNew, makeRoot, message, parseProbe, runCli, startDaemon } from '../helpers/daemon.ts';

after(cleanupAll);

test('--listen repeated: two listeners in one process, both serve', async () => {
  const root = makeRoot({
    config: { plugins: ['probe', 'accept_all', 'queue/maildir var/maildir'] },
    plugins: { 'probe.js': PROBE_JS, 'accept_all.js': ACCEPT_ALL_JS },
  });
  const daemon = await startDaemon(root, ['--listen', '127.0.0.1:0', '--listen', '127.0.0.2:0']);
  const listening = daemon.listening();
  assert.equal(listening.length, 2, daemon.stderr);
  assert.deepEqual(
    listening.map((l) => [l.pid, l.host]),
    [
      [daemon.pid, '127.0.0.1'],
      [daemon.pid, '127.0.0.2'],
    ],
  );
  assert.ok(listening.every((l) => l.port > 0));

  for (const [i, l] of listening.entries()) {
    const client = await SmtpClient.connect(l.port, l.host);
    const greeting = await client.reply();
    assert.equal(greeting.code, 220);
    const probe = parseProbe(greeting.text);
    assert.equal(probe.pid, daemon.pid);
    assert.equal(probe.local, `${l.host}:${l.port}`, 'the session knows which listener it came in on');
    const reply = await client.sendMail('sender@example.test', ['rcpt@example.test'], message(`via listener ${i}`));
    assert.equal(reply.code, 250, reply.raw);
    await client.quit();
  }
  const delivered = maildirNew(join(root, 'var', 'maildir'));
  assert.equal(delivered.length, 2);
  assert.ok(delivered.some((m) => m.includes('Subject: via listener 0') && m.includes(`local=127.0.0.1:${listening[0]!.port}`)));
  assert.ok(delivered.some((m) => m.includes('Subject: via listener 1') && m.includes(`local=127.0.0.2:${listening[1]!.port}`)));

  const { code } = await daemon.stop();
  assert.equal(code, 0);
});

test('a --listen address that cannot be bound: exit non-zero, nothing left listening', async () => {
  const root = makeRoot({ config: { plugins: ['accept_all'] }, plugins: { 'accept_all.js': ACCEPT_ALL_JS } });
  const first = await startDaemon(root);
  const taken = first.port;
  const r = await runCli(['--config', join(root, 'config'), '--listen', '127.0.0.1:0', '--listen', `127.0.0.1:${taken}`]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${taken}: .*EADDRINUSE`));
  assert.doesNotMatch(r.stderr, /^\s+at /m);
  // The first daemon still owns its port.
  const client = await SmtpClient.open(taken);
  await client.quit();
});
