/**
 * virus/clamav: scan each message with ClamAV's command-line scanner (qpsmtpd's virus/clamav):
 * `clamscan --stdout --no-summary -`, the message on its standard input (clamdscan works the same
 * and hands the message to clamd). Started directly, never through a shell. Exit codes: 0 clean,
 * 1 virus (named from its `stdin: NAME FOUND` line), anything else, a signal or the time limit:
 * the scanner failed.
 *
 * Arguments, `name=value` words (qpsmtpd's form; a leading absolute path alone is the scanner):
 *   clamscan_path=PATH   the scanner (default /usr/bin/clamscan; /usr/bin/clamdscan for clamd)
 *   clamd_conf=PATH      passed as --config-file=PATH (clamdscan's option; default: none given)
 *   database=PATH        passed as --database=PATH (clamscan: signatures other than the system's)
 *   action=add-header|reject   add-header (default, as qpsmtpd): deliver an infected message
 *                        with X-Virus-Found: Yes and X-Virus-Details: NAME; reject: 552
 *                        `5.7.1 Virus found: NAME`
 *   max_size=BYTES       larger messages are not scanned (logged; default 524288)
 *   declined_on_fail     a failed scan passes the message (logged); without it (qpsmtpd's
 *                        default) the client gets 452 `4.3.0 Unable to scan for viruses, try
 *                        again later`
 *   timeout=SECONDS      the scanner is killed after this long (default 20; plugin_timeout ends it sooner)
 *   tmp_dir=PATH, back_compat   accepted for old configurations and ignored (the message goes on
 *                        standard input; options of ClamAV before 0.80 are gone)
 * A clean message gets `X-Virus-Found: No` and `X-Virus-Checked: by ClamAV (clamscan) on ME` (the program's name).
 * Transaction note `virus` (src/scan/policy.ts); karma -1 for a virus. Config files: me.
 * Hooks: data_post. Log (LOGINFO): `pass, clean`, `skip, too large ...`; LOGNOTICE `fail, ...`;
 * LOGERROR `error, ...`.
 *
 * Differences from qpsmtpd: no spool file and no chmod (standard input instead); no shell; the
 * time limit and database= are new; an unknown argument stops the plugin loading.
 */
import { basename, isAbsolute } from 'node:path';
import { Plugin, DECLINED, LOGWARN, applyVirusVerdict, overSizeLimit, parseCount, parseSeconds, runScanCommand, scanFailure } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';

export default class ClamAV extends Plugin {
  private command = '/usr/bin/clamscan';
  private options: string[] = [];
  private deny = false;
  private maxSize = 524_288;
  private deferOnError = true;
  private timeoutMs = 20_000;

  register(_qp: PluginHost, ...args: string[]): void {
    const words = [...args];
    if (words[0] !== undefined && isAbsolute(words[0]) && !words[0].includes('=')) this.command = words.shift()!;
    for (let i = 0; i < words.length; i++) {
      const word = words[i]!;
      if (word === 'loglevel') {
        i++; // `loglevel N` is the loader's
        continue;
      }
      const [key = '', value = ''] = word.split(/=(.*)/s);
      switch (key) {
        case 'clamscan_path':
          this.command = absolute(key, value);
          break;
        case 'clamd_conf':
          this.options.push(`--config-file=${absolute(key, value)}`);
          break;
        case 'database':
          this.options.push(`--database=${absolute(key, value)}`);
          break;
        case 'action':
          if (value !== 'add-header' && value !== 'reject') throw new Error(`action=${value}: expected add-header or reject`);
          this.deny = value === 'reject';
          break;
        case 'max_size':
          this.maxSize = parseCount(key, value);
          break;
        case 'timeout':
          this.timeoutMs = parseSeconds(key, value);
          break;
        case 'declined_on_fail':
          this.deferOnError = false;
          break;
        case 'tmp_dir':
        case 'back_compat':
          this.log(LOGWARN, `${key} is ignored: the message goes to the scanner on standard input`);
          break;
        default:
          throw new Error(`unknown argument "${word}" (known: clamscan_path= clamd_conf= database= action= max_size= timeout= declined_on_fail)`);
      }
    }
  }

  async hook_data_post(tx: Transaction): Promise<HookResult> {
    if (overSizeLimit(this, tx, this.maxSize)) return DECLINED;
    try {
      const verdict = await runScanCommand(tx, {
        command: this.command,
        args: ['--stdout', '--no-summary', ...this.options, '-'],
        input: 'stdin',
        cleanCodes: [0],
        virusCodes: [1],
        timeoutMs: this.timeoutMs,
        signal: this.signal,
      });
      return applyVirusVerdict(this, tx, verdict, { scanner: `ClamAV (${basename(this.command)})`, deny: this.deny });
    } catch (err) {
      return scanFailure(this, err, this.deferOnError, 'Unable to scan for viruses, try again later');
    }
  }
}

function absolute(key: string, value: string): string {
  if (!isAbsolute(value)) throw new Error(`${key}=${value}: expected an absolute path`);
  return value;
}
