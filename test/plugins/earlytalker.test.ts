import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { FakeConn } from '../helpers/fake-conn.ts';
import { TEST_PLUGINS } from '../helpers/plugin-sources.ts';
import { testApp, type TestApp } from '../helpers/test-app.ts';

const WAIT_MS = 200;
const WAIT = `wait ${WAIT_MS / 1000}`;
/** For checks that must not wait it out: any wrong wait would show. */
const LONG_WAIT = 'wait 5';
const GREETING_TEXT = '5.7.1 Connecting host started transmitting before SMTP greeting';
const DATA_TEXT = '5.7.1 Client started sending the message before the 354 reply';

/**
 * `probe [NAME VALUE ...]`: on connect sets those connection notes (`relayclient 1` sets
 * relayClient instead); the verb XNOTES answers 250 with the connection notes as JSON.
 */
const PROBE = `import { Plugin, DECLINED, DONE } from 'qpsmtpd';
import type { PluginHost, Transaction } from 'qpsmtpd';
export default class Probe extends Plugin {
  pairs: [string, string][] = [];
  register(_qp: PluginHost, ...args: string[]) {
    for (let i = 0; i + 1 < args.length; i += 2) this.pairs.push([args[i]!, args[i + 1]!]);
  }
  hook_connect() {
    for (const [name, value] of this.pairs) {
      if (name === 'relayclient') this.connection.relayClient = value === '1';
      else this.connection.notes[name] = value;
    }
    return DECLINED;
  }
  hook_unrecognized_command(_tx: Transaction, verb: string) {
    if (verb !== 'xnotes') return DECLINED;
    this.qp.respond(250, JSON.stringify(this.connection.notes));
    return DONE;
  }
}
`;

async function withApp(plugins: string[], fn: (t: TestApp) => Promise<void>, config: Record<string, string | string[]> = {}): Promise<void> {
  const t = await testApp({
    config: { plugins, loglevel: '6', ...config },
    plugins: { ...TEST_PLUGINS, 'probe.ts': PROBE },
  });
  try {
    await fn(t);
  } finally {
    await t.cleanup();
  }
}

/** The connection notes, through the probe's XNOTES verb. */
async function notesOf(client: FakeConn): Promise<Record<string, unknown>> {
  const reply = await client.command('XNOTES');
  assert.equal(reply.code, 250, reply.raw);
  return JSON.parse(reply.text.replace(/^2\.0\.0 /, '')) as Record<string, unknown>;
}

/** A client that sends EHLO before reading the greeting: the first reply it gets. */
async function talkEarly(t: TestApp): Promise<{ client: FakeConn; done: Promise<void>; first: Awaited<ReturnType<FakeConn['reply']>> }> {
  const { client, done } = t.connect();
  client.send('EHLO impatient.example\r\n');
  const first = await client.reply();
  return { client, done, first };
}

describe('earlytalker at CONNECT', () => {
  it('refuses a client that talks before the greeting with 550 and closes (default reject_type perm)', async () => {
    await withApp([`earlytalker ${LONG_WAIT}`, 'accept_all'], async (t) => {
      const started = Date.now();
      const { client, done, first } = await talkEarly(t);
      assert.equal(first.code, 550);
      assert.equal(first.text, GREETING_TEXT);
      await done;
      assert.ok(client.closed);
      assert.ok(Date.now() - started < 1000, 'answered at once, without waiting out the wait');
      assert.ok(t.logs.some((l) => l.includes('fail, remote started talking before we said hello')), t.logs.join('\n'));
    });
  });

  for (const [type, code] of [
    ['perm', 550],
    ['temp', 450],
    ['disconnect', 550],
    ['temp_disconnect', 450],
  ] as const) {
    it(`reject_type ${type}: ${code} at connect, and the session ends`, async () => {
      await withApp([`earlytalker ${WAIT} reject_type ${type}`], async (t) => {
        const { client, done, first } = await talkEarly(t);
        assert.equal(first.code, code);
        assert.match(first.text, /Connecting host started transmitting before SMTP greeting$/);
        await done;
        assert.ok(client.closed);
      });
    });
  }

  it('refuses a client that starts talking during the wait', async () => {
    await withApp([`earlytalker ${LONG_WAIT}`], async (t) => {
      const { client, done } = t.connect();
      setTimeout(() => client.send('HELO hasty.example\r\n'), 50);
      assert.equal((await client.reply()).code, 550);
      await done;
    });
  });

  it('greets a polite client after the wait, notes earlytalker false, and lets it go on', async () => {
    await withApp(['probe', `earlytalker ${WAIT}`, 'accept_all'], async (t) => {
      const started = Date.now();
      const { client, done } = await t.greeted();
      assert.ok(Date.now() - started >= WAIT_MS - 20, `greeted after ${Date.now() - started} ms`);
      assert.equal((await client.command('EHLO polite.example')).code, 250);
      assert.equal((await client.command('MAIL FROM:<a@sender.example>')).code, 250);
      assert.equal((await notesOf(client)).earlytalker, false);
      assert.equal((await client.command('QUIT')).code, 221);
      await done;
      assert.ok(t.logs.some((l) => l.includes('pass, not spontaneous')), t.logs.join('\n'));
    });
  });

  it('defer-reject 1: greets the early talker and refuses its MAIL, temporarily by default', async () => {
    await withApp(['probe', `earlytalker ${WAIT} defer-reject 1`, 'accept_all'], async (t) => {
      const { client, done, first } = await talkEarly(t);
      assert.equal(first.code, 220);
      assert.equal((await client.reply()).code, 250, 'the early EHLO is answered');
      const mail = await client.command('MAIL FROM:<a@sender.example>');
      assert.equal(mail.code, 450);
      assert.equal(mail.text, '4.7.1 Connecting host started transmitting before SMTP greeting');
      assert.equal((await client.command('MAIL FROM:<b@sender.example>')).code, 450, 'every MAIL');
      const notes = await notesOf(client);
      assert.equal(notes.earlytalker, true);
      assert.equal(notes.karma, -3, 'karma -1 at connect and at each refused MAIL');
      assert.equal((await client.command('QUIT')).code, 221);
      await done;
    });
  });

  it('defer-reject 1 with reject_type perm: 550 at MAIL; a polite client is not refused', async () => {
    await withApp([`earlytalker ${WAIT} defer-reject 1 reject_type perm`, 'accept_all'], async (t) => {
      const early = await talkEarly(t);
      assert.equal(early.first.code, 220);
      assert.equal((await early.client.reply()).code, 250);
      assert.equal((await early.client.command('MAIL FROM:<a@sender.example>')).code, 550);
      early.client.hangUp();
      await early.done;

      const polite = await t.greeted();
      assert.equal((await polite.client.command('EHLO polite.example')).code, 250);
      assert.equal((await polite.client.command('MAIL FROM:<a@sender.example>')).code, 250);
      assert.equal((await polite.client.command('QUIT')).code, 221);
      await polite.done;
    });
  });

  it('reject 0: only logs and notes; the session goes on', async () => {
    await withApp(['probe', `earlytalker ${WAIT} reject 0`, 'accept_all'], async (t) => {
      const { client, done, first } = await talkEarly(t);
      assert.equal(first.code, 220);
      assert.equal((await client.reply()).code, 250);
      assert.equal((await client.command('MAIL FROM:<a@sender.example>')).code, 250);
      assert.equal((await client.command('RCPT TO:<b@example.test>')).code, 250);
      const notes = await notesOf(client);
      assert.equal(notes.earlytalker, true);
      assert.equal(notes.naughty, undefined);
      assert.equal((await client.command('QUIT')).code, 221);
      await done;
      assert.ok(t.logs.some((l) => l.includes('fail, tolerated, remote started talking before we said hello')), t.logs.join('\n'));
    });
  });

  it('reject naughty: notes the rejection for the naughty plugin and goes on', async () => {
    await withApp(['probe', `earlytalker ${WAIT} reject naughty reject_type disconnect`, 'accept_all'], async (t) => {
      const { client, done, first } = await talkEarly(t);
      assert.equal(first.code, 220);
      assert.equal((await client.reply()).code, 250);
      assert.equal((await client.command('MAIL FROM:<a@sender.example>')).code, 250);
      const notes = await notesOf(client);
      assert.equal(notes.earlytalker, true);
      assert.equal(notes.naughty, '(earlytalker) Connecting host started transmitting before SMTP greeting');
      assert.equal(notes.naughty_reject_type, 'disconnect');
      assert.equal((await client.command('QUIT')).code, 221);
      await done;
      assert.ok(t.logs.some((l) => l.includes('fail, NAUGHTY')), t.logs.join('\n'));
    });
  });

  it('the old action argument still works: action log only notes', async () => {
    await withApp([`earlytalker ${WAIT} action log`], async (t) => {
      const { client, done, first } = await talkEarly(t);
      assert.equal(first.code, 220);
      client.hangUp();
      await done;
    });
  });

  it('relay clients are immune (relay listed before earlytalker), and are greeted without the wait', async () => {
    await withApp(
      ['relay', `earlytalker wait 5`, 'accept_all'],
      async (t) => {
        const started = Date.now();
        const { client, done, first } = await talkEarly(t); // from 192.0.2.10
        assert.equal(first.code, 220);
        assert.ok(Date.now() - started < 1000, 'no wait for a relay client');
        assert.equal((await client.reply()).code, 250);
        assert.equal((await client.command('QUIT')).code, 221);
        await done;
        assert.ok(t.logs.some((l) => l.includes('skip, relay client')), t.logs.join('\n'));

        const other = t.connect({ remoteIp: '198.51.100.7' });
        other.client.send('EHLO impatient.example\r\n');
        assert.equal((await other.client.reply()).code, 550, 'others are still checked');
        await other.done;
      },
      { relayclients: ['192.0.2.10'] },
    );
  });

  it('hosts whitelisted by another plugin (connection note whitelisthost) are immune', async () => {
    await withApp(['probe whitelisthost 1', `earlytalker wait 5`], async (t) => {
      const { client, done, first } = await talkEarly(t);
      assert.equal(first.code, 220);
      const notes = await (async () => {
        assert.equal((await client.reply()).code, 250);
        return notesOf(client);
      })();
      assert.equal(notes.earlytalker, false, 'not an early talker as far as anyone knows');
      client.hangUp();
      await done;
      assert.ok(t.logs.some((l) => l.includes('skip, whitelisted host')), t.logs.join('\n'));
    });
  });

  it('the connection note earlytalker_wait (seconds) overrides wait', async () => {
    await withApp(['probe earlytalker_wait 0.05', 'earlytalker wait 5'], async (t) => {
      const started = Date.now();
      const { client, done } = await t.greeted();
      assert.ok(Date.now() - started < 1000, `greeted after ${Date.now() - started} ms`);
      client.hangUp();
      await done;
    });
  });

  it('loads under its old name check_earlytalker', async () => {
    await withApp([`check_earlytalker ${WAIT}`], async (t) => {
      const { done, first } = await talkEarly(t);
      assert.equal(first.code, 550);
      await done;
    });
  });
});

describe('earlytalker at DATA', () => {
  /** A session at the point where the client says DATA. */
  async function inTransaction(t: TestApp): Promise<{ client: FakeConn; done: Promise<void> }> {
    const session = await t.greeted();
    assert.equal((await session.client.command('EHLO client.example')).code, 250);
    assert.equal((await session.client.command('MAIL FROM:<a@sender.example>')).code, 250);
    assert.equal((await session.client.command('RCPT TO:<b@example.test>')).code, 250);
    return session;
  }
  const MESSAGE = 'Subject: hi\r\n\r\nbody\r\n.\r\n';
  const plugins = (args: string, wait = LONG_WAIT): string[] => [`earlytalker ${wait} check-at DATA${args}`, 'accept_all', 'answer queue OK queued'];

  it('does not delay the greeting when only DATA is checked', async () => {
    await withApp(plugins(''), async (t) => {
      const { client, done, first } = await talkEarly(t);
      assert.equal(first.code, 220);
      client.hangUp();
      await done;
    });
  });

  it('refuses a client that sends the message during the wait before 354 (reject_type disconnect: 554 and close)', async () => {
    await withApp(plugins(' reject_type disconnect'), async (t) => {
      const { client, done } = await inTransaction(t);
      client.line('DATA');
      setTimeout(() => client.send(MESSAGE), 50);
      const reply = await client.reply();
      assert.equal(reply.code, 554);
      assert.equal(reply.text, DATA_TEXT);
      await done;
      assert.ok(client.closed);
    });
  });

  it('refuses content sent together with DATA too (the plugin answers before the core looks)', async () => {
    await withApp(plugins(' reject_type disconnect'), async (t) => {
      const { client, done } = await inTransaction(t);
      client.send('DATA\r\n' + MESSAGE);
      const reply = await client.reply();
      assert.equal(reply.code, 554);
      assert.equal(reply.text, DATA_TEXT);
      await done;
    });
  });

  it('reject_type perm: 554 and the transaction is dropped; temp: 451', async () => {
    await withApp(plugins(''), async (t) => {
      const { client, done } = await inTransaction(t);
      client.line('DATA');
      setTimeout(() => client.line('NOOP'), 50);
      assert.equal((await client.reply()).code, 554);
      assert.equal((await client.reply()).code, 250, 'the NOOP sent early is served next');
      assert.equal((await client.command('DATA')).code, 503, 'no transaction any more');
      assert.equal((await client.command('QUIT')).code, 221);
      await done;
    });
    await withApp(plugins(' reject_type temp'), async (t) => {
      const { client, done } = await inTransaction(t);
      client.line('DATA');
      setTimeout(() => client.line('NOOP'), 50);
      assert.equal((await client.reply()).code, 451);
      assert.equal((await client.reply()).code, 250);
      client.hangUp();
      await done;
    });
  });

  it('lets a client that waits for 354 send its message', async () => {
    await withApp(['probe', ...plugins('', WAIT)], async (t) => {
      const { client, done } = await inTransaction(t);
      const started = Date.now();
      assert.equal((await client.command('DATA')).code, 354);
      assert.ok(Date.now() - started >= WAIT_MS - 20, `354 after ${Date.now() - started} ms`);
      const queued = await client.command(MESSAGE.slice(0, -2));
      assert.equal(queued.code, 250);
      assert.equal((await notesOf(client)).earlytalker, false);
      assert.equal((await client.command('QUIT')).code, 221);
      await done;
    });
  });

  it('check-at may be given twice: CONNECT and DATA', async () => {
    await withApp([`earlytalker ${WAIT} check-at CONNECT check-at DATA reject_type disconnect`, 'accept_all'], async (t) => {
      const early = await talkEarly(t);
      assert.equal(early.first.code, 550);
      await early.done;
      const { client, done } = await inTransaction(t);
      client.send('DATA\r\n' + MESSAGE);
      assert.equal((await client.reply()).code, 554);
      await done;
    });
  });
});

describe('earlytalker arguments', () => {
  for (const args of ['wait', 'wait soon', 'check-at HELO', 'reject_type bogus']) {
    it(`refuses to load with "${args}"`, async () => {
      await assert.rejects(testApp({ config: { plugins: [`earlytalker ${args}`] } }), /earlytalker/);
    });
  }
});
