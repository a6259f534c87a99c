/**
 * sender_permitted_from: SPF (RFC 7208), qpsmtpd's plugin of the same name. At MAIL it asks the
 * sender's domain whether the client's address may send its mail; the null sender's HELO name is
 * checked instead (`postmaster@<helo>`, RFC 7208 §2.4). The evaluation is mailauth's (all
 * mechanisms and macros, the 10-lookup and 2-void-lookup limits: permerror past them); every DNS
 * question goes through the daemon's resolver (`dns_servers`, cache, time limits).
 *
 * Results: pass, fail, softfail, neutral, none, permerror, temperror (a DNS server that does not
 * answer within `timeout` gives temperror, never a hung session).
 *
 * Arguments, in pairs:
 *   reject 0-6      what is refused at MAIL (default 0, or config `spfbehavior`):
 *                     0, 1  annotate only: the Received-SPF header and the notes, no refusal
 *                     2     also defer (451) on DNS failures (temperror) and on fail
 *                     3     refuse fail (550 "SPF - forgery"); defer softfail (451)
 *                     4     also refuse softfail; defer permerror (451)
 *                     5     also refuse neutral
 *                     6     also refuse none and permerror
 *   spf_deny 1|2    old form: reject 3 | reject 4.
 *   no_dmarc_policy 0-4   a second chance at data_post, after the dmarc plugin, for mail whose
 *                   domain publishes no DMARC record at all (with reject 1 or 2): 1 refuses fail,
 *                   2 softfail too, 3 neutral too, 4 none and permerror too. Default 0 (off).
 *   timeout SECONDS the whole check's time budget (default 20; below plugin_timeout).
 *   loglevel N      the usual.
 *
 * What it leaves behind:
 *   - transaction note `spfquery`: { code, explanation, scope ('mfrom'|'helo'), identity, domain,
 *     clientIp, helo, record, lookups } (qpsmtpd kept Mail::SPF's result object there: `code` is
 *     the result in both);
 *   - transaction note `dmarc_spf`: { domain, scope, result }, what the dmarc plugin reads;
 *   - transaction note `spf_pass_host`: the sender's domain, lower case, when SPF passed;
 *   - an Authentication-Results entry `spf=<result> (<why>) smtp.mailfrom=<sender>` (or
 *     `smtp.helo=<name>` for the null sender);
 *   - a `Received-SPF:` header field (RFC 7208 §9.1), added at data_post_headers;
 *   - karma: +1 for pass, -1 for fail and softfail.
 * Not checked (is_immune): relay clients, whitelisted hosts and senders; for those `dmarc_spf`
 * says pass, as in qpsmtpd.
 * Hooks: mail, data_post_headers, data_post (only with no_dmarc_policy).
 *
 * Differences from qpsmtpd: the null sender's HELO identity is checked (qpsmtpd skipped it); the
 * notes are plain objects; the check has a time budget.
 */
import {
  Plugin,
  DECLINED,
  DENY,
  DENYSOFT,
  LOGDEBUG,
  LOGERROR,
  LOGINFO,
  adjustKarma,
  authCheckArguments,
  authResolver,
  preloadMailauth,
  checkSpf,
  formatAuthResult,
  isImmune,
  pairArguments,
  receivedSpfValue,
  withDeadline,
} from 'qpsmtpd';
import type { Address, EsmtpParams, HookResult, PluginHost, SpfCheck, Transaction } from 'qpsmtpd';

export interface SpfQueryNote {
  readonly code: SpfCheck['result'];
  readonly explanation: string;
  readonly scope: SpfCheck['scope'];
  readonly identity: string;
  readonly domain: string;
  readonly clientIp: string;
  readonly helo: string | undefined;
  readonly record: string | undefined;
  readonly lookups: SpfCheck['lookups'];
  /** The Received-SPF value written at data_post_headers. */
  readonly receivedSpf: string;
}

export default class SenderPermittedFrom extends Plugin {
  private reject = 0;
  private noDmarcPolicy = 0;
  private timeoutMs = 20_000;

  async register(qp: PluginHost, ...args: string[]): Promise<void> {
    const pairs = pairArguments(this, args, ['reject', 'spf_deny', 'no_dmarc_policy', 'timeout']);
    const level = (name: string, value: string | undefined, max: number): number => {
      if (value === undefined) return 0;
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0 || n > max) throw new Error(`${this.name}: ${name} "${value}": expected a whole number from 0 to ${max}`);
      return n;
    };
    this.reject = level('reject', pairs.get('reject'), 6);
    const deny = level('spf_deny', pairs.get('spf_deny'), 2);
    if (deny > 0) this.reject = deny === 1 ? 3 : 4;
    if (this.reject === 0) this.reject = level('spfbehavior', qp.config('spfbehavior'), 6);
    this.noDmarcPolicy = level('no_dmarc_policy', pairs.get('no_dmarc_policy'), 4);
    this.timeoutMs = authCheckArguments(this.name, pairs).timeoutMs;
    await preloadMailauth();
    this.registerHook('mail', 'evaluateSpf');
    this.registerHook('data_post_headers', 'addSpfHeader');
    if (this.noDmarcPolicy > 0) this.registerHook('data_post', 'checkNoDmarcPolicy');
  }

  async evaluateSpf(tx: Transaction, sender: Address, _params: EsmtpParams): Promise<HookResult> {
    if (isImmune(this)) {
      tx.notes['dmarc_spf'] = { domain: sender.host.toLowerCase(), scope: 'mfrom', result: 'pass' };
      return DECLINED;
    }
    const c = this.connection;
    const nullSender = sender.isNull || sender.user === '' || sender.host === '';
    const helo = c.helloHost;
    if (nullSender && (helo === undefined || helo === '' || helo.startsWith('['))) {
      this.log(LOGINFO, 'skip, null sender and no HELO name to check');
      tx.notes['dmarc_spf'] = { scope: 'helo', result: 'none' };
      return DECLINED;
    }
    const check = await withDeadline(this.timeoutMs, this.signal, (signal) =>
      checkSpf({
        ip: c.remoteIp,
        sender: nullSender ? '' : `${sender.user}@${sender.host.toLowerCase()}`,
        helo,
        receiver: this.qp.me,
        resolver: authResolver(this.dns, signal),
      }),
    );
    const code = check.result;
    const why = check.explanation;
    const note: SpfQueryNote = {
      code,
      explanation: why,
      scope: check.scope,
      identity: check.identity,
      domain: check.domain,
      clientIp: check.clientIp,
      helo: check.helo,
      record: check.record,
      lookups: check.lookups,
      receivedSpf: receivedSpfValue(check, this.qp.me),
    };
    tx.notes['spfquery'] = note;
    tx.notes['dmarc_spf'] = { domain: check.domain, scope: check.scope, result: code };
    tx.authResults.push(
      formatAuthResult({
        method: 'spf',
        result: code,
        comment: why,
        properties: check.scope === 'mfrom' ? { 'smtp.mailfrom': check.identity } : { 'smtp.helo': helo },
      }),
    );
    if (code === 'temperror') this.log(LOGERROR, `temperror for ${check.identity} from ${check.clientIp}: ${why}`);

    if (code === 'pass') {
      adjustKarma(this, 1);
      tx.notes['spf_pass_host'] = check.domain.toLowerCase();
      this.log(LOGINFO, `pass, ${why}`);
      return DECLINED;
    }
    if (code === 'fail' || code === 'softfail') adjustKarma(this, -1);
    const reject = this.reject;
    if (reject === 0) {
      this.log(LOGINFO, `skip, tolerated (${code}: ${why})`);
      return DECLINED;
    }
    return this.decide(code, why, reject);
  }

  /** qpsmtpd's reject levels, result by result. */
  private decide(code: SpfCheck['result'], why: string, reject: number): HookResult {
    const refuse = (result: typeof DENY | typeof DENYSOFT, text: string): HookResult => {
      this.log(LOGINFO, `fail, ${code}, ${why}`);
      return [result, text];
    };
    switch (code) {
      case 'none':
        if (reject >= 6) return refuse(DENY, `SPF - none: ${why}`);
        break;
      case 'fail':
        if (reject >= 3) return refuse(DENY, `SPF - forgery: ${why}`);
        if (reject >= 2) return refuse(DENYSOFT, `SPF - fail: ${why}`);
        break;
      case 'softfail':
        if (reject >= 4) return refuse(DENY, `SPF - fail: ${why}`);
        if (reject >= 3) return refuse(DENYSOFT, `SPF - fail: ${why}`);
        break;
      case 'neutral':
        if (reject >= 5) return refuse(DENY, `SPF - ${code}: ${why}`);
        break;
      case 'permerror':
        if (reject >= 6) return refuse(DENY, `SPF - ${code}: ${why}`);
        if (reject > 3) return refuse(DENYSOFT, `SPF - ${code}: ${why}`);
        break;
      case 'temperror':
        if (reject >= 2) return refuse(DENYSOFT, `SPF - ${code}: ${why}`);
        break;
      default:
        break;
    }
    this.log(LOGINFO, `fail, tolerated, ${code}, ${why}`);
    return DECLINED;
  }

  addSpfHeader(tx: Transaction): HookResult {
    const note = tx.notes['spfquery'] as SpfQueryNote | undefined;
    if (note === undefined) return DECLINED;
    if (this.connection.relayClient) return DECLINED;
    this.log(LOGDEBUG, `result was ${note.code}`);
    tx.header.add('Received-SPF', note.receivedSpf, 0);
    return DECLINED;
  }

  /** After dmarc: refuse on SPF alone when the domain publishes no DMARC policy at all. */
  checkNoDmarcPolicy(tx: Transaction): HookResult {
    if (isImmune(this)) return DECLINED;
    const spf = tx.notes['spfquery'] as SpfQueryNote | undefined;
    const dmarc = tx.notes['dmarc_result'] as { result?: string; record?: string } | undefined;
    if (spf === undefined || dmarc === undefined || dmarc.result !== 'none' || dmarc.record !== undefined) return DECLINED;
    const level = this.noDmarcPolicy;
    const code = spf.code;
    const hit =
      (level >= 4 && (code === 'permerror' || code === 'none')) ||
      (level >= 3 && code === 'neutral') ||
      (level >= 2 && code === 'softfail') ||
      (level >= 1 && code === 'fail');
    if (!hit) {
      this.log(LOGINFO, 'pass');
      return DECLINED;
    }
    this.log(LOGINFO, `fail, ${code}, ${spf.explanation}`);
    return [DENY, `SPF - ${code}: ${spf.explanation}`];
  }
}
