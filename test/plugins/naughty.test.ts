import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testApp, type TestApp } from '../helpers/test-app.ts';
import type { TestSession } from '../helpers/test-app.ts';
import { MESSAGE, assertLogged, assertReply, closed, ehloed, probe, quit, withApp } from './connection-policy-support.ts';

/**
 * `mark HOOK [REJECT_TYPE] [message words]`: on HOOK finds the client naughty through the shared
 * policy (`reject naughty`), as dnsbl or earlytalker would.
 */
const MARK = `import { Plugin, getReject } from 'qpsmtpd';
import type { PluginHost } from 'qpsmtpd';
export default class Mark extends Plugin {
  register(_qp: PluginHost, hook: string, type = '-', ...words: string[]) {
    const rejectType = type === '-' ? undefined : type;
    const message = words.length > 0 ? words.join(' ') : 'you are on a list';
    this.registerHook(hook, function (this: Plugin) {
      return getReject({ plugin: this, reject: 'naughty', rejectType, message, logMessage: 'listed' });
    });
  }
}
`;

/** `auth_ok`: accepts every AUTH. */
const AUTH_OK = `import { Plugin, OK } from 'qpsmtpd';
export default class AuthOk extends Plugin {
  hook_auth() { return OK; }
}
`;

const plugins = { 'mark.ts': MARK, 'auth_ok.ts': AUTH_OK };
const NOTE = '(mark) you are on a list';

function run(list: string[], fn: (t: TestApp) => Promise<void>, config: Record<string, string> = {}): Promise<void> {
  return withApp(list, fn, { plugins, config });
}

async function toRcpt(t: TestApp): Promise<TestSession> {
  const session = await ehloed(t);
  assertReply(await session.client.command('MAIL FROM:<a@sender.example>'), 250);
  return session;
}

async function toData(t: TestApp): Promise<TestSession> {
  const session = await toRcpt(t);
  assertReply(await session.client.command('RCPT TO:<b@example.test>'), 250);
  return session;
}

describe('naughty', () => {
  it('default (reject rcpt, disconnect): a naughty client is refused at RCPT with the noted message, 550, closed', async () => {
    await run(['mark connect', 'naughty', 'accept_all'], async (t) => {
      const session = await toRcpt(t);
      assertReply(await session.client.command('RCPT TO:<b@example.test>'), 550, `5.7.1 ${NOTE}`);
      await closed(session);
      assertLogged(t, 'fail, NAUGHTY, listed');
      assertLogged(t, 'naughty: disconnecting');
    });
  });

  it('a client nobody marked is served to the end', async () => {
    await run(['naughty', 'accept_all', 'answer queue OK queued'], async (t) => {
      const session = await toData(t);
      assertReply(await session.client.command('DATA'), 354);
      assertReply(await session.client.command(MESSAGE), 250);
      await quit(session);
      assertLogged(t, 'naughty: pass');
    });
  });

  it('reject connect: 550 instead of the greeting, and closed', async () => {
    await run(['mark connect', 'naughty reject connect'], async (t) => {
      const session = t.connect();
      assertReply(await session.client.reply(), 550, `5.7.1 ${NOTE}`);
      await closed(session);
    });
  });

  it('reject mail with the marking plugin\'s reject_type temp: 450 at every MAIL, the session goes on', async () => {
    await run(['mark connect temp', 'naughty reject mail', 'accept_all', 'probe'], async (t) => {
      const session = await ehloed(t);
      assertReply(await session.client.command('MAIL FROM:<a@sender.example>'), 450, `4.7.1 ${NOTE}`);
      assertReply(await session.client.command('MAIL FROM:<b@sender.example>'), 450);
      const seen = await probe(session.client);
      assert.equal(seen.connection.naughty, NOTE);
      assert.equal(seen.connection.naughty_reject_type, 'temp');
      await quit(session);
    });
  });

  it('reject data: 554 and closed', async () => {
    await run(['mark mail', 'naughty reject data', 'accept_all'], async (t) => {
      const session = await toData(t);
      assertReply(await session.client.command('DATA'), 554, `5.7.1 ${NOTE}`);
      await closed(session);
    });
  });

  it('reject data_post: the message is read, then 552 and closed; it is not queued', async () => {
    await run(['mark rcpt', 'naughty reject data_post', 'accept_all', 'answer queue OK queued'], async (t) => {
      const session = await toData(t);
      assertReply(await session.client.command('DATA'), 354);
      assertReply(await session.client.command(MESSAGE), 552, `5.7.1 ${NOTE}`);
      await closed(session);
    });
  });

  it('a client that got past the chosen hook (a plugin before naughty said OK) is refused at data_post', async () => {
    await run(['mark connect', 'accept_all', 'naughty', 'answer queue OK queued'], async (t) => {
      const session = await toData(t);
      assertReply(await session.client.command('DATA'), 354);
      assertReply(await session.client.command(MESSAGE), 552, `5.7.1 ${NOTE}`);
      await closed(session);
    });
  });

  it('naughty\'s own reject_type applies when the marking plugin gave none: temp_disconnect at RCPT is 421', async () => {
    await run(['mark connect', 'naughty reject_type temp_disconnect', 'accept_all'], async (t) => {
      const session = await toRcpt(t);
      assertReply(await session.client.command('RCPT TO:<b@example.test>'), 421, `4.7.1 ${NOTE}`);
      await closed(session);
    });
  });

  it('the messages of several plugins make one multi-line reply', async () => {
    await run(['mark:0 connect - listed in zone one', 'mark:1 helo - bad name', 'mark:2 ehlo - bad name', 'naughty reject mail', 'accept_all'], async (t) => {
      const session = await ehloed(t);
      const reply = await session.client.command('MAIL FROM:<a@sender.example>');
      assertReply(reply, 550);
      assert.deepEqual(reply.lines, ['5.7.1 (mark:0) listed in zone one', '5.7.1 (mark:2) bad name']);
      await closed(session);
    });
  });

  it('a successful AUTH clears the note: the user is served', async () => {
    await run(['mark connect', 'naughty reject mail', 'auth_ok', 'accept_all', 'answer queue OK queued'], async (t) => {
      const session = await ehloed(t);
      assertReply(await session.client.command(`AUTH PLAIN ${Buffer.from('\0user\0pw').toString('base64')}`), 235);
      assertReply(await session.client.command('MAIL FROM:<a@sender.example>'), 250);
      assertReply(await session.client.command('RCPT TO:<b@example.test>'), 250);
      assertReply(await session.client.command('DATA'), 354);
      assertReply(await session.client.command(MESSAGE), 250);
      await quit(session);
    }, { tls_before_auth: '0' });
  });

  it('refuses to load with an unknown hook or reject_type', async () => {
    for (const args of ['reject helo', 'reject queue_post', 'reject_type sometimes', 'reject']) {
      await assert.rejects(testApp({ config: { plugins: [`naughty ${args}`] } }), /naughty/);
    }
  });
});
