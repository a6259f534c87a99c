import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { testApp, type TestApp } from '../helpers/test-app.ts';
import { ACCEPT_ALL, EXAMPLE_PLUGINS, quit } from './support.ts';

let app: TestApp;
before(async () => {
  app = await testApp({
    config: { plugin_dirs: [EXAMPLE_PLUGINS], plugins: ['reject_hans', 'accept_all'] },
    plugins: { 'accept_all.ts': ACCEPT_ALL },
  });
});
after(() => app.cleanup());

test('reject_hans refuses mail to hans@meine.do.main, in any case, and declines the rest', async () => {
  const session = await app.greeted();
  const { client } = session;
  assert.equal((await client.command('EHLO client.example.test')).code, 250);
  assert.equal((await client.command('MAIL FROM:<sender@example.test>')).code, 250);

  const hans = await client.command('RCPT TO:<hans@meine.do.main>');
  assert.equal(hans.code, 550);
  assert.equal(hans.text, '5.7.1 Mail to <hans@meine.do.main> not accepted here');

  const shouting = await client.command('RCPT TO:<HANS@Meine.Do.Main>');
  assert.equal(shouting.code, 550);
  assert.equal(shouting.text, '5.7.1 Mail to <HANS@Meine.Do.Main> not accepted here');

  // DECLINED: the next plugin (accept_all) decides.
  assert.equal((await client.command('RCPT TO:<grete@meine.do.main>')).code, 250);
  assert.equal((await client.command('RCPT TO:<hans@other.example>')).code, 250);
  assert.equal((await quit(session)).code, 221);
});
