import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LoadFailure } from '../../../src/app.ts';
import { LOGWARN } from '../../../src/log/levels.ts';
import { testApp, type TestApp } from '../../helpers/test-app.ts';
import { CHATTY_PLUGINS, captureStderr, runSession } from './support.ts';

/** Two sessions with `logging/connection_id ARGS`; what went to stderr, and the app. */
async function twoSessions(line: string, after?: (t: TestApp) => void): Promise<string[]> {
  const t = await testApp({ config: { plugins: ['chatty'], logging: [line] }, plugins: CHATTY_PLUGINS });
  const stderr = captureStderr();
  try {
    await runSession(t);
    await runSession(t);
    after?.(t);
  } finally {
    stderr.restore();
    await t.cleanup();
  }
  return stderr.lines();
}

describe('logging/connection_id', () => {
  it('starts each line with the connection id instead of the PID; LOGWARN by default', async () => {
    const lines = await twoSessions('logging/connection_id', (t) => t.app.log(LOGWARN, 'outside a session'));
    const ids = lines.filter((l) => l.includes('chatty:')).map((l) => l.split(' ')[0]);
    assert.equal(ids.length, 4, lines.join('\n'));
    assert.match(ids[0]!, new RegExp(`^${process.pid}\\.\\d+$`));
    // The same id for the lines of one connection, another one for the next.
    assert.equal(ids[0], ids[1]);
    assert.equal(ids[2], ids[3]);
    assert.notEqual(ids[0], ids[2]);
    assert.equal(lines[0], `${ids[0]} (ehlo) chatty: ehlo warn`);
    assert.equal(lines[1], `${ids[0]} (ehlo) chatty: first line`);
    assert.equal(lines[2], 'second line');
    assert.equal(lines[lines.length - 1], '??? outside a session');
  });

  it('takes a level in qpsmtpd\'s form or as loglevel LEVEL; bad arguments are load errors', async () => {
    for (const line of ['logging/connection_id LOGINFO', 'logging/connection_id loglevel 6']) {
      const lines = await twoSessions(line);
      assert.ok(lines.some((l) => / \(ehlo\) chatty: ehlo info client\.example$/.test(l)), lines.join('\n'));
      assert.ok(!lines.some((l) => l.includes('ehlo debug')));
    }
    for (const line of ['logging/connection_id LOUD', 'logging/connection_id 4 5']) {
      await assert.rejects(testApp({ config: { logging: [line], plugins: ['chatty'] }, plugins: CHATTY_PLUGINS }), LoadFailure, line);
    }
  });
});
