/**
 * One connection to a milter: commands out, replies in, each wait bounded by a time limit and by
 * the hook's AbortSignal. The caller opens the socket (in the core only src/transport opens
 * sockets; a plugin passes the connected one).
 *
 * Every failure of the link — no reply in time, the milter closed the connection, bytes that are
 * no milter packet, a reply that is no valid one, the signal aborted — is a MilterError, and once
 * the link has failed every later call fails the same way (the socket is destroyed: a milter
 * conversation cannot be picked up again in the middle).
 */
import type { Duplex } from 'node:stream';
import { encodeCommand, type MilterCommand } from './commands.ts';
import { PacketReader } from './packets.ts';
import { decodeResponse, type MilterResponse } from './responses.ts';

export class MilterError extends Error {}

/** How long a call may wait, and what else may end it. */
export interface Deadline {
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
}

/** Replies held before the socket is paused (a milter sending a large new body). */
const HIGH_WATER = 32;

export class MilterLink {
  private readonly reader = new PacketReader();
  private readonly queue: MilterResponse[] = [];
  private failure: MilterError | undefined;
  /** Woken by a new reply, a failure or a drain. */
  private wake: (() => void) | undefined;
  private paused = false;

  constructor(
    private readonly socket: Duplex,
    /** In error texts: `the milter inet:8891@127.0.0.1`. */
    private readonly peer = 'the milter',
  ) {
    socket.on('data', (chunk: Buffer) => this.received(chunk));
    socket.on('error', (err: Error) => this.fail(`${this.peer}: ${err.message}`));
    socket.on('close', () => this.fail(`${this.peer} closed the connection`));
    socket.on('drain', () => this.poke());
  }

  /** Set once the link has failed (why). */
  get error(): MilterError | undefined {
    return this.failure;
  }

  private received(chunk: Buffer): void {
    const { packets, error } = this.reader.push(chunk);
    for (const packet of packets) {
      const response = decodeResponse(packet);
      if ('error' in response) {
        this.fail(`${this.peer} sent a ${response.error}`);
        return;
      }
      this.queue.push(response);
    }
    if (error !== undefined) {
      this.fail(`${this.peer} sent ${error}`);
      return;
    }
    if (this.queue.length >= HIGH_WATER && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
    this.poke();
  }

  private poke(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Break the link for good (the reason is what every later call throws). */
  fail(reason: string): void {
    if (this.failure) return;
    this.failure = new MilterError(reason);
    this.queue.length = 0;
    this.socket.destroy();
    this.poke();
  }

  /** Close without a word (after QUIT, or to give up). */
  close(): void {
    if (!this.failure) this.failure = new MilterError(`the connection to ${this.peer} was closed`);
    this.socket.destroy();
    this.poke();
  }

  /** Write commands; waits while the socket's buffer is full. */
  async send(commands: readonly MilterCommand[], deadline: Deadline): Promise<void> {
    if (this.failure) throw this.failure;
    const bytes = commands.length === 1 ? encodeCommand(commands[0]!) : Buffer.concat(commands.map(encodeCommand));
    if (this.socket.write(bytes)) return;
    await this.waitUntil(() => this.socket.writableNeedDrain !== true, deadline, 'could not write to');
  }

  /**
   * The next reply. A `progress` reply is returned too (the caller starts a new wait with it:
   * that is what progress is for).
   */
  async next(deadline: Deadline): Promise<MilterResponse> {
    await this.waitUntil(() => this.queue.length > 0, deadline, 'no reply from');
    const response = this.queue.shift()!;
    if (this.paused && this.queue.length < HIGH_WATER / 2) {
      this.paused = false;
      this.socket.resume();
    }
    return response;
  }

  private async waitUntil(ready: () => boolean, { timeoutMs, signal }: Deadline, what: string): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (this.failure) throw this.failure;
      if (ready()) return;
      if (signal.aborted) {
        this.fail('the hook ran out of time (plugin_timeout)');
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => this.fail(`${what} ${this.peer} within ${timeoutMs / 1000} s`), Math.max(0, end - Date.now()));
        const onAbort = (): void => this.fail('the hook ran out of time (plugin_timeout)');
        signal.addEventListener('abort', onAbort, { once: true });
        this.wake = () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
      });
    }
  }
}
