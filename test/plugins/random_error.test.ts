import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testApp } from '../helpers/test-app.ts';
import { MESSAGE, assertReply, closed, ehloed, probe, quit, withApp } from './connection-policy-support.ts';

/** `fail_after NAME VALUE`: at connect, after random_error, sets the connection note NAME. */
const SET_NOTE = `import { Plugin, DECLINED } from 'qpsmtpd';
import type { PluginHost } from 'qpsmtpd';
export default class SetNote extends Plugin {
  name_ = ''; value = '';
  register(_qp: PluginHost, name: string, value: string) { this.name_ = name; this.value = value; }
  hook_connect() { this.connection.notes[this.name_] = this.value; return DECLINED; }
}
`;

describe('random_error', () => {
  it('0: never fails; a whole message goes through', async () => {
    await withApp(['random_error 0', 'accept_all', 'answer queue OK queued', 'probe'], async (t) => {
      for (let i = 0; i < 3; i++) {
        const session = await ehloed(t);
        assertReply(await session.client.command('MAIL FROM:<a@sender.example>'), 250);
        assertReply(await session.client.command('RCPT TO:<b@example.test>'), 250);
        assertReply(await session.client.command('DATA'), 354);
        assertReply(await session.client.command(MESSAGE), 250);
        assert.equal((await probe(session.client)).connection['random_fail_%'], 0);
        await quit(session);
      }
    });
  });

  it('100: fails at connect, every time: 450 "random failure" and closed', async () => {
    await withApp(['random_error 100'], async (t) => {
      for (let i = 0; i < 5; i++) {
        const session = t.connect();
        assertReply(await session.client.reply(), 450, '4.7.1 random failure');
        await closed(session);
      }
    });
  });

  it('the connection note random_fail_% changes the rate for the rest of the session', async () => {
    await withApp(['random_error 0', 'set_note random_fail_% 100'], async (t) => {
      for (let i = 0; i < 5; i++) {
        const session = await t.greeted();
        const reply = await session.client.command('EHLO client.example');
        // DENYSOFT (450, the session goes on) or DENYSOFT_DISCONNECT (421 and closed).
        assert.ok(reply.code === 450 || reply.code === 421, reply.raw);
        assert.equal(reply.text, '4.7.1 random failure');
        if (reply.code === 421) await closed(session);
        else await quit(session);
      }
    }, { plugins: { 'set_note.ts': SET_NOTE } });
  });

  it('no argument: 1 percent; a negative one: never; two, or no number: refused', async () => {
    await withApp(['random_error -5', 'accept_all'], async (t) => {
      await quit(await ehloed(t));
    });
    await withApp(['random_error'], async (t) => {
      const session = t.connect();
      const reply = await session.client.reply();
      assert.ok(reply.code === 220 || reply.code === 450, reply.raw);
      session.client.hangUp();
      await session.done;
    });
    await assert.rejects(testApp({ config: { plugins: ['random_error 1 2'] } }), /random_error/);
    await assert.rejects(testApp({ config: { plugins: ['random_error often'] } }), /random_error/);
  });
});
