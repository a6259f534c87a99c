/** src/mail/smtp-client.ts and src/mail/connect.ts against a tiny SMTP/LMTP server made here. */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { TLSSocket, connect as tlsConnect } from 'node:tls';
import { generateSelfSigned } from '../../src/tls/self-signed.ts';
import { connectWithin } from '../../src/mail/connect.ts';
import { MailRefusal } from '../../src/mail/replies.ts';
import { SmtpClient, SmtpLinkError, dialogueFailure, smtpLinkError, CONNECT_FAILURES, type SmtpClientOptions } from '../../src/mail/smtp-client.ts';

/** One client connection as the fake server sees it. */
interface Session {
  /** Every command line received, in order. */
  readonly lines: string[];
  /** The messages received after DATA (dot-unstuffed is NOT done: as on the wire, without the final dot). */
  readonly messages: string[];
  write(text: string): void;
  readonly socket: Socket;
}

/**
 * `answer` gets each command line (and `DATA-END` with the message after the final dot) and
 * writes replies with session.write. `greeting` is written first (none when empty).
 */
class FakeServer {
  readonly sessions: Session[] = [];
  private readonly server: Server;
  port = 0;

  constructor(answer: (line: string, session: Session) => void, greeting = '220 fake.example ESMTP\r\n', upgrade?: { key: string; cert: string }) {
    this.server = createServer((raw) => {
      let socket: Socket = raw;
      let buffer = '';
      let data: string | undefined;
      const session: Session = {
        lines: [],
        messages: [],
        write: (text) => socket.write(text),
        get socket() {
          return socket;
        },
      };
      this.sessions.push(session);
      const onData = (chunk: Buffer): void => {
        buffer += chunk.toString('latin1');
        for (let nl = buffer.indexOf('\r\n'); nl !== -1; nl = buffer.indexOf('\r\n')) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 2);
          if (data !== undefined) {
            if (line === '.') {
              session.messages.push(data);
              data = undefined;
              answer('DATA-END', session);
            } else data += line + '\r\n';
            continue;
          }
          session.lines.push(line);
          if (line === 'DATA') data = '';
          if (line === 'STARTTLS' && upgrade) {
            socket.write('220 go ahead\r\n');
            raw.off('data', onData);
            socket = new TLSSocket(raw, { isServer: true, key: upgrade.key, cert: upgrade.cert });
            socket.on('data', onData);
            socket.on('error', () => undefined);
            buffer = '';
            continue;
          }
          answer(line, session);
        }
      };
      raw.on('data', onData);
      raw.on('error', () => undefined);
      if (greeting !== '') raw.write(greeting);
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sessions) s.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  open = (): Socket => netConnect({ host: '127.0.0.1', port: this.port });
}

/** A plain SMTP server: EHLO with the given extensions, 250 to everything, 354 to DATA. */
function smtpAnswers(extensions: string[]): (line: string, s: Session) => void {
  return (line, s) => {
    if (line.startsWith('EHLO')) s.write(['fake.example', ...extensions].map((l, i, all) => `250${i === all.length - 1 ? ' ' : '-'}${l}\r\n`).join(''));
    else if (line === 'DATA') s.write('354 go on\r\n');
    else if (line === 'DATA-END') s.write('250 2.0.0 Ok: queued as ABC123\r\n');
    else if (line === 'QUIT') s.write('221 bye\r\n');
    else s.write('250 ok\r\n');
  };
}

const options = (extra: Partial<SmtpClientOptions> = {}): SmtpClientOptions => ({ timeoutMs: 2000, signal: new AbortController().signal, peer: 'the next hop', ...extra });

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

describe('SmtpClient', { timeout: 30_000 }, () => {
  it('greeting, EHLO, the envelope without PIPELINING, the message dot-stuffed, QUIT', async () => {
    const server = await new FakeServer(smtpAnswers(['SIZE 1000', '8BITMIME'])).start();
    try {
      const client = await SmtpClient.connect(server.open, options());
      assert.deepEqual(await client.read(), { code: 220, lines: ['fake.example ESMTP'] });
      const ehlo = await client.command('EHLO me.example');
      assert.deepEqual(ehlo, { code: 250, lines: ['fake.example', 'SIZE 1000', '8BITMIME'] });
      const envelope = await client.sendEnvelope('MAIL FROM:<s@x.example>', ['RCPT TO:<a@y.example>', 'RCPT TO:<b@y.example>'], false);
      assert.equal(envelope.mail.code, 250);
      assert.deepEqual(
        envelope.rcpts.map((r) => r.code),
        [250, 250],
      );
      assert.equal((await client.command('DATA')).code, 354);
      await client.sendMessage(Readable.from([Buffer.from('Subject: x\r\n\r\n.dot\r'), '\n..two\nlast']));
      assert.deepEqual(await client.read(), { code: 250, lines: ['2.0.0 Ok: queued as ABC123'] });
      client.quit();
      await waitFor(() => server.sessions[0]!.lines.includes('QUIT'));
      const session = server.sessions[0]!;
      assert.deepEqual(session.lines, ['EHLO me.example', 'MAIL FROM:<s@x.example>', 'RCPT TO:<a@y.example>', 'RCPT TO:<b@y.example>', 'DATA', 'QUIT']);
      assert.deepEqual(session.messages, ['Subject: x\r\n\r\n..dot\r\n...two\r\nlast\r\n']);
      await assert.rejects(client.command('NOOP'), /closed/, 'no command after quit()');
    } finally {
      await server.stop();
    }
  });

  it('sends MAIL and every RCPT before waiting for a reply when pipelining', async () => {
    // This server answers nothing before it has the last RCPT: a client that waits for the reply
    // to MAIL first would time out.
    const server = await new FakeServer((line, s) => {
      if (line === 'RCPT TO:<c@y.example>') s.write('250 mail ok\r\n250 a ok\r\n550 5.1.1 b unknown\r\n250 c ok\r\n');
    }, '').start();
    try {
      const client = await SmtpClient.connect(server.open, options({ timeoutMs: 1000 }));
      const envelope = await client.sendEnvelope('MAIL FROM:<>', ['RCPT TO:<a@y.example>', 'RCPT TO:<b@y.example>', 'RCPT TO:<c@y.example>'], true);
      assert.equal(envelope.mail.lines[0], 'mail ok');
      assert.deepEqual(
        envelope.rcpts.map((r) => `${r.code} ${r.lines[0]}`),
        ['250 a ok', '550 5.1.1 b unknown', '250 c ok'],
      );
      client.quit();
    } finally {
      await server.stop();
    }
  });

  it('sends no RCPT when MAIL is refused (without pipelining)', async () => {
    const server = await new FakeServer((line, s) => s.write(line.startsWith('MAIL') ? '451 4.3.0 try later\r\n' : '250 ok\r\n')).start();
    try {
      const client = await SmtpClient.connect(server.open, options());
      await client.read();
      const envelope = await client.sendEnvelope('MAIL FROM:<>', ['RCPT TO:<a@y.example>'], false);
      assert.equal(envelope.mail.code, 451);
      assert.deepEqual(envelope.rcpts, []);
      client.quit();
      await waitFor(() => server.sessions[0]!.lines.includes('QUIT'));
      assert.deepEqual(server.sessions[0]!.lines, ['MAIL FROM:<>', 'QUIT']);
    } finally {
      await server.stop();
    }
  });

  it("LMTP: one reply per recipient after the final dot; the protocol's name in errors", async () => {
    const server = await new FakeServer((line, s) => {
      if (line.startsWith('LHLO')) s.write('250-lmtp.example\r\n250 PIPELINING\r\n');
      else if (line === 'DATA') s.write('354 go\r\n');
      else if (line === 'DATA-END') s.write('250 2.0.0 <a@y.example> saved\r\n452 4.2.2 <b@y.example> over quota\r\nthis is no reply\r\n');
      else s.write('250 ok\r\n');
    }).start();
    try {
      const client = await SmtpClient.connect(server.open, options({ protocol: 'LMTP', peer: 'the LMTP server' }));
      await client.read();
      await client.command('LHLO me');
      await client.sendEnvelope('MAIL FROM:<>', ['RCPT TO:<a@y.example>', 'RCPT TO:<b@y.example>'], true);
      await client.command('DATA');
      await client.sendMessage(Readable.from(['x\r\n']));
      assert.equal((await client.read()).code, 250);
      assert.deepEqual(await client.read(), { code: 452, lines: ['4.2.2 <b@y.example> over quota'] });
      await assert.rejects(client.read(), (err: SmtpLinkError) => err instanceof SmtpLinkError && err.message === 'not an LMTP reply: this is no reply' && err.enhanced === '4.4.2');
      client.quit();
    } finally {
      await server.stop();
    }
  });

  it('fails a read when no reply comes in time, and when the server closes', async () => {
    const server = await new FakeServer((line, s) => {
      if (line === 'BYE') s.socket.end();
    }).start();
    try {
      const slow = await SmtpClient.connect(server.open, options({ timeoutMs: 200 }));
      await slow.read();
      const started = Date.now();
      await assert.rejects(slow.command('NOOP'), (err: SmtpLinkError) => err.message === 'no reply within 0.2 s' && err.enhanced === '4.4.2');
      assert.ok(Date.now() - started < 1500);
      await assert.rejects(slow.read(), /no reply within/, 'the link stays failed');
      slow.quit();

      const closing = await SmtpClient.connect(server.open, options());
      await closing.read();
      await assert.rejects(closing.command('BYE'), (err: SmtpLinkError) => err.message === 'the next hop closed the connection');
      closing.quit();
    } finally {
      await server.stop();
    }
  });

  it('fails when the signal aborts while waiting, and does not connect when it already has', async () => {
    const server = await new FakeServer(() => undefined).start();
    try {
      const controller = new AbortController();
      const client = await SmtpClient.connect(server.open, options({ signal: controller.signal }));
      await client.read();
      const pending = client.command('NOOP');
      controller.abort();
      await assert.rejects(pending, (err: SmtpLinkError) => err.message === 'the hook ran out of time (plugin_timeout)' && err.enhanced === '4.4.2');
      client.quit();
      let opened = false;
      await assert.rejects(
        SmtpClient.connect(() => {
          opened = true;
          return server.open();
        }, options({ signal: controller.signal })),
        (err: Error) => smtpLinkError(err, controller.signal).message === 'the hook ran out of time (plugin_timeout)',
      );
      assert.equal(opened, false);
    } finally {
      await server.stop();
    }
  });

  it('a refused connection is 4.4.1 cannot connect; one that never comes times out', async () => {
    const signal = new AbortController().signal;
    const port = await closedPort();
    const err = await SmtpClient.connect(() => netConnect({ host: '127.0.0.1', port }), options()).then(
      () => undefined,
      (e: unknown) => e,
    );
    const link = smtpLinkError(err, signal);
    assert.equal(link.enhanced, '4.4.1');
    assert.match(link.message, /^cannot connect: .*ECONNREFUSED/);

    const never = new PassThrough();
    await assert.rejects(SmtpClient.connect(() => never, options({ timeoutMs: 100 })), (e: SmtpLinkError) => e.message === 'no connection within 0.1 s' && e.enhanced === '4.4.1');
    assert.ok(never.destroyed);
  });

  describe('STARTTLS', () => {
    let pair: { cert: string; key: string };
    before(async () => {
      pair = await generateSelfSigned({ host: 'fake.example', days: 2 });
    });

    it('upgrades the connection and reads the replies from the secure socket', async () => {
      const server = await new FakeServer(smtpAnswers(['STARTTLS']), undefined, pair).start();
      try {
        const client = await SmtpClient.connect(server.open, options());
        await client.read();
        await client.command('EHLO me');
        assert.equal((await client.command('STARTTLS')).code, 220);
        let secure: TLSSocket | undefined;
        await client.startTls((socket) => (secure = tlsConnect({ socket, rejectUnauthorized: false })));
        assert.equal(secure?.encrypted, true);
        assert.equal((await client.command('EHLO me')).code, 250);
        assert.equal(server.sessions[0]!.socket instanceof TLSSocket, true);
        client.quit();
      } finally {
        await server.stop();
      }
    });

    it('a failed handshake is 4.7.0', async () => {
      // Answers 220 to STARTTLS but then speaks plain text: no handshake.
      const server = await new FakeServer((line, s) => s.write(line === 'STARTTLS' ? '220 go ahead\r\n' : '250 ok\r\n')).start();
      try {
        const client = await SmtpClient.connect(server.open, options());
        await client.read();
        await client.command('STARTTLS');
        const upgrade = client.startTls((socket) => tlsConnect({ socket, rejectUnauthorized: false }));
        server.sessions[0]!.write('this is not TLS\r\n');
        await assert.rejects(upgrade, (err: SmtpLinkError) => err.enhanced === '4.7.0' && err.message.startsWith('TLS handshake failed: '));
        client.quit();
      } finally {
        await server.stop();
      }
    });
  });
});

describe('smtpLinkError and dialogueFailure', () => {
  const live = new AbortController().signal;
  const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`connect ${code}`), { code });

  it('classifies errors', () => {
    const own = new SmtpLinkError('greeting 554 go away', '4.4.1');
    assert.equal(smtpLinkError(own, live), own);
    const aborted = new AbortController();
    aborted.abort();
    assert.equal(smtpLinkError(new Error('x'), aborted.signal).message, 'the hook ran out of time (plugin_timeout)');
    for (const code of CONNECT_FAILURES) assert.equal(smtpLinkError(errno(code), live).enhanced, '4.4.1');
    assert.deepEqual({ ...smtpLinkError(errno('ENOENT'), live), message: smtpLinkError(errno('ENOENT'), live).message }, { enhanced: '4.4.2', message: 'connect ENOENT' });
    assert.equal(smtpLinkError(errno('ENOENT'), live, [...CONNECT_FAILURES, 'ENOENT']).message, 'cannot connect: connect ENOENT');
    assert.equal(smtpLinkError('text', live).message, 'text');
  });

  it('turns a refusal or a broken link into a result', () => {
    assert.deepEqual(dialogueFailure(new MailRefusal(true, '5.6.7 no SMTPUTF8'), live, 'Next hop unavailable'), { permanent: true, text: '5.6.7 no SMTPUTF8', reason: '5.6.7 no SMTPUTF8' });
    assert.deepEqual(dialogueFailure(errno('ECONNREFUSED'), live, 'Next hop unavailable, try again later'), {
      permanent: false,
      text: '4.4.1 Next hop unavailable, try again later',
      reason: 'cannot connect: connect ECONNREFUSED',
    });
  });
});

describe('connectWithin', () => {
  it('resolves with the socket once connected', async () => {
    const server = await new FakeServer(() => undefined).start();
    try {
      const socket = await connectWithin(server.open, { timeoutMs: 1000, signal: new AbortController().signal });
      assert.equal(socket.readyState, 'open');
      socket.destroy();
    } finally {
      await server.stop();
    }
  });

  it('default and own errors for a time-out and an abort; the socket error as it is', async () => {
    const signal = new AbortController().signal;
    const never = new PassThrough();
    await assert.rejects(connectWithin(() => never, { timeoutMs: 50, signal }), { message: 'no connection within 0.05 s' });
    assert.ok(never.destroyed);
    await assert.rejects(connectWithin(() => new PassThrough(), { timeoutMs: 50, signal, timeoutError: () => new Error('no connection in time') }), { message: 'no connection in time' });

    const controller = new AbortController();
    const waiting = connectWithin(() => new PassThrough(), { timeoutMs: 5000, signal: controller.signal });
    controller.abort();
    await assert.rejects(waiting, { message: 'the hook ran out of time (plugin_timeout)' });
    const controller2 = new AbortController();
    const waiting2 = connectWithin(() => new PassThrough(), { timeoutMs: 5000, signal: controller2.signal, abortError: () => new Error('the hook ran out of time') });
    controller2.abort();
    await assert.rejects(waiting2, { message: 'the hook ran out of time' });

    const failing = new PassThrough();
    setImmediate(() => failing.emit('error', Object.assign(new Error('connect ENOENT /x'), { code: 'ENOENT' })));
    await assert.rejects(connectWithin(() => failing, { timeoutMs: 5000, signal }), { code: 'ENOENT' });
  });
});

async function waitFor(condition: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

