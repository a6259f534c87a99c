/**
 * virus/clamdscan against a real clamd (clamav-daemon) started by the test with a database that
 * holds only the EICAR signature: INSTREAM over TCP and over the unix socket, refusal or marking,
 * the size and multipart rules, clamd's own error for a stream over its StreamMaxLength, and a
 * clamd that is down or silent.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testServer } from '../../../src/testing/index.ts';
import { Clamd, EICAR, SilentServer, buildMessage, freePort, multipartMessage, sendOne, withServer } from '../scanner-support.ts';

describe('virus/clamdscan against clamd', { timeout: 120_000 }, () => {
  let clamd: Clamd;
  before(async () => {
    clamd = await Clamd.start();
  });
  after(async () => {
    await clamd?.stop();
  });

  it('refuses a message with EICAR in an attachment (TCP): 552 with the virus name, note and karma', async () => {
    await withServer([`virus/clamdscan clamd_host 127.0.0.1 clamd_port ${clamd.port}`], async (server) => {
      const session = await server.connect();
      const result = await session.sendMail('sender@origin.example', ['user@example.com'], multipartMessage('infected', EICAR));
      assert.equal(result.code, 552, result.raw);
      assert.equal(`${result.enhanced} ${result.text}`, '5.7.1 Virus found: EICAR-Test.UNOFFICIAL');
      assert.equal(server.queued.length, 0);
      assert.equal(session.connection.notes['karma'], -1);
      await session.quit();
      assert.ok(server.logs.some((l) => l.text.includes('fail, found virus EICAR-Test.UNOFFICIAL')));
    });
  });

  it('passes a clean message over the unix socket and marks it checked, with the engine version', async () => {
    await withServer([`virus/clamdscan clamd_socket ${clamd.socketPath}`], async (server) => {
      const result = await sendOne(server, multipartMessage('clean', 'just some bytes'));
      assert.equal(result.code, 250, result.raw);
      const header = server.queued[0]!.header;
      assert.equal(header.get('X-Virus-Found'), 'No');
      assert.match(header.get('X-Virus-Checked') ?? '', /^by ClamAV \d+\.\d+\.\d+ on mx\.example\.test$/);
      assert.deepEqual(server.queued[0]!.notes['virus'], { scanner: header.get('X-Virus-Checked')!.split(' on ')[0]!.slice(3), found: false });
    });
  });

  it('deny_viruses no: delivers the infected message marked with X-Virus-Found and X-Virus-Details', async () => {
    await withServer([`virus/clamdscan clamd_socket ${clamd.socketPath} deny_viruses no`], async (server) => {
      const result = await sendOne(server, buildMessage({ subject: 'raw eicar', body: `${EICAR}\n` }));
      assert.equal(result.code, 250, result.raw);
      const queued = server.queued[0]!;
      assert.equal(queued.header.get('X-Virus-Found'), 'Yes');
      assert.equal(queued.header.get('X-Virus-Details'), 'EICAR-Test.UNOFFICIAL');
      assert.match(String((queued.notes['virus'] as { scanner: string }).scanner), /^ClamAV \d/);
      assert.deepEqual({ ...(queued.notes['virus'] as object), scanner: '' }, { scanner: '', found: true, name: 'EICAR-Test.UNOFFICIAL' });
    });
  });

  it('scan_all no: a message without MIME parts is not scanned; one with parts is', async () => {
    await withServer([`virus/clamdscan clamd_socket ${clamd.socketPath} scan_all no`], async (server) => {
      const plain = await sendOne(server, buildMessage({ subject: 'plain', body: `${EICAR}\n` }));
      assert.equal(plain.code, 250, plain.raw);
      assert.equal(server.queued[0]!.header.get('X-Virus-Found'), undefined);
      assert.ok(server.logs.some((l) => l.text.includes('skip, not multipart')));
      const parts = await sendOne(server, multipartMessage('parts', EICAR));
      assert.equal(parts.code, 552, parts.raw);
    });
  });

  it('max_size: a larger message is not scanned (logged)', async () => {
    await withServer([`virus/clamdscan clamd_socket ${clamd.socketPath} max_size 1`], async (server) => {
      const result = await sendOne(server, multipartMessage('big', EICAR + 'x'.repeat(2000)));
      assert.equal(result.code, 250, result.raw);
      assert.ok(server.logs.some((l) => /skip, too large \(\d+ > 1024 bytes\)/.test(l.text)));
    });
  });

  it("clamd's own error (a stream over its StreamMaxLength): 452 with defer_on_error, a logged pass without", async () => {
    const big = buildMessage({ subject: 'over StreamMaxLength', body: `${'y'.repeat(1000)}\n`.repeat(1500) });
    await withServer([`virus/clamdscan clamd_socket ${clamd.socketPath} max_size 4096 defer_on_error yes`], async (server) => {
      const result = await sendOne(server, big);
      assert.equal(result.code, 452, result.raw);
      assert.equal(`${result.enhanced} ${result.text}`, '4.3.0 Unable to scan for viruses, try again later');
      // clamd answers and closes; when our next write meets the closed socket first (EPIPE or a
      // reset), Node drops the unread answer with the socket: either way clamd cut the stream.
      const cut = /error, clamd(: INSTREAM size limit exceeded\. ERROR| at \S+: write (EPIPE|ECONNRESET)|.*ECONNRESET): deferring/;
      assert.ok(server.logs.some((l) => cut.test(l.text)), server.logs.map((l) => l.text).join('\n'));
    });
    await withServer([`virus/clamdscan clamd_socket ${clamd.socketPath} max_size 4096`], async (server) => {
      const result = await sendOne(server, big);
      assert.equal(result.code, 250, result.raw);
      assert.equal(server.queued[0]!.header.get('X-Virus-Checked'), undefined);
      assert.ok(server.logs.some((l) => l.text.includes('passing the message unscanned')));
    });
  });

  it('clamd down (closed port, missing socket): 452 with defer_on_error, else a pass; never a crash', async () => {
    const closed = await freePort();
    await withServer([`virus/clamdscan clamd_port ${closed} clamd_host 127.0.0.1 defer_on_error yes`], async (server) => {
      const result = await sendOne(server, multipartMessage('down', EICAR));
      assert.equal(result.code, 452, result.raw);
      assert.ok(server.logs.some((l) => /error, clamd at 127\.0\.0\.1:\d+: cannot connect: .*ECONNREFUSED/.test(l.text)));
    });
    await withServer(['virus/clamdscan clamd_socket /nonexistent/clamd.ctl'], async (server) => {
      const result = await sendOne(server, multipartMessage('down', EICAR));
      assert.equal(result.code, 250, result.raw);
    });
  });

  it('clamd silent: the timeout ends the wait (452), and the connection is closed', async () => {
    const silent = await SilentServer.start();
    try {
      await withServer([`virus/clamdscan clamd_socket 127.0.0.1:${silent.port} timeout 0.5 defer_on_error yes`], async (server) => {
        const started = Date.now();
        const result = await sendOne(server, multipartMessage('silent', 'x'));
        assert.equal(result.code, 452, result.raw);
        assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
        assert.ok(server.logs.some((l) => l.text.includes('no complete answer within 0.5 s')));
      });
      for (let i = 0; silent.open > 0 && i < 40; i++) await new Promise((r) => setTimeout(r, 25));
      assert.equal(silent.open, 0, 'the plugin closed its connection');
    } finally {
      await silent.stop();
    }
  });

  it("the hook's plugin_timeout aborts a silent clamd before the plugin's own timeout", async () => {
    const silent = await SilentServer.start();
    const server = await testServer({
      plugins: [`virus/clamdscan clamd_socket 127.0.0.1:${silent.port} timeout 30 defer_on_error yes`],
      acceptAllRecipients: true,
      config: { plugin_timeout: '1' },
      replyTimeoutMs: 10_000,
    });
    try {
      const started = Date.now();
      const result = await sendOne(server, multipartMessage('abort', 'x'));
      assert.equal(result.code, 452, result.raw);
      assert.match(result.text, /plugin timeout/);
      assert.ok(Date.now() - started < 10_000);
      for (let i = 0; silent.open > 0 && i < 40; i++) await new Promise((r) => setTimeout(r, 25));
      assert.equal(silent.open, 0, 'the abort closed the connection');
    } finally {
      await server.close();
      await silent.stop();
    }
  });

  it('refuses bad arguments at load time', async () => {
    await assert.rejects(testServer({ plugins: ['virus/clamdscan deny_viruses maybe'] }), /deny_viruses "maybe": expected yes or no/);
    await assert.rejects(testServer({ plugins: ['virus/clamdscan clamd_socket host:99999'] }), /port must be 1 to 65535/);
    await assert.rejects(testServer({ plugins: ['virus/clamdscan max_size'] }), /not "name value" pairs/);
    await assert.rejects(testServer({ plugins: ['virus/clamdscan timeout 0'] }), /timeout "0"/);
  });
});
