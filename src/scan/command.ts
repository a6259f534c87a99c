/**
 * Scanning with a command-line virus scanner (clamscan, clamdscan, and the others qpsmtpd had
 * plugins for: aveclient, bdc, kavscanner, uvscan, savscan ...): the program is started directly,
 * never through a shell, given the message on its standard input or as a file of its own, and
 * judged by its exit code and, where the code does not tell, by a pattern in its output. It is
 * killed at the time limit or when the hook's signal aborts.
 */
import { basename } from 'node:path';
import { runProgram } from '../mail/child-program.ts';
import type { Transaction } from '../session/transaction.ts';
import { messageSource, writeMessageFile } from './message.ts';
import type { VirusVerdict } from './policy.ts';
import { ScanError } from './socket-request.ts';

/** Output kept from each of standard output and standard error. */
const OUTPUT_LIMIT = 64 * 1024;

export interface CommandScan {
  /** The program's absolute path. */
  readonly command: string;
  /** Its arguments; with `input: 'file'` each `{}` becomes the message file's path (appended when none). */
  readonly args: readonly string[];
  /** How the message reaches the program. */
  readonly input: 'stdin' | 'file';
  /** Where the message file is written (`input: 'file'`); it is removed afterwards. */
  readonly fileDir?: string;
  /** Exit codes that mean "clean". */
  readonly cleanCodes: readonly number[];
  /** Exit codes that mean "infected". */
  readonly virusCodes: readonly number[];
  /**
   * Found in the output, the message is infected whatever the exit code (for scanners whose code
   * does not tell); its first group, if any, names the virus. It also names the virus for a virus
   * exit code; without it the name is taken from a `... NAME FOUND` line, else the first line.
   */
  readonly virusPattern?: RegExp;
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
  /** The program's whole environment (default: PATH only). */
  readonly env?: Readonly<Record<string, string>>;
}

/** Run the scanner on the message. A scanner that fails (not started, killed, another exit code) is a ScanError. */
export async function runScanCommand(tx: Transaction, scan: CommandScan): Promise<VirusVerdict> {
  const name = basename(scan.command);
  const file = scan.input === 'file' ? await writeMessageFile(tx, scan.fileDir ?? '/tmp', scan.signal) : undefined;
  try {
    const args = file === undefined ? [...scan.args] : withPath(scan.args, file.path);
    const run = await runProgram({
      command: scan.command,
      args,
      env: scan.env ?? { PATH: '/usr/local/bin:/usr/bin:/bin' },
      timeoutMs: scan.timeoutMs,
      signal: scan.signal,
      processGroup: true,
      ...(file === undefined ? { input: [{ fd: 0, data: () => messageSource(tx) }] } : {}),
      collect: { 1: OUTPUT_LIMIT, 2: OUTPUT_LIMIT },
    });
    if (!run.started) throw new ScanError(`cannot start ${scan.command}: ${run.error.message}`, 'connect');
    const output = `${run.output(1).toString('utf8')}\n${run.output(2).toString('utf8')}`.trim();
    if (run.killed) {
      throw scan.signal.aborted
        ? new ScanError(`${name}: the hook ran out of time (plugin_timeout)`, 'aborted')
        : new ScanError(`${name}: no verdict within ${scan.timeoutMs / 1000} s (killed)`, 'timeout');
    }
    if (run.code === null) throw new ScanError(`${name} ended by signal ${run.signal ?? '?'}: ${firstLine(output)}`, 'closed');
    const hit = scan.virusPattern?.exec(output);
    if (hit !== null && hit !== undefined) return { clean: false, name: hit[1] ?? hit[0] };
    if (scan.virusCodes.includes(run.code)) return { clean: false, name: /^.*?:?\s*(\S+) FOUND$/m.exec(output)?.[1] ?? firstLine(output) };
    if (scan.cleanCodes.includes(run.code)) {
      // A scanner that stopped reading did not see the whole message.
      if (run.inputError !== undefined) throw new ScanError(`${name} did not read the whole message (${run.inputError.message})`, 'closed');
      return { clean: true };
    }
    throw new ScanError(`${name} failed, exit code ${run.code}: ${firstLine(output)}`, 'protocol');
  } finally {
    await file?.remove();
  }
}

function withPath(args: readonly string[], path: string): string[] {
  return args.includes('{}') ? args.map((a) => (a === '{}' ? path : a)) : [...args, path];
}

function firstLine(output: string): string {
  return (output.split('\n').find((l) => l.trim() !== '') ?? '(no output)').trim().slice(0, 200);
}
