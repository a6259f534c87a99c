#!/usr/bin/env node
// `npm run bench:session`: the CPU our code spends per SMTP session, without sockets or the
// kernel: N sessions of the bench's `small` scenario (EHLO, MAIL, RCPT, DATA with 2 KB, QUIT)
// through the built daemon (dist/) on in-memory connections, with the bench's plugins (relay,
// rcpt_ok, queue/discard). What `npm run bench` measures on a busy machine mixes this with
// syscalls and other processes; this is the part we control, steady enough to compare commits.
//   node bench/session-cpu.mjs [--sessions N] [--rounds R] [--size BYTES] [--messages M] [--recipients K] [--chunk BYTES]
//   (M messages per session, as smtp-source -d reuses connections; K RCPT per message, as -r K;
//   the message arrives in pieces of --chunk bytes, 64 KiB by default; node --cpu-prof ... to profile)
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({ options: { sessions: { type: 'string', default: '20000' }, rounds: { type: 'string', default: '5' }, size: { type: 'string', default: '2048' }, messages: { type: 'string', default: '1' }, recipients: { type: 'string', default: '1' }, chunk: { type: 'string', default: '65536' } } });
const sessions = Number(values.sessions);
const rounds = Number(values.rounds);

const { App } = await import(join(root, 'dist/src/app.js'));
const { TestConn } = await import(join(root, 'dist/src/testing/conn.js'));

const home = mkdtempSync(join(tmpdir(), 'qpsmtpd-session-bench-'));
const config = join(home, 'config');
mkdirSync(config);
const files = {
  plugins: 'relay\nrcpt_ok\nqueue/discard\n',
  relayclients: '127.0.0.1\n',
  loglevel: '2\n',
  me: 'bench.example\n',
  spool_dir: join(home, 'spool') + '\n',
};
for (const [name, content] of Object.entries(files)) writeFileSync(join(config, name), content);
const app = await App.load({ configDir: config, env: {}, version: 'bench', bundledPluginDir: join(root, 'dist/plugins') });

// smtp-source's message: a few headers and --size bytes of 80-character lines.
const line = 'La la la la la la la la la la la la la la la la la la la la la la la la la la la la';
const body = Array.from({ length: Math.max(1, Math.round(Number(values.size) / (line.length + 2))) }, () => line).join('\r\n');
const message = `From: <bench@example.com>\r\nTo: <to@localhost>\r\nSubject: bench\r\n\r\n${body}\r\n.\r\n`;
const transaction = ['MAIL FROM:<bench@example.com>', ...Array.from({ length: Math.max(1, Number(values.recipients)) }, (_, i) => `RCPT TO:<to${i || ''}@localhost>`), 'DATA'];
const perSession = Number(values.messages);
const pieceSize = Number(values.chunk);
// Made once: what the test client spends cutting and encoding them is not the server's CPU.
const messageBytes = Buffer.from(message);
const messagePieces = Array.from({ length: Math.ceil(messageBytes.length / pieceSize) }, (_, i) => messageBytes.subarray(i * pieceSize, (i + 1) * pieceSize));

async function oneSession() {
  const conn = new TestConn({ remoteIp: '127.0.0.1', remotePort: 40000 });
  const done = app.handle(conn);
  await conn.readReply();
  conn.line('EHLO client.example');
  if ((await conn.readReply()).code !== 250) throw new Error('EHLO refused');
  for (let m = 0; m < perSession; m++) {
    for (const line of transaction) {
      conn.line(line);
      const reply = await conn.readReply();
      if (reply.code >= 400) throw new Error(`${line}: ${reply.raw}`);
    }
    // In pieces, as a socket delivers a big message: 64 KiB a read at most, less when the server
    // reads the bytes as they arrive.
    for (const piece of messagePieces) conn.send(piece);
    const queued = await conn.readReply();
    if (queued.code !== 250) throw new Error(`after the dot: ${queued.raw}`);
  }
  conn.line('QUIT');
  await conn.readReply();
  await done;
}

async function round(n) {
  const cpu = process.cpuUsage();
  const wall = process.hrtime.bigint();
  // 50 at a time, as smtp-source -s 50 keeps 50 sessions open.
  let next = 0;
  await Promise.all(Array.from({ length: 50 }, async () => { while (next++ < n) await oneSession(); }));
  const used = process.cpuUsage(cpu);
  return { cpuUs: (used.user + used.system) / n, wallUs: Number(process.hrtime.bigint() - wall) / 1000 / n };
}

await round(Math.min(2000, sessions)); // warm-up: let the JIT settle
const results = [];
for (let r = 0; r < rounds; r++) results.push(await round(sessions));
const cpu = results.map((r) => r.cpuUs).sort((a, b) => a - b);
const median = cpu[Math.floor(cpu.length / 2)];
console.log(`${sessions} sessions x ${rounds} rounds: median ${median.toFixed(1)} µs CPU per session (min ${cpu[0].toFixed(1)}, max ${cpu.at(-1).toFixed(1)}); heap ${(process.memoryUsage().heapUsed / 1048576).toFixed(1)} MiB`);
await app.close?.();
process.exit(0);
