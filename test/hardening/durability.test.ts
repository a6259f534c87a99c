/**
 * Durability and failure, over real TCP against the real daemon:
 *   - a queue write that fails (the maildir plugin's fault-injection seam, QPSMTPD_FAULT_QUEUE_WRITE)
 *     is a 4xx, never 250, and leaves nothing in new/ or tmp/;
 *   - a real full disk (a 256 KiB tmpfs as the Maildir): 4xx, nothing in new/, tmp/ cleaned, and
 *     the next small message is accepted; a full spool disk: 4xx, nothing kept;
 *   - a connection lost in the middle of DATA leaves nothing anywhere;
 *   - kill -9 at random moments during a stream of messages never leaves a partial file in new/,
 *     and every message acknowledged with 250 is there;
 *   - a plugin that throws gets 451 for that command, and the daemon goes on.
 * (SIGTERM with a message in flight: test/transport/shutdown.test.ts.)
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cleanupAll, makeRoot, startDaemon, waitFor, type Daemon, type SpawnDaemonOptions } from '../helpers/daemon.ts';
import { RawSession, bodyOf, closeAllRaw, maildirFiles, maildirState, pause, prng } from './support.ts';

const mounts: string[] = [];

after(async () => {
  closeAllRaw();
  // Unmount before the folders are removed (the daemons are stopped by then; lazily if one is not).
  for (const dir of mounts) {
    try {
      execFileSync('umount', [dir], { stdio: 'pipe' });
    } catch {
      try {
        execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
      } catch (err) {
        console.error(`umount ${dir}: ${(err as Error).message}`);
      }
    }
  }
  await cleanupAll();
});

const BASE_PLUGINS = ['relay', 'rcpt_ok', 'queue/maildir var/maildir'];

interface Server {
  readonly daemon: Daemon;
  readonly root: string;
  readonly maildir: string;
  readonly spool: string;
}

/** The daemon with relay, rcpt_ok (example.test), queue/maildir into var/maildir, spooling past 16 KiB. */
async function server(options: { config?: Record<string, string | readonly string[]>; plugins?: Record<string, string>; env?: SpawnDaemonOptions['env']; setup?: (root: string) => void } = {}): Promise<Server> {
  const root = makeRoot({
    config: { plugins: BASE_PLUGINS, rcpthosts: 'example.test', loglevel: '5', spool_dir: 'var/spool', size_threshold: '16384', ...options.config },
    ...(options.plugins ? { plugins: options.plugins } : {}),
  });
  options.setup?.(root);
  const daemon = await startDaemon(root, [], options.env ? { env: options.env } : {});
  return { daemon, root, maildir: join(root, 'var', 'maildir'), spool: join(root, 'var', 'spool') };
}

async function greeted(port: number): Promise<RawSession> {
  const s = await RawSession.open(port);
  assert.equal((await s.reply()).code, 220);
  await s.expect('EHLO client.example', 250);
  return s;
}

/** `size` bytes of message (CRLF lines), ending with a unique trailer line. */
function messageText(id: string, size: number): string {
  const line = `${id} `.padEnd(76, 'x') + '\r\n';
  const lines = Math.max(0, Math.floor(size / line.length));
  return `Subject: ${id}\r\n\r\n${line.repeat(lines)}trailer of ${id}\r\n`;
}

/** One transaction; resolves with the reply after the dot. */
async function send(s: RawSession, id: string, size: number, rcpts: readonly string[] = ['u@example.test']): Promise<{ code: number; text: string }> {
  await s.expect(`MAIL FROM:<${id}@sender.example>`, 250);
  for (const r of rcpts) await s.expect(`RCPT TO:<${r}>`, 250);
  await s.expect('DATA', 354);
  await s.write(messageText(id, size) + '.\r\n');
  return s.reply(15_000);
}

/** Files anywhere under `dir` (the spool). */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => e.name);
}

describe('a queue write that fails (QPSMTPD_FAULT_QUEUE_WRITE)', () => {
  for (const [fault, size, expected] of [
    ['EIO', 2_000, /^4\.3\.0 /],
    ['EIO:after=5000', 200_000, /^4\.3\.0 /],
    ['ENOSPC', 2_000, /^4\.3\.1 /],
    ['ENOSPC:after=70000', 300_000, /^4\.3\.1 /],
  ] as const) {
    test(`${fault}, a message of ${size} bytes: 452, nothing in new/ or tmp/, the session goes on`, async () => {
      const srv = await server({ env: { QPSMTPD_FAULT_QUEUE_WRITE: fault } });
      const s = await greeted(srv.daemon.port);
      const r = await send(s, 'fault', size);
      assert.equal(r.code, 452, r.text);
      assert.match(r.text, expected);
      assert.doesNotMatch(r.text, /injected|EIO|ENOSPC/, 'the cause is logged, not told');
      await s.expect('NOOP', 250);
      await s.expect('QUIT', 221);
      assert.deepEqual(maildirState(srv.maildir), { new: [], tmp: [] });
      await waitFor(() => filesUnder(srv.spool).length === 0, 'the spool to be emptied');
      await srv.daemon.waitForLog(new RegExp(`delivery into .* failed, nothing delivered: ${fault.split(':')[0]}`));
      await srv.daemon.stop();
    });
  }

  test('with one file per recipient, the second copy failing takes the first one back', async () => {
    // var/maildir/blocked is a file, so the Maildir of blocked@example.test cannot be made.
    const srv = await server({
      config: { plugins: ['relay', 'rcpt_ok', 'queue/maildir var/maildir %l'] },
      setup: (root) => {
        mkdirSync(join(root, 'var', 'maildir'), { recursive: true });
        writeFileSync(join(root, 'var', 'maildir', 'blocked'), 'not a directory\n');
      },
    });
    const s = await greeted(srv.daemon.port);
    const r = await send(s, 'two-copies', 1_000, ['first@example.test', 'blocked@example.test']);
    assert.equal(r.code, 452, r.text);
    assert.deepEqual(maildirState(join(srv.maildir, 'first')), { new: [], tmp: [] });
    const ok = await send(s, 'one-copy', 1_000, ['first@example.test']);
    assert.equal(ok.code, 250, ok.text);
    assert.equal(maildirState(join(srv.maildir, 'first')).new.length, 1);
    await s.expect('QUIT', 221);
    await srv.daemon.stop();
  });
});

/** Mount a tmpfs of `size` on `dir`; the reason when that is not possible (then the test skips). */
function mountTmpfs(dir: string, size: string): string | undefined {
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
    mounts.unshift(dir);
    return undefined;
  } catch (err) {
    const reason = `cannot mount a tmpfs (${(err as Error).message.split('\n')[0]}): needs root or CAP_SYS_ADMIN`;
    console.log(`SKIP a full-disk test: ${reason}`);
    return reason;
  }
}

describe('a real full disk', () => {
  const servers: Server[] = [];
  after(async () => {
    await Promise.all(servers.map((srv) => srv.daemon.stop()));
  });

  test('the Maildir on a 256 KiB tmpfs: a bigger message gets 452 4.3.1, nothing in new/, tmp/ cleaned; a small one then 250', async (t) => {
    let skip: string | undefined;
    const srv = await server({ setup: (root) => (skip = mountTmpfs(join(root, 'var', 'maildir'), '256k')) });
    servers.push(srv);
    if (skip) return t.skip(skip);
    const s = await greeted(srv.daemon.port);
    const big = await send(s, 'too-big-for-the-disk', 400_000);
    assert.equal(big.code, 452, big.text);
    assert.match(big.text, /^4\.3\.1 /);
    assert.deepEqual(maildirState(srv.maildir), { new: [], tmp: [] });

    const small = await send(s, 'small', 2_000);
    assert.equal(small.code, 250, small.text);
    const files = maildirFiles(srv.maildir);
    assert.equal(files.length, 1);
    assert.ok(files[0]!.endsWith('trailer of small\n'));
    assert.deepEqual(maildirState(srv.maildir).tmp, []);

    // Fill what is left until the disk refuses a message: that refusal is a 452 with nothing
    // half-written, and every 250 before it a complete file.
    let refused = 0;
    for (let i = 0; i < 20 && refused === 0; i++) {
      const r = await send(s, `fill-${i}`, 60_000);
      if (r.code !== 250) {
        assert.equal(r.code, 452, r.text);
        refused++;
      }
    }
    assert.equal(refused, 1, 'the disk filled up');
    for (const file of maildirFiles(srv.maildir)) assert.match(file, /trailer of (small|fill-\d+)\n$/);
    assert.deepEqual(maildirState(srv.maildir).tmp, []);
    await s.expect('QUIT', 221);
  });

  test('the spool on a 128 KiB tmpfs: a bigger message gets a 4xx, nothing is kept, the daemon goes on', async (t) => {
    let skip: string | undefined;
    const srv = await server({ setup: (root) => (skip = mountTmpfs(join(root, 'var', 'spool'), '128k')) });
    servers.push(srv);
    if (skip) return t.skip(skip);
    const s = await greeted(srv.daemon.port);
    await s.expect('MAIL FROM:<spool@sender.example>', 250);
    await s.expect('RCPT TO:<u@example.test>', 250);
    await s.expect('DATA', 354);
    await s.write(messageText('too-big-for-the-spool', 400_000) + '.\r\n');
    const r = await s.reply(15_000);
    // Today the core answers 421 4.3.0 at once and closes (the ENOSPC of the spool write ends the
    // session as an internal error); what is guaranteed is a temporary failure and nothing kept.
    assert.ok(r.code >= 400 && r.code < 500, r.raw);
    s.destroy();
    assert.deepEqual(maildirState(srv.maildir), { new: [], tmp: [] });
    await waitFor(() => filesUnder(srv.spool).length === 0, 'the spool to be emptied');
    assert.ok(srv.daemon.running);
    const again = await greeted(srv.daemon.port);
    assert.equal((await send(again, 'fits-in-memory', 2_000)).code, 250);
    await again.expect('QUIT', 221);
    assert.equal(maildirState(srv.maildir).new.length, 1);
  });
});

describe('a connection lost in the middle of DATA', () => {
  let srv: Server;
  before(async () => {
    // loglevel 6: the line saying the DATA ended without its final dot is LOGINFO.
    srv = await server({ config: { loglevel: '6' } });
  });

  for (const [how, size] of [
    ['reset, in the header', 0],
    ['reset, in memory', 8_000],
    ['reset, spooled to disk', 400_000],
    ['closed (FIN), spooled to disk', 400_000],
  ] as const) {
    test(`${how}: nothing in the Maildir, nothing in the spool`, async () => {
      const from = srv.daemon.stderr.length;
      const s = await greeted(srv.daemon.port);
      await s.expect('MAIL FROM:<lost@sender.example>', 250);
      await s.expect('RCPT TO:<u@example.test>', 250);
      await s.expect('DATA', 354);
      await s.write(size === 0 ? 'Subject: cut off\r\nX-Half: of a hea' : messageText('lost', size).slice(0, -40));
      if (how.startsWith('closed')) s.socket.end();
      else s.reset();
      await srv.daemon.waitForLog(/ended without its final dot|connection lost during DATA/, from);
      assert.deepEqual(maildirState(srv.maildir), { new: [], tmp: [] });
      await waitFor(() => filesUnder(srv.spool).length === 0, 'the spool to be emptied');
    });
  }

  test('afterwards the daemon takes a message as usual', async () => {
    const s = await greeted(srv.daemon.port);
    assert.equal((await send(s, 'after-the-losses', 1_000)).code, 250);
    await s.expect('QUIT', 221);
    assert.equal(maildirState(srv.maildir).new.length, 1);
  });
});

describe('kill -9 at random moments during a stream of messages', () => {
  test('20 rounds: every file in new/ is complete, every 250 is in new/', async (t) => {
    const root = makeRoot({
      config: { plugins: BASE_PLUGINS, rcpthosts: 'example.test', loglevel: '5', spool_dir: 'var/spool', size_threshold: '65536' },
    });
    const maildir = join(root, 'var', 'maildir');
    const random = prng(0x9e3779b9);
    const acknowledged = new Set<string>();
    const sizes = new Map<string, number>();
    let sent = 0;
    const rounds = 20;

    for (let round = 0; round < rounds; round++) {
      const daemon = await startDaemon(root);
      const killAfter = Math.floor(random() * 180);
      let killed = false;
      // The client: messages back to back (some in memory, some spooled), until the daemon is gone.
      const client = (async () => {
        while (!killed) {
          let s: RawSession;
          try {
            s = await greeted(daemon.port);
          } catch {
            return;
          }
          try {
            for (let i = 0; i < 3 && !killed; i++) {
              const id = `r${round}m${sent++}`;
              const size = Math.floor(random() * random() * 300_000);
              sizes.set(id, size);
              const r = await send(s, id, size);
              if (r.code === 250) acknowledged.add(id);
            }
            await s.expect('QUIT', 221);
          } catch {
            // the daemon died under us: expected
          } finally {
            s.destroy();
          }
        }
      })();
      await pause(killAfter);
      killed = true;
      daemon.signal('SIGKILL');
      await daemon.exited;
      await client;
    }

    // Every file in new/ holds exactly the message that was sent, to its last byte.
    const { new: names, tmp } = maildirState(maildir);
    const files = maildirFiles(maildir);
    const found = new Set<string>();
    for (const file of files) {
      const id = /^Subject: (\S+)$/m.exec(file)?.[1];
      assert.ok(id !== undefined && sizes.has(id), `a file for a message we sent: ${file.slice(0, 200)}`);
      assert.equal(bodyOf(file), bodyOf(messageText(id, sizes.get(id)!).replace(/\r\n/g, '\n')), `the file for ${id} is complete`);
      found.add(id);
    }
    for (const id of acknowledged) assert.ok(found.has(id), `${id} was acknowledged with 250, so it is in new/`);
    t.diagnostic(`${rounds} kills: ${sent} messages started, ${acknowledged.size} acknowledged, ${names.length} in new/ (all complete), ${tmp.length} left in tmp/`);
    console.log(`kill -9: ${rounds} rounds, ${sent} messages started, ${acknowledged.size} acknowledged with 250, ${names.length} files in new/ (all complete), ${tmp.length} partial files left in tmp/`);
  });
});

/** A plugin that throws (or rejects) on demand, on several hooks. */
const THROWING_JS = `import { Plugin, DECLINED } from 'qpsmtpd';
export default class Throwing extends Plugin {
  hook_mail(tx, sender) { if (sender.user === 'boom') throw new Error('secret detail: mail'); return DECLINED; }
  async hook_rcpt(tx, rcpt) {
    if (rcpt.user === 'boom') throw new Error('secret detail: rcpt');
    if (rcpt.user === 'reject') return Promise.reject(new TypeError('secret detail: rejected'));
    if (rcpt.user === 'nonsense') return 'not a code';
    return DECLINED;
  }
  hook_data_post(tx) { if (tx.header.get('Subject')?.includes('boom')) throw new Error('secret detail: data_post'); return DECLINED; }
  hook_queue(tx) { if (tx.header.get('Subject')?.includes('queue-bomb')) throw new Error('secret detail: queue'); return DECLINED; }
}
`;

describe('a plugin that throws', () => {
  test('451 for that command, the rest of the session and the daemon go on', async () => {
    const srv = await server({
      config: { plugins: ['relay', 'throwing', 'rcpt_ok', 'queue/maildir var/maildir'] },
      plugins: { 'throwing.js': THROWING_JS },
    });
    const s = await greeted(srv.daemon.port);
    const codes: [string, number][] = [];
    const run = async (line: string): Promise<void> => {
      const r = await s.command(line);
      codes.push([line, r.code]);
      assert.doesNotMatch(r.text, /secret detail/, 'the exception text is not sent');
    };
    await run('MAIL FROM:<boom@sender.example>');
    await run('MAIL FROM:<ok@sender.example>');
    await run('RCPT TO:<boom@example.test>');
    await run('RCPT TO:<reject@example.test>');
    await run('RCPT TO:<nonsense@example.test>');
    await run('RCPT TO:<u@example.test>');
    await run('DATA');
    await s.write('Subject: boom\r\n\r\nbody\r\n.\r\n');
    codes.push(['data_post throws', (await s.reply()).code]);
    // The transaction was reset by the 451 after the dot: a new one, this time the queue hook throws.
    await run('MAIL FROM:<ok@sender.example>');
    await run('RCPT TO:<u@example.test>');
    await run('DATA');
    await s.write('Subject: queue-bomb\r\n\r\nbody\r\n.\r\n');
    codes.push(['queue throws', (await s.reply()).code]);
    assert.deepEqual(codes, [
      ['MAIL FROM:<boom@sender.example>', 451],
      ['MAIL FROM:<ok@sender.example>', 250],
      ['RCPT TO:<boom@example.test>', 451],
      ['RCPT TO:<reject@example.test>', 451],
      ['RCPT TO:<nonsense@example.test>', 451],
      ['RCPT TO:<u@example.test>', 250],
      ['DATA', 354],
      ['data_post throws', 451],
      ['MAIL FROM:<ok@sender.example>', 250],
      ['RCPT TO:<u@example.test>', 250],
      ['DATA', 354],
      ['queue throws', 451],
    ]);
    assert.deepEqual(maildirState(srv.maildir), { new: [], tmp: [] });

    // The same session, then a new one, still work, and the daemon logged each fault.
    assert.equal((await send(s, 'after-the-faults', 500)).code, 250);
    await s.expect('QUIT', 221);
    const again = await greeted(srv.daemon.port);
    assert.equal((await send(again, 'new-session', 500)).code, 250);
    await again.expect('QUIT', 221);
    assert.equal(maildirState(srv.maildir).new.length, 2);
    assert.ok(srv.daemon.running);
    for (const where of ['mail', 'rcpt', 'rejected', 'data_post', 'queue']) assert.match(srv.daemon.stderr, new RegExp(`throwing.*secret detail: ${where}`));
    await srv.daemon.stop();
  });
});
