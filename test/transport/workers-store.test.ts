/**
 * The embedded state store under `--workers 2`: both worker processes of one daemon share the
 * SQLite file, so a rate limit counts what either of them accepted (the kernel hands connections
 * to whichever worker it likes; `sessionOn` picks the worker on purpose).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ACCEPT_ALL_JS, PROBE_JS, cleanupAll, makeRoot, sessionOn, startDaemon, type Daemon } from '../helpers/daemon.ts';
import type { SmtpClient } from '../helpers/daemon.ts';

after(cleanupAll);

async function recipients(client: SmtpClient, addresses: readonly string[]): Promise<number[]> {
  assert.equal((await client.command('EHLO client.example')).code, 250);
  assert.equal((await client.command('MAIL FROM:<a@sender.example>')).code, 250);
  const codes: number[] = [];
  for (const address of addresses) codes.push((await client.command(`RCPT TO:<${address}>`)).code);
  await client.quit();
  return codes;
}

function workerPids(daemon: Daemon): number[] {
  return [...new Set(daemon.listening().map((l) => l.pid))].sort((a, b) => a - b);
}

test('--workers 2 with the embedded store: a recipient rate limit counts across both workers', async () => {
  const root = makeRoot({
    config: {
      plugins: ['limit', 'probe', 'accept_all'],
      store: 'sqlite var/state.sqlite',
      limit: ['recipients ip 3/1m'],
    },
    plugins: { 'probe.js': PROBE_JS, 'accept_all.js': ACCEPT_ALL_JS },
  });
  const daemon = await startDaemon(root, ['--workers', '2'], { listeners: 2 });
  try {
    const [first, second] = workerPids(daemon);
    assert.ok(first !== undefined && second !== undefined && first !== second, 'two workers');
    const port = daemon.port;

    assert.deepEqual(await recipients(await sessionOn(daemon, first, port), ['1@r.example', '2@r.example']), [250, 250]);
    assert.deepEqual(await recipients(await sessionOn(daemon, second, port), ['3@r.example', '4@r.example']), [250, 450], 'the second worker counts the first one\'s two');
    assert.deepEqual(await recipients(await sessionOn(daemon, first, port), ['5@r.example']), [450], 'and the first sees the limit reached');
    assert.ok(existsSync(join(root, 'var', 'state.sqlite')), 'one SQLite file in var/');
  } finally {
    await daemon.stop();
  }
  assert.equal(daemon.exitCode, 0, daemon.stderr);
});
