/**
 * The real scanners the spam and virus plugins are tested against, each started by the test file
 * that needs it, on loopback with a free port (and a unix socket) in a temporary folder, and
 * stopped by pid afterwards; `timeout 300` ends each by itself should the test process die first.
 *
 *   Clamd    clamav-daemon with no official database: a custom one that holds only the EICAR
 *            test signature (`EICAR-Test:0:*:<hex>`, reported as `EICAR-Test.UNOFFICIAL`), so it
 *            starts offline in a fraction of a second. StreamMaxLength is 1 MB, so a larger
 *            message gets clamd's own `size limit exceeded` error.
 *   Spamd    spamd (SpamAssassin) with the rules Debian ships; GTUBE scores 1000 and more.
 *   Rspamd   rspamd with Debian's config, one normal worker, no controller, no Redis, a DNS server
 *            that does not answer (offline), a tiny TLD list (the full one takes ~15 s to compile),
 *            and test rules: one forces the action named in the Subject (`[action:greylist]`)
 *            and asks for header changes (`[milter]`), one (QP_TEST_ENVELOPE, score 0) lists
 *            what rspamd was told of the envelope as its options (`ip=...`, `rcpt=...`). GTUBE is rejected by rspamd itself.
 *
 * Also: a listener that accepts and never answers, and the EICAR and GTUBE strings (assembled
 * here, so this file is not itself a test virus for anyone's scanner).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { buildMessage, testServer, type ConfigValue, type ConnectOptions, type MailResult, type TestServer } from '../../src/testing/index.ts';
import { freePort, openTempDir, sleep, stopChild } from './queue/support.ts';

export { buildMessage, freePort };

/** The EICAR anti-virus test file (68 bytes). */
export const EICAR = ['X5O!P%@AP[4\\PZX54(P^)7CC)7}$', 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'].join('');
/** SpamAssassin's and rspamd's spam test string. */
export const GTUBE = ['XJS*C4JDBQADN1.NSBN3*2IDNEN*', 'GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X'].join('');

/** A message whose attachment (a MIME part) holds `attachment`, base64-encoded. */
export function multipartMessage(subject: string, attachment: string): string {
  const boundary = 'qp-test-boundary';
  return buildMessage({
    subject,
    headers: { 'MIME-Version': '1.0', 'Content-Type': `multipart/mixed; boundary="${boundary}"` },
    body: [
      `--${boundary}`,
      'Content-Type: text/plain',
      '',
      'See the attachment.',
      `--${boundary}`,
      'Content-Type: application/octet-stream; name="file.com"',
      'Content-Disposition: attachment; filename="file.com"',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from(attachment, 'latin1').toString('base64'),
      `--${boundary}--`,
      '',
    ].join('\n'),
  });
}

/**
 * A test server with these plugin lines, every recipient accepted and the kit's capturing queue;
 * closed after `fn`. plugin_timeout is 120 s: on a loaded machine a scan may take long, and the
 * tests of time limits set the plugins' own `timeout`.
 */
export async function withServer(plugins: readonly string[], fn: (server: TestServer) => Promise<void>, config: Readonly<Record<string, ConfigValue>> = {}): Promise<void> {
  const server = await testServer({ plugins, acceptAllRecipients: true, config: { plugin_timeout: '120', ...config }, replyTimeoutMs: 120_000 });
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

/** One session, one message; the result of the final dot (or of the step that was refused). */
export async function sendOne(server: TestServer, message: string, options: ConnectOptions & { readonly to?: readonly string[]; readonly from?: string } = {}): Promise<MailResult> {
  const { to, from, ...connect } = options;
  const session = await server.connect(connect);
  const result = await session.sendMail(from ?? 'sender@origin.example', to ?? ['user@example.com'], message);
  await session.quit();
  return result;
}

/** A ClamAV signature folder holding only the EICAR signature (found as `EICAR-Test.UNOFFICIAL`); returns it. */
export function eicarDatabase(dir: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'test.ndb'), `EICAR-Test:0:*:${Buffer.from(EICAR, 'latin1').toString('hex')}\n`);
  return dir;
}

async function listening(target: { port: number } | { path: string }): Promise<boolean> {
  if ('path' in target && !existsSync(target.path)) return false;
  return new Promise((resolve) => {
    const socket = 'path' in target ? connect({ path: target.path }) : connect({ host: '127.0.0.1', port: target.port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A daemon started by a test: its folder, its process, what it printed. */
abstract class Daemon {
  protected readonly output: string[] = [];
  protected child: ChildProcess | undefined;

  constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  protected start(command: string, args: readonly string[]): void {
    const child = spawn('timeout', ['300', command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.setEncoding('utf8').on('data', (s: string) => this.output.push(s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => this.output.push(s));
    this.child = child;
  }

  /** Wait until every target accepts connections (fails after `ms`, with what the daemon said). */
  protected async ready(targets: readonly ({ port: number } | { path: string })[], ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    for (const target of targets) {
      while (!(await listening(target))) {
        if (this.child?.exitCode !== null || Date.now() > deadline) {
          throw new Error(`${this.constructor.name} does not listen on ${JSON.stringify(target)}: ${this.log()}`);
        }
        await sleep(50);
      }
    }
  }

  log(): string {
    return this.output.join('');
  }

  async stop(): Promise<void> {
    if (this.child !== undefined) await stopChild(this.child);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Start, or stop and remove everything when starting fails. */
  protected static async launch<T extends Daemon>(daemon: T, run: (d: T) => Promise<void>): Promise<T> {
    try {
      await run(daemon);
      return daemon;
    } catch (err) {
      await daemon.stop();
      throw err;
    }
  }
}

export class Clamd extends Daemon {
  get socketPath(): string {
    return join(this.dir, 'clamd.sock');
  }

  static async start(): Promise<Clamd> {
    const clamd = new Clamd(openTempDir('qp-clamd-'), await freePort());
    return Daemon.launch(clamd, async (d) => {
      const db = eicarDatabase(join(d.dir, 'db'));
      const conf = join(d.dir, 'clamd.conf');
      writeFileSync(
        conf,
        [
          `DatabaseDirectory ${db}`,
          `LocalSocket ${d.socketPath}`,
          `TCPSocket ${d.port}`,
          'TCPAddr 127.0.0.1',
          'Foreground yes',
          'User root',
          'StreamMaxLength 1M',
          `LogFile ${join(d.dir, 'clamd.log')}`,
          '',
        ].join('\n'),
      );
      d.start('clamd', ['-c', conf]);
      await d.ready([{ port: d.port }, { path: d.socketPath }], 20_000);
    });
  }
}

export class Spamd extends Daemon {
  get socketPath(): string {
    return join(this.dir, 'spamd.sock');
  }

  static async start(): Promise<Spamd> {
    const spamd = new Spamd(openTempDir('qp-spamd-'), await freePort());
    return Daemon.launch(spamd, async (d) => {
      d.start('/usr/sbin/spamd', [
        `--listen=127.0.0.1:${d.port}`,
        `--listen=${d.socketPath}`,
        '--local',
        '--nouser-config',
        '--min-children=1',
        '--max-children=2',
        '--username=nobody',
        `--pidfile=${join(d.dir, 'spamd.pid')}`,
        `--syslog=${join(d.dir, 'spamd.log')}`,
      ]);
      await d.ready([{ port: d.port }, { path: d.socketPath }], 30_000);
      // spamd's first scan is slow (it loads what it needs on first use): done here, not in a test.
      await warmUp(d.port, `CHECK SPAMC/1.5\r\nContent-length: ${GTUBE.length + 2}\r\n\r\n${GTUBE}\r\n`);
    });
  }

  log(): string {
    const file = join(this.dir, 'spamd.log');
    return super.log() + (existsSync(file) ? readFileSync(file, 'utf8') : '');
  }
}

/** The test rule: the action a Subject names is forced; `[milter]` asks for a header added and one removed. */
const RSPAMD_TEST_RULE = `local lua_mime = require "lua_mime"
rspamd_config:register_symbol({
  name = 'QP_TEST_ACTION',
  type = 'prefilter',
  priority = 10,
  callback = function(task)
    local subject = task:get_subject() or ''
    local action = subject:match('%[action:([%a ]+)%]')
    if action then task:set_pre_result(action, 'test rule says ' .. action) end
    if subject:find('[milter]', 1, true) then
      lua_mime.modify_headers(task, {
        add = { ['X-Test-Added'] = { value = 'by rspamd', order = 0 } },
        remove = { ['X-Remove-Me'] = 0 },
      })
    end
  end,
})
rspamd_config:register_symbol({
  name = 'QP_TEST_ENVELOPE',
  score = 0.0,
  callback = function(task)
    local opts = {}
    local ip = task:get_from_ip()
    if ip and ip:is_valid() then table.insert(opts, 'ip=' .. ip:to_string()) end
    if task:get_helo() then table.insert(opts, 'helo=' .. task:get_helo()) end
    if task:get_hostname() then table.insert(opts, 'hostname=' .. task:get_hostname()) end
    local from = task:get_from('smtp')
    if from and from[1] then table.insert(opts, 'from=' .. from[1].addr) end
    for _, r in ipairs(task:get_recipients('smtp') or {}) do table.insert(opts, 'rcpt=' .. r.addr) end
    if task:get_user() then table.insert(opts, 'user=' .. task:get_user()) end
    if task:get_queue_id() then table.insert(opts, 'queue-id=' .. task:get_queue_id()) end
    task:insert_result('QP_TEST_ENVELOPE', 1.0, opts)
  end,
})
`;

export class Rspamd extends Daemon {
  static async start(): Promise<Rspamd> {
    const rspamd = new Rspamd(openTempDir('qp-rspamd-'), await freePort());
    return Daemon.launch(rspamd, async (d) => {
      const local = join(d.dir, 'local');
      mkdirSync(join(local, 'local.d'), { recursive: true });
      for (const sub of ['db', 'run', 'log']) mkdirSync(join(d.dir, sub));
      writeFileSync(join(d.dir, 'tld.dat'), 'com\norg\nnet\nexample\ntest\n');
      writeFileSync(
        join(local, 'local.d', 'options.inc'),
        [
          'dns { nameserver = ["127.0.0.1:9"]; timeout = 0.1s; retransmits = 1; }',
          'control_socket = "";',
          `url_tld = "${join(d.dir, 'tld.dat')}";`,
          'disable_hyperscan = true;',
          '',
        ].join('\n'),
      );
      // Thresholds far away: only GTUBE and the test rule decide the action, never the score.
      writeFileSync(join(local, 'local.d', 'actions.conf'), 'greylist = 400;\nadd_header = 600;\nrewrite_subject = 800;\nreject = 1000;\nsubject = "*** SPAM *** %s";\n');
      writeFileSync(join(local, 'rspamd.local.lua'), RSPAMD_TEST_RULE);
      const conf = join(d.dir, 'rspamd.conf');
      writeFileSync(
        conf,
        [
          '.include "$CONFDIR/common.conf"',
          'options {',
          '  pidfile = "$RUNDIR/rspamd.pid";',
          '  .include "$CONFDIR/options.inc"',
          '  .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"',
          '}',
          'logging { type = "file"; filename = "$LOGDIR/rspamd.log"; level = "notice"; }',
          'worker "normal" {',
          `  bind_socket = "127.0.0.1:${d.port}";`,
          '  .include "$CONFDIR/worker-normal.inc"',
          '  count = 1;',
          '}',
          '',
        ].join('\n'),
      );
      const vars = { CONFDIR: '/etc/rspamd', LOCAL_CONFDIR: local, DBDIR: join(d.dir, 'db'), RUNDIR: join(d.dir, 'run'), LOGDIR: join(d.dir, 'log') };
      d.start('rspamd', ['-f', '-i', '-u', 'root', '-g', 'root', '-c', conf, ...Object.entries(vars).flatMap(([k, v]) => ['--var', `${k}=${v}`])]);
      await d.ready([{ port: d.port }], 40_000);
      await warmUp(d.port, `POST /checkv2 HTTP/1.0\r\nContent-Length: ${GTUBE.length + 2}\r\n\r\n${GTUBE}\r\n`);
    });
  }

  log(): string {
    const file = join(this.dir, 'log', 'rspamd.log');
    return super.log() + (existsSync(file) ? readFileSync(file, 'utf8') : '');
  }
}

/** Send a request and wait for the scanner to close the connection (its first scan done). */
async function warmUp(port: number, request: string): Promise<void> {
  await new Promise<void>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => socket.end(request));
    socket.on('data', () => undefined);
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
    socket.setTimeout(120_000, () => socket.destroy());
  });
}

/** A TCP listener on loopback that accepts connections and never says anything. */
export class SilentServer {
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => this.sockets.delete(socket));
      socket.resume(); // read and drop whatever comes
    });
  }

  /** How many connections are still open (the plugin should close its own). */
  get open(): number {
    return this.sockets.size;
  }

  static async start(): Promise<SilentServer> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    return new SilentServer(server, typeof address === 'object' && address !== null ? address.port : 0);
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
