import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { tempDir, testApp, type TestApp } from '../helpers/test-app.ts';
import { ACCEPT_ALL, EXAMPLE_PLUGINS, QUEUE_CAPTURE, message, quit, sendMessage } from './support.ts';

const DAY = 24 * 60 * 60 * 1000;
const dir = tempDir();
const captured = join(dir, 'captured.eml');
let app: TestApp;

before(async () => {
  app = await testApp({
    config: { plugin_dirs: [EXAMPLE_PLUGINS], plugins: ['check_headers', 'accept_all', `queue_capture ${captured}`] },
    plugins: { 'accept_all.ts': ACCEPT_ALL, 'queue_capture.ts': QUEUE_CAPTURE },
  });
});
after(() => {
  app.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

/** Send one message in a fresh session; the reply to its final dot. */
async function send(text: string) {
  const session = await app.greeted();
  const reply = await sendMessage(session.client, text);
  await quit(session);
  return reply;
}

const headersWith = (date: string) => `From: <sender@example.test>\nDate: ${date}\nSubject: test\n`;

test('a message with From and a current Date is accepted', async () => {
  const reply = await send(message());
  assert.equal(reply.code, 250);
  assert.match(readFileSync(captured, 'utf8'), /\r\nSubject: test\r\n\r\nHello\.\r\n$/);
});

test('a message with a header and no body is not empty', async () => {
  assert.equal((await send(headersWith(new Date().toUTCString()))).code, 250);
});

test('an empty message is refused', async () => {
  const reply = await send('');
  assert.equal(reply.code, 552);
  assert.equal(reply.text, '5.7.1 No message content');
});

test('a message without From is refused', async () => {
  const reply = await send(message('Hi.\n', `Date: ${new Date().toUTCString()}\n`));
  assert.deepEqual([reply.code, reply.text], [552, '5.7.1 No From header']);
});

test('a message without Date is refused', async () => {
  const reply = await send(message('Hi.\n', 'From: <sender@example.test>\n'));
  assert.deepEqual([reply.code, reply.text], [552, '5.7.1 No Date header']);
});

test('a Date that cannot be parsed is refused', async () => {
  const reply = await send(message('Hi.\n', headersWith('sometime last week')));
  assert.deepEqual([reply.code, reply.text], [552, '5.7.1 Date header cannot be parsed']);
});

test('a Date more than 7 days old is refused, 6 days old is fine', async () => {
  const old = await send(message('Hi.\n', headersWith(new Date(Date.now() - 8 * DAY).toUTCString())));
  assert.deepEqual([old.code, old.text], [552, '5.7.1 Message is too old']);
  const recent = await send(message('Hi.\n', headersWith(new Date(Date.now() - 6 * DAY).toUTCString())));
  assert.equal(recent.code, 250);
});

test('a Date days in the future is refused', async () => {
  const reply = await send(message('Hi.\n', headersWith(new Date(Date.now() + 3 * DAY).toUTCString())));
  assert.deepEqual([reply.code, reply.text], [552, '5.7.1 Message is dated in the future']);
});

test('an RFC 5322 Date with a numeric zone and a comment is understood', async () => {
  const reply = await send(message('Hi.\n', headersWith(rfc5322(new Date(Date.now() - DAY)))));
  assert.equal(reply.code, 250);
});

/** `Tue, 25 Nov 2025 16:37:00 +0100 (CET)`: a fixed +01:00 zone, as a German mail client writes it. */
function rfc5322(date: Date): string {
  const shifted = new Date(date.getTime() + 60 * 60 * 1000).toUTCString(); // "Tue, 25 Nov 2025 16:37:00 GMT"
  return shifted.replace('GMT', '+0100 (CET)');
}
