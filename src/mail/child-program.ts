/**
 * Running a delivery program for a queue plugin (qmail-queue, `exim -bS`, a pipe): started
 * directly, never through a shell; given its input on one or more descriptors; its output
 * collected up to a cap; killed with SIGKILL at a time limit or when the hook's signal aborts.
 *
 * Descriptors: those named in `input` or `collect` are pipes, the others up to the highest one
 * named are /dev/null. Inputs are written in the order given, each closed after its data (a
 * program that stops reading makes the writing fail, EPIPE: that is reported, never thrown).
 * The run is over when the program has exited and its pipes are closed: without `processGroup`,
 * a process it started that keeps them open (and is not killed with it) holds the run up.
 */
import { spawn } from 'node:child_process';
import { Buffer } from 'node:buffer';
import type { Readable, Writable } from 'node:stream';
import { deadline } from '../util/deadline.ts';

export interface ProgramInput {
  /** The descriptor: 0 for standard input; qmail-queue reads its envelope on 1. */
  readonly fd: number;
  /** Makes the data, once the program has started (so a message is not opened for nothing). */
  readonly data: () => AsyncIterable<Buffer | string> | Iterable<Buffer | string>;
}

export interface ProgramOptions {
  /** The program's path (no shell, no PATH search for a path with a slash). */
  readonly command: string;
  readonly args?: readonly string[];
  /** Its whole environment. */
  readonly env: Readonly<Record<string, string>>;
  /** How long it may run, in ms; then it is killed. */
  readonly timeoutMs: number;
  /** Kills it too when aborted (the hook's signal). */
  readonly signal?: AbortSignal;
  /** Run it in a process group of its own and kill the whole group (what a shell script started too). */
  readonly processGroup?: boolean;
  /** What to write, in order; each descriptor is closed after its data. */
  readonly input?: readonly ProgramInput[];
  /** Descriptors whose output is kept, with the most bytes kept of each (the rest is read and dropped). */
  readonly collect?: Readonly<Record<number, number>>;
}

/** A program that could not be started (no such file, not executable, ...). */
export interface ProgramNotStarted {
  readonly started: false;
  readonly error: Error;
}

/** A program that ran. */
export interface ProgramRan {
  readonly started: true;
  readonly pid: number;
  /** Its exit code, or null when a signal ended it. */
  readonly code: number | null;
  /** The signal that ended it, or null. */
  readonly signal: NodeJS.Signals | null;
  /** Killed at the time limit or because the signal aborted. */
  readonly killed: boolean;
  /** Why not all of the input was written (the program stopped reading, the message failed, ...). */
  readonly inputError: Error | undefined;
  /** The collected output of a descriptor (empty if it was not collected). */
  output(fd: number): Buffer;
}

export type ProgramRun = ProgramNotStarted | ProgramRan;

/** Run the program to its end; see the module comment. Never rejects. */
export async function runProgram(options: ProgramOptions): Promise<ProgramRun> {
  const inputs = options.input ?? [];
  const limits = new Map(Object.entries(options.collect ?? {}).map(([fd, limit]) => [Number(fd), limit]));
  const used = new Set([...inputs.map((i) => i.fd), ...limits.keys()]);
  const stdio: ('pipe' | 'ignore')[] = [];
  for (let fd = 0; fd <= Math.max(2, ...used); fd++) stdio.push(used.has(fd) ? 'pipe' : 'ignore');

  // Not AbortSignal.any with AbortSignal.timeout: see util/deadline.ts.
  const timeLimit = deadline(options.timeoutMs, options.signal);
  const signal = timeLimit.signal;
  const release = timeLimit.release;
  const child = spawn(options.command, options.args ?? [], { stdio, env: options.env, detached: options.processGroup === true });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, sig) => resolve({ code, signal: sig })));
  const startError = await new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined));
    child.once('error', (err) => resolve(err));
  });
  if (startError !== undefined) {
    release();
    return { started: false, error: startError };
  }

  const pipes = child.stdio as unknown as (Readable | null)[];
  const collected = new Map<number, Promise<Buffer>>();
  for (const [fd, limit] of limits) {
    const stream = pipes[fd];
    if (stream) collected.set(fd, collect(stream, limit));
  }
  let killed = false;
  const kill = (): void => {
    killed = true;
    if (options.processGroup === true) {
      try {
        process.kill(-child.pid!, 'SIGKILL');
        return;
      } catch {
        // Not a group (yet): the program alone.
      }
    }
    child.kill('SIGKILL');
  };
  signal.addEventListener('abort', kill, { once: true });
  if (signal.aborted) kill();

  const writables = inputs.map((i) => pipes[i.fd] as unknown as Writable);
  // A pipe the program closed may report EPIPE at any time: never let that be an uncaught error.
  const ignore = (): void => undefined;
  for (const w of writables) w.on('error', ignore);
  let inputError: Error | undefined;
  try {
    for (const [i, input] of inputs.entries()) await writeAll(writables[i]!, input.data(), signal);
  } catch (err) {
    inputError = err instanceof Error ? err : new Error(String(err));
    for (const w of writables) w.destroy();
  }
  const { code, signal: killedBy } = await exited;
  signal.removeEventListener('abort', kill);
  release();
  const outputs = new Map<number, Buffer>();
  for (const [fd, promise] of collected) outputs.set(fd, await promise);
  return {
    started: true,
    pid: child.pid ?? 0,
    code,
    signal: killedBy,
    killed,
    inputError,
    output: (fd) => outputs.get(fd) ?? Buffer.alloc(0),
  };
}

/** Up to `limit` bytes of a stream; the rest is read and dropped. Resolves when it closes. */
function collect(stream: Readable, limit: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      if (size < limit) parts.push(chunk.subarray(0, limit - size));
      size += chunk.length;
    });
    stream.on('error', () => resolve(Buffer.concat(parts)));
    stream.on('close', () => resolve(Buffer.concat(parts)));
  });
}

/** Every chunk into `stream` (the signal checked before each), then end it; throws when a write fails. */
async function writeAll(stream: Writable, data: AsyncIterable<Buffer | string> | Iterable<Buffer | string>, signal: AbortSignal): Promise<void> {
  for await (const chunk of data) {
    signal.throwIfAborted();
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    if (bytes.length > 0) await write(stream, bytes);
  }
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    stream.once('error', onError);
    stream.end(() => {
      stream.off('error', onError);
      resolve();
    });
  });
}

function write(stream: Writable, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    stream.once('error', onError);
    const ok = stream.write(data, (err) => {
      stream.off('error', onError);
      if (err) reject(err);
      else if (ok) resolve();
    });
    if (!ok) stream.once('drain', () => resolve());
  });
}
