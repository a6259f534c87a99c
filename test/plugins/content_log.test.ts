import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/test-app.ts';
import { strftime } from '../../plugins/content_log.ts';
import { eventually, goodHeaders, message, quit, sendMessage, sendOne, withApp } from './content-support.ts';

const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));
let queues = 0;
const queue = (): string => `queue_capture ${join(dir, `q${++queues}`)}`;

/** Split an mboxrd file into its messages (separator line, then the message). */
function messagesOf(text: string): { separator: string; body: string }[] {
  const parts = text.split(/^(?=From \S+ \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n)/m).filter((p) => p !== '');
  return parts.map((p) => {
    const nl = p.indexOf('\n');
    return { separator: p.slice(0, nl), body: p.slice(nl + 1) };
  });
}

describe('content_log', () => {
  it('appends each message, as queued, to mail/%Y%m%d beside the config dir, as an mbox', async () => {
    await withApp(['content_log', 'accept_all', queue()], async (t) => {
      const first = await sendOne(t, message(goodHeaders(), 'First body.\nFrom the start of a line\n>From already quoted\n.leading dot\n'));
      assert.equal(first.code, 250, first.raw);
      const second = await sendOne(t, message(goodHeaders(), 'Second body.\n'), { from: '' });
      assert.equal(second.code, 250, second.raw);

      const file = join(t.root, 'mail', strftime('%Y%m%d', new Date()));
      const text = readFileSync(file, 'utf8');
      assert.ok(!text.includes('\r'), 'LF line ends');
      const messages = messagesOf(text);
      assert.equal(messages.length, 2, text);
      assert.match(messages[0]!.separator, /^From sender@example\.test /);
      assert.match(messages[1]!.separator, /^From MAILER-DAEMON /);
      // The message as queued: our Received line on top, then the client's header, the body.
      assert.match(messages[0]!.body, /^Received: from /);
      assert.match(messages[0]!.body, /\nSubject: test\n/);
      assert.ok(messages[0]!.body.endsWith('\n\nFirst body.\n>From the start of a line\n>>From already quoted\n.leading dot\n\n'), JSON.stringify(messages[0]!.body));
      assert.ok(messages[1]!.body.endsWith('\n\nSecond body.\n\n'));
      assert.equal(statSync(file).mode & 0o777, 0o600);
    });
  });

  it('content_log_file is a strftime pattern, relative to the folder of the config dir or absolute', async () => {
    const absolute = join(dir, 'abs', 'log-%Y.mbox');
    await withApp(['content_log', 'accept_all', queue()], async (t) => {
      assert.equal((await sendOne(t, message(goodHeaders()))).code, 250);
      assert.ok(existsSync(join(t.root, 'archive', `${new Date().getFullYear()}`, 'messages')));
      t.writeConfig('content_log_file', absolute);
      // The config directory is re-read at most once a second: the change applies without a restart.
      await eventually('the new content_log_file', async () => {
        assert.equal((await sendOne(t, message(goodHeaders()))).code, 250);
        return existsSync(strftime(absolute, new Date()));
      });
      assert.equal(messagesOf(readFileSync(strftime(absolute, new Date()), 'utf8')).length, 1);
    }, { content_log_file: 'archive/%Y/messages' });
  });

  it('content_log_enabled false (or anything but true/1/yes) turns it off', async () => {
    for (const value of ['false', '0', 'no', 'off']) {
      await withApp(['content_log', 'accept_all', queue()], async (t) => {
        assert.equal((await sendOne(t, message(goodHeaders()))).code, 250);
        assert.ok(!existsSync(join(t.root, 'mail')), value);
      }, { content_log_enabled: value });
    }
    await withApp(['content_log', 'accept_all', queue()], async (t) => {
      assert.equal((await sendOne(t, message(goodHeaders()))).code, 250);
      assert.ok(existsSync(join(t.root, 'mail')));
    }, { content_log_enabled: 'YES' });
  });

  it('a log that cannot be written is logged and the message still goes through', async () => {
    await withApp(['content_log', 'accept_all', queue()], async (t) => {
      mkdirSync(join(t.root, 'log-is-a-folder'), { recursive: true });
      const reply = await sendOne(t, message(goodHeaders()));
      assert.equal(reply.code, 250, reply.raw);
      assert.ok(t.logs.some((l) => l.includes('content_log: cannot write') && l.includes('continuing anyway')), t.logs.join('\n'));
    }, { content_log_file: 'log-is-a-folder' });
  });

  it('messages of concurrent sessions do not interleave, small or large (streamed)', async () => {
    await withApp(['content_log', 'accept_all', queue()], async (t) => {
      const line = 'x'.repeat(998) + '\n';
      const big = line.repeat(4400); // over 4 MiB: streamed to the file
      const bodies = [`A\n${big}A end\n`, `B\n${line.repeat(50)}B end\n`, `C\n${line.repeat(50)}C end\n`];
      const sessions = await Promise.all(bodies.map(() => t.greeted()));
      const replies = await Promise.all(sessions.map((s, i) => sendMessage(s.client, message(goodHeaders(), bodies[i]))));
      for (const reply of replies) assert.equal(reply.code, 250, reply.raw);
      await Promise.all(sessions.map((s) => quit(s)));
      const messages = messagesOf(readFileSync(join(t.root, 'mail', strftime('%Y%m%d', new Date())), 'utf8'));
      assert.equal(messages.length, 3);
      for (const m of messages) {
        const body = m.body.slice(m.body.indexOf('\n\n') + 2);
        assert.ok(bodies.map((b) => b + '\n').includes(body), `a message came out whole (${body.length} bytes)`);
      }
    });
  });
});
