import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { envelope, logged, notesOf, open, quit, withApp } from '../helpers/envelope-sessions.ts';

const PAIRS = [
  '# sender           recipient',
  'stalker@example.com   victim@example.net',
  'Stalker@Example.com   other@example.net   anything after the pair is ignored',
  '@pest.example         victim@example.net',
  'nodomain              victim@example.net',
  'lonely@example.com',
];

describe('badmailfromto', () => {
  it('refuses a listed recipient for a listed sender as if it did not exist, and accepts the others', async () => {
    await withApp(['badmailfromto', 'accept_all'], { badmailfromto: PAIRS }, async (t) => {
      const { mail, rcpts } = await envelope(t, '<STALKER@example.com>', ['<friend@example.net>', '<Victim@Example.NET>', '<other@example.net>']);
      assert.equal(mail.code, 250, 'the sender is not told it is listed');
      assert.deepEqual(rcpts.map((r) => r.code), [250, 550, 550]);
      assert.equal(rcpts[1]!.text, '5.1.1 mail to victim@example.net not accepted here');
      assert.ok(logged(t, 'badmailfromto', 'fail', 'stalker@example.com may not write to victim@example.net').length > 0, t.logs.join('\n'));
    });
  });

  it('lets anyone else write to the recipient', async () => {
    await withApp(['badmailfromto', 'accept_all'], { badmailfromto: PAIRS }, async (t) => {
      const { rcpts } = await envelope(t, '<friend@example.com>', ['<victim@example.net>']);
      assert.equal(rcpts[0]!.code, 250);
      const bounce = await envelope(t, '<>', ['<victim@example.net>']);
      assert.equal(bounce.rcpts[0]!.code, 250);
    });
  });

  it('takes @domain senders: every sender there', async () => {
    await withApp(['probe', 'badmailfromto', 'accept_all'], { badmailfromto: PAIRS }, async (t) => {
      const s = await open(t);
      assert.equal((await s.client.command('MAIL FROM:<anyone@PEST.example>')).code, 250);
      assert.equal((await notesOf(s.client)).transaction['badmailfromto'], '@pest.example');
      assert.equal((await s.client.command('RCPT TO:<victim@example.net>')).code, 550);
      assert.equal((await s.client.command('RCPT TO:<other@example.net>')).code, 250, 'only stalker@ is kept from other@');
      await quit(s);
      const sub = await envelope(t, '<anyone@sub.pest.example>', ['<victim@example.net>']);
      assert.equal(sub.rcpts[0]!.code, 250, 'not subdomains');
    });
  });

  it('applies the pairs of both an address and an @domain entry for the same sender', async () => {
    await withApp(['badmailfromto', 'accept_all'], { badmailfromto: ['a@x.example b@y.example', '@x.example c@y.example'] }, async (t) => {
      const { rcpts } = await envelope(t, '<a@x.example>', ['<b@y.example>', '<c@y.example>', '<d@y.example>']);
      assert.deepEqual(rcpts.map((r) => r.code), [550, 550, 250]);
    });
  });

  it('logs lines it cannot use with file and line', async () => {
    await withApp(['badmailfromto', 'accept_all'], { badmailfromto: PAIRS }, async (t) => {
      const file = join(t.configDir, 'badmailfromto');
      assert.equal(logged(t, `${file}:5`, 'no @ sign in "nodomain"').length, 1, t.logs.join('\n'));
      assert.equal(logged(t, `${file}:6`, 'no recipient after "lonely@example.com"').length, 1, t.logs.join('\n'));
    });
  });

  it('reject 0 only logs; reject_type temp answers 450; relay clients are not exempt', async () => {
    await withApp(['badmailfromto reject 0', 'accept_all'], { badmailfromto: PAIRS }, async (t) => {
      const { rcpts } = await envelope(t, '<stalker@example.com>', ['<victim@example.net>']);
      assert.equal(rcpts[0]!.code, 250);
      assert.ok(logged(t, 'badmailfromto', 'fail, tolerated').length > 0);
    });
    await withApp(['probe relayclient 1', 'badmailfromto reject_type temp', 'accept_all'], { badmailfromto: PAIRS }, async (t) => {
      const { rcpts } = await envelope(t, '<stalker@example.com>', ['<victim@example.net>']);
      assert.equal(rcpts[0]!.code, 450);
    });
  });

  it('does nothing without a config file', async () => {
    await withApp(['badmailfromto', 'accept_all'], {}, async (t) => {
      const { mail, rcpts } = await envelope(t, '<stalker@example.com>', ['<victim@example.net>']);
      assert.equal(mail.code, 250);
      assert.equal(rcpts[0]!.code, 250);
    });
  });
});
