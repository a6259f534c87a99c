import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { logged, open, quit } from '../helpers/envelope-sessions.ts';
import { testApp, type TestApp } from '../helpers/test-app.ts';
import { sleep, stored, withStateApp } from './state-support.ts';

/** `as_user NAME`: the session counts as authenticated as NAME (as after AUTH). */
const AS_USER = `import { Plugin, DECLINED } from 'qpsmtpd';
import type { PluginHost } from 'qpsmtpd';
export default class AsUser extends Plugin {
  user = '';
  register(_qp: PluginHost, user: string) { this.user = user; }
  hook_connect() { this.connection.authUser = this.user; return DECLINED; }
}
`;
const plugins = { 'as_user.ts': AS_USER };

async function rcptCodes(t: TestApp, from: string, rcpts: string[], remoteIp = '198.51.100.7'): Promise<{ codes: number[]; last: string }> {
  const s = await open(t, { endpoints: { remoteIp } });
  await s.client.command(`MAIL FROM:<${from}>`);
  const codes: number[] = [];
  let last = '';
  for (const r of rcpts) {
    const reply = await s.client.command(`RCPT TO:<${r}>`);
    codes.push(reply.code);
    last = reply.text;
  }
  await quit(s);
  return { codes, last };
}

describe('limit', () => {
  it('concurrency per ip: over the limit 450 4.7.0 and closed; a session that ends frees its place; an exception line lifts it', async () => {
    await withStateApp(['limit', 'accept_all'], { limit: ['concurrency ip 0 192.0.2.9  # a trusted relay', 'concurrency ip 2'] }, async (t) => {
      const a = await t.greeted({ remoteIp: '198.51.100.7' });
      await t.greeted({ remoteIp: '198.51.100.7' });
      const third = t.connect({ remoteIp: '198.51.100.7' });
      const refused = await third.client.reply();
      assert.equal(refused.code, 450);
      assert.equal(refused.text, '4.7.0 Concurrency limit exceeded for 198.51.100.7 (2 at once)');
      await third.done;
      assert.equal(await stored(t, 'limit:concurrency:ip:198.51.100.7'), '2');
      await t.greeted({ remoteIp: '203.0.113.1' });
      assert.equal((await a.client.command('QUIT')).code, 221);
      await a.done;
      assert.equal(await stored(t, 'limit:concurrency:ip:198.51.100.7'), '1');
      await t.greeted({ remoteIp: '198.51.100.7' });
      for (let i = 0; i < 3; i++) await t.greeted({ remoteIp: '192.0.2.9' });
      assert.ok(logged(t, 'limit', 'fail, concurrency limit exceeded').length === 1);
    }, { plugins });
  });

  it('connection rate per ip slides: 2 per second, the third refused, allowed again a second later', async () => {
    await withStateApp(['limit', 'accept_all'], { limit: ['connections ip 2/1s'] }, async (t) => {
      await quit(await t.greeted());
      await quit(await t.greeted());
      const refused = await t.connect().client.reply();
      assert.equal(refused.code, 450);
      assert.equal(refused.text, '4.7.0 Connection rate limit exceeded for 192.0.2.10 (2 per 1s)');
      await sleep(1100);
      await quit(await t.greeted());
    });
  });

  it('recipients per ip are counted across sessions; the client over the limit gets 450 per RCPT, others are not affected', async () => {
    await withStateApp(['limit', 'accept_all'], { limit: ['recipients ip 3/1h'] }, async (t) => {
      assert.deepEqual((await rcptCodes(t, 'a@s.example', ['1@r.example', '2@r.example'])).codes, [250, 250]);
      const over = await rcptCodes(t, 'a@s.example', ['3@r.example', '4@r.example']);
      assert.deepEqual(over.codes, [250, 450]);
      assert.equal(over.last, '4.7.0 Recipient rate limit exceeded for ip 198.51.100.7 (3 per 1h), try again later');
      assert.deepEqual((await rcptCodes(t, 'a@s.example', ['1@r.example'], '203.0.113.1')).codes, [250]);
    });
  });

  it('recipients per sender domain (subdomains matched by a WHO line) and messages per user, at DATA (451)', async () => {
    await withStateApp(['as_user alice', 'limit', 'accept_all'], { limit: ['recipients domain 1/1m bulk.example', 'recipients domain 100/1m', 'messages user 1/1m'] }, async (t) => {
      assert.deepEqual((await rcptCodes(t, 'news@mx.bulk.example', ['1@r.example', '2@r.example'])).codes, [250, 450]);
      assert.deepEqual((await rcptCodes(t, 'me@other.example', ['1@r.example', '2@r.example'])).codes, [250, 250]);
      const s = await open(t);
      await s.client.command('MAIL FROM:<me@other.example>');
      await s.client.command('RCPT TO:<x@r.example>');
      assert.equal((await s.client.command('DATA')).code, 354);
      await s.client.command('Subject: one\r\n\r\nbody\r\n.');
      await s.client.command('MAIL FROM:<me@other.example>');
      await s.client.command('RCPT TO:<x@r.example>');
      const data = await s.client.command('DATA');
      assert.equal(data.code, 451);
      assert.equal(data.text, '4.7.0 Message rate limit exceeded for user alice (1 per 1m), try again later');
      await quit(s);
    }, { plugins });
  });

  it('a line it cannot read stops the plugin loading, naming the file and line', async () => {
    const cases: [string, RegExp][] = [
      ['recipients ip lots', /config\/limit:2: limit: bad LIMIT "lots"/],
      ['connections user 5', /config\/limit:2: limit: connections can only be limited per ip/],
      ['recipients ip 5/1h not-an-ip', /config\/limit:2: limit: "not-an-ip" is no IP address or CIDR block/],
      ['bananas ip 5', /limit: unknown WHAT "bananas"/],
    ];
    for (const [line, error] of cases) {
      await assert.rejects(testApp({ config: { plugins: ['limit'], store: 'sqlite var/s.sqlite', limit: ['# limits', line] } }), (err: Error) => error.test(err.message), line);
    }
  });
});
