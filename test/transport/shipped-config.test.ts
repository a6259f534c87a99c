/**
 * The shipped config/ (copied into a temporary root, so nothing is written in the project) with a
 * real, independent SMTP client: Python's smtplib. Mail for postmaster@localhost lands in
 * var/maildir/new/; another domain is refused (550) to a client that may not relay; a message over
 * databytes gets 552, announced (SIZE=) or not.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PYTHON, cleanupAll, maildirNew, maildirTmp, makeRoot, startDaemon, type Daemon } from '../helpers/daemon.ts';

after(cleanupAll);

/** Runs the attempts given as JSON on argv[2] against 127.0.0.1:argv[1]; prints the outcomes as JSON. */
const CLIENT = String.raw`
import json, smtplib, sys
port = int(sys.argv[1])
out = []
def text(b):
    return b.decode('utf-8', 'replace') if isinstance(b, bytes) else str(b)
for a in json.loads(sys.argv[2]):
    try:
        with smtplib.SMTP('127.0.0.1', port, local_hostname='client.example.test', timeout=10) as s:
            s.ehlo()
            size = s.has_extn('size')
            if a.get('hide_size'):
                s.esmtp_features.pop('size', None)
            refused = s.sendmail(a['from'], a['to'], a['msg'])
            out.append({'ok': True, 'size_advertised': size, 'refused': {k: [v[0], text(v[1])] for k, v in refused.items()}})
    except smtplib.SMTPRecipientsRefused as e:
        out.append({'ok': False, 'stage': 'rcpt', 'codes': {k: [v[0], text(v[1])] for k, v in e.recipients.items()}})
    except smtplib.SMTPSenderRefused as e:
        out.append({'ok': False, 'stage': 'mail', 'code': e.smtp_code, 'text': text(e.smtp_error)})
    except smtplib.SMTPDataError as e:
        out.append({'ok': False, 'stage': 'data', 'code': e.smtp_code, 'text': text(e.smtp_error)})
print(json.dumps(out))
`;

interface Attempt {
  readonly from: string;
  readonly to: readonly string[];
  readonly msg: string;
  readonly hide_size?: boolean;
}

type Outcome =
  | { ok: true; size_advertised: boolean; refused: Record<string, [number, string]> }
  | { ok: false; stage: 'rcpt'; codes: Record<string, [number, string]> }
  | { ok: false; stage: 'mail' | 'data'; code: number; text: string };

function smtplib(port: number, attempts: readonly Attempt[]): Promise<Outcome[]> {
  return new Promise((resolve, reject) => {
    execFile(PYTHON, ['-c', CLIENT, String(port), JSON.stringify(attempts)], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`python failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as Outcome[]);
    });
  });
}

function mail(subject: string, body = 'Hello from smtplib.\n'): string {
  return `From: sender@example.test\r\nTo: postmaster@localhost\r\nSubject: ${subject}\r\nDate: ${new Date().toUTCString()}\r\n\r\n${body}`;
}

describe('the shipped config', () => {
  let root: string;
  let daemon: Daemon;
  let outcomes: Outcome[];

  before(async () => {
    // The shipped files as they are, but a small databytes for the 552 cases.
    root = makeRoot({ shipped: true, config: { loglevel: '6', databytes: '4000' } });
    daemon = await startDaemon(root);
    outcomes = await smtplib(daemon.port, [
      { from: 'sender@example.test', to: ['postmaster@localhost'], msg: mail('shipped config works') },
      { from: 'sender@example.test', to: ['someone@example.com'], msg: mail('relay attempt') },
      { from: 'sender@example.test', to: ['postmaster@localhost'], msg: mail('too big, announced', 'x'.repeat(70) + '\r\n'.repeat(1) + ('y'.repeat(70) + '\r\n').repeat(80)) },
      { from: 'sender@example.test', to: ['postmaster@localhost'], msg: mail('too big, unannounced', ('z'.repeat(70) + '\r\n').repeat(80)), hide_size: true },
    ]);
  });

  test('a message for postmaster@localhost is delivered into var/maildir/new/ of the root', async () => {
    const first = outcomes[0]!;
    assert.deepEqual(first, { ok: true, size_advertised: true, refused: {} });
    const delivered = maildirNew(join(root, 'var', 'maildir'));
    assert.equal(delivered.length, 1, 'exactly one message delivered');
    const text = delivered[0]!;
    assert.match(text, /^Return-Path: <sender@example\.test>\n/);
    assert.match(text, /^Delivered-To: postmaster@localhost$/m);
    assert.match(text, /^Received: from client\.example\.test \(\[127\.0\.0\.1\]\)/m);
    assert.match(text, /^Subject: shipped config works$/m);
    assert.match(text, /\n\nHello from smtplib\.\n$/);
    assert.deepEqual(maildirTmp(join(root, 'var', 'maildir')), []);
  });

  test('a recipient at another domain is refused with 550 to a client that may not relay', () => {
    const refused = outcomes[1]!;
    assert.equal(refused.ok, false);
    assert.equal(refused.ok === false && refused.stage, 'rcpt');
    const codes = refused.ok === false && refused.stage === 'rcpt' ? refused.codes : {};
    assert.equal(codes['someone@example.com']?.[0], 550);
    assert.match(codes['someone@example.com']?.[1] ?? '', /^5\.7\.1 /);
  });

  test('a message over databytes gets 552: at MAIL when SIZE= says so, after the dot when not', () => {
    const announced = outcomes[2]!;
    assert.deepEqual(announced.ok === false && announced.stage === 'mail' ? [announced.code] : announced, [552]);
    const unannounced = outcomes[3]!;
    assert.deepEqual(unannounced.ok === false && unannounced.stage === 'data' ? [unannounced.code] : unannounced, [552]);
    // Neither reached the Maildir.
    assert.equal(maildirNew(join(root, 'var', 'maildir')).length, 1);
  });

  test('the daemon is still serving and stops with exit 0 on SIGTERM', async () => {
    assert.ok(daemon.running);
    const { code, signal } = await daemon.stop();
    assert.equal(signal, null);
    assert.equal(code, 0, daemon.stderr);
  });
});
