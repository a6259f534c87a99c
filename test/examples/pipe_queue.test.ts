import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { tempDir, testApp } from '../helpers/test-app.ts';
import { ACCEPT_ALL, EXAMPLE_PLUGINS, message, quit, sendMessage , shellScript } from './support.ts';

const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));

/** An executable shell script in the temp folder. */
const script = (name: string, body: string): string => shellScript(dir, name, body);

/** Send `text` through a server whose queue is `pipe_queue <command>`; the reply to the final dot, and the log. */
async function queueWith(command: string, text: string, config: Record<string, string> = {}) {
  const app = await testApp({
    config: { plugin_dirs: [EXAMPLE_PLUGINS], plugins: ['accept_all', `pipe_queue ${command}`], ...config },
    plugins: { 'accept_all.ts': ACCEPT_ALL },
  });
  try {
    const session = await app.greeted();
    const reply = await sendMessage(session.client, text);
    await quit(session);
    return Object.assign(reply, { logs: app.logs.join('\n') });
  } finally {
    app.cleanup();
  }
}

test('the program gets exactly the message on its stdin: the Received header, then what the client sent', async () => {
  const out = join(dir, 'dd.eml');
  const text = message('Hello.\n.a line that starts with a dot\n\nBye.\n');
  const reply = await queueWith(`/bin/dd of=${out} status=none`, text);
  assert.equal(reply.code, 250);
  assert.equal(reply.text, '2.0.0 Queued!');
  const queued = readFileSync(out, 'utf8');
  const received = /^Received: .*\r\n(?:[ \t].*\r\n)*/.exec(queued);
  assert.ok(received, queued);
  assert.equal(queued.slice(received[0].length), text.replace(/\n/g, '\r\n'));
});

test('a program that exits non-zero after reading the message: 452, not acknowledged', async () => {
  const reply = await queueWith(script('tempfail', 'cat >/dev/null\nexit 75'), message());
  assert.equal(reply.code, 452);
  assert.equal(reply.text, '4.3.0 Queuing failed, please try again later');
  assert.match(reply.logs, /exited with 75/);
});

test('a program that exits without reading (EPIPE): 452', async () => {
  const reply = await queueWith('/bin/false', message('x'.repeat(256 * 1024) + '\n'));
  assert.equal(reply.code, 452);
  assert.match(reply.logs, /exited with 1/);
});

test('a program that exits 0 without reading the message: 452, what it did not take is not acknowledged', async () => {
  const reply = await queueWith('/bin/true', message('x'.repeat(256 * 1024) + '\n'));
  assert.equal(reply.code, 452);
  // The write fails as EPIPE, or as a premature close when the pipe shut first: either way, not taken.
  assert.match(reply.logs, /EPIPE|Premature close/);
});

test('a program that does not exist: 452', async () => {
  const reply = await queueWith(join(dir, 'no-such-mta'), message());
  assert.equal(reply.code, 452);
  assert.match(reply.logs, /ENOENT/);
});

test('a program that hangs is stopped when the hook runs out of time: 452', async () => {
  const pidFile = join(dir, 'hang.pid');
  const hang = script('hang', `echo $$ > ${pidFile}\nexec sleep 30`);
  const reply = await queueWith(hang, message(), { plugin_timeout: 'pipe_queue 0.3' });
  assert.equal(reply.code, 452);
  assert.match(reply.text, /plugin timeout/);
  assert.ok(existsSync(pidFile));
  const pid = Number(readFileSync(pidFile, 'utf8'));
  await waitUntil(() => !alive(pid));
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(condition: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test('without a program the plugin refuses to load', async () => {
  await assert.rejects(
    testApp({ config: { plugin_dirs: [EXAMPLE_PLUGINS], plugins: ['pipe_queue'] } }),
    /pipe_queue needs a program to run/,
  );
});
