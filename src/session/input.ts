/**
 * Input from the client as a pull queue: the session asks for the next chunk and waits at most the
 * idle timeout. Past `highWater` buffered bytes the transport is paused, so a client that sends
 * faster than we store cannot fill our memory.
 */
import type { Conn, InputSink } from './conn.ts';

export const TIMED_OUT = Symbol('timed out');
export const STOPPING = Symbol('stopping');
export type ReadResult = Buffer | null | typeof TIMED_OUT | typeof STOPPING;
/** `ready()`: nothing to read yet. */
export const WAIT = Symbol('wait');

export class Input implements InputSink {
  private chunks: Buffer[] = [];
  private head = 0;
  private queued = 0;
  private ended = false;
  private paused = false;
  private waiter: ((result: ReadResult) => void) | undefined;
  /**
   * The idle timer: one per session, re-armed (`refresh`) by every read rather than made anew, as
   * a session reads a dozen times. A read that ends before it fires leaves it running; firing with
   * no read waiting does nothing. `close()` stops it.
   */
  private timer: NodeJS.Timeout | undefined;
  private timerMs = 0;
  private readonly onTimeout = (): void => this.wake(TIMED_OUT);
  private stopRequested = false;
  /** Whether the pending read may be woken by `interrupt()`. */
  private interruptible = false;
  /** Someone waiting in `waitForInput`. */
  private watcher: ((arrived: boolean) => void) | undefined;

  constructor(
    private readonly conn: Conn,
    private readonly highWater = 1024 * 1024,
  ) {}

  data(chunk: Buffer): void {
    this.watcher?.(true);
    if (this.waiter) {
      this.wake(chunk);
      return;
    }
    this.chunks.push(chunk);
    this.queued += chunk.length;
    if (!this.paused && this.queued > this.highWater) {
      this.paused = true;
      this.conn.pause();
    }
  }

  end(): void {
    this.ended = true;
    this.watcher?.(false);
    if (this.waiter && this.head >= this.chunks.length) this.wake(null);
  }

  /** True when received bytes wait to be read. */
  get hasPending(): boolean {
    return this.head < this.chunks.length;
  }

  /**
   * The next chunk; null at end of input; TIMED_OUT after `timeoutMs` of silence; STOPPING when
   * `interrupt()` was called while waiting (graceful shutdown).
   */
  read(timeoutMs: number, interruptible: boolean): ReadResult | Promise<ReadResult> {
    const now = this.ready(interruptible);
    if (now !== WAIT) return now;
    return new Promise<ReadResult>((resolve) => this.await(timeoutMs, interruptible, resolve));
  }

  /** What a read gets without waiting, or WAIT when it would have to wait. */
  ready(interruptible: boolean): ReadResult | typeof WAIT {
    if (this.head < this.chunks.length) return this.shift();
    if (this.ended) return null;
    if (interruptible && this.stopRequested) return STOPPING;
    return WAIT;
  }

  /**
   * Have `deliver` called once with the next result, when it comes (after `ready` said WAIT). A
   * callback rather than a promise: the session's command loop waits here for every command, and
   * a callback spares it a promise and a microtask hop each time. `deliver` runs inside the
   * transport's data event or the timer: it must not throw.
   */
  await(timeoutMs: number, interruptible: boolean, deliver: (result: ReadResult) => void): void {
    this.waiter = deliver;
    this.interruptible = interruptible;
    this.armTimer(timeoutMs);
  }

  /** The session is over: no more reads, no timer left holding it in memory. */
  close(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.wake(null);
  }

  private armTimer(ms: number): void {
    if (this.timer !== undefined && this.timerMs === ms) {
      this.timer.refresh();
      return;
    }
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerMs = ms;
    // The connection keeps the process alive, not the idle timer.
    this.timer = setTimeout(this.onTimeout, ms).unref();
  }

  /** Resolve true as soon as input is there, false after `ms` without any (for early-talker checks). */
  waitForInput(ms: number): Promise<boolean> {
    if (this.hasPending || this.ended) return Promise.resolve(this.hasPending);
    return new Promise((resolve) => {
      const finish = (value: boolean): void => {
        clearTimeout(timer);
        this.watcher = undefined;
        resolve(value);
      };
      const timer = setTimeout(() => finish(false), ms);
      this.watcher = finish;
    });
  }

  /** Graceful stop: a session waiting for its next command is woken with STOPPING. */
  interrupt(): void {
    this.stopRequested = true;
    if (this.waiter && this.interruptible) this.wake(STOPPING);
  }

  /** Drop everything buffered (after STARTTLS). */
  discard(): void {
    this.chunks = [];
    this.head = 0;
    this.queued = 0;
    this.resumeIfLow();
  }

  private shift(): Buffer {
    const chunk = this.chunks[this.head]!;
    this.chunks[this.head] = EMPTY;
    this.head++;
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
    }
    this.queued -= chunk.length;
    this.resumeIfLow();
    return chunk;
  }

  private resumeIfLow(): void {
    if (this.paused && this.queued <= this.highWater / 2) {
      this.paused = false;
      this.conn.resume();
    }
  }

  private wake(result: ReadResult): void {
    const waiter = this.waiter;
    if (!waiter) return;
    this.waiter = undefined;
    waiter(result);
  }
}

const EMPTY = Buffer.alloc(0);
