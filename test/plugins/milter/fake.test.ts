/**
 * plugins/milter against the scripted fake milter: the conversation as the milter sees it, each
 * verdict at each stage, the changes at the end of the message, the negotiated skips and
 * no-reply stages, and a milter that is down, silent, slow or speaks garbage.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testServer, type TestServer, type TestServerOptions } from '../../../src/testing/index.ts';
import { Action, MacroStage, Proto } from '../../../src/milter/protocol.ts';
import type { MilterCommand } from '../../../src/milter/commands.ts';
import { FakeMilter, type FakeMilterOptions } from './fake-milter.ts';

const MESSAGE = ['From: a@origin.example', 'To: b@example.com', 'Subject: hello', 'X-Folded: first', '\tsecond', 'X-Dup: one', 'X-Dup: two', '', 'Body line 1.', 'Body line 2.', ''].join('\r\n');

interface Setup {
  readonly milter?: FakeMilterOptions;
  /** More plugin arguments after the socket. */
  readonly args?: string;
  /** A socket argument instead of the fake milter's. */
  readonly socket?: string;
  readonly server?: TestServerOptions;
}

async function withMilter(setup: Setup, run: (server: TestServer, milter: FakeMilter) => Promise<void>): Promise<void> {
  const milter = await FakeMilter.start(setup.milter);
  const server = await testServer({
    plugins: [`milter ${setup.socket ?? milter.socket}${setup.args ? ' ' + setup.args : ''}`],
    acceptAllRecipients: true,
    ...setup.server,
  });
  try {
    await run(server, milter);
  } finally {
    await server.close();
    await milter.close();
  }
}

const logText = (server: TestServer): string => server.logs.map((l) => l.text).join('\n');
/** Answer `verdict` to commands of one type, continue to the rest. */
const at = (type: MilterCommand['type'], answer: NonNullable<FakeMilterOptions['on']> extends (...a: never[]) => infer R ? Awaited<R> : never): FakeMilterOptions['on'] => (cmd) => (cmd.type === type ? answer : undefined);

describe('milter: the conversation', () => {
  it('tells the milter every stage in order, with the macros of each, and QUIT at the end', async () => {
    await withMilter({ milter: { actions: 0 } }, async (server, milter) => {
      const session = await server.connect({ remoteIp: '192.0.2.7', remotePort: 41234, auth: 'alice' });
      const result = await session.sendMail('a@origin.example', ['b@example.com', 'c@example.com'], MESSAGE, { mailParams: 'SIZE=200 BODY=8BITMIME' });
      assert.equal(result.code, 250, result.text);
      await session.quit();
      const conn = milter.last;
      await conn.ended;
      const headers = conn.of('header').map((h) => h.name);
      assert.deepEqual(conn.types, [
        'optneg', 'macro:C', 'connect', 'helo', 'macro:M', 'mail', 'macro:R', 'rcpt', 'macro:R', 'rcpt', 'macro:T', 'data',
        ...headers.map(() => 'header'), 'eoh', 'body', 'macro:E', 'eob', 'quit',
      ]);
      assert.deepEqual(conn.of('optneg')[0], { type: 'optneg', version: 6, actions: 0x1ff, protocol: 0x1ff7ff });
      assert.deepEqual(conn.of('connect')[0], { type: 'connect', hostname: '[192.0.2.7]', family: '4', port: 41234, address: '192.0.2.7' });
      assert.deepEqual(conn.of('helo')[0], { type: 'helo', host: 'client.example.test' });
      assert.deepEqual(conn.of('mail')[0]!.args, ['<a@origin.example>', 'SIZE=200', 'BODY=8BITMIME']);
      assert.deepEqual(conn.of('rcpt').map((r) => r.args), [['<b@example.com>'], ['<c@example.com>']]);
      const c = conn.macros('C');
      assert.equal(c['j'], 'mx.example.test');
      assert.equal(c['{daemon_name}'], 'qpsmtpd');
      assert.equal(c['{client_addr}'], '192.0.2.7');
      assert.equal(c['{client_port}'], '41234');
      assert.equal(c['_'], '[192.0.2.7]');
      const txId = conn.macros('M')['i'];
      assert.ok(txId !== undefined && txId !== '', 'the queue id macro');
      assert.equal(conn.macros('M')['{mail_addr}'], 'a@origin.example');
      assert.equal(conn.macros('M')['{auth_authen}'], 'alice');
      assert.equal(conn.macros('R')['{rcpt_addr}'], 'c@example.com', 'the macros of the last RCPT');
      assert.equal(conn.macros('E')['i'], txId);
      // The header as it is queued, our Received on top; values without the space after the colon.
      assert.equal(headers[0], 'Received');
      assert.deepEqual(headers.slice(1), ['Authentication-Results', 'From', 'To', 'Subject', 'X-Folded', 'X-Dup', 'X-Dup']);
      assert.deepEqual(conn.of('header')[4], { type: 'header', name: 'Subject', value: 'hello' });
      // Folds as LF, as Sendmail and Postfix send them.
      assert.deepEqual(conn.of('header')[5], { type: 'header', name: 'X-Folded', value: 'first\n\tsecond' });
      assert.equal(Buffer.concat(conn.of('body').map((b) => b.chunk)).toString(), 'Body line 1.\r\nBody line 2.\r\n');
      assert.equal(server.queued.length, 1);
    });
  });

  it('sends ABORT for a message the milter did not see to its end, and none after a finished one', async () => {
    await withMilter({}, async (server, milter) => {
      const session = await server.connect();
      await session.ehlo();
      assert.equal((await session.command('MAIL FROM:<a@origin.example>')).code, 250);
      assert.equal((await session.command('RSET')).code, 250);
      assert.equal((await session.sendMail('a@origin.example', 'b@example.com', MESSAGE)).code, 250);
      assert.equal((await session.sendMail('a@origin.example', 'b@example.com', MESSAGE)).code, 250);
      await session.quit();
      await milter.last.ended;
      const types = milter.last.types.filter((t) => ['mail', 'abort', 'eob', 'quit'].includes(t));
      assert.deepEqual(types, ['mail', 'abort', 'mail', 'eob', 'mail', 'eob', 'quit']);
    });
  });

  it('talks over a unix socket (unix:PATH, local:PATH relative to the folder of the config directory)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'milter-unix-'));
    const milter = await FakeMilter.start({ path: join(dir, 'milter.sock') });
    try {
      const absolute = await testServer({ plugins: [`milter unix:${join(dir, 'milter.sock')}`], acceptAllRecipients: true });
      try {
        const session = await absolute.connect();
        assert.equal((await session.sendMail('a@origin.example', 'b@example.com', MESSAGE)).code, 250);
      } finally {
        await absolute.close();
      }
      // A relative path: from the folder that holds the config directory.
      const server = await testServer({ plugins: ['milter local:milter.sock'], acceptAllRecipients: true });
      try {
        const link = join(server.configDir, '..', 'milter.sock');
        symlinkSync(join(dir, 'milter.sock'), link);
        const session = await server.connect();
        assert.equal((await session.sendMail('a@origin.example', 'b@example.com', MESSAGE)).code, 250);
        assert.equal(milter.connections.length, 2);
      } finally {
        await server.close();
      }
    } finally {
      await milter.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('streams a large body in chunks of at most 65535 bytes', async () => {
    await withMilter({}, async (server, milter) => {
      const line = 'x'.repeat(98) + '\r\n';
      const body = line.repeat(2000); // 200 000 bytes
      const session = await server.connect();
      const result = await session.sendMail('a@origin.example', 'b@example.com', `Subject: big\r\n\r\n${body}`);
      assert.equal(result.code, 250);
      const chunks = milter.last.of('body').map((b) => b.chunk);
      assert.ok(chunks.length >= 4, `${chunks.length} chunks`);
      assert.ok(chunks.every((c) => c.length <= 65535 && c.length > 0));
      assert.equal(Buffer.concat(chunks).toString(), body);
    });
  });
});

describe('milter: verdicts', () => {
  it('reject at connect refuses the connection', async () => {
    await withMilter({ milter: { on: at('connect', [{ type: 'reject' }]) } }, async (server) => {
      const session = await server.connect();
      assert.equal(session.greeting!.code, 550);
      assert.equal(session.greeting!.raw, '550 5.7.1 Command rejected\r\n');
      await session.ended;
    });
  });

  it('tempfail at MAIL, a reply code with its own text, a per-recipient rejection', async () => {
    let mails = 0;
    const on: FakeMilterOptions['on'] = (cmd) => {
      if (cmd.type === 'mail') return ++mails === 1 ? [{ type: 'tempfail' }] : undefined;
      if (cmd.type === 'rcpt' && cmd.args[0] === '<no@example.com>') return [{ type: 'replycode', code: 550, lines: ['5.1.1 No such user here'] }];
      if (cmd.type === 'rcpt' && cmd.args[0] === '<later@example.com>') return [{ type: 'reject' }];
      return undefined;
    };
    await withMilter({ milter: { on } }, async (server) => {
      const session = await server.connect();
      const first = await session.sendMail('a@origin.example', 'b@example.com', MESSAGE);
      assert.equal(first.step, 'mail');
      assert.equal(first.code, 450);
      assert.equal(first.raw, '450 4.7.1 Service unavailable - try again later\r\n');
      const second = await session.sendMail('a@origin.example', ['no@example.com', 'later@example.com', 'b@example.com'], MESSAGE);
      assert.equal(second.code, 250);
      assert.deepEqual(second.refusedRecipients.map((r) => [r.recipient, r.reply.raw]), [
        ['no@example.com', '550 5.1.1 No such user here\r\n'],
        ['later@example.com', '550 5.7.1 Command rejected\r\n'],
      ]);
      assert.deepEqual(second.queued!.recipients, ['b@example.com']);
    });
  });

  it('a 421 reply code closes the session', async () => {
    await withMilter({ milter: { on: at('helo', [{ type: 'replycode', code: 421, lines: ['4.7.0 Too busy'] }]) } }, async (server) => {
      const session = await server.connect();
      const reply = await session.ehlo();
      assert.equal(reply.code, 421);
      assert.match(reply.text, /Too busy/);
      await session.ended;
    });
  });

  it('reject or tempfail at the end of the message keeps nothing of it and makes none of the changes', async () => {
    const on: FakeMilterOptions['on'] = (cmd) => (cmd.type === 'eob' ? [{ type: 'addheader', name: 'X-Never', value: 'x' }, { type: 'replycode', code: 554, lines: ['5.7.1 Looks like spam'] }] : undefined);
    await withMilter({ milter: { on, actions: Action.ADDHDRS } }, async (server) => {
      const session = await server.connect();
      const result = await session.sendMail('a@origin.example', 'b@example.com', MESSAGE);
      assert.equal(result.code, 552);
      assert.equal(result.raw, '552 5.7.1 Looks like spam\r\n');
      assert.equal(server.queued.length, 0);
      // The session goes on: the next message is asked about anew.
      const tempfail = await session.sendMail('a@origin.example', 'b@example.com', MESSAGE);
      assert.equal(tempfail.code, 552);
    });
  });

  it('discard at the end of the message: 250, nothing queued', async () => {
    await withMilter({ milter: { on: at('eob', [{ type: 'discard' }]) } }, async (server) => {
      const session = await server.connect();
      const result = await session.sendMail('a@origin.example', 'b@example.com', MESSAGE);
      assert.equal(result.code, 250);
      assert.equal(result.raw, '250 2.0.0 Queued\r\n');
      assert.equal(server.queued.length, 0);
    });
  });

  it('discard at RCPT: the milter hears nothing more of the message, which is dropped at its end', async () => {
    await withMilter({ milter: { on: at('rcpt', [{ type: 'discard' }]) } }, async (server, milter) => {
      const session = await server.connect();
      const result = await session.sendMail('a@origin.example', ['b@example.com', 'c@example.com'], MESSAGE);
      assert.equal(result.code, 250);
      assert.equal(server.queued.length, 0);
      await session.quit();
      await milter.last.ended;
      assert.deepEqual(milter.last.types.slice(-4), ['macro:R', 'rcpt', 'abort', 'quit']);
    });
  });

  it('accept at connect: the milter hears nothing more but QUIT', async () => {
    await withMilter({ milter: { on: at('connect', [{ type: 'accept' }]) } }, async (server, milter) => {
      const session = await server.connect();
      assert.equal((await session.sendMail('a@origin.example', 'b@example.com', MESSAGE)).code, 250);
      await session.quit();
      await milter.last.ended;
      assert.deepEqual(milter.last.types, ['optneg', 'macro:C', 'connect', 'quit']);
    });
  });

  it('accept at MAIL: nothing more of that message; the next one is asked about', async () => {
    let mails = 0;
    await withMilter({ milter: { on: (cmd) => (cmd.type === 'mail' && ++mails === 1 ? [{ type: 'accept' }] : undefined) } }, async (server, milter) => {
      const session = await server.connect();
      assert.equal((await session.sendMail('a@origin.example', 'b@example.com', MESSAGE)).code, 250);
      assert.equal((await session.sendMail('a@origin.example', 'b@example.com', MESSAGE)).code, 250);
      await session.quit();
      await milter.last.ended;
      const types = milter.last.types.filter((t) => ['mail', 'rcpt', 'data', 'eob', 'abort'].includes(t));
      assert.deepEqual(types, ['mail', 'abort', 'mail', 'rcpt', 'data', 'eob']);
    });
  });
});

describe('milter: changes at the end of the message', () => {
  it('headers added, inserted, changed and removed; recipients added and removed; sender changed; quarantined', async () => {
    const on: FakeMilterOptions['on'] = (cmd) =>
      cmd.type === 'eob'
        ? [
            { type: 'progress' },
            { type: 'addheader', name: 'X-Spam-Score', value: '1.5' },
            { type: 'insheader', index: 0, name: 'X-Top', value: 'first\n\tfolded' },
            { type: 'chgheader', index: 1, name: 'Subject', value: '[SPAM] hello' },
            { type: 'chgheader', index: 2, name: 'X-Dup', value: '' },
            { type: 'chgheader', index: 1, name: 'X-Missing', value: 'added' },
            { type: 'addrcpt', address: '<archive@example.com>' },
            { type: 'addrcpt', address: 'copy@example.com', args: 'NOTIFY=NEVER' },
            { type: 'delrcpt', address: '<c@example.com>' },
            { type: 'chgfrom', address: '<bounces@origin.example>', args: 'SIZE=999' },
            { type: 'quarantine', reason: 'suspicious attachment' },
            { type: 'continue' },
          ]
        : undefined;
    await withMilter({ milter: { on, actions: Action.ADDHDRS | Action.CHGHDRS | Action.ADDRCPT | Action.ADDRCPT_PAR | Action.DELRCPT | Action.CHGFROM | Action.QUARANTINE } }, async (server) => {
      const session = await server.connect();
      const result = await session.sendMail('a@origin.example', ['b@example.com', 'c@example.com'], MESSAGE);
      assert.equal(result.code, 250, result.text);
      const q = result.queued!;
      assert.equal(q.sender, 'bounces@origin.example');
      assert.deepEqual(q.recipients, ['b@example.com', 'archive@example.com', 'copy@example.com']);
      const names = q.header.names();
      assert.equal(names[0], 'X-Milter-Quarantine');
      assert.equal(names[1], 'X-Top');
      assert.equal(q.header.get('X-Top'), 'first\tfolded');
      assert.match(q.message, /\r\nX-Top: first\r\n\tfolded\r\n/);
      assert.equal(q.header.get('Subject'), '[SPAM] hello');
      assert.deepEqual(q.header.getAll('X-Dup'), ['one']);
      assert.equal(q.header.get('X-Missing'), 'added');
      assert.equal(names[names.length - 1], 'X-Missing');
      assert.equal(q.header.get('X-Spam-Score'), '1.5');
      assert.equal(q.header.get('X-Milter-Quarantine'), 'suspicious attachment (by milter)');
      assert.deepEqual(q.notes['quarantine'], { reason: 'suspicious attachment', by: 'milter' });
      assert.match(logText(server), /sender changed to <bounces@origin\.example>/);
      assert.match(logText(server), /arguments "NOTIFY=NEVER" are not kept/);
    });
  });

  it('replaces the body (several packets, LF line ends made CRLF); the queue gets the new body', async () => {
    const newBody = 'Replaced.\n' + 'y'.repeat(70_000) + '\nEnd.\n';
    const bytes = Buffer.from(newBody);
    const on: FakeMilterOptions['on'] = (cmd) =>
      cmd.type === 'eob'
        ? [
            { type: 'replbody', chunk: bytes.subarray(0, 40_000) },
            { type: 'replbody', chunk: bytes.subarray(40_000) },
            { type: 'accept' },
          ]
        : undefined;
    await withMilter({ milter: { on, actions: Action.CHGBODY }, server: { config: { size_threshold: 1000 } } }, async (server) => {
      const session = await server.connect();
      const result = await session.sendMail('a@origin.example', 'b@example.com', MESSAGE);
      assert.equal(result.code, 250, result.text);
      assert.equal(result.queued!.body, newBody.replace(/\n/g, '\r\n'));
      assert.equal(result.queued!.header.get('Subject'), 'hello', 'the header block stays');
    });
  });

  it('a milter that did not ask for an action and uses it: the default action', async () => {
    await withMilter({ milter: { on: at('eob', [{ type: 'addheader', name: 'X-A', value: 'b' }, { type: 'continue' }]), actions: 0 } }, async (server) => {
      const session = await server.connect();
      const result = await session.sendMail('a@origin.example', 'b@example.com', MESSAGE);
      assert.equal(result.code, 452);
      assert.equal(result.raw, '452 4.7.1 Service unavailable - try again later\r\n');
      assert.match(logText(server), /without having asked for that action; default_action tempfail/);
    });
  });

  it('a milter that removes every recipient has the message dropped', async () => {
    await withMilter({ milter: { on: at('eob', [{ type: 'delrcpt', address: '<b@example.com>' }, { type: 'continue' }]), actions: Action.DELRCPT } }, async (server) => {
      const session = await server.connect();
      const result = await session.sendMail('a@origin.example', 'b@example.com', MESSAGE);
      assert.equal(result.code, 250);
      assert.equal(server.queued.length, 0);
      assert.match(logText(server), /removed every recipient/);
    });
  });
});

describe('milter: negotiation', () => {
  it('leaves out the stages the milter does not want, and waits for no reply where it will give none', async () => {
    const protocol = Proto.NOHELO | Proto.NOBODY | Proto.NR_CONN | Proto.NR_MAIL | Proto.NR_RCPT | Proto.NR_DATA | Proto.NR_HDR | Proto.NR_EOH | Proto.HDR_LEADSPC;
    await withMilter({ milter: { protocol } }, async (server, milter) => {
      const session = await server.connect();
      assert.equal((await session.sendMail('a@origin.example', 'b@example.com', MESSAGE)).code, 250);
      await session.quit();
      await milter.last.ended;
      const types = milter.last.types;
      assert.ok(!types.includes('helo') && !types.includes('body'), types.join(' '));
      assert.ok(types.includes('eoh') && types.includes('eob'));
      // HDR_LEADSPC: the value as written, its space included.
      assert.deepEqual(milter.last.of('header').find((h) => h.name === 'Subject'), { type: 'header', name: 'Subject', value: ' hello' });
    });
  });

  it('sends the macros the milter asked for in its negotiation instead of ours', async () => {
    const macros = new Map([[MacroStage.CONNECT, ['{daemon_name}', '{unknown_macro}']], [MacroStage.ENVFROM, ['{mail_host}']]]);
    await withMilter({ milter: { macros }, args: 'daemon_name MTA-in' }, async (server, milter) => {
      const session = await server.connect();
      assert.equal((await session.sendMail('a@origin.example', 'b@example.com', MESSAGE)).code, 250);
      assert.deepEqual(milter.last.macros('C'), { '{daemon_name}': 'MTA-in' });
      assert.deepEqual(milter.last.macros('M'), { '{mail_host}': 'origin.example' });
    });
  });

  it('skip during the body: no more chunks, straight to the end of the message', async () => {
    await withMilter({ milter: { protocol: Proto.SKIP, on: at('body', [{ type: 'skip' }]) } }, async (server, milter) => {
      const session = await server.connect();
      const result = await session.sendMail('a@origin.example', 'b@example.com', `Subject: big\r\n\r\n${'z'.repeat(150_000)}\r\n`);
      assert.equal(result.code, 250);
      assert.equal(milter.last.of('body').length, 1);
      assert.equal(milter.last.of('eob').length, 1);
    });
  });

  it('a milter asking for what we did not offer, or speaking version 1, is a failure', async () => {
    await withMilter({ milter: { protocol: Proto.RCPT_REJ } }, async (server) => {
      const session = await server.connect();
      assert.equal(session.greeting!.code, 450);
      assert.match(logText(server), /asked for protocol steps we do not offer \(0x800\)/);
    });
    await withMilter({ milter: { version: 1 } }, async (server) => {
      const session = await server.connect();
      assert.equal(session.greeting!.code, 450);
      assert.match(logText(server), /speaks milter protocol version 1/);
    });
  });
});

describe('milter: a milter that fails', () => {
  it('down: tempfail (450 at connect), or reject, or accept, as default_action says', async () => {
    const milter = await FakeMilter.start();
    const down = milter.socket;
    await milter.close();
    await withMilter({ socket: down }, async (server) => {
      const session = await server.connect();
      assert.equal(session.greeting!.code, 450);
      assert.match(logText(server), /connect: cannot connect to inet:\d+@127\.0\.0\.1: .*ECONNREFUSED.*default_action tempfail/);
    });
    await withMilter({ socket: down, args: 'default_action reject' }, async (server) => {
      assert.equal((await server.connect()).greeting!.code, 550);
    });
    await withMilter({ socket: down, args: 'default_action accept' }, async (server) => {
      const session = await server.connect();
      assert.equal(session.greeting!.code, 220);
      assert.equal((await session.sendMail('a@origin.example', 'b@example.com', MESSAGE)).code, 250);
    });
  });

  it('silent: the command time-out, then the default action for the rest of the session', async () => {
    await withMilter({ milter: { on: at('mail', 'silence') }, args: 'command_timeout 0.3' }, async (server) => {
      const session = await server.connect();
      const started = Date.now();
      const result = await session.sendMail('a@origin.example', 'b@example.com', MESSAGE);
      assert.equal(result.step, 'mail');
      assert.equal(result.code, 450);
      assert.ok(Date.now() - started < 8000, 'the command time-out, not the 30 s plugin_timeout');
      assert.match(logText(server), /mail: no reply from the milter inet:\d+@127\.0\.0\.1 within 0\.3 s; default_action tempfail/);
      assert.equal((await session.command('MAIL FROM:<a@origin.example>')).code, 450, 'still deferred');
      assert.equal((await session.command('NOOP')).code, 250, 'the session itself goes on');
    });
  });

  it('garbage, a torn packet, a closed connection: the default action, and the session goes on', async () => {
    const cases: [string, FakeMilterOptions['on'], RegExp][] = [
      ['garbage', at('eob', { raw: Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n') }), /sent a milter packet of \d+ bytes/],
      ['unknown reply', at('eob', { raw: Buffer.from([0, 0, 0, 1, 0x5a]) }), /unknown reply code "Z"/],
      ['torn', at('eoh', { raw: Buffer.from([0, 0, 0, 9, 0x79, 0x35]) }), /closed the connection|no reply/],
      ['closed', at('body', 'close'), /closed the connection/],
      ['modification too early', at('rcpt', [{ type: 'addheader', name: 'X', value: 'y' }]), /before the end of the message/],
    ];
    for (const [name, on, reason] of cases) {
      await withMilter({ milter: { on, actions: Action.ADDHDRS }, args: 'eom_timeout 0.5' }, async (server) => {
        const session = await server.connect();
        const result = await session.sendMail('a@origin.example', 'b@example.com', MESSAGE);
        assert.equal(result.accepted, false, name);
        assert.ok(result.code >= 400 && result.code < 500, `${name}: ${result.code}`);
        assert.equal(server.queued.length, 0);
        assert.match(logText(server), reason, name);
        assert.equal((await session.command('NOOP')).code, 250);
      });
    }
  });

  it('progress restarts the wait: a milter slower than eom_timeout that says so is waited for', async () => {
    const on: FakeMilterOptions['on'] = async (cmd, conn) => {
      if (cmd.type !== 'eob') return undefined;
      // 12 x 150 ms: longer than eom_timeout in all, each gap a tenth of it.
      for (let i = 0; i < 12; i++) {
        await new Promise((r) => setTimeout(r, 150));
        conn.socket.write(Buffer.from([0, 0, 0, 1, 0x70])); // progress
      }
      return [{ type: 'continue' }];
    };
    await withMilter({ milter: { on }, args: 'eom_timeout 1.5' }, async (server) => {
      const session = await server.connect();
      assert.equal((await session.sendMail('a@origin.example', 'b@example.com', MESSAGE)).code, 250);
    });
  });

  it('the hook running out of time (plugin_timeout) ends the wait at once and closes the link', async () => {
    await withMilter({ milter: { on: at('eob', 'silence') }, args: 'eom_timeout 60', server: { config: { plugin_timeout: ['milter 1'] } } }, async (server, milter) => {
      const session = await server.connect();
      const started = Date.now();
      const result = await session.sendMail('a@origin.example', 'b@example.com', MESSAGE);
      assert.equal(result.accepted, false);
      assert.ok(Date.now() - started < 20_000, 'plugin_timeout, not the 60 s eom_timeout');
      await milter.last.ended;
      assert.ok(milter.last.closed);
      // The next message: the link is gone, the default action answers.
      const next = await session.sendMail('a@origin.example', 'b@example.com', MESSAGE);
      assert.equal(next.step, 'mail');
      assert.equal(next.code, 450);
    });
  });

  it('bad arguments stop the plugin loading', async () => {
    for (const args of ['tcp:25@x', 'inet:99999@localhost', 'inet:8891@127.0.0.1 default_action maybe', 'inet:8891@127.0.0.1 mail_macros {nope}', 'inet:8891@127.0.0.1 eom_timeout', 'inet:8891@127.0.0.1 colour blue']) {
      await assert.rejects(testServer({ plugins: [`milter ${args}`] }), Error, args);
    }
  });
});
