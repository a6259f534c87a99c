#!/usr/bin/env node
// Memory of the daemon under hostile loads: `npm run memory` (after `npm run build`; not part of
// `npm test`). It starts bin/qpsmtpd on 127.0.0.1 with a throw-away config (relay, rcpt_ok for
// example.test, queue/maildir into a temp folder), runs each load, and prints the daemon's VmRSS
// (resident now) and VmHWM (peak since start) from /proc/PID/status, plus the highest VmRSS sampled
// every 20 ms during the load. These are measurements, not a pass/fail test.
//
//   idle               after the start, and after one small message
//   50 MB message      one message of 50 MB (the growth must be far below 50 MB: the body is spooled)
//   slowloris          200 connections, each sending one byte a second for 10 s (half of them in DATA)
//   10k NOOPs          one write of 10000 pipelined NOOPs, all answered
//   100k-line header   a message whose header block has 100000 lines (what does the daemon do?)
//
// Options: --keep (leave the temp folder), --slow-seconds N (default 10), --connections N (200),
// --message-mb N (50), --only WORD (run only the loads whose name contains WORD, after the idle ones).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PROJECT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(PROJECT, 'bin', 'qpsmtpd');
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i === -1 ? fallback : Number(args[i + 1]);
};
const KEEP = args.includes('--keep');
const SLOW_SECONDS = option('--slow-seconds', 10);
const SLOW_CONNECTIONS = option('--connections', 200);
const MESSAGE_MB = option('--message-mb', 50);
const ONLY = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;

const MB = 1024 * 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- the daemon ---------------------------------------------------------------------------------

const root = mkdtempSync(join(tmpdir(), 'qpsmtpd-memory-'));
const config = join(root, 'config');
mkdirSync(config);
const files = {
  plugins: 'relay\nrcpt_ok\nqueue/maildir var/maildir\n',
  rcpthosts: 'example.test\n',
  loglevel: '5\n',
  spool_dir: 'var/spool\n',
  // Enough for the slowloris load to be served rather than refused at the door (the default per
  // address is lower): this measures what the sessions cost, not the connection limit.
  max_connections_per_ip: `${SLOW_CONNECTIONS + 50}\n`,
};
for (const [name, content] of Object.entries(files)) writeFileSync(join(config, name), content);
const maildir = join(root, 'var', 'maildir');

const daemon = spawn(process.execPath, [BIN, '--config', config, '--listen', '127.0.0.1:0'], {
  cwd: PROJECT,
  env: { ...process.env, QPSMTPD_CONFIG: undefined, RELAYCLIENT: undefined },
  stdio: ['ignore', 'ignore', 'pipe'],
});
let stderr = '';
daemon.stderr.setEncoding('utf8');
daemon.stderr.on('data', (s) => (stderr += s));
const exited = new Promise((resolve) => daemon.on('exit', (code, signal) => resolve({ code, signal })));

async function cleanup() {
  if (daemon.exitCode === null && daemon.signalCode === null) {
    daemon.kill('SIGTERM');
    const timer = setTimeout(() => daemon.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
  if (KEEP) console.log(`kept ${root}`);
  else rmSync(root, { recursive: true, force: true });
}

async function listeningPort() {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const m = /listening on 127\.0\.0\.1:(\d+)/.exec(stderr);
    if (m) return Number(m[1]);
    if (daemon.exitCode !== null) throw new Error(`the daemon exited (${daemon.exitCode}):\n${stderr}`);
    if (Date.now() > deadline) throw new Error(`the daemon did not start:\n${stderr}`);
    await sleep(20);
  }
}

// ---- memory -------------------------------------------------------------------------------------

function memory() {
  const status = readFileSync(`/proc/${daemon.pid}/status`, 'utf8');
  const kb = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

const mb = (kb) => `${(kb / 1024).toFixed(1)} MB`;

/** Run `load` while sampling VmRSS every 20 ms; print before, peak during, after. */
async function measure(name, load) {
  if (ONLY !== undefined && !name.startsWith('idle') && !name.includes(ONLY)) return;
  const before = memory();
  let peak = before.rss;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, memory().rss);
    } catch {
      // the daemon is gone: reported below
    }
  }, 20);
  const started = Date.now();
  let note = '';
  try {
    note = (await load()) ?? '';
  } finally {
    clearInterval(sampler);
  }
  const afterwards = memory();
  peak = Math.max(peak, afterwards.rss);
  const row = {
    load: name,
    'RSS before': mb(before.rss),
    'RSS peak during': mb(peak),
    'growth (peak - before)': mb(peak - before.rss),
    'RSS after': mb(afterwards.rss),
    'HWM after': mb(afterwards.hwm),
    seconds: ((Date.now() - started) / 1000).toFixed(1),
  };
  rows.push(row);
  console.log(`${name}: RSS ${row['RSS before']} -> peak ${row['RSS peak during']} (+${row['growth (peak - before)']}), after ${row['RSS after']}, VmHWM ${row['HWM after']}${note ? `; ${note}` : ''}`);
}

const rows = [];

// ---- a small SMTP client ------------------------------------------------------------------------

class Client {
  constructor(socket) {
    this.socket = socket;
    this.buffer = '';
    this.replies = [];
    this.closed = false;
    this.waiters = [];
    socket.setEncoding('latin1');
    socket.on('data', (s) => {
      this.buffer += s;
      let end;
      while ((end = this.findReplyEnd()) !== -1) {
        this.replies.push(this.buffer.slice(0, end));
        this.buffer = this.buffer.slice(end);
      }
      this.poke();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.poke();
    });
  }

  static open(port) {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1' });
      socket.once('connect', () => resolve(new Client(socket)));
      socket.once('error', reject);
    });
  }

  /** The end offset of the first complete reply in the buffer, or -1. */
  findReplyEnd() {
    let offset = 0;
    for (;;) {
      const end = this.buffer.indexOf('\r\n', offset);
      if (end === -1) return -1;
      const line = this.buffer.slice(offset, end);
      offset = end + 2;
      if (line.length < 4 || line[3] === ' ') return offset;
    }
  }

  poke() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  async waitReplies(count, timeoutMs = 60_000) {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length < count) {
      if (this.closed) throw new Error(`closed after ${this.replies.length} replies: ${JSON.stringify(this.replies.slice(-3))}`);
      if (Date.now() > deadline) throw new Error(`timed out after ${this.replies.length} replies`);
      await new Promise((r) => {
        const t = setTimeout(r, 200);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.replies;
  }

  async next(timeoutMs) {
    const n = (this.taken ?? 0) + 1;
    await this.waitReplies(n, timeoutMs);
    this.taken = n;
    return this.replies[n - 1];
  }

  /** Write, respecting backpressure. */
  write(data) {
    return new Promise((resolve) => {
      if (this.socket.write(data)) resolve();
      else this.socket.once('drain', resolve);
    });
  }

  async command(line, expect) {
    await this.write(line + '\r\n');
    const reply = await this.next();
    if (expect !== undefined && !reply.startsWith(String(expect))) throw new Error(`${line}: expected ${expect}, got ${reply}`);
    return reply;
  }

  async greet() {
    const greeting = await this.next();
    if (!greeting.startsWith('220')) throw new Error(`greeting: ${greeting}`);
    await this.command('EHLO memory.example', 250);
  }

  async envelope() {
    await this.command('MAIL FROM:<bench@sender.example>', 250);
    await this.command('RCPT TO:<u@example.test>', 250);
    await this.command('DATA', 354);
  }

  close() {
    this.socket.destroy();
  }
}

function newestMessageSize() {
  const dir = join(maildir, 'new');
  const names = readdirSync(dir).sort();
  return names.length ? statSync(join(dir, names[names.length - 1])).size : 0;
}

// ---- the loads ----------------------------------------------------------------------------------

async function main() {
  const port = await listeningPort();
  console.log(`qpsmtpd pid ${daemon.pid} on 127.0.0.1:${port}, Node ${process.version}; folder ${root}`);

  await measure('idle, after the start', async () => sleep(500));

  await measure('idle, after one small message', async () => {
    const c = await Client.open(port);
    await c.greet();
    await c.envelope();
    await c.write('Subject: small\r\n\r\nhello\r\n.\r\n');
    const r = await c.next();
    await c.command('QUIT', 221);
    c.close();
    await sleep(300);
    return `reply ${r.trim()}`;
  });

  await measure(`one ${MESSAGE_MB} MB message`, async () => {
    const c = await Client.open(port);
    await c.greet();
    await c.envelope();
    await c.write('Subject: fifty megabytes\r\n\r\n');
    const line = 'x'.repeat(998) + '\r\n';
    const chunk = Buffer.from(line.repeat(64)); // 64 000 bytes
    const total = MESSAGE_MB * MB;
    for (let sent = 0; sent < total; sent += chunk.length) await c.write(chunk);
    await c.write('.\r\n');
    const r = await c.next(120_000);
    await c.command('QUIT', 221);
    c.close();
    return `reply ${r.trim().slice(0, 60)}; file in new/ ${(newestMessageSize() / MB).toFixed(1)} MB`;
  });

  await measure(`slowloris: ${SLOW_CONNECTIONS} connections, 1 byte/s for ${SLOW_SECONDS} s`, async () => {
    const clients = [];
    let refused = 0;
    for (let i = 0; i < SLOW_CONNECTIONS; i++) {
      const c = await Client.open(port);
      clients.push(c);
    }
    // Half stay in the command phase, half get into DATA first, then everyone drips.
    await Promise.all(
      clients.map(async (c, i) => {
        const greeting = await c.next(10_000);
        if (!greeting.startsWith('220')) {
          refused++;
          c.refused = true;
          return;
        }
        if (i % 2 === 1) {
          await c.command('EHLO slow.example', 250);
          await c.envelope();
        }
      }),
    );
    const drip = Buffer.from('X-Slow: one byte at a time, forever and ever and ever\r\n'.repeat(4));
    for (let second = 0; second < SLOW_SECONDS; second++) {
      for (const c of clients) if (!c.refused && !c.closed) c.socket.write(drip.subarray(second, second + 1));
      await sleep(1000);
    }
    const stillOpen = clients.filter((c) => !c.refused && !c.closed).length;
    for (const c of clients) c.close();
    await sleep(500);
    return `${SLOW_CONNECTIONS - refused} served, ${refused} refused at the door, ${stillOpen} still open at the end`;
  });

  await measure('10000 pipelined NOOPs in one write', async () => {
    const c = await Client.open(port);
    await c.greet();
    const base = c.replies.length;
    await c.write('NOOP\r\n'.repeat(10_000));
    await c.waitReplies(base + 10_000);
    const ok = c.replies.slice(base).filter((r) => r === '250 2.0.0 OK\r\n').length;
    c.taken = c.replies.length;
    await c.command('QUIT', 221);
    c.close();
    return `${ok} of 10000 answered 250`;
  });

  await measure('a header block of 100000 lines', async () => {
    const c = await Client.open(port);
    await c.greet();
    await c.envelope();
    let header = '';
    const lines = 100_000;
    let reply;
    let i = 0;
    for (; i < lines && !c.closed && c.replies.length === c.taken; i += 1000) {
      header = '';
      for (let j = i; j < i + 1000; j++) header += `X-Line-${j}: header line number ${j} of a very long header block\r\n`;
      await c.write(header);
    }
    if (!c.closed) await c.write('Subject: long header\r\n\r\nbody\r\n.\r\n');
    try {
      reply = (await c.next(60_000)).trim();
    } catch (err) {
      reply = `no reply (${err.message})`;
    }
    const after = await c.command('NOOP').catch(() => 'closed');
    c.close();
    return `sent ${i} header lines (~${((i * 62) / MB).toFixed(1)} MB); reply ${reply.slice(0, 110)}; then NOOP: ${String(after).trim()}`;
  });

  console.log('');
  console.table(rows);
}

try {
  await main();
} catch (err) {
  console.error(err);
  console.error(stderr.split('\n').slice(-20).join('\n'));
  process.exitCode = 1;
} finally {
  await cleanup();
}
