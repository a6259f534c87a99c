import { makeRoot, startDaemon, SmtpClient, cleanupAll, maildirNew } from '../helpers/daemon.ts';
import { join } from 'node:path';
const t0 = Date.now();
const root = makeRoot({ config: { plugins: ['relay', 'rcpt_ok', 'queue/maildir var/maildir'], rcpthosts: 'example.test', loglevel: '6' } });
const d = await startDaemon(root, [], { env: { QPSMTPD_FAULT_QUEUE_WRITE: 'EIO' } });
console.log('start ms', Date.now() - t0);
const c = await SmtpClient.open(d.port);
await c.expect('EHLO x', 250);
for (const r of ['<u%host@example.test>', '<host!u@example.test>', '<"u@other.example"@example.test>', '<@a.example:u@example.test>', '<a@b.example@example.test>', '<u@[192.0.2.99]>', '<u@other.example>', '<u@example.test>', '<postmaster>', '<u@sub.example.test>']) {
  if (r === '<u%host@example.test>') await c.expect('MAIL FROM:<a@b.example>', 250);
  const rep = await c.command('RCPT TO:' + r);
  console.log(r, rep.raw.trim());
}
c.send('DATA\r\n'); console.log((await c.reply()).raw);
c.send('Subject: x\r\n\r\nhello\n.\nMAIL FROM:<evil@x>\r\n.\r\nNOOP\r\n'); console.log((await c.reply()).raw, (await c.reply()).raw);
await c.quit();
console.log(maildirNew(join(root, 'var/maildir')));
await cleanupAll();
