import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FakeConn, ParsedReply } from '../../helpers/fake-conn.ts';
import { testApp, type TestApp } from '../../helpers/test-app.ts';

/**
 * `probe`: in data_post wraps tx.bodyStream so that the bytes a later plugin reads from it are
 * counted; the verb XREAD answers 250 with the count of the last message.
 */
const PROBE = `import { Plugin, DECLINED, DONE } from 'qpsmtpd';
import type { Transaction } from 'qpsmtpd';
let lastRead = -1;
export default class Probe extends Plugin {
  hook_data_post(tx: Transaction) {
    lastRead = 0;
    const original = tx.bodyStream.bind(tx);
    tx.bodyStream = () => {
      const stream = original();
      stream.on('data', (chunk: Buffer) => { lastRead += chunk.length; });
      return stream;
    };
    return DECLINED;
  }
  hook_unrecognized_command(_tx: Transaction, verb: string) {
    if (verb !== 'xread') return DECLINED;
    this.qp.respond(250, String(lastRead));
    return DONE;
  }
}
`;

/** `norcpt`: removes every recipient in data_post (a plugin that decided nobody gets it). */
const NORCPT = `import { Plugin, DECLINED } from 'qpsmtpd';
import type { Transaction } from 'qpsmtpd';
export default class NoRcpt extends Plugin {
  hook_data_post(tx: Transaction) {
    for (const r of [...tx.recipients]) tx.removeRecipient(r);
    return DECLINED;
  }
}
`;

async function withApp(plugins: string[], fn: (t: TestApp) => Promise<void>): Promise<void> {
  const t = await testApp({
    // A small threshold: the large message below goes through the spool file.
    config: { plugins, rcpthosts: 'example.com', size_threshold: '4096' },
    plugins: { 'probe.ts': PROBE, 'norcpt.ts': NORCPT },
  });
  try {
    await fn(t);
  } finally {
    await t.cleanup();
  }
}

/** MAIL, RCPT, DATA and the message (CRLF line ends, no line starting with a dot); the final reply. */
async function sendMessage(client: FakeConn, message: string): Promise<ParsedReply> {
  assert.equal((await client.command('MAIL FROM:<sender@origin.example>')).code, 250);
  assert.equal((await client.command('RCPT TO:<user@example.com>')).code, 250);
  assert.equal((await client.command('DATA')).code, 354);
  client.send(message);
  client.send('.\r\n');
  return client.reply(10_000);
}

const SMALL = 'Subject: small\r\n\r\nhello\r\n';
const LARGE = 'Subject: large\r\n\r\n' + ('y'.repeat(78) + '\r\n').repeat(2000); // 160 KB: spooled

describe('queue/discard', () => {
  it('answers 250 Queued (discarded) after reading the whole message, and keeps nothing', async () => {
    await withApp(['rcpt_ok', 'probe', 'queue/discard'], async (t) => {
      const { client, done } = await t.greeted();
      assert.equal((await client.command('EHLO client.example')).code, 250);
      for (const message of [SMALL, LARGE]) {
        const reply = await sendMessage(client, message);
        assert.equal(reply.code, 250, reply.raw);
        assert.equal(reply.text, '2.0.0 Queued (discarded)');
        // Everything was read: the Received header the core added, the header block, the body.
        const read = Number((await client.command('XREAD')).text.replace(/^2\.0\.0 /, ''));
        assert.ok(read > Buffer.byteLength(message), `read ${read} of a ${Buffer.byteLength(message)}-byte message`);
      }
      assert.equal((await client.command('QUIT')).code, 221);
      await done;
      assert.deepEqual(readdirSync(join(t.root, 'spool')), [], 'no spool file left behind');
    });
  });

  it('declines when no recipient is left, so the message is not acknowledged', async () => {
    await withApp(['rcpt_ok', 'norcpt', 'queue/discard'], async (t) => {
      const { client, done } = await t.greeted();
      assert.equal((await client.command('EHLO client.example')).code, 250);
      const reply = await sendMessage(client, SMALL);
      assert.notEqual(reply.code, 250, reply.raw);
      assert.ok(reply.code >= 400, reply.raw);
      assert.equal((await client.command('QUIT')).code, 221);
      await done;
    });
  });
});
