import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { testApp } from '../helpers/test-app.ts';
import { envelope, logged, notesOf, open, quit, withApp } from '../helpers/envelope-sessions.ts';

const LIST = [
  '# senders we do not want',
  'bad@example.com',
  '@spam.example   Your domain sends spam',
  '^return.*@.*\\.pidplate\\.biz$    VERP does not fool me',
  '!',
  '^admin',
  'nodomain',
  '/^promo\\d+@/   slashes are optional',
];
const DEFAULT_TEXT = '5.7.1 Your envelope sender is in my badmailfrom list';

async function mailReply(t: Parameters<Parameters<typeof withApp>[2]>[0], from: string): Promise<{ code: number; text: string }> {
  const { mail } = await envelope(t, from, []);
  return mail;
}

describe('badmailfrom', () => {
  it('refuses a listed address at MAIL (550, the default reason), in any case, and lets others through', async () => {
    await withApp(['badmailfrom', 'accept_all'], { badmailfrom: LIST }, async (t) => {
      const refused = await mailReply(t, '<bad@example.com>');
      assert.equal(refused.code, 550);
      assert.equal(refused.text, DEFAULT_TEXT);
      assert.equal((await mailReply(t, '<BAD@Example.COM>')).code, 550);
      const { mail, rcpts } = await envelope(t, '<good@example.com>', ['<x@rcpt.example>']);
      assert.equal(mail.code, 250);
      assert.equal(rcpts[0]!.code, 250);
      assert.ok(logged(t, 'badmailfrom', 'fail', 'bad@example.com matches address bad@example.com').length > 0, t.logs.join('\n'));
      assert.ok(logged(t, 'badmailfrom', 'pass').length > 0);
    });
  });

  it('refuses every address of an @domain entry with the line\'s reason, but not its subdomains', async () => {
    await withApp(['badmailfrom', 'accept_all'], { badmailfrom: LIST }, async (t) => {
      const refused = await mailReply(t, '<anyone@SPAM.example>');
      assert.equal(refused.code, 550);
      assert.equal(refused.text, '5.7.1 Your domain sends spam');
      assert.equal((await mailReply(t, '<anyone@sub.spam.example>')).code, 250);
    });
  });

  it('matches bare patterns (an entry holding / ^ $ * + ! % ? \\) anywhere unless anchored, against the lower-cased address', async () => {
    await withApp(['badmailfrom', 'accept_all'], { badmailfrom: LIST }, async (t) => {
      const verp = await mailReply(t, '<return-1234@mx7.PidPlate.biz>');
      assert.equal(verp.code, 550);
      assert.equal(verp.text, '5.7.1 VERP does not fool me');
      assert.equal((await mailReply(t, '<a!b@bang.example>')).code, 550, '"!" is a pattern matching anywhere');
      assert.equal((await mailReply(t, '<Admin7@corp.example>')).code, 550, 'matched against the lower-cased address');
      assert.equal((await mailReply(t, '<return@pidplate.biz.example>')).code, 250, 'anchored at the end');
      assert.equal((await mailReply(t, '<webadmin@corp.example>')).code, 250, 'anchored at the start');
      const slashed = await mailReply(t, '<promo7@deals.example>');
      assert.equal(slashed.code, 550, '/re/ entries too');
      assert.equal(slashed.text, '5.7.1 slashes are optional');
    });
  });

  it('skips an entry without @ (logged with its file and line) and keeps the others', async () => {
    await withApp(['badmailfrom', 'accept_all'], { badmailfrom: LIST }, async (t) => {
      assert.equal((await mailReply(t, '<nodomain@example.org>')).code, 250);
      const where = `${join(t.configDir, 'badmailfrom')}:7`;
      assert.ok(logged(t, where, 'no @ sign in "nodomain"').length > 0, t.logs.join('\n'));
    });
  });

  it('logs a pattern that is no valid regular expression with file and line, once, skips it, and keeps serving', async () => {
    const list = ['bad@example.com', '^(unclosed@', 'a++b', '\\Kfoo', 'spam$'];
    await withApp(['badmailfrom', 'accept_all'], { badmailfrom: list }, async (t) => {
      const file = join(t.configDir, 'badmailfrom');
      assert.ok(logged(t, `${file}:2`, 'pattern "^(unclosed@" skipped').length === 1, t.logs.join('\n'));
      assert.ok(logged(t, `${file}:3`, 'pattern "a++b" skipped').length === 1, t.logs.join('\n'));
      assert.ok(logged(t, `${file}:4`, 'pattern "\\Kfoo" skipped', 'no JavaScript equivalent').length === 1, t.logs.join('\n'));
      assert.equal((await mailReply(t, '<x@y.example>')).code, 250);
      assert.equal((await mailReply(t, '<bad@example.com>')).code, 550);
      assert.equal((await mailReply(t, '<user@host.spam>')).code, 550, 'the valid pattern after the bad ones');
      assert.equal((await mailReply(t, '<aab@x.example>')).code, 250);
      // Compiled once: three sessions later, each bad pattern is still reported once.
      assert.equal(logged(t, 'pattern "^(unclosed@" skipped').length, 1);
    });
  });

  it('recompiles when the list changes (here through the config hook), not per message', async () => {
    await withApp(['dyncfg', 'badmailfrom', 'accept_all'], { badmailfrom: ['old@example.com'] }, async (t) => {
      assert.equal((await mailReply(t, '<old@example.com>')).code, 550);
      const s = await open(t);
      assert.equal((await s.client.command('XCFG badmailfrom new@example.com|^(broken')).code, 250);
      assert.equal((await s.client.command('MAIL FROM:<new@example.com>')).code, 550);
      assert.equal((await s.client.command('MAIL FROM:<old@example.com>')).code, 250);
      assert.equal((await s.client.command('MAIL FROM:<new@example.com>')).code, 550);
      await quit(s);
      const broken = logged(t, 'pattern "^(broken" skipped');
      assert.equal(broken.length, 1, t.logs.join('\n'));
      assert.match(broken[0]!, /from the config hook/);
    });
  });

  it('never checks the null sender or a sender without domain', async () => {
    await withApp(['badmailfrom', 'accept_all'], { badmailfrom: ['.*', 'postmaster@example.com'] }, async (t) => {
      assert.equal((await mailReply(t, '<someone@example.com>')).code, 550);
      const bounce = await envelope(t, '<>', ['<x@rcpt.example>']);
      assert.equal(bounce.mail.code, 250);
      assert.equal(bounce.rcpts[0]!.code, 250, 'and no refusal at RCPT either');
      assert.equal((await mailReply(t, '<postmaster>')).code, 250);
    });
  });

  it('spares relay clients, whitelisted hosts and whitelisted senders', async () => {
    for (const probe of ['probe relayclient 1', 'probe whitelisthost 1', 'probe tx:whitelistsender 1']) {
      await withApp([probe, 'badmailfrom', 'accept_all'], { badmailfrom: LIST }, async (t) => {
        assert.equal((await mailReply(t, '<bad@example.com>')).code, 250, probe);
        assert.ok(logged(t, 'badmailfrom', 'skip, ').length > 0, t.logs.join('\n'));
      });
    }
  });

  it('costs karma -1; reject 0 only logs; reject naughty notes the refusal for the naughty plugin', async () => {
    await withApp(['probe', 'badmailfrom reject 0', 'accept_all'], { badmailfrom: LIST }, async (t) => {
      const s = await open(t);
      assert.equal((await s.client.command('MAIL FROM:<bad@example.com>')).code, 250);
      assert.equal((await notesOf(s.client)).connection['karma'], -1);
      await quit(s);
      assert.ok(logged(t, 'badmailfrom', 'fail, tolerated').length > 0, t.logs.join('\n'));
    });
    await withApp(['probe', 'badmailfrom reject naughty reject_type temp', 'accept_all'], { badmailfrom: LIST }, async (t) => {
      const s = await open(t);
      assert.equal((await s.client.command('MAIL FROM:<x@spam.example>')).code, 250);
      const notes = (await notesOf(s.client)).connection;
      assert.equal(notes['naughty'], '(badmailfrom) Your domain sends spam');
      assert.equal(notes['naughty_reject_type'], 'temp');
      await quit(s);
    });
  });

  for (const [type, code, closes] of [
    ['temp', 450, false],
    ['disconnect', 550, true],
    ['temp_disconnect', 421, true],
  ] as const) {
    it(`reject_type ${type}: ${code}${closes ? ' and the session ends' : ''}`, async () => {
      await withApp([`badmailfrom reject_type ${type}`, 'accept_all'], { badmailfrom: LIST }, async (t) => {
        const s = await open(t);
        const reply = await s.client.command('MAIL FROM:<bad@example.com>');
        assert.equal(reply.code, code);
        if (closes) {
          await s.done;
          assert.ok(s.client.closed);
        } else {
          await quit(s);
        }
      });
    });
  }

  it('loads under the old names check_badmailfrom and check_badmailfrom_patterns', async () => {
    for (const name of ['check_badmailfrom', 'check_badmailfrom_patterns']) {
      await withApp([name, 'accept_all'], { badmailfrom: LIST }, async (t) => {
        assert.equal((await mailReply(t, '<bad@example.com>')).code, 550, name);
      });
    }
  });

  it('refuses to load with arguments that are not pairs or a bad reject_type', async () => {
    for (const args of ['reject', 'reject_type sometimes']) {
      await assert.rejects(testApp({ config: { plugins: [`badmailfrom ${args}`], badmailfrom: LIST } }), /badmailfrom/);
    }
  });
});
