// The talk's "Queuing (für arme)": hand the message to a program's stdin. Done safely: the
// program runs without a shell, with a time limit, and the mail is acknowledged only when the
// program took all of it and exited 0; anything else (it could not start, stopped reading,
// failed, ran too long) is a temporary failure, so the client keeps the mail and retries.
// config/plugins: `pipe_queue /path/to/program arg ...`, e.g. `pipe_queue /usr/sbin/sendmail -i -t`.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { Plugin, OK, DENYSOFT, LOGERROR, deadline } from 'qpsmtpd';
import type { PluginHost, Transaction } from 'qpsmtpd';

const TIME_LIMIT_MS = 20_000;

export default class PipeQueue extends Plugin {
  program = '';
  programArgs: string[] = [];

  register(_qp: PluginHost, program?: string, ...args: string[]) {
    if (!program) throw new Error('pipe_queue needs a program to run: pipe_queue /path/to/program [args]');
    this.program = program;
    this.programArgs = args;
  }

  async hook_queue(tx: Transaction) {
    // Stop the program when it runs too long, or when the hook call does (this.signal).
    const limit = deadline(TIME_LIMIT_MS, this.signal);
    const signal = limit.signal;
    const child = spawn(this.program, this.programArgs, { stdio: ['pipe', 'ignore', 'inherit'], signal });
    try {
      await once(child, 'spawn');
      const [fed, exited] = await Promise.allSettled([pipeline(tx.bodyStream(), child.stdin!), once(child, 'close')]);
      if (exited.status === 'rejected') throw exited.reason;
      if (child.exitCode !== 0) throw new Error(`exited with ${child.exitCode ?? child.signalCode}`);
      if (fed.status === 'rejected') throw fed.reason; // exit 0 but it did not read the whole message
      return [OK, 'Queued!'];
    } catch (err) {
      this.log(LOGERROR, `${this.program}: ${String(signal.aborted ? signal.reason : err)}`);
      child.kill();
      return [DENYSOFT, 'Queuing failed, please try again later'];
    } finally {
      limit.release();
    }
  }
}
