/**
 * virus/clamdscan: scan each message with ClamAV's daemon, clamd (qpsmtpd's virus/clamdscan).
 * The message is streamed to clamd with INSTREAM over its unix or TCP socket, so clamd needs no
 * access to our spool (qpsmtpd handed clamd a spool file path over the unix socket).
 *
 * Arguments, in pairs (qpsmtpd's):
 *   clamd_socket PATH|HOST:PORT  where clamd listens (default /var/run/clamav/clamd.ctl, Debian's
 *                                LocalSocket); a relative PATH is relative to the folder that
 *                                holds the config directory.
 *   clamd_host HOST, clamd_port PORT
 *                                TCP instead (qpsmtpd's form): clamd_port overrides clamd_socket;
 *                                clamd_host defaults to localhost.
 *   deny_viruses yes|no          yes (default): refuse an infected message (552 `5.7.1 Virus
 *                                found: NAME`); no: deliver it with `X-Virus-Found: Yes` and
 *                                `X-Virus-Details: NAME`.
 *   defer_on_error yes|no        no (default): when clamd cannot scan (down, silent past the
 *                                timeout, an ERROR answer) the message passes unscanned, logged
 *                                (LOGERROR); yes: 452 `4.3.0 Unable to scan for viruses, try
 *                                again later`, the client retries.
 *   max_size KB                  messages larger than this many kilobytes are not scanned
 *                                (logged; default 1024). Keep it below clamd's StreamMaxLength.
 *   scan_all yes|no              yes (default, as qpsmtpd's code): scan every message; no: only
 *                                messages with MIME parts (a multipart Content-Type).
 *   timeout SECONDS              the whole exchange with clamd (default 20); the hook's
 *                                plugin_timeout ends it sooner.
 *   loglevel N                   the usual.
 * A clean message gets `X-Virus-Found: No` and `X-Virus-Checked: by ClamAV 1.4.6 on ME` (clamd's
 * VERSION, asked once). Transaction note `virus`: { scanner, found, name } (src/scan/policy.ts).
 * An infected message costs karma -1. Connections with a `naughty` note are not scanned (they
 * are refused anyway). Config files: me. Hooks: data_post.
 * Log (LOGINFO): `pass, clean`, `skip, ...`; LOGNOTICE `fail, found virus NAME`; LOGERROR `error, ...`.
 *
 * Differences from qpsmtpd: INSTREAM always (no spool path, no chmod of the spool; no ClamAV::Client
 * module); no PING before each scan (a failed scan says the same); the timeout is new; bad
 * arguments stop the plugin loading.
 */
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { Plugin, DECLINED, LOGINFO, CLAMD_MAX_REPLY, applyVirusVerdict, clamdInstream, clamdReplyComplete, describeScanTarget, isMultipart, overSizeLimit, pairArguments, parseClamdScan, parseClamdVersion, flagArgument, parseCount, parseScanTarget, parseSeconds, scanFailure, socketRequest } from 'qpsmtpd';
import type { HookResult, PluginHost, ScanTarget, Transaction } from 'qpsmtpd';

const DEFAULT_SOCKET = '/var/run/clamav/clamd.ctl';

export default class ClamdScan extends Plugin {
  private target: ScanTarget = { path: DEFAULT_SOCKET };
  private denyViruses = true;
  private deferOnError = false;
  private maxBytes = 1024 * 1024;
  private scanAll = true;
  private timeoutMs = 20_000;
  /** clamd's engine version for X-Virus-Checked, asked once. */
  private version: string | undefined;

  register(qp: PluginHost, ...args: string[]): void {
    const pairs = pairArguments(this, args, ['clamd_socket', 'clamd_host', 'clamd_port', 'deny_viruses', 'defer_on_error', 'max_size', 'scan_all', 'timeout']);
    const base = dirname(qp.configDir);
    const port = pairs.get('clamd_port');
    if (port !== undefined) this.target = parseScanTarget(`${pairs.get('clamd_host') ?? 'localhost'}:${port}`, 3310, base, 'clamd_host/clamd_port');
    else this.target = parseScanTarget(pairs.get('clamd_socket') ?? DEFAULT_SOCKET, 3310, base, 'clamd_socket');
    this.denyViruses = flagArgument(pairs, 'deny_viruses', true);
    this.deferOnError = flagArgument(pairs, 'defer_on_error', false);
    this.scanAll = flagArgument(pairs, 'scan_all', true);
    const maxSize = pairs.get('max_size');
    if (maxSize !== undefined) this.maxBytes = parseCount('max_size', maxSize) * 1024;
    const timeout = pairs.get('timeout');
    if (timeout !== undefined) this.timeoutMs = parseSeconds('timeout', timeout);
  }

  async hook_data_post(tx: Transaction): Promise<HookResult> {
    if (this.connection.notes['naughty']) {
      this.log(LOGINFO, 'skip, naughty');
      return DECLINED;
    }
    if (overSizeLimit(this, tx, this.maxBytes)) return DECLINED;
    if (!this.scanAll && !isMultipart(tx)) {
      this.log(LOGINFO, 'skip, not multipart');
      return DECLINED;
    }
    try {
      const reply = await this.request(() => clamdInstream(tx));
      const verdict = parseClamdScan(reply);
      this.version ??= await this.askVersion();
      return applyVirusVerdict(this, tx, verdict, { scanner: this.version, deny: this.denyViruses });
    } catch (err) {
      return scanFailure(this, err, this.deferOnError, 'Unable to scan for viruses, try again later');
    }
  }

  private request(request: () => AsyncIterable<Buffer> | Iterable<Buffer>): Promise<Buffer> {
    const target = this.target;
    return socketRequest(() => connect(target), {
      peer: `clamd at ${describeScanTarget(target)}`,
      timeoutMs: this.timeoutMs,
      signal: this.signal,
      request,
      maxReplyBytes: CLAMD_MAX_REPLY,
      replyComplete: clamdReplyComplete,
    });
  }

  /** clamd's engine version; `ClamAV` when it will not say (the verdict stands either way). */
  private async askVersion(): Promise<string> {
    try {
      return parseClamdVersion(await this.request(() => [Buffer.from('zVERSION\0', 'latin1')]));
    } catch (err) {
      this.log(LOGINFO, `no version from clamd: ${err instanceof Error ? err.message : String(err)}`);
      return 'ClamAV';
    }
  }
}
