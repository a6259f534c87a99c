/**
 * quit_fortune: say goodbye with a fortune cookie (qpsmtpd's `quit_fortune`).
 *
 * On QUIT from a client that greeted with HELO, the reply is
 *   221-2.0.0 mx.example.com closing connection.
 *   221-2.0.0   / first line of `fortune -s`
 *   221 2.0.0   / last line
 * Clients that said EHLO (qpsmtpd: "probably too sophisticated to enjoy the fun") or did not
 * greet at all get the core's usual 221. The session ends after the reply either way.
 *
 * The program is `/usr/games/fortune` (Debian's fortune-mod), run as `fortune -s` without a
 * shell, with a time limit of 2 seconds; it is also stopped when the hook call runs out of time.
 * When it is not installed (not executable at load time) the plugin registers no hook, as
 * qpsmtpd's; when it fails or takes too long, that is logged and the core's 221 is sent.
 *
 * Arguments: an optional path to another fortune program (ours; qpsmtpd's has none), and
 * `loglevel N` as for every plugin.
 *
 * Config files: `me` (in the reply). Hooks: quit.
 *
 * Deliberate differences from qpsmtpd: qpsmtpd ran the program through backticks (a shell) and
 * waited for it without limit; we run it directly with a time limit. Output lines are cut at 400
 * characters, and at most 30 lines are sent.
 */
import { accessSync, constants } from 'node:fs';
import { execFile } from 'node:child_process';
import { Plugin, DECLINED, DONE, LOGWARN } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';

const DEFAULT_FORTUNE = '/usr/games/fortune';
const TIME_LIMIT_MS = 2000;
const MAX_LINES = 30;
const MAX_LINE_LENGTH = 400;

export default class QuitFortune extends Plugin {
  fortune = DEFAULT_FORTUNE;

  register(_qp: PluginHost, ...args: string[]): void {
    const at = args.findIndex((a) => a.toLowerCase() === 'loglevel');
    const rest = at === -1 ? args : [...args.slice(0, at), ...args.slice(at + 2)];
    if (rest.length > 1) throw new Error(`quit_fortune: at most one argument, the fortune program (got "${rest.join(' ')}")`);
    if (rest[0] !== undefined) this.fortune = rest[0];
    try {
      accessSync(this.fortune, constants.X_OK);
    } catch {
      this.log(LOGWARN, `${this.fortune} is not installed (or not executable): QUIT gets the usual reply`);
      return; // no fortune program: no hook
    }
    this.registerHook('quit', 'fortuneHandler');
  }

  async fortuneHandler(_tx: Transaction): Promise<HookResult> {
    const hello = this.connection.hello;
    // Someone who talks EHLO is probably too sophisticated to enjoy the fun.
    if (hello === undefined || hello === 'ehlo') return DECLINED;
    let output: string;
    try {
      output = await run(this.fortune, ['-s'], this.signal);
    } catch (err) {
      this.log(LOGWARN, `${this.fortune} failed: ${err instanceof Error ? err.message : String(err)}`);
      return DECLINED;
    }
    const lines = output
      .replace(/\n$/, '')
      .split('\n')
      .slice(0, MAX_LINES)
      .map((line) => `  / ${line.replace(/\r$/, '').slice(0, MAX_LINE_LENGTH)}`);
    this.qp.respond(221, [`${this.qp.me} closing connection.`, ...(output === '' ? [] : lines)]);
    return DONE;
  }
}

/** Run a program without a shell; its standard output, or an error (exit status, time limit). */
function run(program: string, args: string[], signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(program, args, { timeout: TIME_LIMIT_MS, killSignal: 'SIGKILL', maxBuffer: 64 * 1024, signal, encoding: 'utf8' }, (err, stdout) => {
      if (err) reject(err);
      else resolve(stdout);
    });
  });
}
