/**
 * Shared pieces of the hardening suite: a raw SMTP connection that keeps every byte the server
 * sent (so a test can assert the whole transcript, not just the replies it asked for), writes
 * split into separate TCP segments, the Maildir as file names, and the daemon's memory from /proc.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { DataFramer } from '../../src/protocol/data-framer.ts';

export interface RawReply {
  readonly code: number;
  /** The text of the last line (code and separator removed). */
  readonly text: string;
  readonly raw: string;
}

const sockets = new Set<Socket>();

/** Destroy every RawSession socket still open; for `after` hooks. */
export function closeAllRaw(): void {
  for (const s of sockets) s.destroy();
  sockets.clear();
}

export const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One connection to the daemon. Nagle is off, and `sendSegments` waits between writes until each
 * write has been handed to the kernel, then a little longer, so loopback TCP really delivers each
 * piece in a segment of its own (and the daemon reads it with a read of its own).
 */
export class RawSession {
  /** Everything the server sent, as latin1 text (one char per byte). */
  received = '';
  closed = false;
  /** The complete replies in `received`, parsed as they arrive. */
  readonly replies: RawReply[] = [];
  private parsedUpTo = 0;
  private consumed = 0;
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: Socket) {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.setEncoding('latin1');
    socket.on('data', (s: string) => {
      this.received += s;
      const { replies, rest } = parseReplies(this.received.slice(this.parsedUpTo));
      for (const r of replies) this.replies.push(r);
      this.parsedUpTo = this.received.length - rest.length;
      this.poke();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      sockets.delete(socket);
      this.poke();
    });
  }

  static open(port: number): Promise<RawSession> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1' });
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawSession(socket));
      });
      socket.once('error', reject);
    });
  }

  /** Write and resolve once the bytes are handed to the kernel. */
  write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.write(bytes, () => resolve());
    });
  }

  /** Each piece in a write of its own, `gapMs` apart. */
  async sendSegments(pieces: readonly (string | Uint8Array)[], gapMs = 4): Promise<void> {
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (piece.length === 0) continue;
      await this.write(piece);
      if (i < pieces.length - 1) await pause(gapMs);
    }
  }

  /** The next reply not yet taken by `reply()`. */
  async reply(timeoutMs = 5000): Promise<RawReply> {
    await this.until(() => this.replies.length > this.consumed, 'a reply', timeoutMs);
    return this.replies[this.consumed++]!;
  }

  /** Mark every reply received so far as read: the next `reply()` is a later one. */
  consumeAll(): void {
    this.consumed = this.replies.length;
  }

  /** Send a command line and read its reply. */
  async command(line: string, timeoutMs?: number): Promise<RawReply> {
    await this.write(line + '\r\n');
    return this.reply(timeoutMs);
  }

  /** Send a command line; its reply must have `code`. */
  async expect(line: string, code: number): Promise<RawReply> {
    const r = await this.command(line);
    if (r.code !== code) throw new Error(`${JSON.stringify(line)}: expected ${code}, got ${JSON.stringify(r.raw)}`);
    return r;
  }

  /** Wait until the server closed the connection. */
  waitClosed(timeoutMs = 5000): Promise<void> {
    return this.until(() => this.closed, 'the server to close the connection', timeoutMs);
  }

  async until(test: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!test()) {
      const left = deadline - Date.now();
      if (left <= 0 || (this.closed && !test())) {
        throw new Error(`${this.closed ? 'connection closed' : `timed out after ${timeoutMs} ms`} waiting for ${what}; received ${JSON.stringify(this.received.slice(-600))}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.push(done);
      });
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** A TCP RST instead of a FIN. */
  reset(): void {
    this.socket.resetAndDestroy();
  }

  private poke(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** The complete replies in `text`, and the bytes of an incomplete one after them. */
export function parseReplies(text: string): { replies: RawReply[]; rest: string } {
  const replies: RawReply[] = [];
  let start = 0;
  let offset = 0;
  for (;;) {
    const end = text.indexOf('\r\n', offset);
    if (end === -1) break;
    const line = text.slice(offset, end);
    offset = end + 2;
    if (line.length < 4 || line[3] === ' ') {
      replies.push({ code: Number(line.slice(0, 3)), text: line.slice(4), raw: text.slice(start, offset) });
      start = offset;
    }
  }
  return { replies, rest: text.slice(start) };
}

/** The file names in a Maildir's new/ and tmp/ (missing folders count as empty). */
export function maildirState(maildir: string): { new: string[]; tmp: string[] } {
  const list = (sub: string): string[] => {
    const dir = join(maildir, sub);
    return existsSync(dir) ? readdirSync(dir).sort() : [];
  };
  return { new: list('new'), tmp: list('tmp') };
}

/** The contents of the files in a Maildir's new/, as latin1 (byte for byte), oldest name first. */
export function maildirFiles(maildir: string): string[] {
  return maildirState(maildir).new.map((name) => readFileSync(join(maildir, 'new', name), 'latin1'));
}

/** The body of a delivered file: everything after the first empty line (the file has LF line ends). */
export function bodyOf(file: string): string {
  const at = file.indexOf('\n\n');
  if (at === -1) throw new Error(`no empty line in ${JSON.stringify(file.slice(0, 300))}`);
  return file.slice(at + 2);
}

/** VmRSS and VmHWM of a process, in KiB. */
export function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!m) throw new Error(`no ${name} in /proc/${pid}/status`);
    return Number(m[1]);
  };
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

/**
 * What the pure framer makes of the bytes sent after the 354: where the message ends (the offset
 * just past the terminator, or -1), the bare CR/LF count, and the message as the Maildir would
 * store it (CRLF made LF), for the given policy.
 */
export function frame(wire: Uint8Array, policy: 'reject' | 'normalize'): { end: number; bare: number; stored: string } {
  const parts: Buffer[] = [];
  const framer = new DataFramer((p) => parts.push(Buffer.from(p)), policy === 'normalize' ? 'normalize' : 'keep');
  const rest = framer.feed(Buffer.from(wire));
  const stored = Buffer.concat(parts).toString('latin1').replace(/\r\n/g, '\n');
  return { end: rest === undefined ? -1 : wire.length - rest.length, bare: framer.bareLineEnds, stored };
}

/** A deterministic PRNG (mulberry32): the same "random" numbers in [0, 1) on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
