import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { tempDir, testApp, type TestApp } from '../helpers/test-app.ts';
import { ACCEPT_ALL, EXAMPLE_PLUGINS, QUEUE_CAPTURE, message, quit, sendMessage } from './support.ts';

const dir = tempDir();
const captured = join(dir, 'captured.eml');
let app: TestApp;
before(async () => {
  app = await testApp({
    config: { plugin_dirs: [EXAMPLE_PLUGINS], plugins: ['footer', 'accept_all', `queue_capture ${captured}`] },
    plugins: { 'accept_all.ts': ACCEPT_ALL, 'queue_capture.ts': QUEUE_CAPTURE },
  });
});
after(() => {
  app.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

/** Send a message as a client from `remoteIp`; the message as it was queued. */
async function queuedFrom(remoteIp: string): Promise<string> {
  const session = await app.greeted({ remoteIp });
  const reply = await sendMessage(session.client, message('Hello.\nBye.\n'));
  assert.equal(reply.code, 250, reply.raw);
  await quit(session);
  return readFileSync(captured, 'utf8');
}

test('mail from 127.0.0.1 gets the footer at the end of its body', async () => {
  const yearBefore = new Date().getFullYear();
  const queued = await queuedFrom('127.0.0.1');
  const match = /\r\n\r\nHello\.\r\nBye\.\r\n\r\nSupermail, Mail im Jahr (\d{4})\r\n$/.exec(queued);
  assert.ok(match, queued);
  // The year is taken when the plugin loads, which was before this test began.
  assert.ok(Number(match[1]) <= yearBefore && Number(match[1]) >= yearBefore - 1, match[1]);
});

test('mail from anywhere else is queued unchanged', async () => {
  const queued = await queuedFrom('192.0.2.10');
  assert.match(queued, /\r\n\r\nHello\.\r\nBye\.\r\n$/);
  assert.doesNotMatch(queued, /Supermail/);
});
