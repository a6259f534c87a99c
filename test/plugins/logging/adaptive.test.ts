import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { LoadFailure } from '../../../src/app.ts';
import { LOGERROR, LOGINFO, LOGWARN } from '../../../src/log/levels.ts';
import { TEST_PLUGINS } from '../../helpers/plugin-sources.ts';
import { tempDir, testApp, type TestApp } from '../../helpers/test-app.ts';
import type AdaptiveLogging from '../../../plugins/logging/adaptive.ts';
import { goodHeaders, message, quit, sendMessage } from '../content-support.ts';
import { captureStderr, pluginInstance } from './support.ts';

const pid = process.pid;
const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));
let queues = 0;

/**
 * `talker`: logs at RCPT (LOGINFO `rcpt info <address>`, LOGWARN `rcpt warn`, LOGDEBUG `rcpt
 * debug`) and refuses at data_post a message whose Subject says "spam".
 */
const TALKER = `import { Plugin, DECLINED, DENY, LOGDEBUG, LOGINFO, LOGWARN } from 'qpsmtpd';
import type { Address, Transaction } from 'qpsmtpd';
export default class Talker extends Plugin {
  hook_rcpt(_tx: Transaction, rcpt: Address) {
    this.log(LOGDEBUG, 'rcpt debug');
    this.log(LOGINFO, 'rcpt info', rcpt.toString());
    this.log(LOGWARN, 'rcpt warn');
    return DECLINED;
  }
  hook_data_post(tx: Transaction) {
    return /spam/.test(tx.header.get('Subject') ?? '') ? [DENY, 'no spam'] : DECLINED;
  }
}
`;

/** Run `fn` with stderr captured, in an app with logging/adaptive ARGS; returns the stderr lines. */
async function run(args: string, fn: (t: TestApp) => Promise<void>): Promise<string[]> {
  const t = await testApp({
    config: { logging: [`logging/adaptive ${args}`.trim()], plugins: ['talker', 'accept_all', `queue_capture ${join(dir, `q${++queues}`)}`] },
    plugins: { ...TEST_PLUGINS, 'talker.ts': TALKER },
  });
  const stderr = captureStderr();
  try {
    await fn(t);
  } finally {
    stderr.restore();
    await t.cleanup();
  }
  return stderr.lines();
}

/** One session: a message to `rcpt` with this subject; returns the transaction id the RCPT ran in and the reply code. */
async function session(t: TestApp, subjects: string[]): Promise<number[]> {
  const s = await t.greeted();
  const codes: number[] = [];
  for (const [i, subject] of subjects.entries()) {
    const reply = await sendMessage(s.client, message(goodHeaders().replace('Subject: test', `Subject: ${subject}`)), { rcpt: `r${i}@example.test`, hello: i === 0 });
    codes.push(reply.code);
  }
  await quit(s);
  return codes;
}

const talker = (lines: string[]) => lines.filter((l) => l.includes(' talker: '));

describe('logging/adaptive', () => {
  it('accepted mail: the detail lines at once, the accept-level lines again with the prefix after the queue step', async () => {
    const lines = await run('accept LOGINFO reject LOGWARN', async (t) => {
      assert.deepEqual(await session(t, ['hello']), [250]);
    });
    const seen = talker(lines);
    const tx = /\[([^\]]+)\]/.exec(seen[0] ?? '')?.[1];
    assert.ok(tx, seen.join('\n'));
    assert.deepEqual(seen, [
      `${pid} [${tx}] (rcpt) talker: rcpt warn`,
      `${pid} \` [${tx}] (rcpt) talker: rcpt info <r0@example.test>`,
      `${pid} \` [${tx}] (rcpt) talker: rcpt warn`,
    ]);
  });

  it('refused mail: only the lines at the reject level, nothing replayed', async () => {
    const lines = await run('accept LOGINFO reject LOGWARN', async (t) => {
      assert.deepEqual(await session(t, ['buy spam']), [552]);
    });
    assert.deepEqual(talker(lines).map((l) => l.replace(/^\d+ \[[^\]]+\] /, '')), ['(rcpt) talker: rcpt warn']);
    assert.ok(!lines.some((l) => l.includes(' ` ')), lines.join('\n'));
  });

  it('a higher reject level shows refused mail in detail', async () => {
    const lines = await run('accept LOGERROR reject LOGDEBUG', async (t) => {
      assert.deepEqual(await session(t, ['buy spam']), [552]);
    });
    assert.deepEqual(talker(lines).map((l) => l.replace(/^\d+ \[[^\]]+\] /, '')), ['(rcpt) talker: rcpt debug', '(rcpt) talker: rcpt info <r0@example.test>', '(rcpt) talker: rcpt warn']);
  });

  it('the refusal belongs to its transaction: the next message of the session is replayed again', async () => {
    const lines = await run('accept LOGINFO reject LOGERROR prefix +', async (t) => {
      assert.deepEqual(await session(t, ['spam first', 'then good', 'spam again']), [552, 250, 552]);
    });
    const replayed = talker(lines).filter((l) => l.startsWith(`${pid} + `));
    assert.deepEqual(replayed.map((l) => l.replace(/^\d+ \+ \[[^\]]+\] /, '')), ['(rcpt) talker: rcpt info <r1@example.test>', '(rcpt) talker: rcpt warn']);
    // Nothing at LOGWARN or lower goes out at once with reject LOGERROR.
    assert.equal(talker(lines).length, 2);
  });

  it('defaults: accept LOGERROR, reject LOGWARN, prefix `', async () => {
    let instance: AdaptiveLogging | undefined;
    const lines = await run('', async (t) => {
      instance = pluginInstance<AdaptiveLogging>(t, 'logging/adaptive');
      assert.deepEqual(await session(t, ['hello']), [250]);
    });
    assert.equal(instance?.logThreshold, LOGWARN);
    // rcpt warn (LOGWARN) at once; nothing at LOGERROR to replay.
    assert.deepEqual(talker(lines).map((l) => l.replace(/^\d+ \[[^\]]+\] /, '')), ['(rcpt) talker: rcpt warn']);
  });

  it('logThreshold is the higher level; bad arguments are load errors', async () => {
    let instance: AdaptiveLogging | undefined;
    await run('accept 6 reject LOGERROR', async (t) => {
      instance = pluginInstance<AdaptiveLogging>(t, 'logging/adaptive');
    });
    assert.equal(instance?.logThreshold, Math.max(LOGINFO, LOGERROR));
    for (const args of ['accept', 'accept LOUD', 'colour blue', 'reject 9x']) {
      await assert.rejects(testApp({ config: { logging: [`logging/adaptive ${args}`], plugins: [] } }), LoadFailure, args);
    }
  });
});
