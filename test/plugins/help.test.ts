import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LoadFailure } from '../../src/app.ts';
import { tempDir } from '../helpers/test-app.ts';
import { withApp } from './content-support.ts';

const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));
const files = join(dir, 'files');
mkdirSync(join(files, 'dir'), { recursive: true });
writeFileSync(join(files, 'dir', 'rcpt'), 'RCPT TO:<address>\r\n  names a recipient.\r\n');
writeFileSync(join(files, 'mail-help.txt'), 'MAIL FROM:<address>\n\n  starts a message.\n\n');
writeFileSync(join(files, 'dir', 'empty'), '');

describe('help', () => {
  it('without arguments: help/ beside the config dir; HELP alone gets the usage line', async () => {
    await withApp(['help'], async (t) => {
      const { client } = await t.greeted();
      let reply = await client.command('HELP');
      assert.deepEqual([reply.code, reply.lines], [214, ["2.0.0 Try 'HELP COMMAND' for getting help on COMMAND"]]);
      reply = await client.command('HELP data');
      assert.deepEqual([reply.code, reply.lines], [214, ['2.0.0 DATA', '2.0.0   sends the message.']]);
      reply = await client.command('HELP VRFY');
      assert.deepEqual([reply.code, reply.lines], [214, ['2.0.0 No help available for SMTP command: vrfy']]);
    }, { '../help/data': 'DATA\n  sends the message.\n' });
  });

  it('COMMAND FILE pairs and help_dir; a file per command wins over the folder', async () => {
    await withApp([`help help_dir ${join(files, 'dir')} mail ${join(files, 'mail-help.txt')}`], async (t) => {
      const { client } = await t.greeted();
      let reply = await client.command('HELP Mail');
      assert.deepEqual([reply.code, reply.lines], [214, ['2.0.0 MAIL FROM:<address>', '2.0.0 ', '2.0.0   starts a message.']]);
      reply = await client.command('HELP rcpt');
      assert.deepEqual([reply.code, reply.lines], [214, ['2.0.0 RCPT TO:<address>', '2.0.0   names a recipient.']]);
      reply = await client.command('HELP empty');
      assert.deepEqual([reply.code, reply.lines], [214, ['2.0.0 No help available for SMTP command: empty']]);
      // With arguments and no help_dir there is no folder: the default help/ is not used.
    });
  });

  it('a FILE without / is looked for in help/; a missing one is logged and ignored', async () => {
    await withApp(['help noop noop.txt quit nosuchfile'], async (t) => {
      assert.ok(t.logs.some((l) => l.includes("No help file for command 'quit'")), t.logs.join('\n'));
      const { client } = await t.greeted();
      let reply = await client.command('HELP NOOP');
      assert.deepEqual([reply.code, reply.lines], [214, ['2.0.0 NOOP does nothing.']]);
      reply = await client.command('HELP quit');
      assert.deepEqual([reply.code, reply.lines], [214, ['2.0.0 No help available for SMTP command: quit']]);
      // Arguments given, no help_dir: help/quit exists but the folder is not searched.
      reply = await client.command('HELP data');
      assert.deepEqual([reply.code, reply.lines], [214, ['2.0.0 No help available for SMTP command: data']]);
    }, { '../help/noop.txt': 'NOOP does nothing.\n', '../help/data': 'DATA\n' });
  });

  it('refuses command names that could leave the folder with 502', async () => {
    await withApp(['help'], async (t) => {
      const { client } = await t.greeted();
      for (const arg of ['../config/me', '/etc/passwd', 'a.b']) {
        const reply = await client.command(`HELP ${arg}`);
        assert.deepEqual([reply.code, reply.text], [502, '5.5.4 Invalid command name'], arg);
      }
    }, { '../help/x': 'x\n' });
  });

  it('not_implemented 1 answers every HELP with 502; not_implemented 0 does not', async () => {
    await withApp(['help not_implemented 1'], async (t) => {
      const { client } = await t.greeted();
      for (const command of ['HELP', 'HELP MAIL']) {
        const reply = await client.command(command);
        assert.deepEqual([reply.code, reply.text], [502, '5.5.1 Not implemented.']);
      }
    });
    await withApp(['help not_implemented 0'], async (t) => {
      const { client } = await t.greeted();
      assert.equal((await client.command('HELP')).code, 214);
    });
  });

  it('an odd number of arguments is a load error', async () => {
    await assert.rejects(withApp(['help help_dir'], async () => undefined), LoadFailure);
  });
});
