import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TEST_PLUGINS } from '../helpers/plugin-sources.ts';
import { testApp } from '../helpers/test-app.ts';
import { logged, notesOf, open, quit, withApp } from '../helpers/envelope-sessions.ts';

describe('dont_require_anglebrackets', () => {
  it('adds the missing brackets to MAIL FROM and RCPT TO, keeping the parameters', async () => {
    await withApp(['probe', 'dont_require_anglebrackets', 'accept_all'], { databytes: '1000' }, async (t) => {
      const s = await open(t);
      assert.equal((await s.client.command('MAIL FROM:user@example.com SIZE=5000')).code, 552, 'SIZE still seen');
      const mail = await s.client.command('MAIL FROM:user@example.com SIZE=100');
      assert.equal(mail.code, 250, mail.raw);
      assert.match(mail.text, /<user@example\.com>/);
      const rcpt = await s.client.command('RCPT TO: rcpt@example.net');
      assert.equal(rcpt.code, 250, rcpt.raw);
      assert.equal((await notesOf(s.client)).connection['karma'], -6);
      await quit(s);
      assert.equal(logged(t, 'dont_require_anglebrackets', 'fail, added MAIL angle brackets').length, 2, t.logs.join('\n'));
      assert.equal(logged(t, 'dont_require_anglebrackets', 'fail, added RCPT angle brackets').length, 1);
    });
  });

  it('leaves bracketed addresses alone (no karma) and to the next mail_pre plugin', async () => {
    await withApp(['probe', 'dont_require_anglebrackets', 'answer mail_pre OK <rewritten@example.org>', 'accept_all'], {}, async (t) => {
      const s = await open(t);
      const mail = await s.client.command('MAIL FROM:<user@example.com>');
      assert.equal(mail.code, 250);
      assert.match(mail.text, /<rewritten@example\.org>/, 'the later plugin still ran');
      assert.equal((await notesOf(s.client)).connection['karma'], undefined);
      await quit(s);
    });
  });

  it('still lets the address parser refuse what is no address', async () => {
    await withApp(['dont_require_anglebrackets', 'accept_all'], {}, async (t) => {
      const s = await open(t);
      assert.equal((await s.client.command('MAIL FROM:no-domain')).code, 501);
      assert.equal((await s.client.command('MAIL FROM:a@b@c.example')).code, 501);
      assert.equal((await s.client.command('MAIL FROM:<ok@example.com>')).code, 250);
      assert.equal((await s.client.command('RCPT TO:not an address')).code, 501);
      await quit(s);
    });
  });

  it('without the plugin an address without brackets is refused', async () => {
    const t = await testApp({ config: { plugins: ['accept_all'] }, plugins: TEST_PLUGINS });
    try {
      const s = await open(t);
      assert.equal((await s.client.command('MAIL FROM:user@example.com')).code, 501);
      await quit(s);
    } finally {
      await t.cleanup();
    }
  });
});
