import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { redisMissing } from '../helpers/redis-server.ts';
import { logged, notesOf, open, quit } from '../helpers/envelope-sessions.ts';
import type { TestApp } from '../helpers/test-app.ts';
import { redisForSuite, sleep, stored, withStateApp } from './state-support.ts';

/** `judge`: a sender `karma-3@...` (or `karma+3@...`) adjusts the session's karma by that much. */
const JUDGE = `import { Plugin, DECLINED, adjustKarma } from 'qpsmtpd';
import type { Address, Transaction } from 'qpsmtpd';
export default class Judge extends Plugin {
  hook_mail(_tx: Transaction, sender: Address) {
    const m = /^karma([+-]\\d+)$/.exec(sender.user);
    if (m) adjustKarma(this, Number(m[1]));
    return DECLINED;
  }
}
`;
const plugins = { 'judge.ts': JUDGE };
const IP = '198.51.100.7';

/** One session that sends MAIL with `sender` (and optionally RCPTs), then QUIT. */
async function session(t: TestApp, sender: string, rcpts: string[] = []): Promise<number[]> {
  const s = await open(t);
  const codes = [(await s.client.command(`MAIL FROM:<${sender}>`)).code];
  for (const r of rcpts) codes.push((await s.client.command(`RCPT TO:<${r}>`)).code);
  await quit(s);
  return codes;
}

/** The stored history of the test client. */
async function history(t: TestApp): Promise<Record<string, string | undefined>> {
  const out: Record<string, string | undefined> = {};
  for (const name of ['naughty', 'nice', 'connects', 'penalty']) out[name] = await stored(t, `karma:${IP}:${name}`);
  return out;
}

describe('karma', () => {
  it('a naughty session sends a client without history to the penalty box; its next connection is refused (reject connect)', async () => {
    await withStateApp(['probe', 'judge', 'karma reject connect', 'accept_all'], {}, async (t) => {
      await session(t, 'karma-3@bad.example');
      const h = await history(t);
      assert.equal(h['naughty'], '1');
      assert.equal(h['connects'], '1');
      assert.ok(Math.abs(Number(h['penalty']) - Date.now()) < 5000, 'the penalty began now');
      assert.ok(logged(t, 'karma', 'negative, sent to penalty box').length > 0, t.logs.join('\n'));

      const refused = t.connect({ remoteIp: IP });
      const greeting = await refused.client.reply();
      assert.equal(greeting.code, 550);
      assert.match(greeting.text, /^5\.7\.1 You were naughty\. You cannot connect for (1\.00|0\.99) more days\.$/);
      await refused.done;
      assert.equal((await history(t))['connects'], '2');
      assert.equal((await t.greeted({ remoteIp: '203.0.113.5' })).client.closed, false, 'other clients are served');
    }, { plugins });
  });

  it('by default (reject naughty) the naughty plugin refuses a penalized client with karma\'s message', async () => {
    await withStateApp(['judge', 'karma', 'naughty', 'accept_all'], {}, async (t) => {
      await session(t, 'karma-5@bad.example');
      const s = await open(t);
      assert.equal((await s.client.command('MAIL FROM:<someone@example.org>')).code, 250);
      const rcpt = await s.client.command('RCPT TO:<x@rcpt.example>');
      assert.equal(rcpt.code, 550);
      assert.match(rcpt.text, /^5\.7\.1 \(karma\) You were naughty\. You cannot connect for/);
      await s.done;
      assert.ok(logged(t, 'karma', 'fail, NAUGHTY').length > 0);
    }, { plugins });
  });

  it('nice sessions build a history other plugins read (karma_history); a naughty one then does not penalize (negative 1)', async () => {
    await withStateApp(['probe', 'judge', 'karma reject connect', 'accept_all'], {}, async (t) => {
      await session(t, 'karma+3@good.example');
      await session(t, 'karma+4@good.example');
      await session(t, 'plain@good.example');
      const h = await history(t);
      assert.deepEqual([h['nice'], h['naughty'], h['connects']], ['2', undefined, '2'], 'a neutral (0) session stores nothing');
      const s = await open(t);
      assert.equal((await notesOf(s.client)).connection['karma_history'], 2);
      await quit(s);
      await session(t, 'karma-3@good.example');
      assert.equal((await history(t))['penalty'], undefined, 'history 2 - 1 = 1: not penalized');
      assert.ok(logged(t, 'karma', 'negative, (msg: -3, his: 1)').length > 0);
      assert.equal((await t.greeted({ remoteIp: IP })).client.closed, false);
    }, { plugins });
  });

  it('karma_tlds adjust the karma of a sender\'s top-level domain; relay clients are never penalized', async () => {
    await withStateApp(['probe', 'karma reject connect', 'accept_all'], { karma_tlds: ['jp:-4', 'fr:+1'] }, async (t) => {
      const s = await open(t);
      assert.equal((await s.client.command('MAIL FROM:<a@spam.jp>')).code, 250);
      assert.equal((await notesOf(s.client)).connection['karma'], -4);
      await quit(s);
      assert.equal((await history(t))['naughty'], '1');
    }, { plugins });
    await withStateApp(['probe relayclient 1', 'judge', 'karma reject connect', 'accept_all'], {}, async (t) => {
      await session(t, 'karma-9@x.example');
      assert.equal((await t.greeted({ remoteIp: IP })).client.closed, false, 'immune at connect');
    }, { plugins });
  });

  it('one recipient per message without good history or karma (450 for more); very bad karma is refused at DATA', async () => {
    await withStateApp(['judge', 'karma reject 1', 'accept_all'], {}, async (t) => {
      assert.deepEqual(await session(t, 'a@x.example', ['one@r.example', 'two@r.example']), [250, 250, 450]);
      assert.deepEqual(await session(t, 'karma+1@x.example', ['one@r.example', 'two@r.example']), [250, 250, 250]);
      const s = await open(t);
      await s.client.command('MAIL FROM:<karma-5@x.example>');
      await s.client.command('RCPT TO:<one@r.example>');
      const data = await s.client.command('DATA');
      assert.equal(data.code, 554);
      assert.equal(data.text, '5.7.1 very bad karma: -5');
      await s.done;
    }, { plugins });
  });

  it('the penalty expires after penalty_days', async () => {
    await withStateApp(['judge', 'karma reject connect penalty_days 0.000004', 'accept_all'], {}, async (t) => {
      await session(t, 'karma-3@bad.example');
      assert.equal((await t.connect({ remoteIp: IP }).client.reply()).code, 550);
      await sleep(450);
      assert.equal((await t.greeted({ remoteIp: IP })).client.closed, false);
    }, { plugins });
  });
});

describe('karma on Redis', { skip: redisMissing }, () => {
  const redis = redisForSuite();

  it('the history is kept in Redis; while Redis is down a client gets 450 4.3.0 at connect (or is served with store_error pass)', async () => {
    await withStateApp(['judge', 'karma:2 reject 0 store_error pass', 'karma reject connect', 'accept_all'], {}, async (t) => {
      const deadline = Date.now() + 5000;
      while ((await t.connect({ remoteIp: '192.0.2.1' }).client.reply()).code !== 220) {
        if (Date.now() > deadline) throw new Error('redis store never connected');
        await sleep(50);
      }
      await session(t, 'karma-3@bad.example');
      assert.equal((await t.connect({ remoteIp: IP }).client.reply()).code, 550);
      await redis().stop();
      try {
        const down = await t.connect({ remoteIp: '192.0.2.2' }).client.reply();
        assert.equal(down.code, 450);
        assert.equal(down.text, '4.3.0 Temporary failure, please try again later');
        assert.ok(logged(t, 'karma:2', 'skip, cannot read the karma history', 'store_error pass').length > 0, 'karma:2 let it pass, logged');
      } finally {
        await redis().start();
      }
    }, { plugins, store: `redis ${redis().url}` });
  });
});
