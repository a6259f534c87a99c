import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LoadFailure } from '../../../src/app.ts';
import { LOGWARN } from '../../../src/log/levels.ts';
import { testApp } from '../../helpers/test-app.ts';
import { CHATTY_PLUGINS, captureStderr, runSession } from './support.ts';

describe('logging/transaction_id', () => {
  it('starts each line with the transaction id; a new id after each transaction', async () => {
    const t = await testApp({ config: { plugins: ['chatty'], logging: ['logging/transaction_id LOGINFO'] }, plugins: CHATTY_PLUGINS });
    const stderr = captureStderr();
    try {
      // NOOP before and after RSET: the RSET starts a new transaction.
      await runSession(t, ['EHLO client.example', 'NOOP', 'RSET', 'NOOP']);
      t.app.log(LOGWARN, 'outside a session');
    } finally {
      stderr.restore();
      await t.cleanup();
    }
    const lines = stderr.lines();
    const noop = lines.filter((l) => l.endsWith(' (noop) chatty: noop info')).map((l) => l.split(' ')[0]!);
    assert.equal(noop.length, 2, lines.join('\n'));
    assert.match(noop[0]!, new RegExp(`^${process.pid}\\.\\d+\\.\\d+$`));
    assert.notEqual(noop[0], noop[1]);
    // The connection part is the same.
    assert.equal(noop[0]!.replace(/\.\d+$/, ''), noop[1]!.replace(/\.\d+$/, ''));
    assert.ok(lines.includes('??? outside a session'), lines.join('\n'));
    assert.ok(!lines.some((l) => l.includes('ehlo debug')));
  });

  it('bad arguments are load errors', async () => {
    for (const line of ['logging/transaction_id LOUD', 'logging/transaction_id loglevel']) {
      await assert.rejects(testApp({ config: { logging: [line], plugins: ['chatty'] }, plugins: CHATTY_PLUGINS }), LoadFailure, line);
    }
  });
});
