import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LoadFailure } from '../../src/app.ts';
import type { FakeConn } from '../helpers/fake-conn.ts';
import { tempDir } from '../helpers/test-app.ts';
import { eventually, withApp } from './content-support.ts';

const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));
const users = join(dir, 'users');
const put = (path: string, text: string): void => {
  mkdirSync(join(users, path, '..'), { recursive: true });
  writeFileSync(join(users, path), text);
};
put('example.test/alice/spam_level', '# alice is picky\n\n  5  \nsecond value\n');
put('example.test/alice/empty_setting', '');
put('example.test/bob/spam_level', '9\n');
put('secret', 'outside the user folders\n');
mkdirSync(join(users, 'example.test', 'alice', 'a_folder'), { recursive: true });

/** The address's values for `name`, through the probe (address.configList runs the user_config hook). */
async function userConfig(client: FakeConn, address: string, name: string): Promise<unknown> {
  const reply = await client.command(`XUSERCONFIG ${address} ${name}`);
  assert.equal(reply.code, 250, reply.raw);
  return JSON.parse(reply.text.replace(/^2\.0\.0 /, ''));
}

/** A session with a transaction holding these recipients (the sender is sender@example.test). */
async function withRecipients(t: Parameters<Parameters<typeof withApp>[1]>[0], recipients: string[]): Promise<FakeConn> {
  const { client } = await t.greeted();
  assert.equal((await client.command('EHLO client.example.test')).code, 250);
  assert.equal((await client.command('MAIL FROM:<sender@example.test>')).code, 250);
  for (const r of recipients) assert.equal((await client.command(`RCPT TO:${r}`)).code, 250, r);
  return client;
}

describe('user_config', () => {
  it('reads PATTERN/NAME with %h and %u replaced, in the config file format', async () => {
    await withApp([`user_config ${users}/%h/%u`, 'probe', 'accept_all'], async (t) => {
      const client = await withRecipients(t, ['<alice@example.test>', '<bob@example.test>', '<carol@example.test>']);
      assert.deepEqual(await userConfig(client, '<alice@example.test>', 'spam_level'), ['5', 'second value']);
      assert.deepEqual(await userConfig(client, '<bob@example.test>', 'spam_level'), ['9']);
      // No file for carol: the config directory.
      assert.deepEqual(await userConfig(client, '<carol@example.test>', 'spam_level'), ['3']);
      // An empty file is an answer: no values.
      assert.deepEqual(await userConfig(client, '<alice@example.test>', 'empty_setting'), []);
      // A folder is not a file; neither is a missing one.
      assert.deepEqual(await userConfig(client, '<alice@example.test>', 'a_folder'), []);
      assert.deepEqual(await userConfig(client, '<alice@example.test>', 'nothing_here'), []);
    }, { spam_level: '3' });
  });

  it('%a is the whole address; a relative pattern starts beside the config dir', async () => {
    await withApp(['user_config peruser/%a', 'probe', 'accept_all'], async (t) => {
      const client = await withRecipients(t, ['<dave@example.test>']);
      assert.deepEqual(await userConfig(client, '<dave@example.test>', 'greeting'), ['hello dave']);
      // The sender's address is bound too.
      assert.deepEqual(await userConfig(client, '<sender@example.test>', 'greeting'), ['hello sender']);
    }, { '../peruser/dave@example.test/greeting': 'hello dave\n', '../peruser/sender@example.test/greeting': 'hello sender\n' });
  });

  it('addresses that would leave the folder are not looked up', async () => {
    await withApp([`user_config ${users}/%h/%u`, 'probe', 'accept_all'], async (t) => {
      const client = await withRecipients(t, ['<..@example.test>', '<"../../x"@example.test>']);
      // (The probe finds an address by its printed form, which quotes such a local part.)
      assert.deepEqual(await userConfig(client, '<".."@example.test>', 'secret'), ['from the config dir']);
      assert.deepEqual(await userConfig(client, '<"../../x"@example.test>', 'secret'), ['from the config dir']);
    }, { secret: 'from the config dir' });
  });

  it('changes are seen after the cache second', async () => {
    put('example.test/erin/level', 'one\n');
    await withApp([`user_config ${users}/%h/%u`, 'probe', 'accept_all'], async (t) => {
      const client = await withRecipients(t, ['<erin@example.test>']);
      assert.deepEqual(await userConfig(client, '<erin@example.test>', 'level'), ['one']);
      put('example.test/erin/level', 'two\n');
      const changed = Date.now();
      await eventually('the new value', async () => JSON.stringify(await userConfig(client, '<erin@example.test>', 'level')) === '["two"]');
      assert.ok(Date.now() - changed < 3000, 'seen within about a second');
    });
  });

  it('the default pattern is /home/%u/.qpsmtpd; more than one pattern is a load error', async () => {
    await withApp(['user_config', 'probe', 'accept_all'], async (t) => {
      const client = await withRecipients(t, ['<nobody-here-12345@example.test>']);
      assert.deepEqual(await userConfig(client, '<nobody-here-12345@example.test>', 'me'), ['mx.example.test']);
    });
    await assert.rejects(withApp(['user_config /a /b'], async () => undefined), LoadFailure);
  });
});
