import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { envelope, logged, open, quit, withApp } from '../helpers/envelope-sessions.ts';

/** qpsmtpd's documented example, and the set-up it shows with rcpt_map. */
const RULES = [
  '# rcpt_regexp - config for rcpt_regexp plugin',
  'me@myhost.org           OK       Accepting mail',
  '/^user\\d+\\@doma\\.in$/   OK       Accepting mail',
  'info@myhost.com         DENY     User not found.',
  '/^unused\\@.*/           DENY     User not found.',
  '/^(abuse|postmaster)\\@/ DECLINED',
  '/^temp\\@/               DENYSOFT',
  '/^.*\\@myhost\\.org$/     DENY     No such user.',
];

async function rcptReplies(t: Parameters<Parameters<typeof withApp>[2]>[0], rcpts: string[]): Promise<{ code: number; text: string }[]> {
  return (await envelope(t, '<sender@example.org>', rcpts)).rcpts;
}

describe('rcpt_regexp', () => {
  it('answers with the first matching line: addresses and /patterns/, case-insensitively', async () => {
    await withApp(['rcpt_regexp', 'answer rcpt DENY left to the next plugin'], { rcpt_regexp: RULES }, async (t) => {
      const [me, user, info, unused, other, upper] = await rcptReplies(t, [
        '<me@myhost.org>',
        '<user42@doma.in>',
        '<INFO@myhost.com>',
        '<unused@anywhere.example>',
        '<someone@myhost.org>',
        '<USER7@DOMA.IN>',
      ]);
      assert.equal(me!.code, 250);
      assert.equal(me!.text, '2.1.5 Accepting mail');
      assert.equal(user!.code, 250);
      assert.equal(info!.code, 550);
      assert.equal(info!.text, '5.7.1 User not found.');
      assert.equal(unused!.code, 550);
      assert.equal(other!.text, '5.7.1 No such user.', 'the catch-all after the others');
      assert.equal(upper!.code, 250);
      assert.ok(logged(t, 'rcpt_regexp', 'RE /^user\\d+\\@doma\\.in$/ matched user42@doma.in, returning OK').length > 0, t.logs.join('\n'));
    });
  });

  it('DECLINED and no match leave the recipient to the next plugin; a code without comment gets the default text', async () => {
    await withApp(['rcpt_regexp', 'answer rcpt DENY left to the next plugin'], { rcpt_regexp: RULES }, async (t) => {
      const [abuse, nomatch, temp] = await rcptReplies(t, ['<abuse@myhost.org>', '<x@elsewhere.example>', '<temp@x.example>']);
      assert.equal(abuse!.text, '5.7.1 left to the next plugin', 'DECLINED stops at the line, before the catch-all');
      assert.equal(nomatch!.text, '5.7.1 left to the next plugin');
      assert.equal(temp!.code, 450);
    });
  });

  it('logs bad lines with file and line (invalid pattern, missing or unknown code, DONE) and uses the rest', async () => {
    const rules = ['/^(broken@/ DENY', 'nocode@example.com', 'lower@example.com deny', 'done@example.com DONE', '/a{2}+/ DENY possessive', 'ok@example.com OK'];
    await withApp(['rcpt_regexp'], { rcpt_regexp: rules }, async (t) => {
      const file = join(t.configDir, 'rcpt_regexp');
      assert.equal(logged(t, `${file}:1`, 'REGEXP /^(broken@/ not valid').length, 1, t.logs.join('\n'));
      assert.equal(logged(t, `${file}:2`, 'no return code').length, 1, t.logs.join('\n'));
      assert.equal(logged(t, `${file}:3`, '"deny" is not a valid return code').length, 1, t.logs.join('\n'));
      assert.equal(logged(t, `${file}:4`, '"DONE" is not a valid return code here').length, 1, t.logs.join('\n'));
      assert.equal(logged(t, `${file}:5`, 'REGEXP /a{2}+/ not valid').length, 1, t.logs.join('\n'));
      const codes = (await rcptReplies(t, ['<broken@x.example>', '<done@example.com>', '<ok@example.com>'])).map((r) => r.code);
      assert.deepEqual(codes, [450, 450, 250], 'only ok@ is decided; the rest get the core 450 (no plugin decided)');
      assert.equal(logged(t, 'REGEXP /^(broken@/ not valid').length, 1, 'compiled once, not per recipient');
    });
  });

  it('follows changes of the rules', async () => {
    await withApp(['dyncfg', 'rcpt_regexp'], { rcpt_regexp: ['/^a@/ OK'] }, async (t) => {
      const s = await open(t);
      assert.equal((await s.client.command('MAIL FROM:<x@example.org>')).code, 250);
      assert.equal((await s.client.command('RCPT TO:<a@example.com>')).code, 250);
      assert.equal((await s.client.command('XCFG rcpt_regexp /^a@/ DENY gone')).code, 250);
      const reply = await s.client.command('RCPT TO:<a@example.com>');
      assert.equal(reply.code, 550);
      assert.equal(reply.text, '5.7.1 gone');
      await quit(s);
    });
  });
});
