import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadavg } from 'node:os';
import { testApp } from '../helpers/test-app.ts';
import { assertLogged, assertReply, closed, quit, withApp } from './connection-policy-support.ts';

const TOO_HIGH = '4.7.1 Server load too high, please try again later.';

describe('loadcheck', () => {
  it('refuses with 450 and closes when the load is over max_load (max_load -1: always)', async () => {
    await withApp(['loadcheck max_load -1', 'accept_all'], async (t) => {
      const session = t.connect();
      assertReply(await session.client.reply(), 450, TOO_HIGH);
      await closed(session);
      assertLogged(t, /loadcheck: local load too high: \d/);
    });
  });

  it('max_load 0 means zero: any load at all is too high', async () => {
    await withApp(['loadcheck max_load 0 cache_time 0'], async (t) => {
      const session = t.connect();
      const reply = await session.client.reply();
      // The machine running the tests is hardly ever idle to the last hundredth.
      if (loadavg()[0]! > 0) assertReply(reply, 450, TOO_HIGH);
      else assert.ok(reply.code === 220 || reply.code === 450, reply.raw);
      session.client.hangUp();
      await session.done;
    });
  });

  it('greets everyone while the load is under max_load; the default max_load and uptime are accepted', async () => {
    await withApp(['loadcheck max_load 100000 uptime /usr/bin/uptime', 'accept_all'], async (t) => {
      await quit(await t.greeted());
    });
    await withApp(['loadcheck'], async (t) => {
      // The default, 7: this test cannot know the load at the moment it is read, only that the
      // answer is one of the two.
      const session = t.connect();
      const reply = await session.client.reply();
      assert.ok(reply.code === 220 || reply.code === 450, reply.raw);
      session.client.hangUp();
      await session.done;
    });
  });

  it('reuses a load value for cache_time seconds, across sessions', async () => {
    await withApp(['loadcheck max_load 100000 cache_time 600'], async (t) => {
      for (let i = 0; i < 3; i++) await quit(await t.greeted());
      assert.equal(t.logs.filter((l) => l.includes('os.loadavg reported:')).length, 1, t.logs.join('\n'));
    }, { config: { loglevel: '7' } });
    await withApp(['loadcheck max_load 100000 cache_time 0'], async (t) => {
      for (let i = 0; i < 3; i++) await quit(await t.greeted());
      assert.equal(t.logs.filter((l) => l.includes('os.loadavg reported:')).length, 3, t.logs.join('\n'));
    }, { config: { loglevel: '7' } });
  });

  it('refuses to load with a max_load or cache_time that is no number, or an odd argument list', async () => {
    for (const args of ['max_load high', 'cache_time soon', 'max_load']) {
      await assert.rejects(testApp({ config: { plugins: [`loadcheck ${args}`] } }), /loadcheck/);
    }
  });
});
