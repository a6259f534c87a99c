/**
 * SIGHUP: config and plugins are reloaded for new sessions; a session open at the time keeps the
 * behaviour it began with and finishes normally; a reload with a broken config keeps the running
 * one (and logs why). For the single process and for --workers 2 (the primary passes SIGHUP on).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  DENY_RCPT_JS,
  PROBE_JS,
  SmtpClient,
  cleanupAll,
  maildirNew,
  makeRoot,
  message,
  sessionOn,
  startDaemon,
  writeText,
  type Daemon,
} from '../helpers/daemon.ts';

after(cleanupAll);

const BEFORE = ['probe', 'rcpt_ok', 'queue/maildir var/maildir'];
const AFTER = ['probe', 'deny_rcpt reloaded: nobody gets mail now', 'rcpt_ok', 'queue/maildir var/maildir'];
const BROKEN = ['probe', 'deny_rcpt', 'no_such_plugin', 'rcpt_ok', 'queue/maildir var/maildir'];

/** A new session on each serving process (all of them: a reload must reach every worker). */
async function newSessions(daemon: Daemon, workers: number[]): Promise<SmtpClient[]> {
  if (workers.length === 0) return [await SmtpClient.open(daemon.port)];
  const out: SmtpClient[] = [];
  for (const pid of workers) out.push(await sessionOn(daemon, pid, daemon.port));
  return out;
}

/** Signal, then wait for `re` to be logged once by every serving process. */
async function hangUp(daemon: Daemon, processes: number, re: RegExp): Promise<string[]> {
  const from = daemon.stderr.length;
  daemon.signal('SIGHUP');
  return daemon.until(() => {
    const hits = daemon.stderr.slice(from).split('\n').filter((l) => re.test(l));
    return new Set(hits.map((l) => l.split(' ')[0])).size >= processes ? hits : undefined;
  }, `${processes} process(es) logging ${re}`);
}

async function rcptReply(client: SmtpClient, rcpt: string): Promise<{ code: number; text: string }> {
  await client.expect('EHLO client.example.test', 250);
  await client.expect('MAIL FROM:<sender@example.test>', 250);
  return client.command(`RCPT TO:<${rcpt}>`);
}

for (const mode of ['single process', '--workers 2'] as const) {
  describe(`SIGHUP reload (${mode})`, () => {
    test('open sessions keep their config, new ones get the new one, a broken reload changes nothing', async () => {
      const root = makeRoot({
        config: { plugins: BEFORE, rcpthosts: 'example.org' },
        plugins: { 'probe.js': PROBE_JS, 'deny_rcpt.js': DENY_RCPT_JS },
      });
      const workersMode = mode === '--workers 2';
      const daemon = await startDaemon(root, workersMode ? ['--workers', '2'] : [], { listeners: workersMode ? 2 : 1 });
      const workers = workersMode ? [...new Set(daemon.listening().map((l) => l.pid))] : [];
      const processes = workersMode ? 2 : 1;

      // Sessions open before the reload: one per process, greeted and past EHLO.
      const open = await newSessions(daemon, workers);
      for (const c of open) await c.expect('EHLO early.example.test', 250);

      writeText(join(root, 'config', 'plugins'), AFTER);
      const reloaded = await hangUp(daemon, processes, /configuration and plugins reloaded/);
      assert.equal(reloaded.length, processes);

      // The open sessions still run the old plugins: the recipient is accepted and the message delivered.
      for (const [i, c] of open.entries()) {
        const reply = await c.mailTransaction('sender@example.test', ['alice@example.org'], message(`open during reload ${i}`));
        assert.equal(reply.code, 250, reply.raw);
        await c.quit();
      }
      assert.equal(maildirNew(join(root, 'var', 'maildir')).length, open.length);

      // New sessions, on every process, get the new plugins.
      for (const c of await newSessions(daemon, workers)) {
        const reply = await rcptReply(c, 'alice@example.org');
        assert.equal(reply.code, 550, JSON.stringify(reply));
        assert.match(reply.text, /reloaded: nobody gets mail now/);
        await c.quit();
      }

      // A broken config: the error is logged, the running config stays.
      writeText(join(root, 'config', 'plugins'), BROKEN);
      const failed = await hangUp(daemon, processes, /reload failed, keeping the running configuration/);
      for (const line of failed) assert.ok(line.includes(`${join(root, 'config', 'plugins')}:3: plugin "no_such_plugin": not found`), line);
      assert.ok(daemon.running);
      for (const c of await newSessions(daemon, workers)) {
        const reply = await rcptReply(c, 'alice@example.org');
        assert.equal(reply.code, 550);
        assert.match(reply.text, /reloaded: nobody gets mail now/);
        await c.quit();
      }

      // Fixed again: back to accepting.
      writeText(join(root, 'config', 'plugins'), BEFORE);
      await hangUp(daemon, processes, /configuration and plugins reloaded/);
      for (const c of await newSessions(daemon, workers)) {
        const reply = await rcptReply(c, 'alice@example.org');
        assert.equal(reply.code, 250, JSON.stringify(reply));
        await c.quit();
      }

      if (workersMode) {
        assert.deepEqual(
          [...new Set(daemon.listening().map((l) => l.pid))],
          workers,
          'no worker was restarted: the reload happened in place',
        );
      }
      const { code } = await daemon.stop();
      assert.equal(code, 0, daemon.stderr);
    });
  });
}
