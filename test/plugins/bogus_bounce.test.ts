import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testApp } from '../helpers/test-app.ts';
import { logged, open, quit, withApp } from '../helpers/envelope-sessions.ts';

const QUEUE = 'answer queue OK queued';

/** One message; the reply to its final dot. */
async function send(t: Parameters<Parameters<typeof withApp>[2]>[0], from: string, rcpts: string[], header = ''): Promise<{ code: number; text: string }> {
  const s = await open(t);
  assert.equal((await s.client.command(`MAIL FROM:${from}`)).code, 250);
  for (const rcpt of rcpts) assert.equal((await s.client.command(`RCPT TO:${rcpt}`)).code, 250);
  assert.equal((await s.client.command('DATA')).code, 354);
  const reply = await s.client.command(`${header}Subject: Delivery Status Notification\r\n\r\nundeliverable\r\n.`);
  await quit(s);
  return reply;
}

const TWO = ['<a@example.net>', '<b@example.net>'];

describe('bogus_bounce', () => {
  it('deny: refuses a bounce to more than one recipient with 552, as documented', async () => {
    await withApp(['bogus_bounce deny', 'accept_all', QUEUE], {}, async (t) => {
      const reply = await send(t, '<>', TWO);
      assert.equal(reply.code, 552);
      assert.equal(reply.text, '5.7.1 This bounce message does not have 1 recipient');
      assert.ok(logged(t, 'bogus_bounce', 'fail', 'bogus bounce to: a@example.net,b@example.net').length > 0, t.logs.join('\n'));
    });
  });

  it('deny: accepts a bounce to one recipient, and ordinary mail to many', async () => {
    await withApp(['bogus_bounce deny', 'accept_all', QUEUE], {}, async (t) => {
      assert.equal((await send(t, '<>', ['<a@example.net>'])).code, 250);
      assert.equal((await send(t, '<sender@example.org>', TWO)).code, 250);
      assert.ok(logged(t, 'bogus_bounce', 'pass, single recipient, empty Return-Path').length === 1, t.logs.join('\n'));
      assert.ok(logged(t, 'bogus_bounce', 'pass, not a null sender').length === 1);
    });
  });

  it('deny: refuses a bounce whose header has a Return-Path that is not empty; Return-Path: <> is fine', async () => {
    await withApp(['bogus_bounce deny', 'accept_all', QUEUE], {}, async (t) => {
      const reply = await send(t, '<>', ['<a@example.net>'], 'Return-Path: <someone@example.org>\r\n');
      assert.equal(reply.code, 552);
      assert.equal(reply.text, '5.7.1 A bounce return path must be empty (RFC 3834)');
      assert.equal((await send(t, '<>', ['<a@example.net>'], 'Return-Path: <>\r\n')).code, 250);
    });
  });

  it('denysoft: 452', async () => {
    await withApp(['bogus_bounce denysoft', 'accept_all', QUEUE], {}, async (t) => {
      assert.equal((await send(t, '<>', TWO)).code, 452);
    });
  });

  it('log (the default, also with no argument): only logs', async () => {
    for (const line of ['bogus_bounce', 'bogus_bounce log', 'bogus_bounce deny reject 0']) {
      await withApp([line, 'accept_all', QUEUE], {}, async (t) => {
        assert.equal((await send(t, '<>', TWO)).code, 250, line);
        assert.ok(logged(t, 'bogus_bounce', 'fail, tolerated').length === 1, t.logs.join('\n'));
      });
    }
  });

  it('takes the action as a pair and the shared arguments after it', async () => {
    await withApp(['bogus_bounce action deny reject_type disconnect', 'accept_all', QUEUE], {}, async (t) => {
      const s = await open(t);
      assert.equal((await s.client.command('MAIL FROM:<>')).code, 250);
      for (const rcpt of TWO) assert.equal((await s.client.command(`RCPT TO:${rcpt}`)).code, 250);
      assert.equal((await s.client.command('DATA')).code, 354);
      assert.equal((await s.client.command('Subject: x\r\n\r\nbody\r\n.')).code, 552);
      await s.done;
      assert.ok(s.client.closed);
    });
  });

  it('does not load with an unknown action', async () => {
    await assert.rejects(testApp({ config: { plugins: ['bogus_bounce reject_everything'] } }), /unknown action/);
  });
});
