/**
 * auth/auth_checkpassword: SMTP AUTH (PLAIN and LOGIN) against a program speaking DJB's
 * checkpassword interface (https://cr.yp.to/checkpwd/interface.html): vpopmail's vchkpw,
 * checkpassword, checkpassword-pam, ... (qpsmtpd's `auth/auth_checkpassword`).
 *
 * For each attempt the program is run, without a shell, as `PROGRAM ARGS... TRUE`, with
 * `user\0password\0timestamp\0` written on its file descriptor 3 (the timestamp is the time in
 * seconds; checkpassword programs that do not do APOP ignore it). A checkpassword program that
 * accepts runs TRUE (normally /bin/true) and exits with its status. Its exit status decides:
 *   0         OK: authenticated.
 *   1         DENY (535): wrong password or unknown user; no later auth plugin is asked.
 *   111       DENYSOFT (454): the program had a temporary problem; the client may retry.
 *   other     DENY (535), logged as an error with the status and the start of its stderr.
 * The program is given `timeout` seconds (default 10); then it is killed with its process group
 * and the attempt gets DENYSOFT (454). It is killed too when the hook call itself runs out of time
 * (`plugin_timeout`). A program that cannot be started at all: DENYSOFT, logged as an error.
 * Its stdout is read and dropped (never sent to the SMTP client); its stderr is logged (at
 * LOGDEBUG, or with the error when the exit status is unexpected).
 *
 * CRAM-MD5 cannot work through checkpassword (the program needs the clear password), so only the
 * auth-plain and auth-login hooks are registered: the plugin does not make CRAM-MD5 advertised, and
 * declines it should it be called for it anyway.
 *
 * The program's environment is the daemon's, with TCPREMOTEIP, TCPREMOTEPORT, TCPLOCALIP and
 * TCPLOCALPORT set from the connection (vchkpw logs and checks them), and PATH defaulted to
 * /usr/local/bin:/usr/bin:/bin when the daemon has none.
 *
 * Arguments (pairs, as in qpsmtpd):
 *   checkpw PROGRAM   the checkpassword program
 *   true PROGRAM      the program it runs on success (/bin/true)
 *   timeout SECONDS   time limit for one check (default 10; ours)
 * Without `checkpw` and `true` the command is read from config/smtpauth-checkpassword, one line,
 * split on white space: `/usr/local/vpopmail/bin/vchkpw /bin/true`. There it may have more words,
 * e.g. `sudo -C4 -u vpopmail /usr/local/vpopmail/bin/vchkpw /bin/true` (sudo's -C4 keeps file
 * descriptor 3 open; sudoers then needs `Defaults:qpsmtpd closefrom_override`). qpsmtpd prepended
 * sudo by itself when it thought it was needed; this plugin runs exactly what it is given.
 * The first and the last word must name executable files (when they are paths); otherwise, as in
 * qpsmtpd, an error is logged and the plugin registers no hook (AUTH is not offered through it).
 *
 * Differences from qpsmtpd, whose plugin declined on every failure: a wrong password (status 1)
 * is DENY, so no later auth plugin is asked, as with auth_flat_file; status 111 and time-outs are
 * temporary failures (454); the program's output never reaches the client (qpsmtpd's child
 * inherited its stdout, the SMTP connection under tcpserver).
 *
 * Passwords are never logged, at any level (one the program echoes on stderr is masked).
 *
 * Config files: smtpauth-checkpassword.
 * Hooks: auth-plain, auth-login.
 */
import { Plugin, DECLINED, DENY, DENYSOFT, OK, LOGDEBUG, LOGERROR, LOGINFO, LOGNOTICE, LOGWARN } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';
import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import type { Writable } from 'node:stream';

const DEFAULT_TIMEOUT_SECONDS = 10;
const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';
const STDERR_KEEP = 2048;
const STDERR_GRACE_MS = 100;

/** How one run of the program ended. */
type Outcome = { readonly kind: 'exit'; readonly code: number; readonly stderr: string } | { readonly kind: 'signal'; readonly signal: string; readonly stderr: string } | { readonly kind: 'timeout' } | { readonly kind: 'aborted' } | { readonly kind: 'spawn-error'; readonly message: string };

function shown(user: string): string {
  return JSON.stringify(user);
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** A bare command name is looked up in PATH when run; a path must be an executable file. */
function runnable(word: string): boolean {
  return !word.includes('/') || isExecutableFile(word);
}

export default class AuthCheckpassword extends Plugin {
  private command: readonly string[] = [];
  private timeoutMs = DEFAULT_TIMEOUT_SECONDS * 1000;

  register(qp: PluginHost, ...args: string[]): void {
    const options = new Map<string, string>();
    for (let i = 0; i + 1 < args.length; i += 2) options.set(args[i]!, args[i + 1]!);
    if (args.length % 2 !== 0) this.log(LOGERROR, 'bad arguments: expected pairs such as "checkpw /path/to/checkpassword true /bin/true"');

    const timeout = options.get('timeout');
    if (timeout !== undefined) {
      const seconds = Number(timeout);
      if (Number.isFinite(seconds) && seconds > 0) this.timeoutMs = seconds * 1000;
      else this.log(LOGERROR, `bad timeout "${timeout}": using ${DEFAULT_TIMEOUT_SECONDS} seconds`);
    }

    const command = this.commandFrom(qp, options);
    if (command === undefined) {
      this.log(LOGERROR, "disabled due to invalid configuration: give `checkpw PROGRAM true PROGRAM` or a line `PROGRAM TRUE` in config/smtpauth-checkpassword");
      return;
    }
    this.command = command;
    this.registerHook('auth-plain', 'checkPassword');
    this.registerHook('auth-login', 'checkPassword');
  }

  /** The argv to run, from the arguments or else from config/smtpauth-checkpassword. */
  private commandFrom(qp: PluginHost, options: ReadonlyMap<string, string>): string[] | undefined {
    const checkpw = options.get('checkpw');
    const truth = options.get('true');
    if (checkpw !== undefined && truth !== undefined && runnable(checkpw) && runnable(truth)) return [checkpw, truth];
    if (checkpw !== undefined || truth !== undefined) this.log(LOGNOTICE, `the checkpw and true arguments do not both name executable files`);

    const line = qp.config('smtpauth-checkpassword');
    if (line === undefined) return undefined;
    this.log(LOGNOTICE, 'reading config from smtpauth-checkpassword');
    const words = line.trim().split(/\s+/);
    if (words.length < 2 || !runnable(words[0]!) || !runnable(words[words.length - 1]!)) return undefined;
    return words;
  }

  async checkPassword(_tx: Transaction, mechanism: string, user: string, passClear: string | undefined): Promise<HookResult> {
    if (passClear === undefined || mechanism.toUpperCase() === 'CRAM-MD5') {
      this.log(LOGDEBUG, `skip: ${mechanism} cannot be checked by a checkpassword program`);
      return DECLINED;
    }
    if (user.includes('\0') || passClear.includes('\0')) {
      this.log(LOGINFO, `fail: the user name or password of ${shown(user)} contains a NUL byte`);
      return DENY;
    }

    const outcome = await this.run(user, passClear);
    switch (outcome.kind) {
      case 'exit':
        if (outcome.stderr !== '' && outcome.code <= 1) this.log(LOGDEBUG, `stderr of the checkpassword program: ${JSON.stringify(outcome.stderr)}`);
        if (outcome.code === 0) {
          this.log(LOGINFO, `pass: auth success for ${shown(user)} with ${mechanism}`);
          return OK;
        }
        if (outcome.code === 1) {
          this.log(LOGINFO, `fail: wrong password or unknown user ${shown(user)}`);
          return DENY;
        }
        if (outcome.code === 111) {
          this.log(LOGWARN, `temporary failure checking ${shown(user)} (exit status 111)${stderrNote(outcome.stderr)}`);
          return DENYSOFT;
        }
        this.log(LOGERROR, `fail: the checkpassword program exited with status ${outcome.code} for ${shown(user)}${stderrNote(outcome.stderr)}`);
        return DENY;
      case 'signal':
        this.log(LOGERROR, `fail: the checkpassword program was killed by ${outcome.signal} checking ${shown(user)}${stderrNote(outcome.stderr)}`);
        return DENY;
      case 'timeout':
        this.log(LOGERROR, `error: the checkpassword program took longer than ${this.timeoutMs / 1000} s checking ${shown(user)}; killed`);
        return DENYSOFT;
      case 'aborted':
        this.log(LOGERROR, `error: the hook ran out of time checking ${shown(user)}; the checkpassword program was killed`);
        return DENYSOFT;
      case 'spawn-error':
        this.log(LOGERROR, `error: cannot run ${this.command[0]}: ${outcome.message}`);
        return DENYSOFT;
    }
  }

  /** Run the program once with the credentials on fd 3. */
  private run(user: string, password: string): Promise<Outcome> {
    const c = this.connection;
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(this.env)) if (value !== undefined) env[key] = value;
    env['PATH'] ??= DEFAULT_PATH;
    env['TCPREMOTEIP'] = c.remoteIp;
    env['TCPREMOTEPORT'] = String(c.remotePort);
    env['TCPLOCALIP'] = c.localIp;
    env['TCPLOCALPORT'] = String(c.localPort);

    const [program, ...args] = this.command as [string, ...string[]];
    const signal = this.signal;
    this.log(LOGDEBUG, `running ${this.command.join(' ')} for ${shown(user)}`);

    return new Promise<Outcome>((resolve) => {
      let settled = false;
      let stderr = '';
      // Its own process group, so that a time-out also kills what it started (a wrapper's children).
      const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], env, detached: true });

      const kill = (): void => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      };
      const finish = (outcome: Outcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        // A grandchild may still hold the pipes: stop reading them rather than wait for them.
        child.stdout?.destroy();
        child.stderr?.destroy();
        (child.stdio[3] as Writable | null)?.destroy();
        resolve(outcome);
      };
      const onAbort = (): void => {
        kill();
        finish({ kind: 'aborted' });
      };
      const timer = setTimeout(() => {
        kill();
        finish({ kind: 'timeout' });
      }, this.timeoutMs);

      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });

      child.on('error', (err) => finish({ kind: 'spawn-error', message: err.message }));
      let stderrDone = false;
      let onStderrDone: (() => void) | undefined;
      child.on('exit', (code, sig) => {
        const done = (): void => {
          const text = scrub(stderr, password);
          if (code !== null) finish({ kind: 'exit', code, stderr: text });
          else finish({ kind: 'signal', signal: sig ?? 'a signal', stderr: text });
        };
        // Let what it wrote to stderr arrive, briefly: a grandchild may keep the pipe open.
        if (stderrDone) return done();
        const grace = setTimeout(done, STDERR_GRACE_MS);
        onStderrDone = () => {
          clearTimeout(grace);
          done();
        };
      });
      child.stdout?.resume();
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (chunk: string) => {
        if (stderr.length < STDERR_KEEP) stderr = (stderr + chunk).slice(0, STDERR_KEEP);
      });
      child.stderr?.on('end', () => {
        stderrDone = true;
        onStderrDone?.();
      });

      const fd3 = child.stdio[3] as Writable | null;
      if (fd3 === null) {
        kill();
        finish({ kind: 'spawn-error', message: 'no file descriptor 3' });
        return;
      }
      // A program that exits without reading everything makes this EPIPE: its exit status counts.
      fd3.on('error', () => {});
      const timestamp = String(Math.floor(Date.now() / 1000));
      fd3.end(Buffer.from(`${user}\0${password}\0${timestamp}\0`, 'utf8'));
    });
  }
}

/** The program's stderr without the password, should it have echoed it. */
function scrub(stderr: string, password: string): string {
  return password === '' ? stderr : stderr.split(password).join('********');
}

function stderrNote(stderr: string): string {
  return stderr === '' ? '' : `; stderr: ${JSON.stringify(stderr.slice(0, 300))}`;
}
