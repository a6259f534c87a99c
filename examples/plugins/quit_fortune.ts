// The talk's "Eigene Meldung": a plugin that answers the client itself and returns DONE.
// On QUIT it runs `fortune -s` (no shell, a time limit, stopped by this.signal when the hook
// runs out of time) and says goodbye with the fortune. Without the program it declines, and the
// core says its usual 221. config/plugins: `quit_fortune [/path/to/fortune]`.
import { access, constants } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Plugin, DECLINED, DONE, LOGWARN } from 'qpsmtpd';
import type { PluginHost } from 'qpsmtpd';

const run = promisify(execFile);

export default class QuitFortune extends Plugin {
  fortune = '/usr/games/fortune';

  register(_qp: PluginHost, program?: string) {
    if (program) this.fortune = program;
  }

  async hook_quit() {
    try {
      await access(this.fortune, constants.X_OK);
    } catch {
      return DECLINED; // no fortune program: the core's usual goodbye
    }
    let stdout: string;
    try {
      ({ stdout } = await run(this.fortune, ['-s'], { timeout: 2000, signal: this.signal }));
    } catch (err) {
      this.log(LOGWARN, `${this.fortune} failed: ${String(err)}`);
      return DECLINED;
    }
    const lines = stdout.replace(/\n$/, '').split('\n').map((line) => ` / ${line}`);
    this.qp.respond(221, [`${this.qp.me} closing connection.`, ...lines]);
    return DONE;
  }
}
