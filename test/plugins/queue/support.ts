/**
 * The real mail programs the queue back ends are tested against, each started by the test on
 * loopback with its own config, spool and mailboxes under a temporary folder, and stopped by pid:
 *
 *   Postfix   `master -d -e 300 -c DIR` (foreground, so the child's pid is the master's; `-e` makes
 *             it exit by itself after 300 s should the test process die first): smtpd on a high
 *             loopback port, cleanup on DIR/queue/public/cleanup, pickup for sendmail(1), and the
 *             virtual(8) agent delivering into Maildirs under DIR/mail/<local part>/.
 *   Dovecot   `timeout 300 dovecot -F -c FILE`: LMTP on a high loopback port and a unix socket,
 *             Maildirs under DIR/mail/<local part>/Maildir, quota plugin on.
 *   Exim      no daemon: `exim4 -C FILE -bS` per message, spool and mailboxes under DIR. The binary
 *             comes from the exim4-daemon-light package, extracted by .ci/run (exim4 conflicts with
 *             Postfix as a package); its compiled-in `Debian-exim` user is supplied, when the
 *             system lacks it, through a private mount namespace (a passwd/group copy bound over
 *             /etc/passwd and /etc/group for that one process tree only).
 *
 * Everything here needs root (we are root in CI and on the development machines).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ParsedReply } from '../../helpers/fake-conn.ts';
import type { TestApp } from '../../helpers/test-app.ts';

export const HERE = fileURLToPath(new URL('.', import.meta.url));

/** uid/gid of the `mail` user (8 on Debian): mailbox owner for Postfix's virtual and Dovecot. */
const MAIL_UID = 8;
const MAIL_GID = 8;

// ---- small things ------------------------------------------------------------------------------

/** A loopback TCP port that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A temporary folder that every user may traverse (daemons drop root before they use it). */
export function openTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll `probe` until it returns a value other than undefined, or fail after `ms`. */
export async function waitFor<T>(what: string, probe: () => T | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** True when something accepts TCP connections on this loopback port. */
export async function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Stop a child by pid: SIGTERM, then SIGKILL if it is still there after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    process.kill(child.pid, 'SIGTERM');
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

/** Messages in a Maildir's new/ (raw bytes, oldest name first). */
export function maildirMessages(maildir: string): Buffer[] {
  const dir = join(maildir, 'new');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .map((name) => readFileSync(join(dir, name)));
}

/** Wait until a Maildir holds `count` messages; returns them. */
export async function waitForMaildir(maildir: string, count = 1, ms = 10_000): Promise<Buffer[]> {
  return waitFor(`${count} message(s) in ${maildir}/new`, () => {
    const found = maildirMessages(maildir);
    return found.length >= count ? found : undefined;
  }, ms);
}

/** Wait for the message with this Message-ID (unique per test) among a Maildir's new/ files. */
export async function waitForMessage(maildir: string, messageId: string, ms = 10_000): Promise<Buffer> {
  const needle = Buffer.from(`Message-ID: <${messageId}>`);
  return waitFor(`<${messageId}> in ${maildir}/new`, () => maildirMessages(maildir).find((m) => m.includes(needle)), ms);
}

/** True when no file in the Maildir holds this Message-ID. */
export function hasMessage(maildir: string, messageId: string): boolean {
  const needle = Buffer.from(`Message-ID: <${messageId}>`);
  return maildirMessages(maildir).some((m) => m.includes(needle));
}

// ---- sending through the test app --------------------------------------------------------------

export interface Mail {
  readonly from?: string;
  readonly mailParams?: string;
  readonly to: readonly string[];
  /** The message as the client means it: CRLF line ends, not dot-stuffed. */
  readonly message: string | Buffer;
  readonly helo?: string;
}

/** Double every dot that starts a line (the client's side of DATA). */
export function dotStuff(message: Buffer): Buffer {
  return Buffer.from(message.toString('latin1').replace(/(^|\r\n)\./g, '$1..'), 'latin1');
}

/** One session, one message: the reply after the final dot. Every RCPT must get 250. */
export async function send(t: TestApp, mail: Mail, replyMs = 30_000): Promise<ParsedReply> {
  const { client, done } = await t.greeted();
  assert.equal((await client.command(`EHLO ${mail.helo ?? 'client.example'}`)).code, 250);
  const from = await client.command(`MAIL FROM:${mail.from ?? '<sender@origin.example>'}${mail.mailParams ?? ''}`);
  assert.equal(from.code, 250, from.raw);
  for (const rcpt of mail.to) {
    const reply = await client.command(`RCPT TO:${rcpt}`);
    assert.equal(reply.code, 250, `${rcpt}: ${reply.raw}`);
  }
  assert.equal((await client.command('DATA')).code, 354);
  const raw = typeof mail.message === 'string' ? Buffer.from(mail.message, 'utf8') : mail.message;
  client.send(dotStuff(raw));
  client.send('.\r\n');
  const reply = await client.reply(replyMs);
  assert.equal((await client.command('QUIT')).code, 221);
  await done;
  return reply;
}

/**
 * A message with what breaks careless relays: a line that starts with a dot (dot-stuffed on the
 * wire, a lone `.` line included), 8-bit UTF-8 in header and body, a long line, an empty line at
 * the end. Message-ID and Date present so no MTA adds them.
 */
export function tricky(subject: string, messageId: string): string {
  return [
    'From: Sender <sender@origin.example>',
    'To: user@example.com',
    `Subject: ${subject}`,
    `Message-ID: <${messageId}>`,
    'Date: Mon, 1 Jan 2024 00:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'First line.',
    '.a line that starts with a dot',
    '..two dots',
    '.',
    'Grüße aus Köln, 日本語, emoji 🎉',
    'x'.repeat(1500),
    '',
    'Last line.',
    '',
  ].join('\r\n');
}

/** The part of a delivered file after the trace fields the receiving MTA prepended. */
export function afterLine(content: Buffer, firstLine: string): Buffer {
  const at = content.indexOf(Buffer.from(`\n${firstLine}`));
  assert.ok(at >= 0, `"${firstLine}" in ${content.toString('utf8').slice(0, 2000)}`);
  return content.subarray(at + 1);
}

export const lf = (text: string): Buffer => Buffer.from(text.replace(/\r\n/g, '\n'), 'utf8');

// ---- Postfix -----------------------------------------------------------------------------------

export interface PostfixOptions {
  /** Mailboxes (local parts at example.com) the virtual agent delivers to; others get 550 at RCPT. */
  readonly users?: readonly string[];
  /** More main.cf lines (name to value). */
  readonly main?: Readonly<Record<string, string>>;
  /** More smtpd listeners on their own ports: name to `-o name=value` overrides. */
  readonly listeners?: Readonly<Record<string, readonly string[]>>;
  /** More master.cf lines (another cleanup service with `-o` overrides, ...). */
  readonly services?: readonly string[];
  /** Files to write into the instance's etc/ first (name to content), e.g. a TLS key pair. */
  readonly files?: Readonly<Record<string, string>>;
}

export class Postfix {
  private constructor(
    readonly dir: string,
    readonly port: number,
    /** The ports of the extra listeners, by name. */
    readonly ports: Readonly<Record<string, number>>,
    private readonly child: ChildProcess,
    private readonly stderr: string[],
  ) {}

  static readonly daemonDirectory = '/usr/lib/postfix/sbin';

  static available(): boolean {
    return existsSync(join(Postfix.daemonDirectory, 'master')) && existsSync('/usr/sbin/postconf');
  }

  get configDir(): string {
    return join(this.dir, 'etc');
  }

  /** The cleanup service's socket (what queue/postfix-queue talks to), or another public service's. */
  get cleanupSocket(): string {
    return this.publicSocket('cleanup');
  }

  publicSocket(service: string): string {
    return join(this.dir, 'queue', 'public', service);
  }

  maildir(user: string): string {
    return join(this.dir, 'mail', user);
  }

  /** The instance's log (maillog_file). */
  log(): string {
    const file = join(this.dir, 'maillog');
    return (existsSync(file) ? readFileSync(file, 'utf8') : '') + this.stderr.join('');
  }

  /** Queue files still in the queue (deferred, active, incoming, hold). */
  queued(): string[] {
    const out: string[] = [];
    const walk = (dir: string): void => {
      if (!existsSync(dir)) return;
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        if (entry.isDirectory()) walk(join(dir, entry.name));
        else out.push(join(dir, entry.name));
      }
    };
    for (const q of ['incoming', 'active', 'deferred', 'hold']) walk(join(this.dir, 'queue', q));
    return out;
  }

  static async start(options: PostfixOptions = {}): Promise<Postfix> {
    const dir = openTempDir('qpsmtpd-postfix-');
    try {
      const port = await freePort();
      const etc = join(dir, 'etc');
      mkdirSync(etc);
      for (const [name, content] of Object.entries(options.files ?? {})) writeFileSync(join(etc, name), content, { mode: 0o600 });
      const ports: Record<string, number> = {};
      const extra: string[] = [];
      for (const [name, overrides] of Object.entries(options.listeners ?? {})) {
        ports[name] = await freePort();
        extra.push(`127.0.0.1:${ports[name]} inet n - n - - smtpd ${overrides.map((o) => `-o ${o}`).join(' ')}`);
      }
      const users = options.users ?? ['user', 'other'];
      writeFileSync(join(etc, 'vmailbox'), users.map((u) => `${u}@example.com ${u}/\n`).join(''));
      writeFileSync(join(etc, 'header_checks'), '/^Subject: reject me/ REJECT 5.7.1 content refused by the test\n');
      writeFileSync(join(etc, 'eod_access'), 'defer@origin.example 451 4.3.0 try again later, says the test\n');
      writeFileSync(join(etc, 'rcpt_access'), 'later@example.com 450 4.2.1 mailbox busy, says the test\n');
      const main: Record<string, string> = {
        compatibility_level: '3.6',
        queue_directory: join(dir, 'queue'),
        data_directory: join(dir, 'data'),
        meta_directory: '/etc/postfix',
        daemon_directory: Postfix.daemonDirectory,
        command_directory: '/usr/sbin',
        mail_owner: 'postfix',
        setgid_group: 'postdrop',
        myhostname: 'next-hop.test',
        mydomain: 'next-hop.test',
        myorigin: '$myhostname',
        mydestination: '',
        inet_interfaces: '127.0.0.1',
        inet_protocols: 'ipv4',
        mynetworks: '127.0.0.0/8',
        smtputf8_enable: 'yes',
        maillog_file: join(dir, 'maillog'),
        maillog_file_prefixes: dir,
        alias_maps: '',
        alias_database: '',
        biff: 'no',
        // No header rewriting or added headers for remote clients: what arrives is what was sent.
        local_header_rewrite_clients: '',
        virtual_mailbox_domains: 'example.com',
        virtual_mailbox_base: join(dir, 'mail'),
        virtual_mailbox_maps: `texthash:${join(etc, 'vmailbox')}`,
        virtual_uid_maps: `static:${MAIL_UID}`,
        virtual_gid_maps: `static:${MAIL_GID}`,
        virtual_minimum_uid: String(MAIL_UID),
        smtpd_authorized_xclient_hosts: '127.0.0.1',
        header_checks: `regexp:${join(etc, 'header_checks')}`,
        smtpd_end_of_data_restrictions: `check_sender_access texthash:${join(etc, 'eod_access')}`,
        smtpd_recipient_restrictions: `check_recipient_access texthash:${join(etc, 'rcpt_access')}, permit_mynetworks, reject_unauth_destination`,
        message_size_limit: '10240000',
        // Fast, quiet, and nothing that leaves the machine.
        smtp_dns_support_level: 'disabled',
        disable_dns_lookups: 'yes',
        smtpd_peername_lookup: 'no',
        queue_run_delay: '1s',
        minimal_backoff_time: '1s',
        maximal_backoff_time: '2s',
        ...options.main,
      };
      writeFileSync(join(etc, 'main.cf'), Object.entries(main).map(([k, v]) => `${k} = ${v}\n`).join(''));
      writeFileSync(
        join(etc, 'master.cf'),
        [
          `127.0.0.1:${port} inet n - n - - smtpd`,
          ...extra,
          ...(options.services ?? []),
          'pickup unix n - n 1 1 pickup',
          'cleanup unix n - n - 0 cleanup',
          'qmgr unix n - n 300 1 qmgr',
          'tlsmgr unix - - n 1000? 1 tlsmgr',
          'rewrite unix - - n - - trivial-rewrite',
          'bounce unix - - n - 0 bounce',
          'defer unix - - n - 0 bounce',
          'trace unix - - n - 0 bounce',
          'verify unix - - n - 1 verify',
          'proxymap unix - - n - - proxymap',
          'smtp unix - - n - - smtp',
          'error unix - - n - - error',
          'retry unix - - n - - error',
          'discard unix - - n - - discard',
          'virtual unix - n n - - virtual',
          'anvil unix - - n - 1 anvil',
          'scache unix - - n - 1 scache',
          'postlog unix-dgram n - n - 1 postlogd',
          '',
        ].join('\n'),
      );
      // The queue as post-install(1) would make it: root owns the top and pid/, postfix the rest.
      const postfixUid = Number(spawnSync('id', ['-u', 'postfix'], { encoding: 'utf8' }).stdout.trim());
      const postdropGid = Number(spawnSync('getent', ['group', 'postdrop'], { encoding: 'utf8' }).stdout.split(':')[2]);
      assert.ok(postfixUid > 0 && postdropGid > 0, 'the postfix user and the postdrop group exist');
      const queue = join(dir, 'queue');
      mkdirSync(join(queue, 'pid'), { recursive: true, mode: 0o755 });
      for (const q of ['active', 'bounce', 'corrupt', 'defer', 'deferred', 'flush', 'hold', 'incoming', 'private', 'saved', 'trace']) {
        mkdirSync(join(queue, q), { mode: 0o700 });
        chownSync(join(queue, q), postfixUid, 0);
      }
      mkdirSync(join(queue, 'maildrop'));
      chownSync(join(queue, 'maildrop'), postfixUid, postdropGid);
      chmodSync(join(queue, 'maildrop'), 0o1730);
      mkdirSync(join(queue, 'public'));
      chownSync(join(queue, 'public'), postfixUid, postdropGid);
      chmodSync(join(queue, 'public'), 0o710);
      mkdirSync(join(dir, 'data'), { mode: 0o700 });
      chownSync(join(dir, 'data'), postfixUid, 0);
      mkdirSync(join(dir, 'mail'), { mode: 0o755 });
      chownSync(join(dir, 'mail'), MAIL_UID, MAIL_GID);

      const stderr: string[] = [];
      const child = spawn(join(Postfix.daemonDirectory, 'master'), ['-d', '-e', '300', '-c', etc], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      child.stderr!.setEncoding('utf8').on('data', (s: string) => stderr.push(s));
      const instance = new Postfix(dir, port, ports, child, stderr);
      try {
        await waitFor('Postfix to listen', () => (child.exitCode !== null ? 'exited' : existsSync(instance.cleanupSocket) ? 'ok' : undefined), 15_000).then(
          (state) => {
            if (state === 'exited') throw new Error(`Postfix master exited: ${instance.log()}`);
          },
        );
        for (let i = 0; !(await canConnect(port)); i++) {
          if (i > 200) throw new Error(`Postfix smtpd does not listen on ${port}: ${instance.log()}`);
          await sleep(50);
        }
      } catch (err) {
        await instance.stop();
        throw err;
      }
      return instance;
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  async stop(): Promise<void> {
    await stopChild(this.child);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---- Dovecot -----------------------------------------------------------------------------------

export interface DovecotUser {
  readonly name: string;
  /** userdb extra fields, such as `userdb_quota_rule=*:storage=10B`. */
  readonly extra?: string;
}

export class Dovecot {
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly child: ChildProcess,
    private readonly output: string[],
  ) {}

  static available(): boolean {
    return existsSync('/usr/sbin/dovecot') && existsSync('/usr/lib/dovecot/lmtp');
  }

  get socketPath(): string {
    return join(this.dir, 'run', 'lmtp');
  }

  maildir(user: string): string {
    return join(this.dir, 'mail', user, 'Maildir');
  }

  log(): string {
    const file = join(this.dir, 'dovecot.log');
    return (existsSync(file) ? readFileSync(file, 'utf8') : '') + this.output.join('');
  }

  /** Make a user's home unusable for the mail process (a temporary failure at delivery). */
  breakMailbox(user: string): void {
    const home = join(this.dir, 'mail', user);
    mkdirSync(home, { recursive: true });
    chmodSync(home, 0o000);
  }

  /** Undo breakMailbox. */
  repairMailbox(user: string): void {
    const home = join(this.dir, 'mail', user);
    chmodSync(home, 0o700);
    chownSync(home, MAIL_UID, MAIL_GID);
  }

  static async start(users: readonly DovecotUser[]): Promise<Dovecot> {
    const dir = openTempDir('qpsmtpd-dovecot-');
    try {
      const port = await freePort();
      for (const sub of ['run', 'state']) mkdirSync(join(dir, sub));
      mkdirSync(join(dir, 'mail'), { mode: 0o755 });
      chownSync(join(dir, 'mail'), MAIL_UID, MAIL_GID);
      writeFileSync(join(dir, 'users'), users.map((u) => `${u.name}@example.com:{PLAIN}secret::::::${u.extra ?? ''}\n`).join(''));
      const conf = join(dir, 'dovecot.conf');
      writeFileSync(
        conf,
        `base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
info_log_path = ${dir}/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = ${MAIL_UID}
mail_location = maildir:~/Maildir
mail_plugins = quota
hostname = lmtp.test
passdb {
  driver = passwd-file
  args = ${dir}/users
}
userdb {
  driver = passwd-file
  args = ${dir}/users
  default_fields = uid=${MAIL_UID} gid=${MAIL_GID} home=${dir}/mail/%n
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${port}
  }
  unix_listener lmtp {
    mode = 0666
  }
}
service anvil {
  chroot =
}
plugin {
  quota = maildir:User quota
}
`,
      );
      const output: string[] = [];
      // `timeout` ends Dovecot by itself should the test process die; SIGTERM to it is passed on.
      const child = spawn('timeout', ['300', '/usr/sbin/dovecot', '-F', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout!.setEncoding('utf8').on('data', (s: string) => output.push(s));
      child.stderr!.setEncoding('utf8').on('data', (s: string) => output.push(s));
      const instance = new Dovecot(dir, port, child, output);
      try {
        for (let i = 0; !(await canConnect(port)); i++) {
          if (child.exitCode !== null || i > 300) throw new Error(`Dovecot does not listen on ${port}: ${instance.log()}`);
          await sleep(50);
        }
      } catch (err) {
        await instance.stop();
        throw err;
      }
      return instance;
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  async stop(): Promise<void> {
    await stopChild(this.child);
    // The mail processes ran as `mail`; a home made unreadable on purpose must be opened again.
    spawnSync('chmod', ['-R', 'u+rwx', join(this.dir, 'mail')]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---- Exim --------------------------------------------------------------------------------------

/**
 * Where .ci/run extracts exim4-daemon-light when Exim is not installed as a package: a folder every
 * user may traverse, since Exim re-executes itself after dropping to its own user.
 */
export const EXIM_CACHE = '/var/cache/qpsmtpd-test/exim4';

/** The exim binary: installed, or extracted from the Debian package into the cache. */
export function eximBinary(): string | undefined {
  for (const candidate of [process.env.QPSMTPD_TEST_EXIM, '/usr/sbin/exim4', join(EXIM_CACHE, 'usr', 'sbin', 'exim4')]) {
    if (candidate !== undefined && candidate !== '' && existsSync(candidate)) return candidate;
  }
  return undefined;
}

export class Exim {
  private constructor(
    readonly dir: string,
    /** The program for the plugin: Exim with the test's config (a wrapper script). */
    readonly program: string,
  ) {}

  get mailDir(): string {
    return join(this.dir, 'mail');
  }

  mailbox(user: string): string {
    return join(this.dir, 'mail', user);
  }

  log(): string {
    const file = join(this.dir, 'spool', 'log', 'mainlog');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  /** Messages still in Exim's queue (spool/input). */
  queued(): string[] {
    const input = join(this.dir, 'spool', 'input');
    return existsSync(input) ? readdirSync(input).filter((n) => n.endsWith('-H')) : [];
  }

  static prepare(binary: string): Exim {
    const dir = openTempDir('qpsmtpd-exim-');
    const spool = join(dir, 'spool');
    const mail = join(dir, 'mail');
    mkdirSync(spool, { mode: 0o750 });
    mkdirSync(mail, { mode: 0o755 });
    chownSync(spool, MAIL_UID, MAIL_GID);
    chownSync(mail, MAIL_UID, MAIL_GID);
    const conf = join(dir, 'exim.conf');
    writeFileSync(
      conf,
      `# Exim for the queue/exim-bsmtp tests: nothing leaves this folder.
exim_path = ${binary}
exim_user = mail
exim_group = mail
never_users =
trusted_users = root
keep_environment =
spool_directory = ${spool}
log_file_path = ${spool}/log/%slog
primary_hostname = exim.test
qualify_domain = exim.test
message_size_limit = 100k
acl_not_smtp = acl_message
begin acl
acl_message:
  defer   senders = defer@origin.example
          message = try again later, says the test
  deny    condition = \${if match{$h_subject:}{reject me}}
          message = content refused by the test
  accept
begin routers
mailbox:
  driver = accept
  domains = example.com
  local_parts = user : other : third
  transport = mailbox
begin transports
mailbox:
  driver = appendfile
  file = ${mail}/$local_part_data
  user = mail
  group = mail
  mode = 0600
  delivery_date_add
  envelope_to_add
  return_path_add
`,
    );
    const wrapper = join(dir, 'exim');
    const haveUser = spawnSync('getent', ['passwd', 'Debian-exim']).status === 0;
    if (haveUser) {
      writeFileSync(wrapper, `#!/bin/sh\nexec ${binary} -C ${conf} "$@"\n`, { mode: 0o755 });
    } else {
      // The binary insists on its compiled-in user: give it one in a private mount namespace.
      const passwd = readFileSync('/etc/passwd', 'utf8') + `Debian-exim:x:${MAIL_UID}:${MAIL_GID}::/nonexistent:/usr/sbin/nologin\n`;
      const group = readFileSync('/etc/group', 'utf8') + `Debian-exim:x:${MAIL_GID}:\n`;
      writeFileSync(join(dir, 'passwd'), passwd, { mode: 0o644 });
      writeFileSync(join(dir, 'group'), group, { mode: 0o644 });
      writeFileSync(
        wrapper,
        `#!/bin/sh
exec unshare -m sh -c 'mount --bind "$0" /etc/passwd && mount --bind "$1" /etc/group && shift && exec "$@"' \\
  ${join(dir, 'passwd')} ${join(dir, 'group')} ${binary} -C ${conf} "$@"
`,
        { mode: 0o755 },
      );
    }
    return new Exim(dir, wrapper);
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
