import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testApp } from '../helpers/test-app.ts';
import { quit, withApp } from './connection-policy-support.ts';

const DURATION = /\bconnection_time: \d+\.\d{3} s\.$/;

describe('connection_time', () => {
  it('logs the duration of each connection at LOGINFO after it closed', async () => {
    await withApp(['connection_time'], async (t) => {
      const session = await t.greeted();
      await new Promise((resolve) => setTimeout(resolve, 30));
      await quit(session);
      const lines = t.logs.filter((l) => DURATION.test(l));
      assert.equal(lines.length, 1, t.logs.join('\n'));
      const seconds = Number(/(\d+\.\d{3}) s\.$/.exec(lines[0]!)![1]);
      assert.ok(seconds >= 0.02 && seconds < 60, `duration ${seconds}`);
      assert.match(lines[0]!, /\(post-connection\)/);
    }, { config: { loglevel: '6' } });
  });

  it('also for a client refused at connect, and for each of several sessions', async () => {
    await withApp(['connection_time', 'answer connect DENY go away'], async (t) => {
      for (let i = 0; i < 2; i++) {
        const session = t.connect();
        assert.equal((await session.client.reply()).code, 550);
        await session.done;
      }
      assert.equal(t.logs.filter((l) => DURATION.test(l)).length, 2, t.logs.join('\n'));
    });
  });

  it('is not logged at loglevel 5; `loglevel -1` (LOGNOTICE) and the old single-level form are', async () => {
    await withApp(['connection_time'], async (t) => {
      await quit(await t.greeted());
      assert.equal(t.logs.filter((l) => DURATION.test(l)).length, 0, t.logs.join('\n'));
    }, { config: { loglevel: '5' } });
    await withApp(['connection_time loglevel -1'], async (t) => {
      await quit(await t.greeted());
      assert.equal(t.logs.filter((l) => DURATION.test(l)).length, 1, t.logs.join('\n'));
    }, { config: { loglevel: '5' } });
    await withApp(['connection_time LOGNOTICE'], async (t) => {
      await quit(await t.greeted());
      assert.equal(t.logs.filter((l) => DURATION.test(l)).length, 1, t.logs.join('\n'));
    }, { config: { loglevel: '5' } });
  });

  it('logs the start at LOGDEBUG', async () => {
    await withApp(['connection_time'], async (t) => {
      await quit(await t.greeted());
      assert.ok(t.logs.some((l) => /connection_time: started at \d+\.\d+$/.test(l)), t.logs.join('\n'));
    }, { config: { loglevel: '7' } });
  });

  it('refuses to load with a single argument that is no log level', async () => {
    await assert.rejects(testApp({ config: { plugins: ['connection_time verbose'] } }), /connection_time/);
  });
});
