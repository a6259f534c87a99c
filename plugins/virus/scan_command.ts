/**
 * virus/scan_command: scan each message with any command-line virus scanner, judged by its exit
 * code and, optionally, a pattern in its output. New here: it stands in for qpsmtpd's plugins
 * for single scanners (aveclient, bitdefender, kavscanner, uvscan, sophie, hbedv), each of which
 * ran one program and read its exit code or output.
 *
 *   virus/scan_command [name value ...] /ABSOLUTE/PATH/TO/SCANNER [ARGS ...]
 *
 * The first word that is an absolute path is the program; the words after it are its arguments,
 * where `{}` stands for the message file (input file). It is started directly, never through a
 * shell, with PATH as its only environment variable. Before it, in pairs:
 *   input stdin|file        the message on standard input (default), or as a file of its own
 *                           (written to tmp_dir, readable by the group, removed afterwards; its
 *                           path replaces `{}` in ARGS, or is appended when there is none)
 *   clean_codes N[,N...]    exit codes for "clean" (default 0)
 *   virus_codes N[,N...]    exit codes for "infected" (default 1)
 *   virus_regexp PATTERN    a Perl regular expression: found in the output (standard output and
 *                           error), the message is infected whatever the exit code; its first
 *                           group names the virus. Without it a virus is named from a
 *                           `... NAME FOUND` line, else the first line of output.
 *   name TEXT               the scanner's name in X-Virus-Checked (default: the program's name)
 *   deny_viruses yes|no     yes (default): 552 `5.7.1 Virus found: NAME`; no: deliver it marked
 *                           with X-Virus-Found: Yes and X-Virus-Details: NAME
 *   defer_on_error yes|no   any other exit code, a signal, the time limit or a program that will
 *                           not start: yes (default, as qpsmtpd's command scanners): 452 `4.3.0
 *                           Unable to scan for viruses, try again later`; no: a logged pass
 *   max_size BYTES          larger messages are not scanned (logged; default 1048576)
 *   tmp_dir PATH            where message files go (input file; default the system's temp folder)
 *   timeout SECONDS         the program is killed after this long (default 20)
 *   loglevel N              the usual
 * Examples (exit codes from the scanners' manuals):
 *   virus/scan_command /usr/bin/clamscan --no-summary -
 *   virus/scan_command input file virus_codes 2,3,4,6,8 /opt/kav/bin/aveclient -s {}
 *   virus/scan_command input file virus_codes 13 virus_regexp Found\s(?:the\s)?(\S+) /usr/local/bin/uvscan --mime {}
 * (config/plugins splits arguments on white space: write \s for a space in a pattern.)
 * A clean message gets `X-Virus-Found: No` and `X-Virus-Checked: by NAME on ME`. Transaction note
 * `virus` (src/scan/policy.ts); karma -1 for a virus. Config files: me. Hooks: data_post.
 */
import { tmpdir } from 'node:os';
import { basename, isAbsolute } from 'node:path';
import { Plugin, DECLINED, applyVirusVerdict, overSizeLimit, choiceArgument, flagArgument, pairArguments, parseCount, parseSeconds, perlRegExp, runScanCommand, scanFailure } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';

export default class ScanCommand extends Plugin {
  private command = '';
  private commandArgs: string[] = [];
  private input: 'stdin' | 'file' = 'stdin';
  private cleanCodes = [0];
  private virusCodes = [1];
  private virusPattern: RegExp | undefined;
  private scanner = '';
  private deny = true;
  private deferOnError = true;
  private maxSize = 1_048_576;
  private fileDir = tmpdir();
  private timeoutMs = 20_000;

  register(_qp: PluginHost, ...args: string[]): void {
    const at = args.findIndex((word, i) => i % 2 === 0 && isAbsolute(word));
    if (at === -1) throw new Error('no scanner: virus/scan_command [name value ...] /ABSOLUTE/PATH/TO/SCANNER [ARGS ...]');
    this.command = args[at]!;
    this.commandArgs = args.slice(at + 1);
    const pairs = pairArguments(this, args.slice(0, at), ['input', 'clean_codes', 'virus_codes', 'virus_regexp', 'name', 'deny_viruses', 'defer_on_error', 'max_size', 'tmp_dir', 'timeout']);
    this.input = choiceArgument(pairs, 'input', ['stdin', 'file'], 'stdin');
    if (pairs.has('clean_codes')) this.cleanCodes = codes('clean_codes', pairs.get('clean_codes')!);
    if (pairs.has('virus_codes')) this.virusCodes = codes('virus_codes', pairs.get('virus_codes')!);
    const both = this.cleanCodes.filter((c) => this.virusCodes.includes(c));
    if (both.length > 0) throw new Error(`exit code ${both.join(', ')} cannot mean both clean and infected`);
    const pattern = pairs.get('virus_regexp');
    if (pattern !== undefined) {
      const compiled = perlRegExp(pattern, 'm');
      if ('error' in compiled) throw new Error(`virus_regexp "${pattern}": ${compiled.error}`);
      this.virusPattern = compiled.regexp;
    }
    this.scanner = pairs.get('name') ?? basename(this.command);
    this.deny = flagArgument(pairs, 'deny_viruses', true);
    this.deferOnError = flagArgument(pairs, 'defer_on_error', true);
    if (pairs.has('max_size')) this.maxSize = parseCount('max_size', pairs.get('max_size')!);
    const dir = pairs.get('tmp_dir');
    if (dir !== undefined && !isAbsolute(dir)) throw new Error(`tmp_dir "${dir}": expected an absolute path`);
    this.fileDir = dir ?? this.fileDir;
    if (pairs.has('timeout')) this.timeoutMs = parseSeconds('timeout', pairs.get('timeout')!);
  }

  async hook_data_post(tx: Transaction): Promise<HookResult> {
    if (overSizeLimit(this, tx, this.maxSize)) return DECLINED;
    try {
      const verdict = await runScanCommand(tx, {
        command: this.command,
        args: this.commandArgs,
        input: this.input,
        fileDir: this.fileDir,
        cleanCodes: this.cleanCodes,
        virusCodes: this.virusCodes,
        ...(this.virusPattern !== undefined ? { virusPattern: this.virusPattern } : {}),
        timeoutMs: this.timeoutMs,
        signal: this.signal,
      });
      return applyVirusVerdict(this, tx, verdict, { scanner: this.scanner, deny: this.deny });
    } catch (err) {
      return scanFailure(this, err, this.deferOnError, 'Unable to scan for viruses, try again later');
    }
  }
}

function codes(key: string, value: string): number[] {
  if (!/^\d{1,3}(,\d{1,3})*$/.test(value)) throw new Error(`${key} "${value}": expected exit codes such as 1 or 2,3`);
  return value.split(',').map(Number);
}
