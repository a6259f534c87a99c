import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/test-app.ts';
import { goodHeaders, message, sendOne, withApp } from './content-support.ts';

const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));
let queues = 0;
const queueDir = (): string => join(dir, `q${++queues}`);

const received = (n: number): string => Array.from({ length: n }, (_, i) => `Received: from hop${i}.example by hop${i + 1}.example; ${new Date().toUTCString()}\n`).join('');

describe('loop', () => {
  it('default 100 hops, counting the Received header this server adds: 98 earlier hops pass, 99 do not', async () => {
    const q = queueDir();
    await withApp(['loop', 'accept_all', `queue_capture ${q}`], async (t) => {
      let reply = await sendOne(t, message(received(98) + goodHeaders()));
      assert.equal(reply.code, 250, reply.raw);
      reply = await sendOne(t, message(received(99) + goodHeaders()));
      assert.deepEqual([reply.code, reply.text], [552, '5.4.6 Too many hops']);
      assert.equal(readdirSync(q).length, 1, 'only the first message was queued');
      assert.ok(t.logs.some((l) => l.includes('loop: fail, 100 hops (max 100)')), t.logs.join('\n'));
    });
  });

  it('counts Delivered-To lines too, against the given maximum', async () => {
    await withApp(['loop 3', 'accept_all', `queue_capture ${queueDir()}`], async (t) => {
      let reply = await sendOne(t, message(received(1) + goodHeaders()));
      assert.equal(reply.code, 250, reply.raw);
      reply = await sendOne(t, message(received(1) + 'Delivered-To: someone@example.test\n' + goodHeaders()));
      assert.deepEqual([reply.code, reply.text], [552, '5.4.6 Too many hops']);
    });
  });

  it('relay clients are checked too', async () => {
    await withApp(['probe relayclient 1', 'loop 2', 'accept_all', `queue_capture ${queueDir()}`], async (t) => {
      const reply = await sendOne(t, message(received(1) + goodHeaders()));
      assert.equal(reply.code, 552, reply.raw);
    });
  });

  it('an invalid maximum is logged and the default used; extra arguments are logged', async () => {
    await withApp(['loop many more', 'accept_all', `queue_capture ${queueDir()}`], async (t) => {
      const reply = await sendOne(t, message(received(20) + goodHeaders()));
      assert.equal(reply.code, 250, reply.raw);
      assert.ok(t.logs.some((l) => l.includes('Invalid max_hops value "many" -- using default 100')), t.logs.join('\n'));
      assert.ok(t.logs.some((l) => l.includes('Ignoring additional arguments "more"')), t.logs.join('\n'));
    });
  });

  it('accepts loglevel beside the maximum', async () => {
    await withApp(['loop 2 loglevel 7', 'accept_all', `queue_capture ${queueDir()}`], async (t) => {
      const reply = await sendOne(t, message(received(1) + goodHeaders()));
      assert.equal(reply.code, 552, reply.raw);
      assert.ok(!t.logs.some((l) => l.includes('Ignoring additional arguments')), t.logs.join('\n'));
    });
  });
});
