import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { redisMissing } from '../helpers/redis-server.ts';
import { ENVELOPE_TEST_PLUGINS, envelope, logged, open, quit } from '../helpers/envelope-sessions.ts';
import { testApp, type TestApp } from '../helpers/test-app.ts';
import { redisForSuite, sleep, stored, withStateApp } from './state-support.ts';

const DEFERRED = '4.7.1 This mail is temporarily denied';
const IP = '198.51.100.7';
/** Short timeouts: deferred for 0.3 s, a retry passes until 1.5 s after the first attempt. */
const FAST = 'black_timeout 0.3 grey_timeout 1.5 white_timeout 60';

async function mailCode(t: TestApp, from = '<a@sender.example>', remoteIp = IP): Promise<{ code: number; text: string }> {
  return (await envelope(t, from, [], { endpoints: { remoteIp } })).mail;
}

function fields(value: string | undefined): number[] {
  assert.ok(value !== undefined, 'a greylist record is stored');
  return value.split(':').map(Number);
}

describe('greylisting', () => {
  it('defers an unknown client (450, qpsmtpd\'s text), again within black_timeout, passes a retry after it and whitelists it', async () => {
    await withStateApp([`greylisting ${FAST}`, 'accept_all'], {}, async (t) => {
      const first = await mailCode(t);
      assert.equal(first.code, 450);
      assert.equal(first.text, DEFERRED);
      const [ts, fresh, black, white] = fields(await stored(t, `greylist:${IP}`));
      assert.ok(Math.abs(Date.now() - ts!) < 2000);
      assert.deepEqual([fresh, black, white], [1, 0, 0]);

      assert.equal((await mailCode(t)).code, 450, 'a retry within black_timeout');
      assert.deepEqual(fields(await stored(t, `greylist:${IP}`)), [ts, 1, 1, 0], 'the black count rises, the time stays');
      assert.equal((await mailCode(t, '<a@sender.example>', '203.0.113.9')).code, 450, 'another client is unknown');

      await sleep(350);
      assert.equal((await mailCode(t)).code, 250, 'a retry in the grey window');
      assert.equal(fields(await stored(t, `greylist:${IP}`))[3], 1);
      assert.equal((await mailCode(t, '<other@elsewhere.example>')).code, 250, 'the key is the address only by default');
      assert.equal(fields(await stored(t, `greylist:${IP}`))[3], 2);
      assert.ok(logged(t, 'greylisting', 'fail: initial DENYSOFT, unknown').length > 0);
      assert.ok(logged(t, 'greylisting', 'fail: black DENYSOFT - 1 deferred connections').length > 0);
      assert.ok(logged(t, 'greylisting', 'pass: updated grey->white').length > 0);
      assert.ok(logged(t, 'greylisting', 'pass: white, 2 deliveries').length > 0);
    });
  });

  it('a triplet that was not retried within grey_timeout starts over', async () => {
    await withStateApp(['greylisting black_timeout 0.1 grey_timeout 0.3', 'accept_all'], {}, async (t) => {
      assert.equal((await mailCode(t)).code, 450);
      await sleep(450);
      assert.equal((await mailCode(t)).code, 450);
      assert.equal(logged(t, 'greylisting', 'fail: initial DENYSOFT, unknown').length, 2);
    });
  });

  it('sender and recipient in the key: checked at RCPT, each triplet on its own', async () => {
    await withStateApp([`greylisting sender 1 recipient 1 ${FAST}`, 'accept_all'], {}, async (t) => {
      const first = await envelope(t, '<a@sender.example>', ['<x@rcpt.example>', '<y@rcpt.example>']);
      assert.equal(first.mail.code, 250, 'MAIL is not checked');
      assert.deepEqual(first.rcpts.map((r) => r.code), [450, 450]);
      assert.equal(first.rcpts[0]!.text, DEFERRED);
      assert.ok((await stored(t, `greylist:${IP}:a@sender.example:x@rcpt.example`)) !== undefined);
      assert.ok((await stored(t, `greylist:${IP}:a@sender.example:y@rcpt.example`)) !== undefined);
      await sleep(350);
      const retry = await envelope(t, '<a@sender.example>', ['<x@rcpt.example>', '<z@rcpt.example>']);
      assert.deepEqual(retry.rcpts.map((r) => r.code), [250, 450], 'x passes, z is new');
    });
  });

  it('deny_late: MAIL and RCPT pass, the deferral comes at DATA (451)', async () => {
    await withStateApp([`greylisting deny_late 1 ${FAST}`, 'accept_all'], {}, async (t) => {
      const session = await open(t);
      assert.equal((await session.client.command('MAIL FROM:<a@sender.example>')).code, 250);
      assert.equal((await session.client.command('RCPT TO:<x@rcpt.example>')).code, 250);
      const data = await session.client.command('DATA');
      assert.equal(data.code, 451);
      assert.equal(data.text, DEFERRED);
      await quit(session);
    });
  });

  it('the null sender is deferred at DATA, not at RCPT; unless every recipient is whitelisted', async () => {
    await withStateApp([`greylisting recipient 1 ${FAST}`, 'whitelist', 'accept_all'], { whitelistrcpt: ['postmaster@rcpt.example'] }, async (t) => {
      const session = await open(t);
      assert.equal((await session.client.command('MAIL FROM:<>')).code, 250);
      assert.equal((await session.client.command('RCPT TO:<x@rcpt.example>')).code, 250);
      assert.equal((await session.client.command('DATA')).code, 451);
      assert.equal((await session.client.command('RSET')).code, 250);
      assert.equal((await session.client.command('MAIL FROM:<>')).code, 250);
      assert.equal((await session.client.command('RCPT TO:<postmaster@rcpt.example>')).code, 250);
      assert.equal((await session.client.command('DATA')).code, 354, 'all recipients whitelisted');
      await session.client.command('Subject: bounce\r\n\r\nreport\r\n.');
      await quit(session);
      assert.ok(logged(t, 'greylisting', 'skip: all recipients whitelisted').length > 0);
    });
  });

  it('reject 0 (and the old mode testonly) record and log but never defer', async () => {
    for (const args of ['reject 0', 'mode testonly']) {
      await withStateApp([`greylisting ${args} ${FAST}`, 'accept_all'], {}, async (t) => {
        assert.equal((await mailCode(t)).code, 250, args);
        assert.deepEqual(fields(await stored(t, `greylist:${IP}`)).slice(1), [1, 0, 0]);
        assert.ok(logged(t, 'greylisting', 'fail: initial DENYSOFT, unknown').length > 0);
      });
    }
  });

  it('relay clients, whitelisted hosts and clients in a greylist exclude file are not greylisted (and nothing is stored)', async () => {
    await withStateApp(['probe relayclient 1', `greylisting ${FAST}`, 'accept_all'], {}, async (t) => {
      assert.equal((await mailCode(t)).code, 250);
      assert.equal(await stored(t, `greylist:${IP}`), undefined);
    });
    await withStateApp(['whitelist', `greylisting ${FAST}`, 'accept_all'], { whitelisthosts: [IP] }, async (t) => {
      assert.equal((await mailCode(t)).code, 250);
      assert.ok(logged(t, 'greylisting', 'skip, whitelisted host').length > 0);
    });
    const t = await testApp({ config: { plugins: [`greylisting ${FAST}`, 'accept_all'], store: 'sqlite var/state.sqlite' }, plugins: ENVELOPE_TEST_PLUGINS });
    try {
      t.writeConfig('greylist_exclude_files', [`${t.configDir}/exclude`]);
      t.writeConfig('exclude', ['# postgrey style', '192.0.2.99', 'mx.friend.example', '/\\.trusted\\.example$/']);
      await t.server.reload();
      for (const endpoints of [{ remoteIp: '192.0.2.99' }, { remoteIp: '192.0.2.1', remoteHost: 'mx.friend.example' }, { remoteIp: '192.0.2.2', remoteHost: 'out7.trusted.example' }]) {
        assert.equal((await envelope(t, '<a@b.example>', [], { endpoints })).mail.code, 250, JSON.stringify(endpoints));
      }
      assert.equal((await envelope(t, '<a@b.example>', [], { endpoints: { remoteIp: '192.0.2.3', remoteHost: 'mx.stranger.example' } })).mail.code, 450);
    } finally {
      await t.cleanup();
    }
  });

  it('per_recipient: the recipient\'s own denysoft_greylist overrides the timeouts', async () => {
    await withStateApp(['user_config users/%a', 'greylisting per_recipient 1 recipient 1 black_timeout 100', 'accept_all'], {}, async (t) => {
      t.writeConfig('../users/fast@rcpt.example/denysoft_greylist', ['black_timeout 0.2', 'grey_timeout 5']);
      assert.deepEqual((await envelope(t, '<a@s.example>', ['<fast@rcpt.example>', '<slow@rcpt.example>'])).rcpts.map((r) => r.code), [450, 450]);
      await sleep(300);
      assert.deepEqual((await envelope(t, '<a@s.example>', ['<fast@rcpt.example>', '<slow@rcpt.example>'])).rcpts.map((r) => r.code), [250, 450]);
    });
  });

  it('per_recipient_db: one greylist per recipient', async () => {
    await withStateApp([`greylisting per_recipient_db 1 recipient 0 per_recipient 1 ${FAST}`, 'accept_all'], {}, async (t) => {
      await envelope(t, '<a@s.example>', ['<x@rcpt.example>']);
      assert.ok((await stored(t, `greylist:db=x@rcpt.example:${IP}`)) !== undefined);
    });
  });

  it('a bad config/store or timeout stops the plugin loading, naming the file and line', async () => {
    await assert.rejects(testApp({ config: { plugins: ['greylisting'], store: 'mongodb://x' } }), /config\/store:1: store: unknown back end "mongodb:\/\/x"/);
    await assert.rejects(testApp({ config: { plugins: ['greylisting black_timeout 5m'], store: 'sqlite var/s.sqlite' } }), /greylisting: black_timeout "5m": expected seconds/);
    await assert.rejects(testApp({ config: { plugins: ['greylisting remote_ip 0'], store: 'sqlite var/s.sqlite' } }), /enable one of remote_ip, sender or recipient/);
  });
});

describe('greylisting on Redis, and when Redis goes away', { skip: redisMissing }, () => {
  const redis = redisForSuite();

  it('works on Redis; an outage gives 450 4.3.0 (try again later), logged; greylisting works again once Redis is back', async () => {
    await withStateApp([`greylisting ${FAST}`, 'accept_all'], {}, async (t) => {
      await waitFor(async () => (await mailCode(t)).text === DEFERRED);
      assert.equal((await mailCode(t)).code, 450, 'a retry within black_timeout');
      await redis().stop();
      const down = await mailCode(t);
      assert.equal(down.code, 450, t.logs.slice(-15).join('\n'));
      assert.equal(down.text, '4.3.0 Temporary failure, please try again later');
      assert.ok(logged(t, 'greylisting', 'fail, cannot read the greylist: store get failed').length > 0, t.logs.join('\n'));
      await redis().start();
      // The restarted server kept nothing: the client is unknown again, then passes after the delay.
      await waitFor(async () => (await mailCode(t)).text === DEFERRED);
      await sleep(350);
      assert.equal((await mailCode(t)).code, 250);
    }, { store: `redis ${redis().url}` });
  });

  it('store_error pass: an outage lets the mail through, logged', async () => {
    await withStateApp([`greylisting ${FAST} store_error pass`, 'accept_all'], {}, async (t) => {
      await waitFor(async () => (await mailCode(t, '<a@s.example>', '192.0.2.60')).text === DEFERRED);
      await redis().stop();
      try {
        assert.equal((await mailCode(t, '<a@s.example>', '192.0.2.50')).code, 250);
        assert.ok(logged(t, 'greylisting', 'skip, cannot read the greylist', '(store_error pass)').length > 0);
      } finally {
        await redis().start();
      }
    }, { store: `redis ${redis().url}` });
  });
});

/** Retry `test` (a Redis store connects in the background) for up to 5 s. */
async function waitFor(test: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(50);
  }
}
