/**
 * qpsmtpd/testing, as a plugin author uses it: imported by its public name, plugins given as
 * config lines and as classes, connection facts, replies, sendMail, the capturing queue, logs.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { DECLINED, DENY, DENY_DISCONNECT, DONE, LOGDEBUG, OK, Plugin } from 'qpsmtpd';
import type { Address, PluginHost, Transaction } from 'qpsmtpd';
import { buildMessage, pluginNameOf, testServer, toWire, type TestServer } from 'qpsmtpd/testing';

const servers: TestServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});
async function server(options: Parameters<typeof testServer>[0]): Promise<TestServer> {
  const s = await testServer(options);
  servers.push(s);
  return s;
}

/** Refuses mail to hans@meine.do.main (the talk's first example), logs at LOGDEBUG what it saw. */
class RejectHans extends Plugin {
  hook_rcpt(_tx: Transaction, rcpt: Address) {
    this.log(LOGDEBUG, `checking ${rcpt}`);
    if (rcpt.address.toLowerCase() === 'hans@meine.do.main') return [DENY, `Mail to ${rcpt} not accepted here`] as const;
    return DECLINED;
  }
}

/** Tells the client what it knows about the connection, on the verb XFACTS. */
class Facts extends Plugin {
  hook_unrecognized_command(_tx: Transaction, verb: string) {
    if (verb !== 'xfacts') return DECLINED;
    const c = this.connection;
    this.qp.respond(250, JSON.stringify({ ip: c.remoteIp, port: c.localPort, relay: c.relayClient, tls: c.tls?.protocol ?? null, user: c.authUser ?? null, notes: c.notes }));
    return DONE;
  }
}

describe('testServer: plugins and replies', () => {
  test('a plugin class given directly, its name from the class, replies with code, enhanced code, text and lines', async () => {
    const s = await server({ plugins: [RejectHans], acceptAllRecipients: true });
    assert.deepEqual(
      s.hooks().find((h) => h.hook === 'rcpt'),
      { hook: 'rcpt', plugins: ['reject_hans', 'testing/accept_all'] },
    );
    const session = await s.connect();
    assert.equal(session.greeting?.code, 220);
    assert.equal(session.greeting?.enhanced, null);
    const ehlo = await session.ehlo('client.example.test');
    assert.equal(ehlo.code, 250);
    assert.equal(ehlo.enhanced, null);
    assert.equal(ehlo.lines[0], 'mx.example.test Hi [192.0.2.10]');
    assert.ok(ehlo.lines.includes('PIPELINING'), ehlo.text);
    assert.equal((await session.command('MAIL FROM:<a@example.org>')).code, 250);
    const hans = await session.command('RCPT TO:<hans@meine.do.main>');
    assert.equal(hans.code, 550);
    assert.equal(hans.enhanced, '5.7.1');
    assert.equal(hans.text, 'Mail to <hans@meine.do.main> not accepted here');
    assert.equal(hans.raw, '550 5.7.1 Mail to <hans@meine.do.main> not accepted here\r\n');
    const grete = await session.command('RCPT TO:<grete@meine.do.main>');
    assert.equal(grete.code, 250, 'DECLINED: accept_all decides');
    assert.equal((await session.quit()).code, 221);
    assert.ok(session.closed);
  });

  test('config lines, names with arguments, several instances of one class', async () => {
    class Tag extends Plugin {
      tag = '';
      register(_qp: PluginHost, tag: string) {
        this.tag = tag;
      }
      hook_mail(tx: Transaction) {
        tx.notes[this.name] = this.tag;
        return DECLINED;
      }
    }
    const s = await server({
      plugins: [{ plugin: Tag, name: 'tag:0', args: ['first'] }, { plugin: Tag, name: 'tag:1', args: ['second'] }, 'rcpt_ok'],
      config: { rcpthosts: ['example.test'] },
    });
    const session = await s.connect();
    const result = await session.sendMail('a@example.org', 'b@example.test', 'Subject: x\n\nhi\n');
    assert.equal(result.code, 250, result.raw);
    assert.equal(result.queued?.notes['tag:0'], 'first');
    assert.equal(result.queued?.notes['tag:1'], 'second');
    await session.quit();
  });

  test('plugin files from a folder, and sources given as text', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qpsmtpd-kit-'));
    try {
      writeFileSync(
        join(dir, 'deny_mail.ts'),
        `import { Plugin, DENY } from 'qpsmtpd';\nexport default class DenyMail extends Plugin {\n  hook_mail() { return [DENY, 'no mail from you']; }\n}\n`,
      );
      const s = await server({
        plugins: ['deny_mail', 'helper'],
        pluginDirs: [dir],
        pluginFiles: { 'helper.ts': `import { Plugin } from 'qpsmtpd';\nexport default class Helper extends Plugin {\n  hook_helo() { return undefined; }\n}\n` },
      });
      assert.deepEqual(
        s.hooks().map((h) => h.hook),
        ['helo', 'mail', 'queue'],
      );
      const session = await s.connect();
      const result = await session.sendMail('a@example.org', ['b@example.test'], 'x');
      assert.equal(result.step, 'mail');
      assert.equal(result.accepted, false);
      assert.equal(result.code, 550);
      assert.equal(result.text, 'no mail from you');
      assert.equal(result.replies.length, 2, 'EHLO, then MAIL');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a plugin that cannot load: testServer rejects naming it', async () => {
    await assert.rejects(testServer({ plugins: ['no_such_plugin'] }), /no_such_plugin.*not found/);
    await assert.rejects(testServer({ plugins: [{ plugin: RejectHans, name: 'bad name' }] }), /cannot be a plugin name/);
  });

  test('plugin names of classes', () => {
    assert.equal(pluginNameOf(RejectHans), 'reject_hans');
    assert.equal(pluginNameOf(class HTTPConfig extends Plugin {}), 'http_config');
    assert.equal(pluginNameOf(class Loop extends Plugin {}), 'loop');
  });
});

describe('connection facts', () => {
  test('remote IP and local port, relay client, TLS, authentication and notes are what plugins see', async () => {
    const s = await server({ plugins: [Facts] });
    const facts = async (options: Parameters<TestServer['connect']>[0]): Promise<Record<string, unknown>> => {
      const session = await s.connect(options);
      const reply = await session.command('XFACTS');
      await session.quit();
      return JSON.parse(reply.text) as Record<string, unknown>;
    };
    assert.deepEqual(await facts({}), { ip: '192.0.2.10', port: 25, relay: false, tls: null, user: null, notes: {} });
    assert.deepEqual(await facts({ remoteIp: '2001:db8::7', localPort: 587, relayClient: true, tls: true, notes: { whitelisthost: 1 } }), {
      ip: '2001:db8::7',
      port: 587,
      relay: true,
      tls: 'TLSv1.3',
      user: null,
      notes: { whitelisthost: 1 },
    });
    const authenticated = await facts({ auth: 'alice' });
    assert.equal(authenticated['user'], 'alice');
    assert.equal(authenticated['relay'], true, 'as after AUTH, an authenticated client may relay');
  });

  test('relay clients and authenticated clients may relay through rcpt_ok; others may not', async () => {
    const s = await server({ plugins: ['rcpt_ok'], config: { rcpthosts: ['example.test'] } });
    for (const [options, code] of [
      [{}, 550],
      [{ relayClient: true }, 250],
      [{ auth: { user: 'bob', mechanism: 'login' } }, 250],
    ] as const) {
      const session = await s.connect(options);
      const result = await session.sendMail('a@example.org', ['someone@elsewhere.example'], 'hi');
      assert.equal(result.code, code, JSON.stringify(options));
      if (code === 250) assert.equal(session.connection.authMechanism, 'auth' in options ? 'LOGIN' : undefined);
      await session.quit();
    }
  });

  test('AUTH is offered only over TLS (tls_before_auth), so the tls fact matters', async () => {
    class Auth extends Plugin {
      hook_auth_plain() {
        return OK;
      }
    }
    const s = await server({ plugins: [Auth] });
    const plain = await s.connect();
    assert.ok(!(await plain.ehlo()).lines.some((l) => l.startsWith('AUTH')));
    await plain.quit();
    const encrypted = await s.connect({ tls: true });
    assert.ok((await encrypted.ehlo()).lines.includes('AUTH PLAIN'));
    const auth = await encrypted.command(`AUTH PLAIN ${Buffer.from('\0carol\0secret').toString('base64')}`);
    assert.equal(auth.code, 235);
    assert.equal(encrypted.connection.authUser, 'carol');
    await encrypted.quit();
  });

  test('canStartTls: a plugin can turn the connection into TLS without a handshake', async () => {
    class StartTls extends Plugin {
      async hook_unrecognized_command(_tx: Transaction, verb: string) {
        if (verb !== 'starttls') return DECLINED;
        await this.qp.startTls({ fake: true }, { code: 220, message: 'Ready to start TLS' });
        return DONE;
      }
    }
    const s = await server({ plugins: [StartTls] });
    const session = await s.connect({ canStartTls: true });
    await session.ehlo();
    assert.equal((await session.command('STARTTLS')).code, 220);
    assert.equal(session.connection.tls?.protocol, 'TLSv1.3');
    assert.deepEqual(session.conn.tlsOptions, { fake: true });
    assert.equal(session.connection.hello, undefined, 'the client must greet again');
    await session.quit();
  });

  test('open(): a client that talks before the greeting (earlytalker)', async () => {
    const s = await server({ plugins: ['earlytalker wait 2'] });
    const session = s.open();
    session.send('EHLO impatient.example\r\n');
    const first = await session.reply();
    assert.equal(first.code, 550);
    assert.equal(session.greeting, first);
    await session.ended;
    assert.ok(session.closed);
  });
});

describe('sendMail', () => {
  test('greets when needed, stuffs dots, keeps the message as queued; refused recipients are listed', async () => {
    const s = await server({ plugins: [RejectHans], acceptAllRecipients: true });
    const session = await s.connect({ remoteIp: '198.51.100.4' });
    const text = buildMessage({ subject: 'dots', body: '.leading dot\nlast line' });
    const result = await session.sendMail('a@example.org', ['hans@meine.do.main', 'grete@meine.do.main'], text);
    assert.equal(result.step, 'message');
    assert.equal(result.accepted, true);
    assert.equal(result.code, 250);
    assert.match(result.text, /^Queued \(test capture [\d.]+\)$/);
    assert.deepEqual(
      result.replies.map((r) => r.code),
      [250, 250, 550, 250, 354, 250],
    );
    assert.deepEqual(
      result.refusedRecipients.map((r) => [r.recipient, r.reply.code]),
      [['hans@meine.do.main', 550]],
    );
    const queued = result.queued!;
    assert.equal(s.queued.length, 1);
    assert.equal(s.queued[0], queued);
    assert.equal(queued.sender, 'a@example.org');
    assert.deepEqual(queued.recipients, ['grete@meine.do.main']);
    assert.equal(queued.header.get('Subject'), 'dots');
    assert.match(queued.header.get('Received') ?? '', /\[198\.51\.100\.4\]/);
    assert.equal(queued.body, '.leading dot\r\nlast line\r\n');
    assert.ok(queued.message.endsWith('\r\n\r\n.leading dot\r\nlast line\r\n'));
    assert.equal(queued.raw.toString('utf8'), queued.message);

    const second = await session.sendMail('', 'bounce@example.test', 'Subject: null sender\n\nhi\n');
    assert.equal(second.replies.length, 4, 'no second EHLO');
    assert.equal(second.queued?.sender, '');
    await session.quit();
  });

  test('every recipient refused: step rcpt; a disconnecting refusal ends it there; DATA and the message may be refused too', async () => {
    class Picky extends Plugin {
      hook_rcpt(_tx: Transaction, rcpt: Address) {
        if (rcpt.user === 'bye') return [DENY_DISCONNECT, 'go away'] as const;
        return rcpt.user === 'no' ? DENY : OK;
      }
      hook_data_post(tx: Transaction) {
        return tx.header.get('Subject') === 'spam' ? ([DENY, 'spam'] as const) : DECLINED;
      }
    }
    const s = await server({ plugins: [Picky] });
    const session = await s.connect();
    const none = await session.sendMail('a@example.org', ['no@example.test'], 'x');
    assert.equal(none.step, 'rcpt');
    assert.equal(none.code, 550);
    const spam = await session.sendMail('a@example.org', ['yes@example.test'], 'Subject: spam\n\nbuy\n');
    assert.equal(spam.step, 'message');
    assert.equal(spam.code, 552);
    assert.equal(spam.accepted, false);
    assert.equal(spam.queued, undefined);
    const bye = await session.sendMail('a@example.org', ['bye@example.test', 'yes@example.test'], 'x');
    assert.equal(bye.step, 'rcpt');
    assert.equal(bye.code, 550);
    assert.equal(bye.text, 'go away');
    await session.ended;
    assert.ok(session.closed);
    assert.equal(s.queued.length, 0);
  });

  test('toWire: CRLF line ends, a last line end, dot stuffing; bytes stay bytes', () => {
    assert.equal(toWire('a\n.b\r\n..c').toString(), 'a\r\n..b\r\n...c\r\n');
    assert.equal(toWire('').toString(), '');
    assert.deepEqual(toWire(Buffer.from([0xe9, 0x0a])), Buffer.from([0xe9, 0x0d, 0x0a]));
  });
});

describe('the capturing queue', () => {
  class MyQueue extends Plugin {
    taken = 0;
    hook_queue() {
      this.taken++;
      return [OK, 'taken by my queue'] as const;
    }
  }

  test('auto: it stands back when a plugin serves the queue hook', async () => {
    const s = await server({ plugins: [MyQueue], acceptAllRecipients: true });
    const session = await s.connect();
    const result = await session.sendMail('a@example.org', ['b@example.test'], 'x');
    assert.equal(result.text, 'taken by my queue');
    assert.equal(result.queued, undefined);
    assert.equal(s.queued.length, 0);
    await session.quit();
  });

  test('always: it takes every message in front of the queue plugins', async () => {
    const s = await server({ plugins: [MyQueue], acceptAllRecipients: true, queue: 'always' });
    const session = await s.connect();
    const result = await session.sendMail('a@example.org', ['b@example.test'], 'x');
    assert.match(result.text, /^Queued \(test capture/);
    assert.equal(s.queued.length, 1);
    await session.quit();
  });

  test('off: without a queue plugin the message gets 451, as in the daemon', async () => {
    const s = await server({ plugins: [], acceptAllRecipients: true, queue: 'off' });
    const session = await s.connect();
    const result = await session.sendMail('a@example.org', ['b@example.test'], 'x');
    assert.equal(result.code, 451);
    assert.equal(result.text, 'Queuing declined or disabled; try again later');
    await session.quit();
  });
});

describe('logs, config and the server', () => {
  test('every log line is kept with its level, hook and plugin, whatever loglevel says; stderr keeps what the daemon would print', async () => {
    const s = await server({ plugins: [RejectHans], acceptAllRecipients: true, config: { loglevel: 6 } });
    const session = await s.connect();
    await session.sendMail('a@example.org', ['grete@meine.do.main'], 'x');
    await session.quit();
    const [line] = s.logged('checking <grete@meine.do.main>', 'reject_hans');
    assert.ok(line, s.logs.map((l) => l.text).join('\n'));
    assert.equal(line.level, LOGDEBUG);
    assert.equal(line.hook, 'rcpt');
    assert.equal(line.text, '(rcpt) reject_hans: checking <grete@meine.do.main>');
    assert.match(line.transactionId ?? '', /^\d+\.\d+\.\d+$/);
    assert.ok(s.logged(/^dispatching MAIL FROM/).length > 0, 'the core logs too');
    assert.ok(!s.stderr.some((l) => l.includes('checking <grete')), 'LOGDEBUG is over loglevel 6');

    const verbose = await server({ plugins: [RejectHans], acceptAllRecipients: true, config: { loglevel: 7 } });
    const again = await verbose.connect();
    await again.sendMail('a@example.org', ['grete@meine.do.main'], 'x');
    await again.quit();
    assert.ok(verbose.stderr.some((l) => / \(rcpt\) reject_hans: checking <grete@meine\.do\.main>$/.test(l)), verbose.stderr.join('\n'));
  });

  test('a whole config directory: copied, with its plugins found where they are', async () => {
    const root = mkdtempSync(join(tmpdir(), 'qpsmtpd-kit-root-'));
    try {
      mkdirSync(join(root, 'config'));
      mkdirSync(join(root, 'plugins'));
      writeFileSync(join(root, 'config', 'plugins'), '# the site\nlocal_note\nrcpt_ok\n');
      writeFileSync(join(root, 'config', 'rcpthosts'), 'site.example\n');
      writeFileSync(join(root, 'config', 'me'), 'mx.site.example\n');
      writeFileSync(
        join(root, 'plugins', 'local_note.ts'),
        `import { Plugin, DECLINED } from 'qpsmtpd';\nimport type { Transaction } from 'qpsmtpd';\nexport default class LocalNote extends Plugin {\n  hook_data_post(tx: Transaction) { tx.header.add('X-Site', 'yes'); return DECLINED; }\n}\n`,
      );
      const s = await server({ configDir: join(root, 'config') });
      assert.notEqual(s.configDir, join(root, 'config'));
      const session = await s.connect();
      assert.match(session.greeting?.text ?? '', /^mx\.site\.example ESMTP/);
      const foreign = await session.sendMail('a@example.org', ['x@elsewhere.example'], 'x');
      assert.equal(foreign.code, 550);
      const local = await session.sendMail('a@example.org', ['x@site.example'], 'Subject: hi\n\nhello\n');
      assert.equal(local.code, 250, local.raw);
      assert.equal(local.queued?.header.get('X-Site'), 'yes');
      await session.quit();
      assert.ok(!existsSync(join(root, 'config', 'spool')), 'the original is left alone');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('writeConfig and reload; close shuts the plugins down and removes the folder', async () => {
    let shutdowns = 0;
    class Greeter extends Plugin {
      hook_connect() {
        return DECLINED;
      }
      shutdown() {
        shutdowns++;
      }
    }
    const s = await testServer({ plugins: [Greeter], config: { smtpgreeting: 'first' } });
    const one = await s.connect();
    assert.equal(one.greeting?.text, 'first ESMTP');
    await one.quit();
    s.writeConfig('smtpgreeting', 'second');
    await s.reload();
    assert.equal(shutdowns, 1, 'the replaced instance is let go');
    const two = await s.connect();
    assert.equal(two.greeting?.text, 'second ESMTP');
    await s.close();
    assert.equal(two.closed, true, 'sessions still open are ended');
    assert.equal(shutdowns, 2);
    assert.equal(existsSync(s.root), false);
    await s.close();
  });
});
