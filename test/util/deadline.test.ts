import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { getEventListeners } from 'node:events';
import { DeadlineExceeded, deadline } from '../../src/util/deadline.ts';

test('fires after its time even when nothing else holds the signal and the heap is collected', async () => {
  // Its timer does not hold the process open (a daemon has its sockets for that): this test does.
  const keepAlive = setInterval(() => undefined, 1000);
  const fired = new Promise<unknown>((resolve) => {
    const { signal } = deadline(50);
    signal.addEventListener('abort', () => resolve(signal.reason), { once: true });
  });
  // What AbortSignal.any + AbortSignal.timeout loses on Node 20: collect while waiting.
  for (let i = 0; i < 5; i++) {
    (globalThis as { gc?: () => void }).gc?.();
    await tick();
  }
  const reason = await fired;
  clearInterval(keepAlive);
  assert.ok(reason instanceof DeadlineExceeded);
  assert.equal(reason.ms, 50);
});

test("fires with the outer signal's reason when that comes first; release stops both", async () => {
  const outer = new AbortController();
  const limit = deadline(10_000, outer.signal);
  outer.abort(new Error('hook timed out'));
  assert.equal(limit.signal.aborted, true);
  assert.equal((limit.signal.reason as Error).message, 'hook timed out');
  limit.release();

  const already = deadline(10_000, AbortSignal.abort('gone'));
  assert.equal(already.signal.reason, 'gone');
  already.release();

  const released = deadline(20);
  released.release();
  await new Promise((resolve) => setTimeout(resolve, 60)); // a ref'd timer: the process waits
  assert.equal(released.signal.aborted, false);
});

test('whichever ends it first lets go of the other: the outer signal stops the timer, the timer stops the listening', async () => {
  const cleared: unknown[] = [];
  const realClear = globalThis.clearTimeout;
  globalThis.clearTimeout = ((timer?: Parameters<typeof clearTimeout>[0]) => {
    cleared.push(timer);
    realClear(timer);
  }) as typeof clearTimeout;
  try {
    const outer = new AbortController();
    deadline(10_000, outer.signal);
    outer.abort(new Error('hook timed out'));
    assert.equal(cleared.length, 1, 'the timer was cleared when the outer signal fired');
  } finally {
    globalThis.clearTimeout = realClear;
  }

  const outer = new AbortController();
  const limit = deadline(20, outer.signal);
  assert.equal(getEventListeners(outer.signal, 'abort').length, 1);
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.ok(limit.signal.reason instanceof DeadlineExceeded);
  assert.equal(getEventListeners(outer.signal, 'abort').length, 0, 'no listener left on the outer signal');
});
