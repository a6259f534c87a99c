/**
 * A config directory written the way a qpsmtpd operator writes one (comments, blank lines, an
 * absolute Maildir path, rcpthosts, relayclients, me, databytes) works unchanged: local domains
 * are accepted, other domains refused to clients that may not relay, relay clients may relay, and
 * oversized mail is refused with 552 at MAIL (SIZE=) and after the dot.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SmtpClient, cleanupAll, maildirNew, maildirTmp, makeRoot, message, startDaemon, writeText, type Daemon } from '../helpers/daemon.ts';

after(cleanupAll);

const DATABYTES = 3000;

function operatorConfig(root: string, relayclients: readonly string[]): Record<string, string | string[]> {
  return {
    plugins: [
      '# qpsmtpd plugins',
      '',
      'relay',
      'rcpt_ok',
      '',
      `queue/maildir ${join(root, 'mail', 'Maildir')}`,
    ],
    me: 'mx.example.org',
    rcpthosts: ['# our domains', 'example.org', '.example.org', '', 'other.example.net'],
    relayclients: ['# who may relay', ...relayclients],
    databytes: [`${DATABYTES}`],
    loglevel: '6',
  };
}

/** A root whose config is written after the root exists (it names an absolute path inside it). */
async function start(relayclients: readonly string[]): Promise<{ root: string; daemon: Daemon; maildir: string }> {
  const root = makeRoot();
  const config = operatorConfig(root, relayclients);
  for (const [name, content] of Object.entries(config)) writeText(join(root, 'config', name), content);
  return { root, daemon: await startDaemon(root), maildir: join(root, 'mail', 'Maildir') };
}

describe('an operator-written config: 127.0.0.1 may not relay', () => {
  let daemon: Daemon;
  let maildir: string;
  before(async () => {
    ({ daemon, maildir } = await start(['192.0.2.0/24', '10.1.2.']));
  });

  test('local domains (rcpthosts, .subdomains, me) are accepted and delivered to the absolute Maildir', async () => {
    const client = await SmtpClient.open(daemon.port);
    const reply = await client.sendMail('sender@example.test', ['alice@example.org', 'bob@lists.example.org', 'carol@other.example.net', 'root@mx.example.org', 'Dave@EXAMPLE.ORG'], message('local'));
    assert.equal(reply.code, 250, reply.raw);
    await client.quit();
    const delivered = maildirNew(maildir);
    assert.equal(delivered.length, 1);
    for (const rcpt of ['alice@example.org', 'bob@lists.example.org', 'carol@other.example.net', 'root@mx.example.org', 'Dave@EXAMPLE.ORG']) {
      assert.match(delivered[0]!, new RegExp(`^Delivered-To: ${rcpt.replace(/\./g, '\\.')}$`, 'm'));
    }
    assert.match(delivered[0]!, /by mx\.example\.org \(qpsmtpd\//);
  });

  test('other domains are refused with 550 5.7.1; the local ones of the same transaction still go through', async () => {
    const client = await SmtpClient.open(daemon.port);
    await client.expect('EHLO client.example.test', 250);
    await client.expect('MAIL FROM:<sender@example.test>', 250);
    for (const rcpt of ['someone@example.com', 'x@example.org.evil.test', 'y@notexample.org', 'postmaster@example.net']) {
      const reply = await client.command(`RCPT TO:<${rcpt}>`);
      assert.equal(reply.code, 550, `${rcpt}: ${reply.raw}`);
      assert.match(reply.text, /^5\.7\.1 /);
    }
    await client.expect('RCPT TO:<alice@example.org>', 250);
    await client.expect('DATA', 354);
    client.send('Subject: mixed\r\n\r\nbody\r\n.\r\n');
    assert.equal((await client.reply()).code, 250);
    await client.quit();
    const last = maildirNew(maildir).find((m) => /Subject: mixed/.test(m));
    assert.ok(last);
    assert.deepEqual(last.match(/^Delivered-To: .*$/gm), ['Delivered-To: alice@example.org']);
  });

  test('SIZE= over databytes is refused at MAIL with 552; within it is accepted', async () => {
    const client = await SmtpClient.open(daemon.port);
    const ehlo = await client.expect('EHLO client.example.test', 250);
    assert.ok(ehlo.lines.includes(`SIZE ${DATABYTES}`), ehlo.raw);
    const big = await client.command(`MAIL FROM:<sender@example.test> SIZE=${DATABYTES + 1}`);
    assert.equal(big.code, 552, big.raw);
    await client.expect(`MAIL FROM:<sender@example.test> SIZE=${DATABYTES - 100}`, 250);
    await client.quit();
  });

  test('a message over databytes without SIZE= gets 552 after the dot, nothing is kept, the session goes on', async () => {
    const before = maildirNew(maildir).length;
    const client = await SmtpClient.open(daemon.port);
    const reply = await client.sendMail('sender@example.test', ['alice@example.org'], message('oversized', ('o'.repeat(76) + '\n').repeat(60)));
    assert.equal(reply.code, 552, reply.raw);
    assert.equal(maildirNew(maildir).length, before);
    // The same connection can still send a message that fits.
    const ok = await client.mailTransaction('sender@example.test', ['alice@example.org'], message('fits after oversized'));
    assert.equal(ok.code, 250, ok.raw);
    await client.quit();
    assert.equal(maildirNew(maildir).length, before + 1);
    assert.deepEqual(maildirTmp(maildir), []);
  });
});

describe('an operator-written config: 127.0.0.1 is in relayclients', () => {
  let daemon: Daemon;
  let maildir: string;
  before(async () => {
    ({ daemon, maildir } = await start(['192.0.2.0/24', '127.0.0.1']));
  });

  test('the relay client may send to any domain', async () => {
    const client = await SmtpClient.open(daemon.port);
    const reply = await client.sendMail('sender@example.test', ['someone@example.com', 'alice@example.org'], message('relayed'));
    assert.equal(reply.code, 250, reply.raw);
    await client.quit();
    const delivered = maildirNew(maildir);
    assert.equal(delivered.length, 1);
    assert.match(delivered[0]!, /^Delivered-To: someone@example\.com$/m);
    assert.match(delivered[0]!, /^Delivered-To: alice@example\.org$/m);
  });

  test('databytes holds for relay clients too', async () => {
    const client = await SmtpClient.open(daemon.port);
    await client.expect('EHLO client.example.test', 250);
    assert.equal((await client.command(`MAIL FROM:<sender@example.test> SIZE=${DATABYTES * 10}`)).code, 552);
    await client.quit();
  });

  test('the relay decision is logged', () => {
    assert.match(daemon.stderr, /relay.*pass, octet match in relayclients \(127\.0\.0\.1 matches 127\.0\.0\.1\)/);
  });
});
