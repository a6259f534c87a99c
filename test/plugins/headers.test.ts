import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { LoadFailure } from '../../src/app.ts';
import { tempDir } from '../helpers/test-app.ts';
import { parseDate } from '../../plugins/headers.ts';
import { goodHeaders, message, notesOf, quit, sendMessage, sendOne, withApp } from './content-support.ts';

const DAY = 24 * 60 * 60 * 1000;
const from = 'From: <sender@example.test>\n';
const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));
let queues = 0;
/** A queue_capture line with a fresh folder. */
const queue = (): string => `queue_capture ${join(dir, `q${++queues}`)}`;

describe('headers', () => {
  it('accepts a message with From (the default requirement) and queues it unchanged', async () => {
    const q = queue();
    await withApp(['headers', 'accept_all', q], async (t) => {
      const reply = await sendOne(t, message(goodHeaders()));
      assert.equal(reply.code, 250, reply.raw);
      const folder = q.split(' ')[1]!;
      const queued = readdirSync(folder);
      assert.equal(queued.length, 1);
      assert.match(readFileSync(join(folder, queued[0]!), 'utf8'), /\r\nSubject: test\r\n/);
      assert.ok(t.logs.some((l) => l.includes('headers: pass')), t.logs.join('\n'));
    });
  });

  it('does not require Date by default (qpsmtpd 1.00), but does when asked', async () => {
    await withApp(['headers', 'accept_all', queue()], async (t) => {
      assert.equal((await sendOne(t, message(from))).code, 250);
    });
    await withApp(['headers require From,Date', 'accept_all', queue()], async (t) => {
      const reply = await sendOne(t, message(from));
      assert.deepEqual([reply.code, reply.text], [552, '5.7.1 We require a valid Date header']);
    });
  });

  it('refuses a message without From with 552 and the problem as text (not the numeric code)', async () => {
    await withApp(['headers', 'accept_all', queue()], async (t) => {
      const reply = await sendOne(t, message(`Subject: no sender\nDate: ${new Date().toUTCString()}\n`));
      assert.deepEqual([reply.code, reply.text], [552, '5.7.1 We require a valid From header']);
      assert.ok(!/90\d/.test(reply.text));
      assert.ok(t.logs.some((l) => l.includes('fail, no From header')), t.logs.join('\n'));
      assert.ok(t.logs.some((l) => l.includes('RFC 5322 validation errors')), t.logs.join('\n'));
    });
  });

  it('an empty From counts as missing', async () => {
    await withApp(['headers', 'accept_all', queue()], async (t) => {
      const reply = await sendOne(t, message('From:   \nSubject: x\n'));
      assert.deepEqual([reply.code, reply.text], [552, '5.7.1 We require a valid From header']);
    });
  });

  it('refuses duplicated singular headers, any case', async () => {
    await withApp(['headers', 'accept_all', queue()], async (t) => {
      const reply = await sendOne(t, message(goodHeaders('subject: again\n')));
      assert.deepEqual([reply.code, reply.text], [552, '5.7.1 Only one Subject header allowed. See RFC 5322, Section 3.6']);
      // Headers that may repeat (Received, X-...) are fine.
      const ok = await sendOne(t, message(goodHeaders('X-Tag: 1\nX-Tag: 2\nReceived: from a\nReceived: from b\n')));
      assert.equal(ok.code, 250, ok.raw);
    });
  });

  it('checks the Date window with past and future days', async () => {
    await withApp(['headers past 2 future 1', 'accept_all', queue()], async (t) => {
      const old = new Date(Date.now() - 3 * DAY).toUTCString();
      const ahead = new Date(Date.now() + 2 * DAY).toUTCString();
      const recent = new Date(Date.now() - 1 * DAY).toUTCString();
      let reply = await sendOne(t, message(`${from}Date: ${old}\n`));
      assert.deepEqual([reply.code, reply.text], [552, '5.7.1 The Date header is too far in the past']);
      reply = await sendOne(t, message(`${from}Date: ${ahead}\n`));
      assert.deepEqual([reply.code, reply.text], [552, '5.7.1 The Date header is too far in the future']);
      reply = await sendOne(t, message(`${from}Date: ${recent}\n`));
      assert.equal(reply.code, 250, reply.raw);
      // A Date that cannot be parsed is not judged.
      reply = await sendOne(t, message(`${from}Date: some time last week\n`));
      assert.equal(reply.code, 250, reply.raw);
      assert.ok(t.logs.some((l) => l.includes('skip, date not parseable')), t.logs.join('\n'));
    });
  });

  it('without past/future the Date is not judged', async () => {
    await withApp(['headers', 'accept_all', queue()], async (t) => {
      const reply = await sendOne(t, message(`${from}Date: Mon, 1 Jan 1990 00:00:00 +0000\n`));
      assert.equal(reply.code, 250, reply.raw);
    });
  });

  it('reject_type temp answers 452; reject 0 only logs; reject naughty notes it for the naughty plugin', async () => {
    await withApp(['headers reject_type temp', 'accept_all', queue()], async (t) => {
      const reply = await sendOne(t, message('Subject: x\n'));
      assert.deepEqual([reply.code, reply.text], [452, '4.7.1 We require a valid From header']);
    });
    await withApp(['headers reject 0', 'accept_all', queue()], async (t) => {
      const reply = await sendOne(t, message('Subject: x\n'));
      assert.equal(reply.code, 250, reply.raw);
      assert.ok(t.logs.some((l) => l.includes('fail, tolerated')), t.logs.join('\n'));
    });
    await withApp(['probe', 'headers reject naughty', 'accept_all', queue()], async (t) => {
      const session = await t.greeted();
      const reply = await sendMessage(session.client, message('Subject: x\n'));
      assert.equal(reply.code, 250, reply.raw);
      const notes = await notesOf(session.client);
      assert.equal(notes['naughty'], '(headers) We require a valid From header');
      assert.equal(notes['karma'], -1);
      await quit(session);
    });
  });

  it('refuses an empty message even from a relay client; spares relay clients otherwise', async () => {
    await withApp(['probe relayclient 1', 'headers', 'accept_all', queue()], async (t) => {
      let reply = await sendOne(t, '');
      assert.deepEqual([reply.code, reply.text], [552, '5.7.1 You must send some data first']);
      reply = await sendOne(t, message('Subject: no From, but a relay client\n'));
      assert.equal(reply.code, 250, reply.raw);
      assert.ok(t.logs.some((l) => l.includes('skip, relay client')), t.logs.join('\n'));
    });
  });

  it('loads as check_basicheaders with its old arguments: From and Date required, days N', async () => {
    await withApp(['check_basicheaders 2', 'accept_all', queue()], async (t) => {
      let reply = await sendOne(t, message(from));
      assert.deepEqual([reply.code, reply.text], [552, '5.7.1 We require a valid Date header']);
      reply = await sendOne(t, message(`${from}Date: ${new Date(Date.now() - 3 * DAY).toUTCString()}\n`));
      assert.deepEqual([reply.code, reply.text], [552, '5.7.1 The Date header is too far in the past']);
      reply = await sendOne(t, message(`${from}Date: ${new Date().toUTCString()}\n`));
      assert.equal(reply.code, 250, reply.raw);
    });
  });

  it('bad arguments are load errors', async () => {
    for (const line of ['headers past', 'headers past soon', 'headers reject_type maybe', 'headers colour blue']) {
      await assert.rejects(withApp([line], async () => undefined), LoadFailure, line);
    }
  });

  it('parses RFC 5322 dates with comments, named zones and obsolete forms', () => {
    const t = Date.UTC(2003, 6, 1, 8, 52, 37);
    assert.equal(parseDate('Tue, 1 Jul 2003 10:52:37 +0200'), t);
    assert.equal(parseDate('Tue, 1 Jul 2003 10:52:37 +0200 (CEST)'), t);
    assert.equal(parseDate('1 Jul 2003 08:52:37 GMT'), t);
    assert.equal(parseDate('Tue, 01 Jul 2003 04:52:37 EDT'), t);
    assert.equal(parseDate('not a date'), undefined);
    assert.equal(parseDate('(only a comment)'), undefined);
  });
});
