import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { open, quit, withApp } from '../helpers/envelope-sessions.ts';

describe('parse_addr_withhelo', () => {
  it('after HELO: refuses parameters after MAIL FROM and RCPT TO with 501, accepts plain addresses', async () => {
    await withApp(['parse_addr_withhelo', 'accept_all'], {}, async (t) => {
      const s = await open(t, { hello: 'HELO' });
      const sized = await s.client.command('MAIL FROM:<a@example.com> SIZE=100');
      assert.equal(sized.code, 501);
      assert.equal(sized.text, '5.5.4 No parameters allowed in MAIL');
      assert.equal((await s.client.command('MAIL FROM:<a@example.com>')).code, 250);
      const body = await s.client.command('RCPT TO:<b@example.net> NOTIFY=NEVER');
      assert.equal(body.code, 501);
      assert.equal(body.text, '5.5.4 No parameters allowed in RCPT');
      assert.equal((await s.client.command('RCPT TO:<b@example.net>')).code, 250);
      assert.equal((await s.client.command('RCPT TO: <"quoted>user"@example.net>')).code, 250, 'a > inside quotes does not end the address');
      await quit(s);
    });
  });

  it('after HELO: "MAIL FROM:" is the null sender; junk and a missing FROM:/TO: are syntax errors', async () => {
    await withApp(['parse_addr_withhelo', 'accept_all'], {}, async (t) => {
      const s = await open(t, { hello: 'HELO' });
      const junk = await s.client.command('MAIL FROM:junk');
      assert.equal(junk.code, 501);
      assert.equal(junk.text, '5.5.4 Could not parse your MAIL FROM command');
      const noFrom = await s.client.command('MAIL <a@example.com>');
      assert.equal(noFrom.code, 501);
      assert.equal(noFrom.text, '5.5.4 Syntax error in command');
      const empty = await s.client.command('MAIL FROM:');
      assert.equal(empty.code, 250);
      assert.match(empty.text, /<>/);
      const rcptJunk = await s.client.command('RCPT TO:someone');
      assert.equal(rcptJunk.code, 501);
      assert.equal(rcptJunk.text, '5.5.4 Could not parse your RCPT TO command');
      assert.equal((await s.client.command('RCPT <b@example.net>')).code, 501);
      await quit(s);
    });
  });

  it('after HELO, with dont_require_anglebrackets: bare addresses, postmaster and abuse go through; bare parameters do not', async () => {
    await withApp(['parse_addr_withhelo', 'dont_require_anglebrackets', 'accept_all'], {}, async (t) => {
      const s = await open(t, { hello: 'HELO' });
      assert.equal((await s.client.command('MAIL FROM:a@example.com SIZE=100')).code, 501);
      assert.equal((await s.client.command('MAIL FROM:a@example.com')).code, 250);
      assert.equal((await s.client.command('RCPT TO:PostMaster')).code, 250);
      assert.equal((await s.client.command('RCPT TO:b@example.net')).code, 250);
      await quit(s);
    });
  });

  it('after HELO, without dont_require_anglebrackets: a bare address is still refused', async () => {
    await withApp(['parse_addr_withhelo', 'accept_all'], {}, async (t) => {
      const s = await open(t, { hello: 'HELO' });
      assert.equal((await s.client.command('MAIL FROM:a@example.com')).code, 501);
      await quit(s);
    });
  });

  it('after EHLO: parameters are fine (the built-in parser)', async () => {
    await withApp(['parse_addr_withhelo', 'accept_all'], {}, async (t) => {
      const s = await open(t, { hello: 'EHLO' });
      assert.equal((await s.client.command('MAIL FROM:<a@example.com> SIZE=100 BODY=8BITMIME')).code, 250);
      assert.equal((await s.client.command('RCPT TO:<b@example.net> NOTIFY=NEVER')).code, 250);
      await quit(s);
    });
  });
});
