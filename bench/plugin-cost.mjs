#!/usr/bin/env node
// `npm run bench:plugins`: the CPU each bundled plugin adds to an SMTP session. Every case is the
// bench's baseline config (relay, rcpt_ok, queue/discard) plus one plugin (or a few that work
// together), run through the built daemon (dist/) on in-memory connections as bench/session-cpu.mjs
// does: N sessions of smtp-source's small dialogue, 50 at a time. One table: process CPU per
// session, the difference to the baseline, the DNS queries each session caused, and the replies
// when a case's mail was not accepted. Figures, not assertions: nothing here fails on a number.
//   node bench/plugin-cost.mjs [--sessions N] [--rounds R] [--only CASE,...] [--dns-ttl S]
//
// How, and why so:
// - The client is 192.0.2.1 to .250 in turn, not 127.0.0.1: 127.0.0.1 is the baseline's relay
//   client, and relay clients are immune to nearly every check (the plugins would only measure
//   their `skip`). Client N sends as bench@sN.example.com. Many addresses and domains keep the
//   lookups of concurrent sessions apart (see below) and spread the state plugins' keys as real
//   traffic does.
// - Plugins go after relay and before rcpt_ok: rcpt_ok's OK ends the rcpt chain, so rcpt hooks
//   listed after it (badrcptto, limit, karma) would never run. Queue cases replace queue/discard.
// - The DNS server (startDnsServer of dist/src/testing) runs in a child process, so its CPU is not
//   counted; records have TTL 0 and negative answers an SOA minimum of 0 (--dns-ttl changes both),
//   so the resolver caches nothing. Identical lookups in flight at the same moment still share one
//   query (the resolver does that): the table shows lookups and queries per session.
// - One message for every case, signed once at start-up with the key published in the DNS server:
//   From, To, Subject, Date, Message-ID, a DKIM-Signature, 2 KB of text with one URL.
// - Every case is loaded first and warmed up; then the rounds go over all cases in turn, each
//   case's run right after a run of the baseline, whose median thus covers the whole run (and
//   whose spread shows the noise of the machine).
// - No forced GC between runs: a gc() before each run (node --expose-gc) made every session here
//   about 3 times as expensive, and v8.setFlagsFromString('--expose-gc') twice.
import { execFileSync, fork } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const self = fileURLToPath(import.meta.url);

const CONCURRENCY = 50; // as smtp-source -s 50
const CLIENTS = 250; // 192.0.2.1 .. 192.0.2.250
const REPLY_MS = 30_000;
const AUTHOR = 'bench@example.com'; // From:, and the DKIM signature's domain
// MAIL FROM: a domain per client, so that the sender's lookups are not all shared.
const senderOf = (i) => `bench@s${i}.example.com`;
const RECIPIENT = 'to@localhost';
const HELO = 'client.example';

// ---- the DNS server's process ---------------------------------------------------------------------

/** The child: a test DNS server; answers `take` with the queries since the last one. */
async function dnsChild() {
  const { startDnsServer } = await import(join(root, 'dist/src/testing/index.js'));
  let server;
  const stop = async () => {
    const s = server;
    server = undefined;
    await s?.close();
  };
  process.on('disconnect', () => void stop().finally(() => process.exit(0)));
  process.on('message', async (m) => {
    if (m.type === 'start') {
      server = await startDnsServer({ records: m.records, defaultTtl: m.ttl, negativeTtl: m.ttl });
      process.send({ address: server.address });
    } else if (m.type === 'take') {
      const taken = server.queries.splice(0);
      const byType = {};
      for (const q of taken) {
        const type = q.slice(0, q.indexOf(' '));
        byType[type] = (byType[type] ?? 0) + 1;
      }
      process.send({ count: taken.length, byType, examples: [...new Set(taken)].slice(0, 12) });
    } else if (m.type === 'close') {
      await stop();
      process.send({ closed: true });
    }
  });
}

/** Start the child and its server; `take()` and `close()` talk to it over IPC, one question at a time. */
async function startDnsChild(records, ttl) {
  const child = fork(self, ['--dns-child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const waiting = [];
  let exited = false;
  child.on('message', (m) => waiting.shift()?.resolve(m));
  child.on('exit', (code, signal) => {
    exited = true;
    for (const w of waiting.splice(0)) w.reject(new Error(`the DNS server's process ended (${signal ?? code})`));
  });
  const ask = (message) =>
    new Promise((resolve, reject) => {
      if (exited) return reject(new Error("the DNS server's process has ended"));
      waiting.push({ resolve, reject });
      child.send(message);
    });
  const { address } = await ask({ type: 'start', records, ttl });
  return {
    address,
    take: () => ask({ type: 'take' }),
    async close() {
      if (exited) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      await Promise.race([ask({ type: 'close' }).catch(() => undefined), delay(5000)]);
      child.disconnect();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(timer);
    },
    kill() {
      if (!exited) child.kill('SIGKILL');
    },
  };
}

// ---- the message and the DNS data -----------------------------------------------------------------

const rsaKey = () => generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });

/** smtp-source's 2 KB of 80-character lines, one of them with a link, headers a real client writes, DKIM-signed. */
async function signedMessage(api, privateKey) {
  const line = 'La la la la la la la la la la la la la la la la la la la la la la la la la la la la';
  const lines = Array.from({ length: Math.round(2048 / (line.length + 2)) }, () => line);
  lines[12] = 'The offer is at https://www.example.net/offer?id=2048 until Friday, la la la la.';
  const message =
    `From: Bench <${AUTHOR}>\r\nTo: <${RECIPIENT}>\r\nSubject: bench\r\nDate: ${new Date().toUTCString()}\r\n` +
    `Message-ID: <plugin-cost.${Date.now()}@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n` +
    lines.join('\r\n') + '\r\n';
  const field = await api.signDkim(Buffer.from(message), { domain: 'example.com', selector: 'bench', privateKey });
  return `${field.name}: ${field.value}\r\n${message}`;
}

function dnsRecords(api, dkimPublic, arcPublic) {
  const records = [
    // The envelope senders' domains s1.example.com ... (DMARC-aligned with example.com, relaxed).
    ['*.example.com', 'TXT', 'v=spf1 ip4:192.0.2.0/24 -all'],
    ['*.example.com', 'MX', '10 mx.example.com'],
    ['mx.example.com', 'A', '198.51.100.25'],
    ['bench._domainkey.example.com', 'TXT', api.dkimTxtRecord(dkimPublic)],
    ['_dmarc.example.com', 'TXT', 'v=DMARC1; p=reject'],
    ['arc._domainkey.bench.example', 'TXT', api.dkimTxtRecord(arcPublic)],
  ];
  // Every client has forward-confirmed reverse DNS; no block list lists anyone (NXDOMAIN).
  for (let i = 1; i <= CLIENTS; i++) {
    records.push([`${i}.2.0.192.in-addr.arpa`, 'PTR', `h${i}.clients.example`]);
    records.push([`h${i}.clients.example`, 'A', `192.0.2.${i}`]);
  }
  return records;
}

// ---- the cases ------------------------------------------------------------------------------------

const range = (n, f) => Array.from({ length: n }, (_, i) => f(i));

/** ~50 entries a list, none of which matches the bench's senders. */
const BADMAILFROM = [
  ...range(30, (i) => `spammer${i}@bulk${i}.example`),
  ...range(12, (i) => `@junk${i}.example`),
  '^return.*@.*\\.biz$',
  '@.*\\.(top|xyz|click)$',
  '^[0-9]{8,}@',
  '^bounce-\\d+@',
  '\\.ru$ Sorry, not from there',
  '/^mailer-\\w+@spam\\./',
  '^info@.*\\.cn$',
  '^.{80,}$',
];
/** ~50 entries, none of which matches the bench's recipient. */
const BADRCPTTO = [
  ...range(30, (i) => `former${i}@localhost.example`),
  ...range(12, (i) => `@gone${i}.example`),
  '%',
  '!',
  '@.*@',
  '/^noreply\\D*@/',
  '^test\\d+@',
  '^admin-.*@',
  '\\.invalid$',
  '^x{20}',
];
const BADHELO = [...range(16, (i) => `bad${i}.example`), 'yahoo.com', 'gmail.com', '^mail\\d+\\.spam\\.example$', '/^\\[?\\d+\\.\\d+/', '!\\.'];

const ZONES = {
  dnsbl_zones: 'zen.bench.test\n',
  rhsbl_zones: 'dbl.bench.test\n',
  uribl_zones: 'multi.uribl.bench.test 2,4,8 deny\n',
  whitelist_zones: 'list.dnswl.bench.test\n',
};
const HEADERS = 'headers require From,Date,Subject past 30 future 2';
const ALL = ['dns_whitelist_soft', 'badmailfrom', 'badrcptto', 'helo', 'fcrdns', 'dnsbl', 'rhsbl', 'resolvable_fromhost', 'sender_permitted_from', 'dkim reject 0', 'dmarc', HEADERS, 'uribl'];

/** Each case: plugin lines (between relay and rcpt_ok), config files, what to note. */
function caseList(arcPrivate) {
  const store = (dir) => ({ store: `sqlite ${join(dir, 'state.sqlite')}\n` });
  return [
    { name: 'baseline', group: '', plugins: [] },
    { name: 'badmailfrom', group: 'access', plugins: ['badmailfrom'], config: { badmailfrom: BADMAILFROM } },
    { name: 'badrcptto', group: 'access', plugins: ['badrcptto'], config: { badrcptto: BADRCPTTO } },
    { name: 'headers', group: 'access', plugins: [HEADERS] },
    { name: 'naughty', group: 'access', plugins: ['naughty reject data'], note: 'nothing noted a refusal, so it only looks at the note' },
    {
      name: 'whitelist',
      group: 'access',
      plugins: ['whitelist'],
      config: {
        whitelisthosts: ['10.', '172.16.0.0/12', '198.51.100.0/24', '2001:db8::/32', ...range(16, (i) => `203.0.113.${i + 1}`)],
        whitelisthelo: range(10, (i) => `trusted${i}.example`),
        whitelistsenders: [...range(8, (i) => `partner${i}@trusted.example`), 'friends.example', 'family.example'],
        whitelistrcpt: range(10, (i) => `vip${i}@elsewhere.example`),
      },
      note: 'four lists of 10-20 entries, none matching',
    },
    { name: 'helo', group: 'access', plugins: ['helo'], config: { badhelo: BADHELO }, note: 'policy lenient (no DNS), 21 badhelo entries' },
    { name: 'dnsbl', group: 'dns', plugins: ['dnsbl'], config: { dnsbl_zones: ZONES.dnsbl_zones } },
    { name: 'rhsbl', group: 'dns', plugins: ['rhsbl'], config: { rhsbl_zones: ZONES.rhsbl_zones } },
    { name: 'uribl', group: 'dns', plugins: ['uribl'], config: { uribl_zones: ZONES.uribl_zones }, note: 'one URL in the body' },
    { name: 'dns_whitelist_soft', group: 'dns', plugins: ['dns_whitelist_soft'], config: { whitelist_zones: ZONES.whitelist_zones } },
    { name: 'fcrdns', group: 'dns', plugins: ['fcrdns'] },
    { name: 'resolvable_fromhost', group: 'dns', plugins: ['resolvable_fromhost'] },
    { name: 'spf', group: 'senderauth', plugins: ['sender_permitted_from'] },
    { name: 'dkim', group: 'senderauth', plugins: ['dkim'] },
    { name: 'dmarc', group: 'senderauth', plugins: ['sender_permitted_from', 'dkim reject 0', 'dmarc'], note: 'with spf and dkim, whose results it reuses' },
    { name: 'arc', group: 'senderauth', plugins: ['arc'], note: 'verifying only (no chain: arc=none); without dkim before it, it verifies the DKIM signature itself (the lookup is the key)' },
    {
      name: 'arc-seal',
      group: 'senderauth',
      plugins: ['arc seal bench.example'],
      config: { 'dkim/bench.example/selector': 'arc\n', 'dkim/bench.example/private': arcPrivate },
      note: 'verifies, then seals every message (RSA 2048)',
    },
    {
      name: 'greylisting',
      group: 'state',
      plugins: ['greylisting black_timeout 0'],
      config: (dir) => store(dir),
      prime: CLIENTS,
      note: 'primed with one deferred session per client; then each session is a known triplet (a read and a write)',
    },
    { name: 'karma', group: 'state', plugins: ['karma'], config: (dir) => store(dir) },
    {
      name: 'limit',
      group: 'state',
      plugins: ['limit'],
      config: (dir) => ({
        ...store(dir),
        limit: ['concurrency ip 20', 'connections ip 100000/1m', 'recipients ip 100000/1h', 'messages domain 1000000/1h'],
      }),
      note: 'concurrency, connections and recipients per ip; messages per sender domain',
    },
    {
      name: 'logging/file',
      group: 'logging',
      plugins: [],
      logging: (dir) => `logging/file loglevel LOGDEBUG ${join(dir, 'log', 'qpsmtpd.log')}`,
      logFile: (dir) => join(dir, 'log', 'qpsmtpd.log'),
    },
    { name: 'logging/adaptive', group: 'logging', plugins: [], logging: () => 'logging/adaptive', note: 'defaults (accept LOGERROR): accepted mail writes nothing' },
    { name: 'queue/maildir', group: 'queue', plugins: [], queue: (dir) => `queue/maildir ${join(dir, 'maildir')}`, maildir: (dir) => join(dir, 'maildir'), note: 'fsync per message (instead of queue/discard)' },
    {
      name: 'access+dns+auth',
      group: 'all',
      plugins: ALL,
      config: { badmailfrom: BADMAILFROM, badrcptto: BADRCPTTO, badhelo: BADHELO, ...ZONES },
      parts: ['dns_whitelist_soft', 'badmailfrom', 'badrcptto', 'helo', 'fcrdns', 'dnsbl', 'rhsbl', 'resolvable_fromhost', 'dmarc', 'headers', 'uribl'],
    },
  ];
}

function writeFiles(dir, files) {
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, Array.isArray(content) ? content.join('\n') + '\n' : content);
  }
}

// ---- sessions -------------------------------------------------------------------------------------

let TestConn;
let WIRE_MESSAGE;
const ACCEPTED = '250';
const dialogue = (sender) => [
  [`EHLO ${HELO}`, 250],
  [`MAIL FROM:<${sender}>`, 250],
  [`RCPT TO:<${RECIPIENT}>`, 250],
  ['DATA', 354],
];

const describeReply = (step, reply) => `${step} ${reply.code} ${reply.lines[0] ?? ''}`.trim().slice(0, 72);

/** One session of smtp-source's dialogue; ACCEPTED, or where and how it was refused. */
async function oneSession(app, ip, port, sender) {
  const conn = new TestConn({ remoteIp: ip, remotePort: port });
  const done = app.handle(conn);
  let step = 'greeting';
  let outcome = ACCEPTED;
  try {
    let reply = await conn.readReply(REPLY_MS);
    if (reply.code !== 220) outcome = describeReply(step, reply);
    for (const [command, expected] of dialogue(sender)) {
      if (outcome !== ACCEPTED) break;
      step = command.split(' ')[0];
      conn.line(command);
      reply = await conn.readReply(REPLY_MS);
      if (reply.code !== expected) outcome = describeReply(step, reply);
    }
    if (outcome === ACCEPTED) {
      step = 'end of data';
      conn.send(WIRE_MESSAGE);
      reply = await conn.readReply(REPLY_MS);
      if (reply.code !== 250) outcome = describeReply(step, reply);
    }
    if (!conn.closed) {
      conn.line('QUIT');
      await conn.readReply(REPLY_MS).catch(() => undefined);
    }
  } catch (err) {
    outcome = `${step}: ${err?.name === 'ConnectionClosedError' ? 'connection closed' : String(err?.message ?? err).split('\n')[0]}`.slice(0, 72);
    conn.destroy();
  }
  await done;
  return outcome;
}

/** n sessions, CONCURRENCY at a time; the refusals by kind. */
async function runSessions(c, n) {
  const refused = {};
  let started = 0;
  const worker = async () => {
    while (started < n) {
      started++;
      const k = c.sessionsRun++;
      const client = 1 + (k % CLIENTS);
      const outcome = await oneSession(c.app, `192.0.2.${client}`, 1024 + (k % 60000), senderOf(client));
      if (outcome !== ACCEPTED) refused[outcome] = (refused[outcome] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, n) }, worker));
  return refused;
}

// ---- measuring ------------------------------------------------------------------------------------

/** The resolver's counters, when the daemon lets them be read (App keeps its resolver in its snapshot). */
const resolverStats = (app) => {
  try {
    return app.snapshot?.dns?.stats?.();
  } catch {
    return undefined;
  }
};

async function measure(c, n, dns) {
  if (c.maildir) for (const f of readdirSync(join(c.maildir, 'new'))) unlinkSync(join(c.maildir, 'new', f));
  if (c.logFile) truncateSync(c.logFile, 0);
  await dns.take();
  const before = resolverStats(c.app);
  const wall = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const refused = await runSessions(c, n);
  const used = process.cpuUsage(cpu);
  const wallUs = Number(process.hrtime.bigint() - wall) / 1000;
  const queries = await dns.take();
  const after = resolverStats(c.app);
  const run = {
    cpuUs: (used.user + used.system) / n,
    wallUs: wallUs / n,
    dnsQueries: queries.count / n,
    dnsByType: queries.byType,
    dnsExamples: queries.examples,
    refused,
  };
  if (before && after) {
    run.lookups = (after.lookups - before.lookups) / n;
    run.joined = (after.joined - before.joined) / n;
    run.cacheHits = (after.cacheHits - before.cacheHits) / n;
  }
  if (c.logFile) run.logLines = (readFileSync(c.logFile, 'utf8').split('\n').length - 1) / n;
  return run;
}

const median = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const fmt = (x, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : '-');
const signed = (x, digits = 0) => (Number.isFinite(x) ? (x >= 0 ? '+' : '') + x.toFixed(digits) : '-');
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref());
const progress = (line) => process.stderr.write(`${line}\n`);

// ---- main -----------------------------------------------------------------------------------------

async function main() {
  const { values } = parseArgs({
    options: {
      sessions: { type: 'string', default: '5000' },
      rounds: { type: 'string', default: '3' },
      only: { type: 'string' },
      'dns-ttl': { type: 'string', default: '0' },
    },
  });
  const sessions = Number(values.sessions);
  const rounds = Number(values.rounds);
  const ttl = Number(values['dns-ttl']);
  if (!(Number.isInteger(sessions) && sessions > 0) || !(Number.isInteger(rounds) && rounds > 0) || !(Number.isInteger(ttl) && ttl >= 0)) {
    throw new Error('--sessions and --rounds take a positive whole number, --dns-ttl a whole number of seconds');
  }

  const { App } = await import(join(root, 'dist/src/app.js'));
  ({ TestConn } = await import(join(root, 'dist/src/testing/conn.js')));
  const api = await import(join(root, 'dist/src/index.js'));

  const dkimKey = rsaKey();
  const arcKey = rsaKey();
  let all = caseList(arcKey.privateKey);
  if (values.only) {
    const wanted = values.only.split(',').map((s) => s.trim()).filter(Boolean);
    const unknown = wanted.filter((w) => !all.some((c) => c.name === w));
    if (unknown.length > 0) throw new Error(`--only: no case ${unknown.join(', ')}; the cases: ${all.map((c) => c.name).join(', ')}`);
    all = all.filter((c) => c.name === 'baseline' || wanted.includes(c.name));
  }

  const message = await signedMessage(api, dkimKey.privateKey);
  WIRE_MESSAGE = message + '.\r\n';
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const home = mkdtempSync(join(tmpdir(), 'qpsmtpd-plugin-cost-'));
  let dns;
  const cases = [];
  const cleanUp = async () => {
    for (const c of cases) {
      if (!c.app) continue;
      const app = c.app;
      c.app = undefined;
      await app.close(0).catch((err) => progress(`${c.name}: close: ${err?.message ?? err}`));
    }
    await dns?.close();
    rmSync(home, { recursive: true, force: true });
  };
  const interrupted = (signal) => {
    progress(`${signal}: cleaning up`);
    dns?.kill();
    rmSync(home, { recursive: true, force: true });
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);

  try {
    dns = await startDnsChild(dnsRecords(api, dkimKey.publicKey, arcKey.publicKey), ttl);
    const meta = {
      stamp,
      command: `npm run bench:plugins --${process.argv.length > 2 ? ' ' + process.argv.slice(2).join(' ') : ''}`,
      sessions,
      rounds,
      concurrency: CONCURRENCY,
      dnsTtl: ttl,
      clients: `192.0.2.1-${CLIENTS}`,
      senders: `${senderOf('N')}, N = 1-${CLIENTS}`,
      messageBytes: Buffer.byteLength(message),
      cpus: `${cpus().length} x ${cpus()[0]?.model ?? '?'}`,
      node: process.version,
      commit: gitCommit(),
      loadavgBefore: loadavg().map((x) => x.toFixed(2)).join(' '),
    };
    console.log(`qpsmtpd per-plugin cost ${stamp}: ${sessions} sessions x ${rounds} round(s) per case (median), ${CONCURRENCY} at a time; commit ${meta.commit}; Node ${meta.node}; ${meta.cpus}; load average ${meta.loadavgBefore}`);
    console.log(`session: EHLO, MAIL, RCPT, DATA (${meta.messageBytes} bytes: DKIM-signed, one URL), QUIT from 192.0.2.N (not relay clients) as ${senderOf('N')}, N = 1-${CLIENTS}; baseline plugins relay, rcpt_ok, queue/discard`);
    console.log(`DNS: test server in a child process (its CPU is not counted), record TTL ${ttl} s, negative TTL ${ttl} s${ttl === 0 ? ': nothing is cached' : ''}`);

    // Load every case; one that does not load is reported and left out.
    for (const spec of all) {
      const dir = join(home, spec.name.replace(/\//g, '-'));
      const config = join(dir, 'config');
      const plugins = ['relay', ...spec.plugins, 'rcpt_ok', spec.queue ? spec.queue(dir) : 'queue/discard'];
      const files = {
        plugins,
        relayclients: '127.0.0.1\n',
        rcpthosts: 'localhost\n',
        loglevel: '2\n',
        me: 'bench.example\n',
        spool_dir: join(dir, 'spool') + '\n',
        dns_servers: dns.address + '\n',
        ...(typeof spec.config === 'function' ? spec.config(dir) : spec.config),
      };
      if (spec.logging) files.logging = spec.logging(dir) + '\n';
      const c = { ...spec, dir, lines: [...(spec.logging ? [spec.logging(dir)] : []), ...plugins], sessionsRun: 0, runs: [], primeRefused: undefined };
      if (spec.maildir) c.maildir = spec.maildir(dir);
      if (spec.logFile) c.logFile = spec.logFile(dir);
      cases.push(c);
      try {
        writeFiles(config, files);
        c.app = await App.load({ configDir: config, env: {}, version: 'bench', bundledPluginDir: join(root, 'dist/plugins') });
      } catch (err) {
        c.loadError = err?.problems ? err.problems.map((p) => `${p.file}:${p.line}: ${p.message}`).join('; ') : String(err?.message ?? err);
        progress(`${c.name}: the config did not load: ${c.loadError}`);
      }
    }
    const live = cases.filter((c) => c.app);

    // Warm-up (and priming: greylisting's first attempt per client is deferred, by design).
    for (const c of live) {
      if (c.prime) c.primeRefused = await runSessions(c, c.prime);
      c.warmRefused = await runSessions(c, Math.min(2000, sessions));
      progress(`warmed up ${c.name}${Object.keys(c.warmRefused).length ? ` (refusals: ${summary(c.warmRefused)})` : ''}`);
    }
    // A baseline run before each case's run: the baseline is sampled all through the run.
    const base = live.find((c) => c.name === 'baseline');
    const others = live.filter((c) => c !== base);
    for (let r = 1; r <= rounds; r++) {
      for (const c of others.length > 0 ? others : base ? [base] : []) {
        const before = base ? await measure(base, sessions, dns) : undefined;
        if (before) base.runs.push(before);
        if (c === base) {
          progress(`round ${r}/${rounds} baseline ${fmt(before.cpuUs, 1)} µs/session`);
          continue;
        }
        const run = await measure(c, sessions, dns);
        run.baselineUs = before?.cpuUs;
        c.runs.push(run);
        const delta = before ? `  (baseline ${fmt(before.cpuUs, 1)}, Δ ${signed(run.cpuUs - before.cpuUs, 1)})` : '';
        progress(`round ${r}/${rounds} ${c.name.padEnd(20)} ${fmt(run.cpuUs, 1).padStart(7)} µs/session${delta}  ${fmt(run.dnsQueries, 2)} DNS q${Object.keys(run.refused).length ? `  refused: ${summary(run.refused)}` : ''}`);
      }
    }
    meta.loadavgAfter = loadavg().map((x) => x.toFixed(2)).join(' ');

    const results = report(cases, sessions);
    console.log('');
    console.log(renderTable(results));
    console.log('');
    for (const line of notes(results, ttl)) console.log(line);

    mkdirSync(join(root, 'bench/results'), { recursive: true });
    const out = join(root, 'bench/results', `plugins-${stamp}.json`);
    writeFileSync(out, JSON.stringify({ meta, cases: results }, null, 2) + '\n');
    console.log(`\nwritten: ${out}`);
  } finally {
    await cleanUp();
  }
  process.exit(0);
}

function gitCommit() {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'plugins'], { cwd: root, encoding: 'utf8' }).trim();
    return dirty ? `${head} + uncommitted changes in src/ or plugins/` : head;
  } catch {
    return 'unknown';
  }
}

const summary = (refused) =>
  Object.entries(refused)
    .sort((a, b) => b[1] - a[1])
    .map(([what, n]) => `${n}x ${what}`)
    .join('; ');

// ---- the report -----------------------------------------------------------------------------------

function report(cases, sessions) {
  const base = cases.find((c) => c.name === 'baseline');
  const baseUs = base?.runs.length ? median(base.runs.map((r) => r.cpuUs)) : NaN;
  const baseAccepted = base !== undefined && base.runs.length > 0 && base.runs.every((r) => Object.keys(r.refused).length === 0);
  return cases.map((c) => {
    const refused = {};
    for (const run of c.runs) for (const [what, n] of Object.entries(run.refused)) refused[what] = (refused[what] ?? 0) + n;
    const refusedCount = Object.values(refused).reduce((a, b) => a + b, 0);
    const out = {
      name: c.name,
      group: c.group,
      plugins: c.lines,
      note: c.note,
      loadError: c.loadError,
      sessionsPerRound: sessions,
      runs: c.runs,
      primeRefused: c.primeRefused,
      warmUpRefused: c.warmRefused,
      refused,
      accepted: c.runs.length > 0 && refusedCount === 0,
    };
    if (c.runs.length > 0) {
      const cpu = c.runs.map((r) => r.cpuUs);
      out.cpuUs = median(cpu);
      out.cpuUsMin = Math.min(...cpu);
      out.cpuUsMax = Math.max(...cpu);
      out.wallUs = median(c.runs.map((r) => r.wallUs));
      out.dnsQueries = median(c.runs.map((r) => r.dnsQueries));
      if (c.runs.every((r) => r.lookups !== undefined)) out.lookups = median(c.runs.map((r) => r.lookups));
      if (c.runs.every((r) => r.joined !== undefined)) out.joined = median(c.runs.map((r) => r.joined));
      if (c.logFile) out.logLines = median(c.runs.map((r) => r.logLines));
      if (c.name !== 'baseline' && baseAccepted) {
        out.deltaUs = out.cpuUs - baseUs;
        out.deltaPct = (out.deltaUs / baseUs) * 100;
        // The same from each run and the baseline run just before it (JSON only: a spike in one
        // baseline run moves it more than the baseline's median over the whole run).
        out.pairedDeltaUs = median(c.runs.map((r) => r.cpuUs - r.baselineUs));
      }
    }
    if (c.parts) out.parts = c.parts;
    return out;
  });
}

function renderTable(results) {
  const head = ['case', 'plugins', 'µs/session', 'min-max', 'Δ µs', 'Δ %', 'DNS q/session', 'lookups', 'replies'];
  const right = new Set([2, 3, 4, 5, 6, 7]);
  const body = results.map((r) => {
    const names = r.plugins.filter((p) => !/^(relay|rcpt_ok|queue\/discard)$/.test(p)).map((p) => p.split(' ')[0]);
    const unique = [...new Set(names)];
    const plugins = r.name === 'baseline' ? 'relay, rcpt_ok, queue/discard' : unique.length > 4 ? `+ ${unique.length} plugins (below)` : `+ ${unique.join(', ')}`;
    if (r.loadError) return [r.name, plugins, '-', '', '', '', '', '', 'config did not load (see below)'];
    const replies = r.accepted ? '' : `REFUSED: ${summary(r.refused)}`;
    const figure = (x, digits, f = fmt) => (r.accepted ? f(x, digits) : '-');
    return [
      r.name,
      plugins,
      r.accepted ? fmt(r.cpuUs, 1) : 'not accepted',
      figure(r.cpuUsMin, 0) + (r.accepted ? `-${fmt(r.cpuUsMax, 0)}` : ''),
      r.name === 'baseline' ? '' : figure(r.deltaUs, 1, signed),
      r.name === 'baseline' ? '' : r.accepted ? `${signed(r.deltaPct, 0)}%` : '-',
      fmt(r.dnsQueries, 2),
      fmt(r.lookups, 2),
      replies,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => String(b[i]).length)));
  const line = (cells) => '| ' + cells.map((c, i) => (right.has(i) ? String(c).padStart(widths[i]) : String(c).padEnd(widths[i]))).join(' | ') + ' |';
  const sep = '|' + widths.map((w, i) => (right.has(i) ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|') + '|';
  return [line(head), sep, ...body.map(line)].join('\n');
}

function notes(results, ttl) {
  const out = [
    'µs/session: process CPU (user + system, every thread) per session, median of the rounds (baseline: of its run before every case); min-max: those runs.',
    "Δ: the case's median minus the baseline's; the baseline runs before every case in every round, so its median covers the whole run and its min-max shows the run's noise.",
    `DNS q/session: queries the DNS server received per session; lookups: the resolver's lookups per session. Fewer queries than lookups: ${ttl > 0 ? 'answers from the cache, or ' : ''}lookups that joined an identical one in flight (50 sessions at once: the DKIM key and the DMARC record are the same for all).`,
  ];
  for (const r of results) {
    const extra = [];
    if (r.note) extra.push(r.note);
    if (r.logLines !== undefined) extra.push(`${fmt(r.logLines, 1)} lines per session written (LOGDEBUG: every line the core and the plugins log)`);
    if (r.primeRefused && Object.keys(r.primeRefused).length) extra.push(`priming: ${summary(r.primeRefused)}`);
    if (r.parts) extra.push(`plugins ${r.plugins.slice(1, -2).join(', ')}`);
    if (r.parts) {
      const parts = r.parts.map((p) => results.find((x) => x.name === p));
      if (r.accepted && parts.every((p) => p?.accepted)) {
        const sum = parts.reduce((a, p) => a + p.deltaUs, 0);
        extra.push(`the sum of its parts' deltas: ${signed(sum, 1)} µs`);
      }
    }
    if (r.loadError) extra.push(`did not load: ${r.loadError}`);
    if (extra.length) out.push(`${r.name}: ${extra.join('; ')}`);
  }
  out.push('Not measured: spamassassin, rspamd, virus/clamav, virus/clamdscan, virus/scan_command and milter need a scanner (a daemon or a program) to talk to.');
  return out;
}

// Last, so that every declaration above is initialized.
if (process.argv[2] === '--dns-child') await dnsChild();
else await main();
