import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { testApp, type TestApp } from '../helpers/test-app.ts';
import { EXAMPLE_PLUGINS, quit } from './support.ts';

const WAIT_MS = 200;
let app: TestApp;
before(async () => {
  app = await testApp({ config: { plugin_dirs: [EXAMPLE_PLUGINS], plugins: [`earlytalker ${WAIT_MS}`] } });
});
after(() => app.cleanup());

test('a client that talks before the greeting is turned away with 450', async () => {
  const { client, done } = app.connect();
  client.send('EHLO impatient.example.test\r\n'); // before reading the greeting
  const reply = await client.reply();
  assert.equal(reply.code, 450);
  assert.match(reply.text, /SMTP protocol violation: you talked before the greeting$/);
  await done;
  assert.ok(client.closed);
});

test('a client that talks while the server is still waiting is turned away too', async () => {
  const { client, done } = app.connect();
  setTimeout(() => client.send('HELO hasty.example.test\r\n'), WAIT_MS / 4);
  assert.equal((await client.reply()).code, 450);
  await done;
});

test('a client that waits for the greeting gets it after the wait, and can go on', async () => {
  const started = Date.now();
  const session = await app.greeted();
  assert.ok(Date.now() - started >= WAIT_MS - 20, `greeted after ${Date.now() - started} ms`);
  assert.equal((await session.client.command('EHLO polite.example.test')).code, 250);
  assert.equal((await quit(session)).code, 221);
});

test('a wait time that is no number is refused when the plugin loads', async () => {
  await assert.rejects(
    testApp({ config: { plugin_dirs: [EXAMPLE_PLUGINS], plugins: ['earlytalker soon'] } }),
    /earlytalker: "soon" is no number of milliseconds/,
  );
});
