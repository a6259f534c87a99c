/**
 * `--workers 2`: the primary forks two workers sharing the listening socket; both serve; a worker
 * killed is replaced and service goes on; SIGTERM to the primary stops everything with exit 0, and
 * SIGTERM or SIGHUP reach a worker that was still loading when they came.
 *
 * Which worker takes a connection is the kernel's choice. To make each one serve in turn, the
 * others are stopped (SIGSTOP) while the test connects: a stopped process cannot accept, so the
 * running one does. The `probe` plugin's greeting tells which process answered.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  ACCEPT_ALL_JS,
  DENY_RCPT_JS,
  PROBE_JS,
  SmtpClient,
  alive,
  childPids,
  cleanupAll,
  maildirNew,
  makeRoot,
  message,
  sessionOn,
  startDaemon,
  waitFor,
  writeText,
  type Daemon,
} from '../helpers/daemon.ts';

after(cleanupAll);

/** Distinct pids of the processes that logged `listening on`. */
function listeningPids(daemon: Daemon): number[] {
  return [...new Set(daemon.listening().map((l) => l.pid))];
}

test('--workers 2: two workers serve, a killed one is replaced, SIGTERM stops all with exit 0', async () => {
  const root = makeRoot({
    config: { plugins: ['probe', 'accept_all', 'queue/maildir var/maildir'] },
    plugins: { 'probe.js': PROBE_JS, 'accept_all.js': ACCEPT_ALL_JS },
  });
  const daemon = await startDaemon(root, ['--workers', '2'], { listeners: 2 });
  const workers = listeningPids(daemon).sort((a, b) => a - b);
  assert.equal(workers.length, 2);
  assert.ok(!workers.includes(daemon.pid), 'the primary does not serve');
  assert.deepEqual(childPids(daemon.pid), workers, 'both are children of the primary');
  const ports = new Set(daemon.listening().map((l) => l.port));
  assert.equal(ports.size, 1, 'one shared port');
  const port = daemon.port;

  // Each worker serves a whole session.
  for (const pid of workers) {
    const client = await sessionOn(daemon, pid, port);
    const reply = await client.sendMail('sender@example.test', ['rcpt@example.test'], message(`served by ${pid}`));
    assert.equal(reply.code, 250, reply.raw);
    await client.quit();
  }
  const delivered = maildirNew(join(root, 'var', 'maildir'));
  assert.equal(delivered.length, 2);
  for (const pid of workers) assert.ok(delivered.some((m) => m.includes(`Subject: served by ${pid}`) && m.includes(`X-Probe: pid=${pid} `)));

  // SIGKILL one: the primary starts a new one, which serves.
  const [victim, survivor] = workers as [number, number];
  const logFrom = daemon.stderr.length;
  process.kill(victim, 'SIGKILL');
  await daemon.waitForLog(new RegExp(`worker ${victim} died \\(SIGKILL\\): starting a new one`), logFrom);
  const replacement = await daemon.until(() => listeningPids(daemon).find((p) => !workers.includes(p)), 'a new worker listening');
  await waitFor(() => !alive(victim), 'the killed worker to be gone');
  assert.deepEqual(
    childPids(daemon.pid),
    [survivor, replacement].sort((a, b) => a - b),
  );
  for (const pid of [replacement, survivor]) {
    const client = await sessionOn(daemon, pid, port);
    await client.expect('EHLO client.example.test', 250);
    await client.quit();
  }

  // SIGTERM to the primary: sessions open in the workers get 421, everything exits, code 0.
  const idle = await sessionOn(daemon, survivor, port);
  await idle.expect('EHLO idle.example.test', 250);
  daemon.signal('SIGTERM');
  assert.equal((await idle.reply()).code, 421);
  const { code, signal } = await daemon.waitExit();
  assert.equal(signal, null);
  assert.equal(code, 0, daemon.stderr);
  await waitFor(() => !alive(survivor) && !alive(replacement), 'the workers to exit');
  assert.equal((await SmtpClient.connect(port).then((c) => (c.destroy(), 'connected')).catch((e: NodeJS.ErrnoException) => e.code)), 'ECONNREFUSED');
});

test('--workers 2: a worker dying while the config on disk is broken leaves the other one serving; the replacement comes once it is fixed', async () => {
  const root = makeRoot({
    config: { plugins: ['probe', 'accept_all'] },
    plugins: { 'probe.js': PROBE_JS, 'accept_all.js': ACCEPT_ALL_JS },
  });
  const daemon = await startDaemon(root, ['--workers', '2'], { listeners: 2 });
  const workers = listeningPids(daemon);
  const [victim, survivor] = workers as [number, number];
  const plugins = join(root, 'config', 'plugins');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(plugins, 'probe\naccept_all\nno_such_plugin\n');
  const logFrom = daemon.stderr.length;
  process.kill(victim, 'SIGKILL');
  await daemon.waitForLog(/could not load the configuration: 1 worker\(s\) go on; trying again in 2 s/, logFrom);
  assert.ok(alive(daemon.pid), 'the primary stays');
  const client = await SmtpClient.open(daemon.port);
  assert.equal((await client.command('NOOP')).code, 250, 'the survivor serves');
  await client.quit();
  writeFileSync(plugins, 'probe\naccept_all\n');
  const replacement = await daemon.until(() => listeningPids(daemon).find((p) => !workers.includes(p)), 'a replacement after the fix', 10_000);
  assert.deepEqual(childPids(daemon.pid), [survivor, replacement].sort((a, b) => a - b));
  daemon.signal('SIGTERM');
  assert.equal((await daemon.waitExit()).code, 0);
});

/**
 * `slow_start` holds one worker in register() for 1.5 s: the first worker to load it creates the
 * folder `first` and goes on; the other writes `waiting-<pid>` and sleeps. Resolves once one worker
 * serves and the other is in that sleep: up, but not yet listening for the primary's messages.
 */
const SLOW_START_JS = `import { mkdirSync, writeFileSync } from 'node:fs';
import { Plugin } from 'qpsmtpd';
export default class SlowStart extends Plugin {
  async register() {
    const root = process.env.SLOW_START_ROOT;
    try { mkdirSync(root + '/first'); return; } catch {}
    writeFileSync(root + '/waiting-' + process.pid, '');
    await new Promise((resolve) => setTimeout(resolve, 1500));
  }
}
`;

async function startWithOneSlowWorker(plugins: string[]): Promise<{ root: string; daemon: Daemon; slow: number }> {
  const root = makeRoot({
    config: { plugins: ['slow_start', ...plugins] },
    plugins: { 'slow_start.js': SLOW_START_JS, 'probe.js': PROBE_JS, 'accept_all.js': ACCEPT_ALL_JS, 'deny_rcpt.js': DENY_RCPT_JS },
  });
  const daemon = await startDaemon(root, ['--workers', '2'], { listeners: 1, env: { SLOW_START_ROOT: root } });
  const slow = await daemon.until(() => {
    const name = readdirSync(root).find((f) => f.startsWith('waiting-'));
    return name === undefined ? undefined : Number(name.slice('waiting-'.length));
  }, 'the second worker in register()');
  // Not asserted: that the slow one is not listening yet. It is, unless this machine stalls for
  // 1.5 s here; then the signal finds both ready and the test passes the old way.
  return { root, daemon, slow };
}

test('--workers 2: SIGTERM while a worker is still starting stops that one too, once it is up', async () => {
  const { daemon } = await startWithOneSlowWorker(['probe']);
  daemon.signal('SIGTERM');
  const { code, signal } = await daemon.waitExit(10_000);
  assert.equal(signal, null);
  assert.equal(code, 0, daemon.stderr);
  assert.deepEqual(childPids(daemon.pid), []);
});

test('--workers 2: SIGHUP while a worker is still starting reloads that one too, once it is up', async () => {
  const { root, daemon, slow } = await startWithOneSlowWorker(['probe', 'accept_all']);
  // The slow worker read config/plugins before this change: only a reload gives it deny_rcpt.
  writeText(join(root, 'config', 'plugins'), 'slow_start\nprobe\ndeny_rcpt closed since the reload\naccept_all\n');
  const from = daemon.stderr.length;
  daemon.signal('SIGHUP');
  await daemon.waitForLog(new RegExp(`^${slow} .*configuration and plugins reloaded`, 'm'), from);
  const client = await sessionOn(daemon, slow, daemon.port);
  await client.expect('EHLO client.example.test', 250);
  await client.expect('MAIL FROM:<a@example.test>', 250);
  const reply = await client.command('RCPT TO:<b@example.test>');
  assert.equal(reply.code, 550, reply.raw);
  assert.match(reply.raw, /closed since the reload/);
  await client.quit();
  daemon.signal('SIGTERM');
  assert.equal((await daemon.waitExit()).code, 0, daemon.stderr);
});
