import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CrlfToLf } from '../../../src/mail/line-ends.ts';
import type { ParsedReply } from '../../helpers/fake-conn.ts';
import { tempDir, testApp, type TestApp, type TestAppOptions } from '../../helpers/test-app.ts';

const UNIQUE = /^(\d+)\.M(\d+)P(\d+)Q(\d+)\.(.+)$/;

async function withApp(plugin: string, options: TestAppOptions, fn: (t: TestApp) => Promise<void>): Promise<void> {
  const t = await testApp({
    ...options,
    config: { plugins: ['rcpt_ok', plugin], rcpthosts: ['example.com', 'example.org', 'blocked.example'], ...options.config },
  });
  try {
    await fn(t);
  } finally {
    t.cleanup();
  }
}

interface Mail {
  readonly from?: string;
  readonly mailParams?: string;
  readonly to: readonly string[];
  /** The message as the client means it: CRLF line ends, not dot-stuffed. */
  readonly message: string | Buffer;
}

/** One session that sends one message; the reply after the final dot. */
async function send(t: TestApp, mail: Mail): Promise<ParsedReply> {
  const { client, done } = await t.greeted();
  assert.equal((await client.command('EHLO client.example')).code, 250);
  assert.equal((await client.command(`MAIL FROM:${mail.from ?? '<sender@origin.example>'}${mail.mailParams ?? ''}`)).code, 250);
  for (const rcpt of mail.to) assert.equal((await client.command(`RCPT TO:${rcpt}`)).code, 250, rcpt);
  assert.equal((await client.command('DATA')).code, 354);
  const raw = typeof mail.message === 'string' ? Buffer.from(mail.message, 'utf8') : mail.message;
  client.send(dotStuff(raw));
  client.send('.\r\n');
  const reply = await client.reply(10_000);
  assert.equal((await client.command('QUIT')).code, 221);
  await done;
  return reply;
}

/** Double every dot that starts a line; the message must end in CRLF. */
function dotStuff(message: Buffer): Buffer {
  const text = message.toString('latin1');
  return Buffer.from(text.replace(/(^|\r\n)\./g, '$1..'), 'latin1');
}

const lf = (text: string): string => text.replace(/\r\n/g, '\n');

function files(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

/** The one file in DIR/new, checked for a Maildir name; cur/ and tmp/ empty. */
function onlyMessage(maildir: string): { name: string; content: Buffer } {
  const names = files(join(maildir, 'new'));
  assert.equal(names.length, 1, `one file in ${maildir}/new: ${names.join(', ')}`);
  const name = names[0]!;
  const m = UNIQUE.exec(name);
  assert.ok(m, `Maildir name: ${name}`);
  assert.equal(Number(m[3]), process.pid);
  assert.ok(Math.abs(Number(m[1]) - Date.now() / 1000) < 60);
  assert.ok(Number(m[2]) < 1_000_000);
  assert.ok(!m[5]!.includes('/') && !m[5]!.includes(':'));
  assert.deepEqual(files(join(maildir, 'tmp')), []);
  assert.deepEqual(files(join(maildir, 'cur')), []);
  return { name, content: readFileSync(join(maildir, 'new', name)) };
}

const MESSAGE = [
  'From: Sender <sender@origin.example>',
  'To: user@example.com',
  'Subject: test',
  ' folded subject line',
  '',
  'First line.',
  '.a line that starts with a dot (dot-stuffed on the wire)',
  '..two dots',
  '.',
  '',
  'Last line.',
  '',
].join('\r\n');

describe('queue/maildir', () => {
  it('delivers one file into new/ with Return-Path, Delivered-To, Received and LF line ends', async () => {
    await withApp('queue/maildir var/maildir', {}, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>', '<other@Example.ORG>'], message: MESSAGE });
      assert.equal(reply.code, 250);
      const maildir = join(t.root, 'var', 'maildir');
      const { name, content } = onlyMessage(maildir);
      assert.equal(reply.text, `2.0.0 Queued! ${name}`);
      const text = content.toString('utf8');
      assert.ok(!content.includes(0x0d), 'no CR in the file');
      const lines = text.split('\n');
      assert.equal(lines[0], 'Return-Path: <sender@origin.example>');
      assert.equal(lines[1], 'Delivered-To: user@example.com');
      assert.equal(lines[2], 'Delivered-To: other@Example.ORG');
      assert.match(lines[3]!, /^Received: from client\.example \(\[192\.0\.2\.10\]\)$/);
      assert.match(text, /\n\tby mx\.example\.test \(qpsmtpd\/0\.0\.0-test\) with ESMTP id \S+; .+\n/);
      // The message follows the trace fields unchanged but for its line ends, dots un-stuffed.
      assert.ok(text.endsWith(lf(MESSAGE)), text);
      assert.equal(text.indexOf('From: Sender'), text.length - lf(MESSAGE).length);
    });
  });

  it('writes <> for the null sender and keeps 8-bit UTF-8 bytes exactly', async () => {
    const body = 'Grüße aus Köln, 日本語のテキスト, emoji 🎉\r\n\r\nénd\r\n';
    const message = 'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n' + body;
    await withApp('queue/maildir md', {}, async (t) => {
      const reply = await send(t, { from: '<>', mailParams: ' BODY=8BITMIME', to: ['<user@example.com>'], message });
      assert.equal(reply.code, 250);
      const { content } = onlyMessage(join(t.root, 'md'));
      assert.ok(content.toString('utf8').startsWith('Return-Path: <>\nDelivered-To: user@example.com\nReceived: '));
      const expected = Buffer.from(lf(message), 'utf8');
      assert.ok(content.subarray(content.length - expected.length).equals(expected));
    });
  });

  it('accepts an absolute PATH and creates cur/ new/ tmp/ when loaded', async () => {
    const dir = tempDir('qpsmtpd-maildir-');
    try {
      const maildir = join(dir, 'abs', 'Maildir');
      await withApp(`queue/maildir ${maildir}`, {}, async (t) => {
        for (const sub of ['cur', 'new', 'tmp']) assert.ok(statSync(join(maildir, sub)).isDirectory(), sub);
        assert.equal((await send(t, { to: ['<user@example.com>'], message: MESSAGE })).code, 250);
        onlyMessage(maildir);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('default modes: directories 0700, files 0600', async () => {
    await withApp('queue/maildir md', {}, async (t) => {
      assert.equal((await send(t, { to: ['<user@example.com>'], message: MESSAGE })).code, 250);
      const maildir = join(t.root, 'md');
      for (const sub of ['', 'cur', 'new', 'tmp']) assert.equal(statSync(join(maildir, sub)).mode & 0o777, 0o700, sub);
      const { name } = onlyMessage(maildir);
      assert.equal(statSync(join(maildir, 'new', name)).mode & 0o777, 0o600);
    });
  });

  it('MODE sets directory modes and file modes without execute bits', async () => {
    await withApp('queue/maildir md %d/%l 750', {}, async (t) => {
      assert.equal((await send(t, { to: ['<user@example.com>'], message: MESSAGE })).code, 250);
      const maildir = join(t.root, 'md', 'example.com', 'user');
      for (const dir of [join(t.root, 'md'), join(t.root, 'md', 'example.com'), maildir, join(maildir, 'new'), join(maildir, 'tmp'), join(maildir, 'cur')]) {
        assert.equal(statSync(dir).mode & 0o777, 0o750, dir);
      }
      const { name } = onlyMessage(maildir);
      assert.equal(statSync(join(maildir, 'new', name)).mode & 0o777, 0o640);
    });
    await withApp('queue/maildir md 0770', {}, async (t) => {
      assert.equal((await send(t, { to: ['<user@example.com>'], message: MESSAGE })).code, 250);
      const { name } = onlyMessage(join(t.root, 'md'));
      assert.equal(statSync(join(t.root, 'md', 'new', name)).mode & 0o777, 0o660);
      assert.equal(statSync(join(t.root, 'md', 'new')).mode & 0o777, 0o770);
    });
  });

  describe('templates', () => {
    const recipients = ['<user@example.com>', '<"john doe"@example.com>', '<Jörg+Tag@EXAMPLE.org>', '<postmaster>', '<..@example.com>'];

    it('one file per recipient, sanitised %d/%l, each with its own Delivered-To', async () => {
      await withApp('queue/maildir mail %d/%l', {}, async (t) => {
        const reply = await send(t, { to: recipients, mailParams: ' SMTPUTF8', message: MESSAGE });
        assert.equal(reply.code, 250);
        assert.match(reply.text, /^2\.0\.0 Queued! \S+ and 4 more$/);
        const base = join(t.root, 'mail');
        const expected: [string, string][] = [
          ['example.com/user', 'user@example.com'],
          ['example.com/john_doe', '"john doe"@example.com'],
          ['example.org/J__rg+Tag', 'Jörg+Tag@EXAMPLE.org'],
          ['mx.example.test/postmaster', 'postmaster@mx.example.test'],
          ['example.com/__', '".."@example.com'],
        ];
        for (const [dir, deliveredTo] of expected) {
          const { content } = onlyMessage(join(base, dir));
          const text = content.toString('utf8');
          assert.ok(text.startsWith(`Return-Path: <sender@origin.example>\nDelivered-To: ${deliveredTo}\nReceived: `), text.slice(0, 200));
          assert.equal(text.match(/^Delivered-To:/gm)?.length, 1);
          assert.ok(text.endsWith(lf(MESSAGE)));
        }
        assert.deepEqual(files(base), ['example.com', 'example.org', 'mx.example.test']);
        assert.deepEqual(files(join(base, 'example.com')), ['__', 'john_doe', 'user']);
      });
    });

    it('%u, and the template written inside PATH', async () => {
      await withApp('queue/maildir boxes/%u', {}, async (t) => {
        assert.equal((await send(t, { to: ['<a.b@example.com>', '<c=d@example.org>'], message: MESSAGE })).code, 250);
        assert.deepEqual(files(join(t.root, 'boxes')), ['a.b@example.com', 'c=d@example.org']);
        onlyMessage(join(t.root, 'boxes', 'a.b@example.com'));
        onlyMessage(join(t.root, 'boxes', 'c=d@example.org'));
      });
      await withApp('queue/maildir vmail/%d/users/%l/Maildir 700', {}, async (t) => {
        assert.equal((await send(t, { to: ['<a@example.com>'], message: MESSAGE })).code, 250);
        onlyMessage(join(t.root, 'vmail', 'example.com', 'users', 'a', 'Maildir'));
      });
    });

    it('two recipients in one directory get two files', async () => {
      await withApp('queue/maildir mail %d', {}, async (t) => {
        assert.equal((await send(t, { to: ['<a@example.com>', '<b@example.com>'], message: MESSAGE })).code, 250);
        const names = files(join(t.root, 'mail', 'example.com', 'new'));
        assert.equal(names.length, 2);
        const delivered = names.map((n) => /Delivered-To: (.*)/.exec(readFileSync(join(t.root, 'mail', 'example.com', 'new', n), 'utf8'))![1]).sort();
        assert.deepEqual(delivered, ['a@example.com', 'b@example.com']);
      });
    });
  });

  describe('failures', () => {
    it('a file where the Maildir should be: 452 4.3.0, nothing delivered, the cause logged', async () => {
      // config/me is a file (testApp writes it before loading): nothing can be created under it.
      await withApp('queue/maildir config/me/maildir', { config: { loglevel: '3' } }, async (t) => {
        const reply = await send(t, { to: ['<user@example.com>'], message: MESSAGE });
        assert.equal(reply.code, 452);
        assert.equal(reply.text, '4.3.0 Queue error, try again later');
        assert.ok(statSync(join(t.configDir, 'me')).isFile());
        assert.ok(t.logs.some((l) => /queue\/maildir: delivery into .*config\/me\/maildir failed, nothing delivered: .*ENOTDIR/.test(l)), t.logs.join('\n'));
      });
    });

    it('a failure for one recipient removes the copies of the others', async () => {
      await withApp('queue/maildir mail %d/%l', {}, async (t) => {
        mkdirSync(join(t.root, 'mail'), { recursive: true });
        writeFileSync(join(t.root, 'mail', 'blocked.example'), 'not a directory');
        const reply = await send(t, { to: ['<a@example.com>', '<b@example.org>', '<c@blocked.example>'], message: MESSAGE });
        assert.equal(reply.code, 452);
        assert.match(reply.text, /^4\.3\.0 /);
        for (const dir of ['example.com/a', 'example.org/b']) {
          assert.deepEqual(files(join(t.root, 'mail', dir, 'new')), [], dir);
          assert.deepEqual(files(join(t.root, 'mail', dir, 'tmp')), [], dir);
        }
      });
    });

    it('a broken Maildir gives 452 until it is repaired, then delivery works again', async () => {
      await withApp('queue/maildir md', {}, async (t) => {
        const md = join(t.root, 'md');
        // A file where new/ should be: the Maildir cannot be completed.
        rmSync(join(md, 'new'), { recursive: true });
        writeFileSync(join(md, 'new'), 'oops');
        const reply = await send(t, { to: ['<user@example.com>'], message: MESSAGE });
        assert.equal(reply.code, 452);
        assert.deepEqual(files(join(md, 'tmp')), [], 'no tmp leftovers');
        rmSync(join(md, 'new'));
        assert.equal((await send(t, { to: ['<user@example.com>'], message: MESSAGE })).code, 250);
        onlyMessage(md);
      });
    });

    it('a plugin timeout mid-write leaves nothing behind', async () => {
      // 1 ms for the whole delivery of 2 MB: the time limit fires while the file is being written.
      const message = 'Subject: slow\r\n\r\n' + ('z'.repeat(1022) + '\r\n').repeat(2048);
      await withApp('queue/maildir md', { config: { plugin_timeout: ['queue/maildir 0.001'] } }, async (t) => {
        const reply = await send(t, { to: ['<user@example.com>'], message });
        assert.equal(reply.code, 452);
        const deadline = Date.now() + 5000;
        while (!t.logs.some((l) => l.includes('nothing delivered'))) {
          assert.ok(Date.now() < deadline, t.logs.join('\n'));
          await new Promise((r) => setTimeout(r, 5));
        }
        assert.ok(t.logs.some((l) => /nothing delivered: .*(abort|timeout)/i.test(l)), t.logs.join('\n'));
        assert.deepEqual(files(join(t.root, 'md', 'tmp')), []);
        assert.deepEqual(files(join(t.root, 'md', 'new')), []);
      });
    });

    it('refuses to load without a path or with a template without substitution', async () => {
      await assert.rejects(testApp({ config: { plugins: ['queue/maildir'] } }), /Maildir path is missing/);
      await assert.rejects(testApp({ config: { plugins: ['queue/maildir md users'] } }), /no substitution/);
      await assert.rejects(testApp({ config: { plugins: ['queue/maildir md %l 99x'] } }), /not an octal number/);
    });
  });

  it('streams a message larger than size_threshold from the spool file, byte for byte', async () => {
    // Lines of 64 bytes after a first line of 65: the CR of one line end falls on the last byte of
    // the spool reader's first 256 KiB chunk, and its LF starts the next.
    const first = 'X' + 'a'.repeat(62) + '\r\n';
    const line = (i: number): string => `${String(i).padStart(6, '0')} ${'b'.repeat(55)}\r\n`;
    const parts = [first];
    for (let i = 0; i < 6000; i++) parts.push(i % 1000 === 7 ? '.' + line(i).slice(1) : line(i));
    const body = parts.join('');
    assert.equal(body.indexOf('\r', 262_143), 262_143);
    const message = 'Subject: big\r\n\r\n' + body;
    // This plugin refuses the message unless its body went to a spool file.
    const spooled = `
      import { Plugin, DECLINED, DENY } from 'qpsmtpd';
      export default class MustSpool extends Plugin {
        hook_data_post(tx) { return tx.body.path ? DECLINED : [DENY, 'not spooled']; }
      }
    `;
    const config = { size_threshold: '1000', plugins: ['rcpt_ok', 'must_spool', 'queue/maildir md'] };
    await withApp('queue/maildir md', { config, plugins: { 'must_spool.ts': spooled } }, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>'], message });
      assert.equal(reply.code, 250, reply.raw);
      const { content } = onlyMessage(join(t.root, 'md'));
      const expected = Buffer.from(lf(message), 'latin1');
      assert.ok(content.subarray(content.length - expected.length).equals(expected), 'body bytes');
      assert.ok(!content.includes(0x0d));
      assert.deepEqual(files(join(t.root, 'spool')), [], 'spool file removed after queueing');
    });
  });
});

describe('CrlfToLf', () => {
  const input = Buffer.from('a\r\nb\rc\r\n\r\n\r\rd\r\r\n\r', 'latin1');
  const expected = 'a\nb\rc\n\n\r\rd\r\n\r';

  it('converts whole', () => {
    const c = new CrlfToLf();
    assert.equal(Buffer.concat([c.convert(input), c.end()]).toString('latin1'), expected);
  });

  it('converts split at every offset, and byte by byte', () => {
    for (let i = 0; i <= input.length; i++) {
      for (let j = i; j <= input.length; j++) {
        const c = new CrlfToLf();
        const out = Buffer.concat([c.convert(input.subarray(0, i)), c.convert(input.subarray(i, j)), c.convert(input.subarray(j)), c.end()]);
        assert.equal(out.toString('latin1'), expected, `split at ${i}, ${j}`);
      }
    }
    const c = new CrlfToLf();
    const bytes: Buffer[] = [];
    for (let i = 0; i < input.length; i++) bytes.push(c.convert(input.subarray(i, i + 1)));
    bytes.push(c.end());
    assert.equal(Buffer.concat(bytes).toString('latin1'), expected);
  });
});
