import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { testApp } from '../helpers/test-app.ts';
import { envelope, logged, notesOf, open, quit, withApp } from '../helpers/envelope-sessions.ts';

/** qpsmtpd's config.sample/badrcptto, plus a few. */
const LIST = [
  '######## entries used for testing ###',
  'bad@example.com',
  '@bad.example.com',
  '########    Example patterns   #######',
  '!       Sorry, bang paths not accepted here',
  '@.*@    Sorry, multiple at signs not accepted here',
  '%       Sorry, percent hack not accepted here',
  '^NoReply\\D*@    No replies please',
  'nodomain',
  '/-owner@/',
];

async function rcptReplies(t: Parameters<Parameters<typeof withApp>[2]>[0], rcpts: string[]): Promise<{ code: number; text: string }[]> {
  return (await envelope(t, '<sender@example.org>', rcpts)).rcpts;
}

describe('badrcptto', () => {
  it('refuses a listed address (550 5.1.1, as an unknown user) in any case, and leaves the others to the next plugin', async () => {
    await withApp(['badrcptto', 'accept_all'], { badrcptto: LIST }, async (t) => {
      const [bad, upper, good] = await rcptReplies(t, ['<bad@example.com>', '<BAD@Example.Com>', '<good@example.com>']);
      assert.equal(bad!.code, 550);
      assert.equal(bad!.text, '5.1.1 mail to bad@example.com not accepted here');
      assert.equal(upper!.code, 550);
      assert.equal(good!.code, 250);
      assert.ok(logged(t, 'badrcptto', 'fail', 'bad@example.com matches address bad@example.com').length > 0, t.logs.join('\n'));
    });
  });

  it('refuses every address of an @domain entry, not its subdomains', async () => {
    await withApp(['badrcptto', 'accept_all'], { badrcptto: LIST }, async (t) => {
      const codes = (await rcptReplies(t, ['<any@bad.example.com>', '<any@sub.bad.example.com>'])).map((r) => r.code);
      assert.deepEqual(codes, [550, 250]);
    });
  });

  it('matches bare patterns case-insensitively, with the line\'s reason', async () => {
    await withApp(['badrcptto', 'accept_all'], { badrcptto: LIST }, async (t) => {
      const [bang, percent, noreply, noreplyDigit] = await rcptReplies(t, ['<a!b@example.net>', '<a%b@example.net>', '<noreply-x@example.net>', '<noreply1@example.net>']);
      assert.equal(bang!.code, 550);
      assert.equal(bang!.text, '5.7.1 Sorry, bang paths not accepted here');
      assert.equal(percent!.text, '5.7.1 Sorry, percent hack not accepted here');
      assert.equal(noreply!.code, 550, 'the pattern ^NoReply matches noreply: case-insensitive');
      assert.equal(noreply!.text, '5.7.1 No replies please');
      assert.equal(noreplyDigit!.code, 250, '\\D stays "not a digit" (qpsmtpd lower-cased it into \\d)');
      const [slashed] = await rcptReplies(t, ['<list-owner@example.net>']);
      assert.equal(slashed!.code, 550, '/re/ entries too');
    });
  });

  it('logs an entry without @, and an invalid pattern, with file and line, and skips them', async () => {
    await withApp(['badrcptto', 'accept_all'], { badrcptto: [...LIST, '(?<=x+', 'late@example.com'] }, async (t) => {
      const file = join(t.configDir, 'badrcptto');
      assert.equal(logged(t, `${file}:9`, 'no @ sign in "nodomain"').length, 1, t.logs.join('\n'));
      assert.equal(logged(t, `${file}:11`, 'pattern "(?<=x+" skipped').length, 1, t.logs.join('\n'));
      const codes = (await rcptReplies(t, ['<nodomain@example.net>', '<late@example.com>'])).map((r) => r.code);
      assert.deepEqual(codes, [250, 550]);
    });
  });

  it('costs karma -2; reject 0 only logs; reject_type disconnect closes', async () => {
    await withApp(['probe', 'badrcptto reject 0', 'accept_all'], { badrcptto: LIST }, async (t) => {
      const s = await open(t);
      assert.equal((await s.client.command('MAIL FROM:<a@example.org>')).code, 250);
      assert.equal((await s.client.command('RCPT TO:<bad@example.com>')).code, 250);
      assert.equal((await notesOf(s.client)).connection['karma'], -2);
      await quit(s);
      assert.ok(logged(t, 'badrcptto', 'fail, tolerated').length > 0);
    });
    await withApp(['badrcptto reject_type disconnect', 'accept_all'], { badrcptto: LIST }, async (t) => {
      const s = await open(t);
      assert.equal((await s.client.command('MAIL FROM:<a@example.org>')).code, 250);
      assert.equal((await s.client.command('RCPT TO:<bad@example.com>')).code, 550);
      await s.done;
      assert.ok(s.client.closed);
    });
  });

  it('spares relay clients and whitelisted hosts; does not check <postmaster>', async () => {
    for (const probe of ['probe relayclient 1', 'probe whitelisthost 1']) {
      await withApp([probe, 'badrcptto', 'accept_all'], { badrcptto: LIST }, async (t) => {
        assert.equal((await rcptReplies(t, ['<bad@example.com>']))[0]!.code, 250, probe);
      });
    }
    await withApp(['badrcptto', 'accept_all'], { badrcptto: ['.*'] }, async (t) => {
      assert.deepEqual((await rcptReplies(t, ['<postmaster>', '<x@example.net>'])).map((r) => r.code), [250, 550]);
    });
  });

  it('recompiles when the list changes', async () => {
    await withApp(['dyncfg', 'badrcptto', 'accept_all'], { badrcptto: ['bad@example.com'] }, async (t) => {
      const s = await open(t);
      assert.equal((await s.client.command('MAIL FROM:<a@example.org>')).code, 250);
      assert.equal((await s.client.command('RCPT TO:<bad@example.com>')).code, 550);
      assert.equal((await s.client.command('XCFG badrcptto ^new')).code, 250);
      assert.equal((await s.client.command('RCPT TO:<bad@example.com>')).code, 250);
      assert.equal((await s.client.command('RCPT TO:<newbie@example.com>')).code, 550);
      await quit(s);
    });
  });

  it('loads under the old names check_badrcptto and check_badrcptto_patterns; refuses bad arguments', async () => {
    for (const name of ['check_badrcptto', 'check_badrcptto_patterns']) {
      await withApp([name, 'accept_all'], { badrcptto: LIST }, async (t) => {
        assert.equal((await rcptReplies(t, ['<bad@example.com>']))[0]!.code, 550, name);
      });
    }
    await assert.rejects(testApp({ config: { plugins: ['badrcptto reject_type never'] } }), /badrcptto/);
  });
});
