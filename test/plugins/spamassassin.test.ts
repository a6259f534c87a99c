/**
 * spamassassin against a real spamd (SpamAssassin with Debian's rules) started by the test: GTUBE
 * refused or marked, ham passed with spamd's headers, old headers renamed or dropped, the note
 * other plugins read, per-user and multi-recipient behaviour, relay clients, the size limit, and a
 * spamd that is down or silent.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testServer } from '../../src/testing/index.ts';
import { GTUBE, SilentServer, Spamd, buildMessage, freePort, sendOne, withServer } from './scanner-support.ts';

const gtube = (subject = 'buy now', headers: Record<string, string> = {}): string => buildMessage({ subject, headers, body: `${GTUBE}\n` });
const ham = (headers: Record<string, string> = {}): string =>
  buildMessage({ subject: 'lunch on friday', headers, body: 'Hi Bob,\n\nare we still on for lunch on Friday at noon?\n\nAlice\n' });

interface Note {
  is_spam: string;
  score: number;
  required: number;
  tests: string;
  autolearn?: string;
  version?: string;
}

describe('spamassassin against spamd', { timeout: 240_000 }, () => {
  let spamd: Spamd;
  let tcp: string;
  before(async () => {
    spamd = await Spamd.start();
    tcp = `spamd_socket 127.0.0.1:${spamd.port} spamd_user nobody timeout 90`;
  });
  after(async () => {
    await spamd?.stop();
  });

  it('refuses GTUBE over the reject threshold (TCP): 552, note with score, required and tests, karma', async () => {
    await withServer([`spamassassin ${tcp} reject 10`], async (server) => {
      const session = await server.connect();
      const result = await session.sendMail('sender@origin.example', ['user@example.com'], gtube());
      assert.equal(result.code, 552, result.raw);
      assert.equal(result.text, 'spam score exceeded threshold');
      const note = session.transaction.notes['spamassassin'] as Note | undefined;
      // The transaction was reset after the refusal: the log tells what the note said.
      assert.equal(note, undefined);
      assert.ok(server.logs.some((l) => /fail, Spam, 10\d\d(\.\d+)?, > 10/.test(l.text)), server.logs.map((l) => l.text).join('\n'));
      assert.ok((session.connection.notes['karma'] as number) <= -1);
      await session.quit();
    });
  });

  it('passes ham over the unix socket with spamd’s X-Spam-* headers on top, and the note', async () => {
    await withServer([`spamassassin spamd_socket ${spamd.socketPath} spamd_user nobody timeout 90 reject 10`], async (server) => {
      const result = await sendOne(server, ham({ 'X-Spam-Status': 'No, score=-100 (from upstream)' }));
      assert.equal(result.code, 250, result.raw);
      const queued = server.queued[0]!;
      const names = queued.header.names();
      const ours = names.filter((n) => /^X-Spam-/i.test(n));
      assert.deepEqual(ours, ['X-Spam-Checker-Version', 'X-Spam-Level', 'X-Spam-Status'], names.join(', '));
      assert.ok(names.indexOf('X-Spam-Status') < names.indexOf('Received'), 'on top, above our Received');
      assert.match(queued.header.get('X-Spam-Status')!, /^No, score=-?\d+\.\d+ required=5\.0 tests=\S+/);
      assert.equal(queued.header.get('X-Old-Spam-Status'), 'No, score=-100 (from upstream)');
      const note = queued.notes['spamassassin'] as Note;
      assert.equal(note.is_spam, 'No');
      assert.equal(typeof note.score, 'number');
      assert.ok(note.score < 5);
      assert.equal(note.required, 5);
      assert.doesNotMatch(note.tests, /\s/);
      assert.equal(note.version, '4.0.1');
      assert.ok(server.logs.some((l) => /pass, Ham, -?[\d.]+ < 10/.test(l.text)));
    });
  });

  it('marks GTUBE when not refusing: X-Spam-Flag, folded X-Spam-Status, Subject prefixed, old headers dropped', async () => {
    await withServer([`spamassassin ${tcp} munge_subject_threshold 8 subject_prefix [SPAM] leave_old_headers drop`], async (server) => {
      const result = await sendOne(server, gtube('cheap pills', { 'X-Spam-Flag': 'NO' }));
      assert.equal(result.code, 250, result.raw);
      const queued = server.queued[0]!;
      assert.equal(queued.header.get('Subject'), '[SPAM] cheap pills');
      assert.deepEqual(queued.header.getAll('X-Spam-Flag'), ['YES']);
      assert.equal(queued.header.get('X-Old-Spam-Flag'), undefined);
      assert.match(queued.message, /\r\nX-Spam-Status: Yes, score=10\d\d[^\r]*\r\n\t\S/, 'spamd’s folding kept');
      const note = queued.notes['spamassassin'] as Note;
      assert.equal(note.is_spam, 'Yes');
      assert.ok(note.score >= 1000);
      assert.match(note.tests, /(^|,)GTUBE(,|$)/);
      assert.ok(server.logs.some((l) => /fail, tolerated, Spam, 10\d\d(\.\d+)?, reject disabled/.test(l.text)));
    });
  });

  it('headers off: no header, no Subject change, but the note', async () => {
    await withServer([`spamassassin ${tcp} headers off munge_subject_threshold 1`], async (server) => {
      const result = await sendOne(server, gtube('plain subject'));
      assert.equal(result.code, 250, result.raw);
      const queued = server.queued[0]!;
      assert.deepEqual(queued.header.names().filter((n) => /spam/i.test(n)), []);
      assert.equal(queued.header.get('Subject'), 'plain subject');
      assert.equal((queued.notes['spamassassin'] as Note).is_spam, 'Yes');
    });
  });

  it('reject userprefs uses spamd’s threshold; reject_type temp answers 452', async () => {
    await withServer([`spamassassin ${tcp} reject userprefs reject_type temp`], async (server) => {
      const result = await sendOne(server, gtube());
      assert.equal(result.code, 452, result.raw);
      assert.ok(server.logs.some((l) => /fail, Spam, [\d.]+, > 5, learn=no$/.test(l.text)));
      assert.equal((await sendOne(server, ham())).code, 250);
    });
  });

  it('several recipients: X-Spam-User names the spamd user and the count (an old one renamed)', async () => {
    await withServer([`spamassassin ${tcp}`], async (server) => {
      const result = await sendOne(server, ham({ 'X-Spam-User': 'forged' }), { to: ['a@example.com', 'b@example.com'] });
      assert.equal(result.code, 250, result.raw);
      assert.equal(server.queued[0]!.header.get('X-Spam-User'), 'nobody, 2 recipients');
      assert.equal(server.queued[0]!.header.get('X-Old-Spam-User'), 'forged');
    });
  });

  it('relay clients are skipped unless relayclient scan; the size limit skips large messages', async () => {
    await withServer([`spamassassin ${tcp} reject 10`], async (server) => {
      assert.equal((await sendOne(server, gtube(), { relayClient: true })).code, 250);
      assert.ok(server.logs.some((l) => l.text.includes('skip, relay client')));
    });
    await withServer([`spamassassin ${tcp} reject 10 relayclient scan`], async (server) => {
      assert.equal((await sendOne(server, gtube(), { relayClient: true })).code, 552);
    });
    await withServer([`spamassassin ${tcp} reject 10 size_limit 100`], async (server) => {
      assert.equal((await sendOne(server, gtube())).code, 250);
      assert.ok(server.logs.some((l) => /skip, too large \(\d+ > 100 bytes\)/.test(l.text)));
    });
  });

  it('spamd down: a logged pass by default, 452 with defer_on_error', async () => {
    const closed = await freePort();
    await withServer([`spamassassin spamd_socket 127.0.0.1:${closed} reject 5`], async (server) => {
      const result = await sendOne(server, gtube());
      assert.equal(result.code, 250, result.raw);
      assert.equal(server.queued[0]!.header.get('X-Spam-Status'), undefined);
      assert.ok(server.logs.some((l) => /error, spamd at 127\.0\.0\.1:\d+: cannot connect: .*passing the message unscanned/.test(l.text)));
    });
    await withServer([`spamassassin spamd_socket 127.0.0.1:${closed} defer_on_error yes`], async (server) => {
      const result = await sendOne(server, gtube());
      assert.equal(result.code, 452, result.raw);
      assert.equal(`${result.enhanced} ${result.text}`, '4.3.0 Unable to scan for spam, try again later');
    });
  });

  it('spamd silent: the timeout answers 452 in time', async () => {
    const silent = await SilentServer.start();
    try {
      await withServer([`spamassassin spamd_socket 127.0.0.1:${silent.port} timeout 0.5 defer_on_error yes`], async (server) => {
        const started = Date.now();
        const result = await sendOne(server, ham());
        assert.equal(result.code, 452, result.raw);
        assert.ok(Date.now() - started < 10_000);
      });
    } finally {
      await silent.stop();
    }
  });

  it('refuses bad arguments at load time', async () => {
    await assert.rejects(testServer({ plugins: ['spamassassin reject lots'] }), /reject "lots": expected a score/);
    await assert.rejects(testServer({ plugins: ['spamassassin leave_old_headers maybe'] }), /leave_old_headers "maybe"/);
    await assert.rejects(testServer({ plugins: ['spamassassin relayclient always'] }), /relayclient "always"/);
    await assert.rejects(testServer({ plugins: ['spamassassin spamd_socket bad host:1'] }), /not "name value" pairs/);
  });
});
