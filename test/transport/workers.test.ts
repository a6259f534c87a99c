/**
 * `--workers 2`: the primary forks two workers sharing the listening socket; both serve; a worker
 * killed is replaced and service goes on; SIGTERM to the primary stops everything with exit 0.
 *
 * Which worker takes a connection is the kernel's choice. To make each one serve in turn, the
 * others are stopped (SIGSTOP) while the test connects: a stopped process cannot accept, so the
 * running one does. The `probe` plugin's greeting tells which process answered.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  ACCEPT_ALL_JS,
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

test('--workers 2: SIGTERM while a worker is still starting stops that one too, once it is up', async () => {
  // The first worker to load `slow_start` creates the marker and starts at once; the other waits
  // 1.5 s in register(), so the primary's stop reaches it before it listens for messages.
  const root = makeRoot({
    config: { plugins: ['slow_start', 'probe'] },
    plugins: {
      'slow_start.js': `import { mkdirSync } from 'node:fs';
import { Plugin } from 'qpsmtpd';
export default class SlowStart extends Plugin {
  async register() {
    try { mkdirSync(process.env.SLOW_START_ROOT + '/first'); }
    catch { await new Promise((resolve) => setTimeout(resolve, 1500)); }
  }
}
`,
      'probe.js': PROBE_JS,
    },
  });
  const daemon = await startDaemon(root, ['--workers', '2'], { listeners: 1, env: { SLOW_START_ROOT: root } });
  assert.equal(listeningPids(daemon).length, 1, 'one worker is up, the other still in register()');
  daemon.signal('SIGTERM');
  const { code, signal } = await daemon.waitExit(10_000);
  assert.equal(signal, null);
  assert.equal(code, 0, daemon.stderr);
  assert.deepEqual(childPids(daemon.pid), []);
});
