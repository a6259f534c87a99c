/**
 * rspamd against a real rspamd (Debian's package and rules, one normal worker, offline) started by
 * the test: GTUBE rejected by rspamd itself, each other action forced by a test rule from the
 * Subject, rspamd's header changes, the envelope it was told (echoed back by a test symbol), the
 * note, and an rspamd that is down or silent.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testServer } from '../../src/testing/index.ts';
import type { RspamdNote } from '../../plugins/rspamd.ts';
import { GTUBE, Rspamd, SilentServer, buildMessage, freePort, sendOne, withServer } from './scanner-support.ts';

const message = (subject: string, headers: Record<string, string> = {}, body = 'Hello Bob,\n\nsee you on Friday.\n'): string => buildMessage({ subject, headers, body });

describe('rspamd against rspamd', { timeout: 240_000 }, () => {
  let rspamd: Rspamd;
  let socket: string;
  before(async () => {
    rspamd = await Rspamd.start();
    socket = `rspamd_socket 127.0.0.1:${rspamd.port} timeout 90`;
  });
  after(async () => {
    await rspamd?.stop();
  });

  it('GTUBE: rspamd says reject, the client gets 552 with rspamd’s message', async () => {
    await withServer([`rspamd ${socket}`], async (server) => {
      const session = await server.connect();
      const result = await session.sendMail('sender@origin.example', ['user@example.com'], message('gtube', {}, `${GTUBE}\n`));
      assert.equal(result.code, 552, result.raw);
      assert.equal(result.text, 'Gtube pattern');
      assert.equal(session.connection.notes['karma'], -1);
      await session.quit();
      assert.ok(server.logs.some((l) => /rspamd: fail, reject, score [\d.]+ \/ 1000/.test(l.text)), server.logs.map((l) => l.text).join('\n'));
    });
  });

  it('ham: delivered with X-Spam-Status No and the note; rspamd heard the envelope and the connection', async () => {
    // An authenticated client is a relay client: scanned only with relayclient scan.
    await withServer([`rspamd ${socket} relayclient scan`], async (server) => {
      const result = await sendOne(server, message('hello', { 'X-Spam-Status': 'Yes, forged upstream' }), {
        from: 'alice@origin.example',
        to: ['bob@example.com', 'carol@example.com'],
        remoteIp: '198.51.100.7',
        remoteHost: 'mail.origin.example',
        auth: 'alice',
      });
      assert.equal(result.code, 250, result.raw);
      const queued = server.queued[0]!;
      assert.match(queued.header.get('X-Spam-Status')!, /^No, score=-?\d+\.\d required=1000\.0 action=no_action\s+tests=\S*QP_TEST_ENVELOPE/);
      assert.equal(queued.header.get('X-Spam-Flag'), undefined);
      assert.equal(queued.header.get('X-Old-Spam-Status'), 'Yes, forged upstream');
      const note = queued.notes['rspamd'] as RspamdNote;
      assert.equal(note.action, 'no action');
      assert.equal(note.required_score, 1000);
      assert.equal(typeof note.score, 'number');
      const told = note.symbols['QP_TEST_ENVELOPE']?.options ?? [];
      for (const expected of ['ip=198.51.100.7', 'helo=client.example.test', 'hostname=mail.origin.example', 'from=alice@origin.example', 'rcpt=bob@example.com', 'rcpt=carol@example.com', 'user=alice', `queue-id=${queued.id}`]) {
        assert.ok(told.includes(expected), `${expected} in ${JSON.stringify(told)}`);
      }
    });
  });

  it('add header: delivered marked (X-Spam-Flag YES, X-Spam-Status Yes); headers spam leaves ham unmarked', async () => {
    await withServer([`rspamd ${socket} headers spam`], async (server) => {
      assert.equal((await sendOne(server, message('offer [action:add header]'))).code, 250);
      assert.equal((await sendOne(server, message('plain ham'))).code, 250);
      const [spam, ham] = server.queued;
      assert.equal(spam!.header.get('X-Spam-Flag'), 'YES');
      assert.match(spam!.header.get('X-Spam-Status')!, /^Yes, .* action=add_header/);
      assert.equal((spam!.notes['rspamd'] as RspamdNote).action, 'add header');
      assert.deepEqual(ham!.header.names().filter((n) => /^X-Spam/i.test(n)), []);
    });
  });

  it('rewrite subject: the Subject rspamd made; rewrite_subject no leaves it', async () => {
    await withServer([`rspamd ${socket}`], async (server) => {
      assert.equal((await sendOne(server, message('deal [action:rewrite subject]'))).code, 250);
      assert.equal(server.queued[0]!.header.get('Subject'), '*** SPAM *** deal [action:rewrite subject]');
      assert.equal(server.queued[0]!.header.get('X-Spam-Flag'), 'YES');
    });
    await withServer([`rspamd ${socket} rewrite_subject no`], async (server) => {
      assert.equal((await sendOne(server, message('deal [action:rewrite subject]'))).code, 250);
      assert.equal(server.queued[0]!.header.get('Subject'), 'deal [action:rewrite subject]');
    });
  });

  it('greylist and soft reject: 452 with rspamd’s message; greylist pass delivers', async () => {
    await withServer([`rspamd ${socket}`], async (server) => {
      const grey = await sendOne(server, message('new sender [action:greylist]'));
      assert.deepEqual([grey.code, grey.text], [452, 'test rule says greylist']);
      const soft = await sendOne(server, message('busy [action:soft reject]'));
      assert.deepEqual([soft.code, soft.text], [452, 'test rule says soft reject']);
    });
    await withServer([`rspamd ${socket} greylist pass smtp_message no reject_type temp`], async (server) => {
      assert.equal((await sendOne(server, message('new sender [action:greylist]'))).code, 250);
      assert.equal((server.queued[0]!.notes['rspamd'] as RspamdNote).action, 'greylist');
      const rejected = await sendOne(server, message('spam [action:reject]'));
      assert.deepEqual([rejected.code, rejected.text], [452, 'Spam message rejected']);
    });
  });

  it('relay clients are not scanned by default', async () => {
    await withServer([`rspamd ${socket}`], async (server) => {
      assert.equal((await sendOne(server, message('gtube', {}, `${GTUBE}\n`), { relayClient: true })).code, 250);
      assert.ok(server.logs.some((l) => l.text.includes('skip, relay client')));
      assert.equal((server.queued[0]!.notes['rspamd'] as Partial<RspamdNote> | undefined)?.action, undefined, 'not scanned');
    });
  });

  it('reject no: the message is delivered marked as spam', async () => {
    await withServer([`rspamd ${socket} reject no`], async (server) => {
      assert.equal((await sendOne(server, message('spam [action:reject]'))).code, 250);
      assert.equal(server.queued[0]!.header.get('X-Spam-Flag'), 'YES');
      assert.ok(server.logs.some((l) => /fail, tolerated, reject, score/.test(l.text)));
    });
  });

  it('rspamd’s header changes: a field added on top, one removed; milter no leaves them', async () => {
    await withServer([`rspamd ${socket} headers none`], async (server) => {
      assert.equal((await sendOne(server, message('[milter] changes', { 'X-Remove-Me': 'please' }))).code, 250);
      const header = server.queued[0]!.header;
      assert.equal(header.names()[0], 'X-Test-Added');
      assert.equal(header.get('X-Test-Added'), 'by rspamd');
      assert.equal(header.get('X-Remove-Me'), undefined);
      assert.equal(header.get('X-Spam-Status'), undefined);
    });
    await withServer([`rspamd ${socket} milter no`], async (server) => {
      assert.equal((await sendOne(server, message('[milter] changes', { 'X-Remove-Me': 'please' }))).code, 250);
      assert.equal(server.queued[0]!.header.get('X-Remove-Me'), 'please');
      assert.equal(server.queued[0]!.header.get('X-Test-Added'), undefined);
    });
  });

  it('rspamd down: a logged pass by default, 452 with defer_on_error; silent: 452 within the timeout', async () => {
    const closed = await freePort();
    await withServer([`rspamd rspamd_socket 127.0.0.1:${closed}`], async (server) => {
      assert.equal((await sendOne(server, message('down'))).code, 250);
      assert.ok(server.logs.some((l) => /error, rspamd at 127\.0\.0\.1:\d+: cannot connect: .*passing the message unscanned/.test(l.text)));
    });
    await withServer([`rspamd rspamd_socket 127.0.0.1:${closed} defer_on_error yes`], async (server) => {
      const result = await sendOne(server, message('down'));
      assert.deepEqual([result.code, `${result.enhanced} ${result.text}`], [452, '4.3.0 Unable to scan for spam, try again later']);
    });
    const silent = await SilentServer.start();
    try {
      await withServer([`rspamd rspamd_socket 127.0.0.1:${silent.port} timeout 0.5 defer_on_error yes`], async (server) => {
        const started = Date.now();
        assert.equal((await sendOne(server, message('silent'))).code, 452);
        assert.ok(Date.now() - started < 10_000);
      });
    } finally {
      await silent.stop();
    }
  });

  it('refuses bad arguments at load time', async () => {
    await assert.rejects(testServer({ plugins: ['rspamd greylist maybe'] }), /greylist "maybe": expected temp or pass/);
    await assert.rejects(testServer({ plugins: ['rspamd headers sometimes'] }), /headers "sometimes"/);
    await assert.rejects(testServer({ plugins: ['rspamd rspamd_socket ::1:99'] }), /rspamd_socket "::1:99"/);
  });
});
