/**
 * queue/exim-bsmtp against Debian's Exim (exim4-daemon-light) run as `exim4 -C <the test's config>
 * -bS`, with its spool, log and mailboxes in a temp folder (see support.ts for how the binary is
 * found and how its compiled-in user is supplied): delivery, byte-exact after Exim's trace fields;
 * Exim's 5xx (acl_not_smtp deny, message_size_limit) and its failures without a reply (4xx).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { testApp, type TestApp } from '../../helpers/test-app.ts';
import { Exim, afterLine, eximBinary, lf, send, sleep, tricky, waitFor } from './support.ts';

async function withExim(args: string, fn: (t: TestApp) => Promise<void>): Promise<void> {
  const t = await testApp({ config: { plugins: ['rcpt_ok', `queue/exim-bsmtp ${args}`], rcpthosts: ['example.com'] } });
  try {
    await fn(t);
  } finally {
    await t.cleanup();
  }
}

/** The mbox message holding this Message-ID (Exim delivers in the background). */
async function mboxMessage(exim: Exim, user: string, messageId: string): Promise<Buffer> {
  const file = exim.mailbox(user);
  const needle = Buffer.from(`Message-ID: <${messageId}>`);
  return waitFor(`<${messageId}> in ${file}`, () => {
    if (!existsSync(file)) return undefined;
    const box = readFileSync(file);
    const at = box.indexOf(needle);
    if (at === -1) return undefined;
    const start = box.lastIndexOf(Buffer.from('\nFrom '), at);
    const end = box.indexOf(Buffer.from('\nFrom '), at);
    return box.subarray(start === -1 ? 0 : start + 1, end === -1 ? box.length : end + 1);
  });
}

describe('queue/exim-bsmtp against Exim', { timeout: 60_000 }, () => {
  const binary = eximBinary();
  let exim: Exim;
  before(() => {
    assert.ok(binary, 'Exim is installed or extracted by .ci/run into /var/cache/qpsmtpd-test/exim4');
    exim = Exim.prepare(binary);
  });
  after(() => exim?.cleanup());

  it('spools into Exim, which delivers it unchanged: dot lines, 8-bit text', async () => {
    const message = tricky('exim test', 'exim-1@origin.example');
    await withExim(exim.program, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>', '<other@example.com>'], mailParams: ' BODY=8BITMIME', message });
      assert.equal(reply.code, 250, reply.raw);
      assert.equal(reply.text, '2.0.0 Queued!');
      for (const user of ['user', 'other']) {
        const box = await mboxMessage(exim, user, 'exim-1@origin.example');
        assert.match(box.toString('utf8'), /^From sender@origin\.example /);
        assert.match(box.toString('utf8'), /\nReturn-path: <sender@origin\.example>\n/);
        assert.match(box.toString('utf8'), /by exim\.test with local-bsmtp \(Exim 4\.\d+\)/);
        const ours = afterLine(box, 'Received: from client.example ([192.0.2.10])');
        // mbox: a blank line after each message.
        const expected = Buffer.concat([lf(message), Buffer.from('\n')]);
        assert.ok(ours.subarray(ours.length - expected.length).equals(expected), ours.toString('utf8'));
      }
    });
  });

  it('the null sender and a UTF-8 sender', async () => {
    await withExim(exim.program, async (t) => {
      assert.equal((await send(t, { from: '<>', to: ['<user@example.com>'], message: tricky('null', 'exim-null@origin.example') })).code, 250);
      assert.equal((await send(t, { from: '<jörg@origin.example>', mailParams: ' SMTPUTF8', to: ['<user@example.com>'], message: tricky('utf8', 'exim-utf8@origin.example') })).code, 250);
      assert.match((await mboxMessage(exim, 'user', 'exim-null@origin.example')).toString('utf8'), /\nReturn-path: <>\n/);
      assert.match((await mboxMessage(exim, 'user', 'exim-utf8@origin.example')).toString('utf8'), /\nReturn-path: <jörg@origin\.example>\n/);
    });
  });

  it("Exim's 5xx (an ACL deny, the size limit) becomes DENY with its text", async () => {
    await withExim(exim.program, async (t) => {
      const refused = await send(t, { to: ['<user@example.com>'], message: tricky('reject me', 'exim-reject@origin.example') });
      assert.equal(refused.code, 552, refused.raw);
      assert.equal(refused.text, '5.0.0 content refused by the test');
      const big = tricky('big', 'exim-big@origin.example') + 'b'.repeat(76) + '\r\n'.repeat(1) + ('c'.repeat(998) + '\r\n').repeat(150);
      const tooBig = await send(t, { to: ['<user@example.com>'], message: big });
      assert.equal(tooBig.code, 552, tooBig.raw);
      assert.match(tooBig.text, /^5\.0\.0 Message size exceeds maximum permitted/);
    });
    await sleep(200);
    assert.ok(!readFileSync(exim.mailbox('user'), 'utf8').includes('exim-reject@origin.example'));
  });

  it('Exim failing without a reply (a spool it cannot use): 4xx', async () => {
    const broken = Exim.prepare(binary!);
    try {
      rmSync(join(broken.dir, 'spool'), { recursive: true, force: true });
      writeFileSync(join(broken.dir, 'spool'), 'not a directory');
      await withExim(broken.program, async (t) => {
        const reply = await send(t, { to: ['<user@example.com>'], message: tricky('broken', 'exim-broken@origin.example') });
        assert.equal(reply.code, 452, reply.raw);
        assert.equal(reply.text, '4.3.0 Internal error enqueuing mail, try again later');
      });
    } finally {
      broken.cleanup();
    }
  });

  it('qpsmtpd\'s `exim_path PATH` form; a missing Exim is a 4xx', async () => {
    await withExim(`exim_path ${exim.program}`, async (t) => {
      assert.equal((await send(t, { to: ['<other@example.com>'], message: tricky('path', 'exim-path@origin.example') })).code, 250);
      await mboxMessage(exim, 'other', 'exim-path@origin.example');
    });
    await withExim('/nonexistent/exim4', async (t) => {
      const reply = await send(t, { to: ['<user@example.com>'], message: tricky('missing', 'exim-missing@origin.example') });
      assert.equal(reply.code, 452, reply.raw);
    });
  });

  it('leaves nothing queued in Exim', async () => {
    await waitFor('an empty Exim queue', () => (exim.queued().length === 0 ? true : undefined));
  });
});
