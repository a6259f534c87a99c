/** The session's input queue: reads without waiting, the waiting callback, time-outs, stop, backpressure. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Conn } from '../../src/session/conn.ts';
import { Input, STOPPING, TIMED_OUT, WAIT, type ReadResult } from '../../src/session/input.ts';

/** Only pause and resume matter to Input; the rest is never called. */
function fakeConn(): Conn & { paused: number; resumed: number } {
  const conn = {
    paused: 0,
    resumed: 0,
    pause() {
      conn.paused++;
    },
    resume() {
      conn.resumed++;
    },
  };
  return conn as unknown as Conn & { paused: number; resumed: number };
}

test('ready: queued chunks in order, then WAIT; null once the input ended and is drained', () => {
  const input = new Input(fakeConn());
  assert.equal(input.ready(false), WAIT);
  input.data(Buffer.from('a'));
  input.data(Buffer.from('b'));
  assert.equal(String(input.ready(false)), 'a');
  assert.equal(String(input.ready(false)), 'b');
  assert.equal(input.ready(false), WAIT);
  input.data(Buffer.from('c'));
  input.end();
  assert.equal(String(input.ready(false)), 'c');
  assert.equal(input.ready(false), null);
  input.close();
});

test('await: the next chunk reaches the callback once, in the data event itself', () => {
  const input = new Input(fakeConn());
  const got: ReadResult[] = [];
  input.await(60_000, false, (r) => got.push(r));
  input.data(Buffer.from('first'));
  assert.deepEqual(got.map(String), ['first']);
  // The callback was used up: the next chunk is queued, not delivered.
  input.data(Buffer.from('second'));
  assert.equal(got.length, 1);
  assert.equal(String(input.ready(false)), 'second');
  input.close();
});

test('await: a callback may wait again from inside itself (the session reads line after line)', () => {
  const input = new Input(fakeConn());
  const got: string[] = [];
  const onResult = (r: ReadResult): void => {
    got.push(String(r));
    if (got.length < 3) input.await(60_000, false, onResult);
  };
  input.await(60_000, false, onResult);
  for (const part of ['x', 'y', 'z', 'rest']) input.data(Buffer.from(part));
  assert.deepEqual(got, ['x', 'y', 'z']);
  assert.equal(String(input.ready(false)), 'rest');
  input.close();
});

test('await: silence past the time-out gives TIMED_OUT; close() wakes a waiter with null', async () => {
  const input = new Input(fakeConn());
  // The idle timer is unref'd (the connection keeps a daemon alive, not the timer): hold the test open.
  const keepAlive = setTimeout(() => undefined, 5000);
  const timedOut = await new Promise<ReadResult>((resolve) => input.await(20, false, resolve));
  clearTimeout(keepAlive);
  assert.equal(timedOut, TIMED_OUT);
  const closed = new Promise<ReadResult>((resolve) => input.await(60_000, false, resolve));
  input.close();
  assert.equal(await closed, null);
});

test('interrupt: wakes an interruptible waiter with STOPPING, leaves a non-interruptible one waiting', async () => {
  const input = new Input(fakeConn());
  const stopped = new Promise<ReadResult>((resolve) => input.await(60_000, true, resolve));
  input.interrupt();
  assert.equal(await stopped, STOPPING);
  // From now on an interruptible read stops at once; a non-interruptible one (DATA) still waits.
  assert.equal(input.ready(true), STOPPING);
  assert.equal(input.ready(false), WAIT);
  const data = input.read(60_000, false);
  assert.ok(data instanceof Promise);
  input.data(Buffer.from('body'));
  assert.equal(String(await data), 'body');
  input.close();
});

test('past the high-water mark the transport is paused, and resumed once half of it was read', () => {
  const conn = fakeConn();
  const input = new Input(conn, 10);
  input.data(Buffer.alloc(6));
  assert.equal(conn.paused, 0);
  input.data(Buffer.alloc(6));
  assert.equal(conn.paused, 1);
  input.ready(false);
  assert.equal(conn.resumed, 0, '6 bytes left: still above half of 10');
  input.ready(false);
  assert.equal(conn.resumed, 1);
  input.close();
});
