/**
 * SIGTERM: stop accepting, finish the message in flight (250, in the Maildir), 421 to idle
 * sessions, exit 0 within the grace period; with a client that never finishes, exit anyway when
 * the grace period is over, keeping nothing partial.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ACCEPT_ALL_JS, SmtpClient, cleanupAll, maildirNew, maildirTmp, makeRoot, startDaemon, waitFor } from '../helpers/daemon.ts';

after(cleanupAll);

function root(): string {
  return makeRoot({
    config: { plugins: ['accept_all', 'queue/maildir var/maildir'], spool_dir: 'var/spool', size_threshold: '10000' },
    plugins: { 'accept_all.js': ACCEPT_ALL_JS },
  });
}

/** Connect; resolves with the error code when the connection is refused. */
async function connectError(port: number): Promise<string> {
  try {
    const c = await SmtpClient.connect(port);
    c.destroy();
    return 'connected';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

test('SIGTERM with a message in flight: it is finished and delivered, idle sessions get 421, exit 0', async () => {
  const dir = root();
  const daemon = await startDaemon(dir, ['--grace', '20']);
  const port = daemon.port;

  const sending = await SmtpClient.open(port);
  await sending.expect('EHLO sending.example.test', 250);
  await sending.expect('MAIL FROM:<sender@example.test>', 250);
  await sending.expect('RCPT TO:<rcpt@example.test>', 250);
  await sending.expect('DATA', 354);
  sending.send('Subject: in flight at SIGTERM\r\n\r\nfirst part\r\n');

  const idle = await SmtpClient.open(port);
  await idle.expect('EHLO idle.example.test', 250);

  const sentAt = Date.now();
  daemon.signal('SIGTERM');

  // The idle session is told at once.
  const told = await idle.reply();
  assert.equal(told.code, 421, told.raw);
  await idle.waitClosed();

  // Nobody new gets in.
  assert.equal(await connectError(port), 'ECONNREFUSED');

  // The message in flight is received to its end, queued and acknowledged.
  assert.ok(daemon.running, 'still running while a message is in flight');
  sending.send('second part\r\n.\r\n');
  const queued = await sending.reply();
  assert.equal(queued.code, 250, queued.raw);
  const after = await sending.replyOrClose();
  if (after !== 'closed') assert.equal(after.code, 421, after.raw);
  await sending.waitClosed();

  const { code, signal } = await daemon.waitExit();
  assert.equal(signal, null);
  assert.equal(code, 0, daemon.stderr);
  assert.ok(Date.now() - sentAt < 10_000, 'well within the grace period');

  const delivered = maildirNew(join(dir, 'var', 'maildir'));
  assert.equal(delivered.length, 1);
  assert.match(delivered[0]!, /Subject: in flight at SIGTERM\n\nfirst part\nsecond part\n$/);
});

test('SIGINT is a graceful stop too', async () => {
  const daemon = await startDaemon(root());
  const idle = await SmtpClient.open(daemon.port);
  daemon.signal('SIGINT');
  assert.equal((await idle.reply()).code, 421);
  const { code } = await daemon.waitExit();
  assert.equal(code, 0, daemon.stderr);
});

test('--grace 1 with a client that never finishes: exit 0 after about 1 s, nothing partial kept', async () => {
  const dir = root();
  const daemon = await startDaemon(dir, ['--grace', '1']);
  const stuck = await SmtpClient.open(daemon.port);
  await stuck.expect('EHLO stuck.example.test', 250);
  await stuck.expect('MAIL FROM:<sender@example.test>', 250);
  await stuck.expect('RCPT TO:<rcpt@example.test>', 250);
  await stuck.expect('DATA', 354);
  // Over size_threshold, so that the message is being spooled to disk when the daemon gives up.
  stuck.send('Subject: never finished\r\n\r\n' + ('x'.repeat(998) + '\r\n').repeat(40));
  await waitFor(() => readdirSync(join(dir, 'var', 'spool')).length > 0, 'the spool file');

  const sentAt = Date.now();
  daemon.signal('SIGTERM');
  const { code, signal } = await daemon.waitExit();
  const took = Date.now() - sentAt;
  assert.equal(signal, null);
  assert.equal(code, 0, daemon.stderr);
  assert.ok(took >= 900, `waited for the grace period (${took} ms)`);
  assert.ok(took < 4000, `did not wait much longer than the grace period (${took} ms)`);

  await stuck.waitClosed();
  const maildir = join(dir, 'var', 'maildir');
  assert.deepEqual(maildirNew(maildir), []);
  assert.deepEqual(maildirTmp(maildir), []);
  assert.deepEqual(readdirSync(join(dir, 'var', 'spool')), [], 'the spooled part is removed');
});
