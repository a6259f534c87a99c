/**
 * An operator's qpsmtpd config/plugins carries over: the line-up of qpsmtpd 1.00's
 * config.sample/plugins (old names, arguments and all) passes `qpsmtpd check` and the daemon
 * serves mail with it. Left out are the lines whose plugins come with other work: ident/geoip
 * (GeoIP databases), resolvable_fromhost, rhsbl and dnsbl (DNS), domainkeys (withdrawn, replaced
 * by dkim), virus/klez_filter, spamassassin and dspam (scanners).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { SmtpClient, cleanupAll, maildirNew, makeRoot, runCli, startDaemon, waitFor } from '../helpers/daemon.ts';

after(cleanupAll);

const SAMPLE_LINE_UP = [
  'hosts_allow',
  'dont_require_anglebrackets',
  'quit_fortune',
  'check_earlytalker',
  'count_unrecognized_commands 4',
  'relay',
  'badmailfrom',
  'badrcptto',
  'helo',
  'auth/auth_flat_file',
  'auth/authdeny',
  'rcpt_ok',
  'headers days 5 reject_type temp require From,Date',
  'naughty',
  'queue/maildir var/maildir',
];

function sampleRoot(): string {
  return makeRoot({
    config: {
      plugins: SAMPLE_LINE_UP,
      me: 'mx.example.com',
      rcpthosts: ['example.com'],
      badmailfrom: ['spammer@example.net'],
      badrcptto: ['nobody@example.com'],
      flat_auth_pw: ['user@example.com:secret'],
    },
  });
}

describe("qpsmtpd 1.00's config.sample/plugins", () => {
  test('passes qpsmtpd check, each plugin on the hooks it serves', async () => {
    const root = sampleRoot();
    const r = await runCli(['check', '--config', join(root, 'config')]);
    assert.equal(r.code, 0, r.stderr);
    const hooks = new Map(
      r.stdout
        .trim()
        .split('\n')
        .slice(1)
        .map((line) => line.split(': ') as [string, string]),
    );
    assert.equal(hooks.get('pre-connection'), 'hosts_allow');
    assert.match(hooks.get('connect') ?? '', /check_earlytalker.*relay/);
    assert.match(hooks.get('mail') ?? '', /badmailfrom/);
    assert.match(hooks.get('rcpt') ?? '', /badrcptto.*rcpt_ok/);
    assert.match(hooks.get('data_post') ?? '', /headers/);
    assert.equal(hooks.get('queue'), 'queue/maildir');
    assert.match(hooks.get('quit') ?? '', /quit_fortune/);
    assert.match(hooks.get('auth-plain') ?? hooks.get('auth') ?? '', /auth_flat_file/);
  });

  test('serves mail: a good message is delivered, listed senders and recipients are refused', async () => {
    const root = sampleRoot();
    const daemon = await startDaemon(root);
    try {
      // check_earlytalker holds the greeting back a second and listens for a talker meanwhile.
      const client = await SmtpClient.open(daemon.port);
      await client.expect('EHLO client.example.org', 250);
      await client.expect('MAIL FROM:<spammer@example.net>', 550);
      await client.expect('RSET', 250);
      await client.expect('MAIL FROM:sender@example.org', 250); // dont_require_anglebrackets
      await client.expect('RCPT TO:<nobody@example.com>', 550);
      await client.expect('RCPT TO:<user@example.net>', 550); // not ours, and we are no relay for it
      await client.expect('RCPT TO:<user@example.com>', 250);
      await client.expect('DATA', 354);
      const date = new Date().toUTCString().replace('GMT', '+0000');
      client.send(`From: <sender@example.org>\r\nTo: <user@example.com>\r\nDate: ${date}\r\nSubject: sample\r\n\r\nHello from the sample line-up.\r\n.\r\n`);
      assert.equal((await client.reply()).code, 250);

      // headers: no Date header is a temporary refusal (reject_type temp).
      await client.expect('MAIL FROM:<sender@example.org>', 250);
      await client.expect('RCPT TO:<user@example.com>', 250);
      await client.expect('DATA', 354);
      client.send('From: <sender@example.org>\r\nSubject: no date\r\n\r\nHello.\r\n.\r\n');
      const undated = await client.reply();
      assert.equal(Math.floor(undated.code / 100), 4, undated.lines.join('\n'));

      const bye = await client.command('QUIT');
      assert.equal(bye.code, 221);
      const delivered = await waitFor(() => maildirNew(join(root, 'var', 'maildir')).filter((m) => m.includes('sample line-up')), 'the delivered message');
      assert.equal(delivered.length, 1);
      assert.match(delivered[0]!, /^Received: from client\.example\.org/m);
    } finally {
      await daemon.stop();
    }
  });
});
