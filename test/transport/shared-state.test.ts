/**
 * Several servers, one state: two real daemons (bin/qpsmtpd) on their own ports share one real
 * redis-server through `config/store`. A client greylisted by one is known to the other, and a
 * recipient rate limit counts what both accepted.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ACCEPT_ALL_JS, SmtpClient, cleanupAll, makeRoot, startDaemon, type Daemon } from '../helpers/daemon.ts';
import { RedisServer, redisMissing } from '../helpers/redis-server.ts';

after(cleanupAll);

const DEFERRED = '4.7.1 This mail is temporarily denied';

async function mailFrom(daemon: Daemon, sender: string): Promise<{ code: number; text: string }> {
  const client = await SmtpClient.open(daemon.port);
  assert.equal((await client.command('EHLO client.example')).code, 250);
  const reply = await client.command(`MAIL FROM:<${sender}>`);
  await client.command('QUIT');
  return reply;
}

async function rcpts(daemon: Daemon, recipients: string[]): Promise<{ code: number; text: string }[]> {
  const client = await SmtpClient.open(daemon.port);
  await client.command('EHLO client.example');
  assert.equal((await client.command('MAIL FROM:<a@sender.example>')).code, 250);
  const replies = [];
  for (const r of recipients) replies.push(await client.command(`RCPT TO:<${r}>`));
  await client.command('QUIT');
  return replies;
}

describe('two daemons sharing one Redis', { skip: redisMissing }, () => {
  let redis: RedisServer | undefined;
  after(async () => {
    await redis?.close();
  });

  it('a triplet greylisted by one server passes on the other after the delay; a rate limit counts across both', async () => {
    redis = await RedisServer.start();
    const config = {
      plugins: ['greylisting black_timeout 1 grey_timeout 30 white_timeout 60', 'limit', 'accept_all'],
      store: `redis ${redis.url}`,
      limit: ['recipients ip 3/1m'],
    };
    const [a, b] = await Promise.all([0, 1].map(() => startDaemon(makeRoot({ config, plugins: { 'accept_all.js': ACCEPT_ALL_JS } }))));
    assert.notEqual(a!.port, b!.port);

    // The store connects in the background: the first answer may be a store failure (4.3.0).
    const deadline = Date.now() + 5000;
    let first = await mailFrom(a!, 'a@sender.example');
    while (first.text !== DEFERRED && Date.now() < deadline) first = await mailFrom(a!, 'a@sender.example');
    assert.equal(first.code, 450);
    assert.equal(first.text, DEFERRED);
    await a!.waitForLog(/greylisting: fail: initial DENYSOFT, unknown/);

    const early = await mailFrom(b!, 'a@sender.example');
    assert.equal(early.code, 450, 'server B knows the client is still black');
    await b!.waitForLog(/greylisting: fail: black DENYSOFT - 1 deferred connections/);

    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await mailFrom(b!, 'a@sender.example')).code, 250, 'the retry passes on B');
    await b!.waitForLog(/greylisting: pass: updated grey->white/);
    assert.equal((await mailFrom(a!, 'a@sender.example')).code, 250, 'and A knows it is white');
    await a!.waitForLog(/greylisting: pass: white, 2 deliveries/);

    assert.deepEqual((await rcpts(a!, ['1@r.example', '2@r.example'])).map((r) => r.code), [250, 250]);
    const onB = await rcpts(b!, ['3@r.example', '4@r.example']);
    assert.deepEqual(onB.map((r) => r.code), [250, 450]);
    assert.equal(onB[1]!.text, '4.7.0 Recipient rate limit exceeded for ip 127.0.0.1 (3 per 1m), try again later');
    assert.equal((await rcpts(a!, ['5@r.example']))[0]!.code, 450, 'A sees the limit reached too');

    await Promise.all([a!.stop(), b!.stop()]);
    assert.equal(a!.exitCode, 0, a!.stderr);
    assert.equal(b!.exitCode, 0, b!.stderr);
    assert.doesNotMatch(a!.stderr + b!.stderr, /shutdown\(\) failed/);
  });
});
