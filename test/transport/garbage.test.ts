/**
 * Nothing a client sends brings the daemon down: random bytes, a huge line, NULs, bare LFs, bytes
 * that are not UTF-8, a flood of pipelined commands, half a command and a reset, a reset during
 * DATA. Each abuse gets well-formed replies (or a close), and afterwards the same process still
 * serves a normal session.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ACCEPT_ALL_JS, SmtpClient, cleanupAll, maildirNew, makeRoot, message, startDaemon, waitFor, type Daemon } from '../helpers/daemon.ts';

after(cleanupAll);

/** A small deterministic PRNG (mulberry32), so the "random" bytes are the same on every run. */
function randomBytes(seed: number, length: number): Buffer {
  let a = seed >>> 0;
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) & 0xff;
  }
  return out;
}

/** Everything the server sent on this connection until it closed (we send QUIT at the end). */
async function abuse(port: number, steps: (c: SmtpClient) => Promise<void> | void, finish: 'quit' | 'reset' | 'close' = 'quit'): Promise<string> {
  const client = await SmtpClient.connect(port);
  let received = '';
  client.input.on('data', (s: string) => (received += s));
  try {
    await steps(client);
  } catch (err) {
    client.destroy();
    throw err;
  }
  if (finish === 'reset') client.reset();
  else if (finish === 'close') client.end();
  else client.send('\r\nQUIT\r\n');
  await client.waitClosed(8000).catch(() => {
    client.destroy();
    throw new Error(`the server neither answered QUIT nor closed; got ${JSON.stringify(received.slice(-300))}`);
  });
  return received;
}

/** Every line the server wrote is an SMTP reply line: three digits, then space or hyphen. */
function assertWellFormed(received: string): void {
  if (received === '') return;
  assert.ok(received.endsWith('\r\n'), `ends with CRLF: ${JSON.stringify(received.slice(-80))}`);
  for (const line of received.slice(0, -2).split('\r\n')) assert.match(line, /^[2-5]\d\d[ -]/, `reply line ${JSON.stringify(line)}`);
}

describe('garbage from clients', () => {
  let daemon: Daemon;
  let root: string;
  let port: number;

  before(async () => {
    root = makeRoot({
      config: { plugins: ['accept_all', 'queue/maildir var/maildir'], loglevel: '5', timeout: '30' },
      plugins: { 'accept_all.js': ACCEPT_ALL_JS },
    });
    daemon = await startDaemon(root);
    port = daemon.port;
  });

  test('random bytes', async () => {
    for (const seed of [1, 2, 3]) {
      const received = await abuse(port, (c) => c.send(randomBytes(seed, 32 * 1024)));
      assertWellFormed(received);
      assert.match(received, /^220 /);
    }
  });

  test('a huge line without an end, then a normal command', async () => {
    const received = await abuse(port, async (c) => {
      await c.reply();
      for (let i = 0; i < 32; i++) c.send('A'.repeat(64 * 1024));
      c.send('\r\nNOOP\r\n');
    });
    assertWellFormed(received);
    assert.match(received, /^5\d\d .*(too long|line)/im);
  });

  test('NUL bytes in commands and in addresses', async () => {
    const received = await abuse(port, async (c) => {
      await c.reply();
      c.send('EHLO nul\0host\r\n');
      c.send('\0\0\0\0\r\n');
      c.send('HELO ok.example.test\r\nMAIL FROM:<a\0b@example.test>\r\nRCPT TO:<\0>\r\n');
    });
    assertWellFormed(received);
  });

  test('bare LFs and bare CRs, in commands and in DATA', async () => {
    const received = await abuse(port, async (c) => {
      await c.reply();
      c.send('EHLO lf.example.test\nMAIL FROM:<a@example.test>\n');
      c.send('HELO cr.example.test\rNOOP\r\n');
      // The refusals of the lines above come first (how many is the server's business), then the
      // EHLO capability list: a proper command after the bare line ends is served.
      c.send('EHLO ok.example.test\r\n');
      const refusals: number[] = [];
      for (;;) {
        const reply = await c.reply();
        if (reply.code === 250 && reply.lines.includes('PIPELINING')) break;
        refusals.push(reply.code);
        assert.ok(refusals.length < 10, `too many replies: ${refusals.join(' ')}`);
      }
      assert.ok(refusals.length > 0 && refusals.every((code) => code >= 500), `bare line ends refused: ${refusals.join(' ')}`);
      await c.expect('MAIL FROM:<a@example.test>', 250);
      await c.expect('RCPT TO:<b@example.test>', 250);
      await c.expect('DATA', 354);
      // Neither `<LF>.<LF>` nor `<LF>.<CRLF>` ends the message (SMTP smuggling); `<CRLF>.<CRLF>` does.
      c.send('Subject: bare\n\nline one\nline two\r\n.\n.\r\nstill the message\r\n.\r\n');
      const reply = await c.reply();
      assert.ok(reply.code >= 500, `a message with bare LFs is refused: ${reply.raw}`);
    });
    assertWellFormed(received);
  });

  test('bytes that are not UTF-8, and control characters', async () => {
    const received = await abuse(port, async (c) => {
      await c.reply();
      c.send(Buffer.from([0x45, 0x48, 0x4c, 0x4f, 0x20, 0xff, 0xfe, 0xc3, 0x28, 0x0d, 0x0a]));
      c.send(Buffer.from('MAIL FROM:<\x1b[31m@example.test>\r\nVRFY \x07\x08\r\n'));
      c.send(Buffer.from([0xc0, 0x80, 0x0d, 0x0a]));
    });
    assertWellFormed(received);
  });

  test('a flood of pipelined commands that the client never reads, then a reset', async () => {
    await abuse(
      port,
      async (c) => {
        let replies = 0;
        c.input.on('data', (chunk: string) => (replies += chunk.length));
        c.send('EHLO flood.example.test\r\n' + 'NOOP\r\nRSET\r\nMAIL FROM:<a@example.test>\r\n'.repeat(20_000));
        // Reset while the server is in the middle of answering.
        await waitFor(() => replies > 64 * 1024, 'the server to answer part of the flood');
      },
      'reset',
    );
  });

  test('half a command, then a reset connection; a close before the greeting', async () => {
    await abuse(port, (c) => c.send('MAIL FROM:<half@exa'), 'reset');
    await abuse(port, () => undefined, 'reset');
    await abuse(port, () => undefined, 'close');
  });

  test('a reset in the middle of DATA keeps nothing of the message', async () => {
    await abuse(
      port,
      async (c) => {
        await c.reply();
        await c.expect('EHLO reset.example.test', 250);
        await c.expect('MAIL FROM:<a@example.test>', 250);
        await c.expect('RCPT TO:<b@example.test>', 250);
        await c.expect('DATA', 354);
        c.send('Subject: cut off\r\n\r\n' + 'half a message\r\n'.repeat(1000));
        await new Promise((r) => setImmediate(r));
      },
      'reset',
    );
  });

  test('a 4 MB message line without a line end, inside DATA', async () => {
    const received = await abuse(port, async (c) => {
      await c.reply();
      await c.expect('EHLO longdata.example.test', 250);
      await c.expect('MAIL FROM:<a@example.test>', 250);
      await c.expect('RCPT TO:<b@example.test>', 250);
      await c.expect('DATA', 354);
      c.send('Subject: one long line\r\n\r\n');
      for (let i = 0; i < 64; i++) c.send('L'.repeat(64 * 1024));
      c.send('\r\n.\r\n');
      const reply = await c.reply(15_000);
      // RFC 5322 allows 998 characters a line; whether the server takes it or refuses it, it answers.
      assert.ok(reply.code === 250 || reply.code >= 500, reply.raw);
    });
    assertWellFormed(received);
  });

  test('command verbs in odd shapes', async () => {
    const received = await abuse(port, async (c) => {
      await c.reply();
      for (const line of ['', ' ', 'EHLO', 'MAIL', 'MAIL FROM:', 'MAIL FROM:<', 'RCPT TO:<>', 'DATA', 'AUTH', 'AUTH PLAIN =', 'STARTTLS', 'BDAT 10', 'BDAT -1 LAST', 'X'.repeat(600), 'EHLO ' + 'a.'.repeat(300)]) {
        c.send(line + '\r\n');
      }
    });
    assertWellFormed(received);
  });

  test('afterwards the same process serves a normal session, and logged no internal error', async () => {
    assert.ok(daemon.running, daemon.stderr);
    const client = await SmtpClient.open(port);
    const reply = await client.sendMail('sender@example.test', ['rcpt@example.test'], message('after the garbage'));
    assert.equal(reply.code, 250, reply.raw);
    await client.quit();
    const delivered = maildirNew(join(root, 'var', 'maildir'));
    assert.ok(delivered.some((m) => m.includes('Subject: after the garbage')));
    assert.ok(delivered.every((m) => /Subject: (after the garbage|one long line)/.test(m)), 'nothing of the garbage was delivered');
    assert.equal(daemon.listening().length, 1);
    assert.equal(daemon.listening()[0]!.pid, daemon.pid);
    assert.doesNotMatch(daemon.stderr, /session failed|uncaught|unhandled|TypeError|RangeError/i);
    await waitFor(() => daemon.running, 'still running');
    const { code } = await daemon.stop();
    assert.equal(code, 0, daemon.stderr);
  });
});
