/** The SMTP dialogue of RFC 5321 as the session speaks it, with the bundled plugins out of the way. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { testApp, tempDir, type TestApp } from '../helpers/test-app.ts';
import { TEST_PLUGINS } from '../helpers/plugin-sources.ts';
import type { FakeConn } from '../helpers/fake-conn.ts';

const queueDir = tempDir('qpsmtpd-dialogue-');
let t: TestApp;

before(async () => {
  t = await testApp({
    plugins: TEST_PLUGINS,
    config: { plugins: ['accept_all', `queue_capture ${queueDir}`], databytes: '2000' },
  });
});
after(async () => {
  await t.cleanup();
});

/** The messages queued so far, newest last. */
function queued(): string[] {
  return readdirSync(queueDir)
    .sort((a, b) => Number.parseInt(a) - Number.parseInt(b))
    .map((f) => readFileSync(join(queueDir, f), 'latin1'));
}

async function ready(): Promise<FakeConn> {
  const { client } = await t.greeted();
  assert.equal((await client.command('EHLO client.example')).code, 250);
  return client;
}

describe('greeting and EHLO', () => {
  test('the greeting names the host and qpsmtpd; EHLO lists the extensions', async () => {
    const { client } = t.connect();
    const greeting = await client.reply();
    assert.equal(greeting.code, 220);
    assert.match(greeting.text, /^mx\.example\.test ESMTP qpsmtpd 0\.0\.0-test ready/);
    const ehlo = await client.command('EHLO client.example');
    assert.equal(ehlo.code, 250);
    assert.equal(ehlo.lines[0], 'mx.example.test Hi [192.0.2.10]');
    assert.deepEqual(ehlo.lines.slice(1), ['PIPELINING', '8BITMIME', 'SIZE 2000', 'ENHANCEDSTATUSCODES', 'SMTPUTF8']);
  });

  test('HELO without a host is 501; a second EHLO is allowed and drops the transaction', async () => {
    const client = await ready();
    assert.equal((await client.command('HELO')).code, 501);
    assert.equal((await client.command('MAIL FROM:<a@example.org>')).code, 250);
    assert.equal((await client.command('EHLO again.example')).code, 250);
    assert.equal((await client.command('RCPT TO:<b@example.net>')).code, 503, 'the transaction was reset');
  });

  test('MAIL before HELO is 503; RCPT before MAIL is 503; DATA without them is 503', async () => {
    const { client } = await t.greeted();
    const mail = await client.command('MAIL FROM:<a@example.org>');
    assert.equal(mail.code, 503);
    assert.match(mail.text, /^5\.5\.1 /);
    await client.command('EHLO x');
    assert.equal((await client.command('RCPT TO:<b@example.net>')).code, 503);
    assert.equal((await client.command('DATA')).code, 503);
    await client.command('MAIL FROM:<a@example.org>');
    const data = await client.command('DATA');
    assert.equal(data.code, 503);
    assert.match(data.text, /RCPT first/);
  });
});

describe('MAIL and RCPT', () => {
  test('syntax errors are 501, unknown verbs 500, known but unimplemented 502', async () => {
    const client = await ready();
    assert.equal((await client.command('MAIL TO:<a@example.org>')).code, 501);
    assert.equal((await client.command('MAIL FROM:<a@b@c>')).code, 501);
    assert.equal((await client.command('MAIL FROM:<@relay.example:a@example.org>')).code, 501);
    assert.equal((await client.command('MAIL FROM:a@example.org')).code, 501, 'angle brackets are required');
    assert.equal((await client.command('MAIL FROM:<a@example.org> BAD=')).code, 501);
    assert.equal((await client.command('MAIL FROM:<a@example.org> BODY=9BIT')).code, 501);
    assert.equal((await client.command('FOO bar')).code, 500);
    assert.equal((await client.command('EXPN list')).code, 502);
    assert.equal((await client.command('MAIL FROM:<a@example.org>')).code, 250);
    assert.equal((await client.command('RCPT TO:<>')).code, 501);
    assert.equal((await client.command('RCPT TO:<b@@example.net>')).code, 501);
  });

  test('the null sender, quoted local parts, address literals and a bare postmaster are accepted', async () => {
    const client = await ready();
    assert.equal((await client.command('MAIL FROM:<>')).code, 250);
    const quoted = await client.command('RCPT TO:<"john doe"@example.net>');
    assert.equal(quoted.code, 250);
    assert.match(quoted.text, /<"john doe"@example\.net>/);
    assert.equal((await client.command('RCPT TO:<x@[192.0.2.1]>')).code, 250);
    assert.equal((await client.command('RCPT TO:<x@[IPv6:2001:db8::1]>')).code, 250);
    assert.equal((await client.command('RCPT TO:<Postmaster>')).code, 250);
  });

  test('SIZE over databytes is refused at MAIL with 552, before any plugin runs', async () => {
    const client = await ready();
    const reply = await client.command('MAIL FROM:<a@example.org> SIZE=5000');
    assert.equal(reply.code, 552);
    assert.match(reply.text, /^5\.3\.4 /);
    assert.equal((await client.command('MAIL FROM:<a@example.org> SIZE=1000')).code, 250);
  });

  test('SMTPUTF8: UTF-8 addresses need the SMTPUTF8 parameter and are carried to the queue', async () => {
    const client = await ready();
    assert.equal((await client.command('MAIL FROM:<jörg@exämple.org>')).code, 553);
    assert.equal((await client.command('MAIL FROM:<jörg@exämple.org> SMTPUTF8')).code, 250);
    const rcpt = await client.command('RCPT TO:<用户@例子.测试>');
    assert.equal(rcpt.code, 250);
    assert.match(rcpt.text, /<用户@例子\.测试>/);
    assert.equal((await client.command('DATA')).code, 354);
    client.send('Subject: ünïcode\r\n\r\nGrüße\r\n.\r\n');
    assert.equal((await client.reply()).code, 250);
    const message = Buffer.from(queued().at(-1)!, 'latin1').toString('utf8');
    assert.match(message, /for <用户@例子\.测试>/);
    assert.match(message, /Subject: ünïcode\r\n\r\nGrüße\r\n$/);
  });
});

describe('DATA', () => {
  test('the message is dot-unstuffed, gets a Received header, and is queued with CRLF line ends', async () => {
    const client = await ready();
    await client.command('MAIL FROM:<a@example.org>');
    await client.command('RCPT TO:<b@example.net>');
    assert.equal((await client.command('DATA')).code, 354);
    client.send('From: a@example.org\r\nSubject: dots\r\n\r\n..leading dot\r\n.\r\n');
    const reply = await client.reply();
    assert.equal(reply.code, 250);
    assert.match(reply.text, /^2\.0\.0 Queued! /);
    const message = queued().at(-1)!;
    assert.match(message, /^Received: from client\.example \(\[192\.0\.2\.10\]\)\r\n\tby mx\.example\.test \(qpsmtpd\/0\.0\.0-test\) with ESMTP id [\d.]+\r\n\tfor <b@example\.net>; \w{3}, /);
    assert.ok(message.endsWith('From: a@example.org\r\nSubject: dots\r\n\r\n.leading dot\r\n'), JSON.stringify(message));
  });

  test('a message over databytes is read to its end, then refused with 552; the session goes on', async () => {
    const client = await ready();
    await client.command('MAIL FROM:<a@example.org>');
    await client.command('RCPT TO:<b@example.net>');
    await client.command('DATA');
    const count = queued().length;
    client.send('Subject: big\r\n\r\n' + 'x'.repeat(3000) + '\r\n.\r\n');
    const reply = await client.reply();
    assert.equal(reply.code, 552);
    assert.equal(queued().length, count);
    assert.equal((await client.command('NOOP')).code, 250);
    assert.equal((await client.command('RCPT TO:<b@example.net>')).code, 503, 'the transaction was reset');
  });

  test('a bare LF in the message: read to its real end, 550 5.5.2, nothing stored, session open', async () => {
    const client = await ready();
    await client.command('MAIL FROM:<a@example.org>');
    await client.command('RCPT TO:<b@example.net>');
    await client.command('DATA');
    const count = queued().length;
    // "\n.\n" must not end the message: the real end comes later.
    client.send('Subject: smuggle\r\n\r\nhello\n.\nMAIL FROM:<evil@example.org>\r\n.\r\n');
    const reply = await client.reply();
    assert.equal(reply.code, 550);
    assert.match(reply.text, /^5\.5\.2 /);
    assert.equal(queued().length, count);
    assert.equal((await client.command('NOOP')).code, 250);
    assert.equal(client.unread, '', 'exactly one reply for the DATA');
  });

  test('content sent before the 354 is refused with 554 and the connection closed', async () => {
    const client = await ready();
    await client.command('MAIL FROM:<a@example.org>');
    await client.command('RCPT TO:<b@example.net>');
    client.send('DATA\r\nSubject: early\r\n\r\nhi\r\n.\r\n');
    const reply = await client.reply();
    assert.equal(reply.code, 554);
    await client.waitClosed();
  });

  test('PIPELINING: commands before and after DATA are answered in order, in one write per group', async () => {
    const client = await ready();
    const writesBefore = client.writes;
    client.send('MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n');
    const codes = [(await client.reply()).code, (await client.reply()).code, (await client.reply()).code, (await client.reply()).code];
    assert.deepEqual(codes, [250, 250, 250, 354]);
    assert.equal(client.writes - writesBefore, 1, 'the four replies went out in one write');
    client.send('Subject: piped\r\n\r\nbody\r\n.\r\nMAIL FROM:<d@example.org>\r\nRCPT TO:<e@example.net>\r\nNOOP\r\n');
    const after = [(await client.reply()).code, (await client.reply()).code, (await client.reply()).code, (await client.reply()).code];
    assert.deepEqual(after, [250, 250, 250, 250]);
    assert.match(queued().at(-1)!, /Subject: piped\r\n\r\nbody\r\n$/);
  });

  test('RSET drops the transaction; a connection lost mid-message keeps nothing', async () => {
    const client = await ready();
    await client.command('MAIL FROM:<a@example.org>');
    assert.equal((await client.command('RSET')).code, 250);
    assert.equal((await client.command('RCPT TO:<b@example.net>')).code, 503);
    await client.command('MAIL FROM:<a@example.org>');
    await client.command('RCPT TO:<b@example.net>');
    await client.command('DATA');
    const count = queued().length;
    client.send('Subject: cut\r\n\r\nhalf a mess');
    client.hangUp();
    await client.waitClosed();
    assert.equal(queued().length, count);
  });

  test('a message bigger than size_threshold is spooled to disk and queued intact', async () => {
    const big = await testApp({
      plugins: TEST_PLUGINS,
      config: { plugins: ['accept_all', `queue_capture ${join(queueDir, 'big')}`], size_threshold: '1000' },
    });
    try {
      const { client } = await big.greeted();
      await client.command('EHLO x');
      await client.command('MAIL FROM:<a@example.org>');
      await client.command('RCPT TO:<b@example.net>');
      await client.command('DATA');
      const line = 'abcdefghij'.repeat(9) + '\r\n';
      const body = line.repeat(2000);
      for (let i = 0; i < body.length; i += 7000) client.send(body.slice(i, i + 7000));
      client.send('.\r\n');
      assert.equal((await client.reply(10000)).code, 250);
      const files = readdirSync(join(queueDir, 'big'));
      const message = readFileSync(join(queueDir, 'big', files[0]!), 'latin1');
      assert.ok(message.endsWith('\r\n\r\n' + body.slice(line.length)) || message.includes(body.slice(line.length)), 'body intact');
      assert.equal((await client.command('NOOP')).code, 250);
      assert.equal(readdirSync(join(big.root, 'spool')).length, 0, 'the spool file is removed after the transaction');
    } finally {
      await big.cleanup();
    }
  });
});

describe('other commands and the end', () => {
  test('a line with a bare LF is refused whole, not executed as two commands', async () => {
    const client = await ready();
    const reply = await client.command('NOOP\nMAIL FROM:<a@example.org>');
    assert.equal(reply.code, 500);
    assert.equal((await client.command('RCPT TO:<b@example.net>')).code, 503, 'the MAIL after the LF did not run');
  });

  test('an over-long line is refused with 500 5.5.6 and the next line works', async () => {
    const client = await ready();
    const reply = await client.command('NOOP ' + 'x'.repeat(10000));
    assert.equal(reply.code, 500);
    assert.match(reply.text, /^5\.5\.6 /);
    assert.equal((await client.command('NOOP')).code, 250);
  });

  test('VRFY is 252, HELP is 214, QUIT is 221 and closes', async () => {
    const client = await ready();
    assert.equal((await client.command('VRFY someone')).code, 252);
    assert.equal((await client.command('HELP')).code, 214);
    const quit = await client.command('QUIT');
    assert.equal(quit.code, 221);
    assert.match(quit.text, /^2\.0\.0 mx\.example\.test closing connection/);
    await client.waitClosed();
  });

  test('an idle client gets 421 after the timeout', async () => {
    const idle = await testApp({ plugins: TEST_PLUGINS, config: { plugins: ['accept_all'], timeout: '1' } });
    try {
      const { client, done } = await idle.greeted();
      const reply = await client.reply(3000);
      assert.equal(reply.code, 421);
      assert.match(reply.text, /^4\.4\.2 /);
      await done;
    } finally {
      await idle.cleanup();
    }
  });

  test('a graceful stop answers an idle session 421', async () => {
    const stopping = await testApp({ plugins: TEST_PLUGINS, config: { plugins: ['accept_all'] } });
    const { client, done } = await stopping.greeted();
    await client.command('EHLO x');
    const stop = stopping.app.stop(2000);
    const reply = await client.reply();
    assert.equal(reply.code, 421);
    await done;
    await stop;
    await stopping.cleanup();
  });
});
