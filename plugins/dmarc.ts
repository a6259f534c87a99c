/**
 * dmarc: Domain-based Message Authentication, Reporting and Conformance (RFC 7489), qpsmtpd's
 * dmarc plugin. List it after sender_permitted_from and dkim, whose results it uses (notes
 * `dmarc_spf` and `dkim_results`: no lookup is made twice); set those two not to reject, so that
 * the From domain's policy decides.
 *
 * At data_post_headers: the From header must hold exactly one address. Its domain's record is
 * looked up at `_dmarc.<domain>`, else at its organizational domain (the public suffix list,
 * which mailauth bundles), and the message passes when SPF passed for an aligned domain (the MAIL
 * FROM domain, or the HELO name for the null sender) or a DKIM signature of an aligned domain
 * passed; alignment is relaxed (same organizational domain) or strict (adkim=s, aspf=s: the same
 * domain). On failure the policy is p=, or sp= when the record found is the organizational
 * domain's and the From domain is below it; pct= samples: a message outside the sample gets the
 * next milder policy (reject -> quarantine -> none, RFC 7489 §6.6.4).
 *
 * What it leaves behind:
 *   - an Authentication-Results entry `dmarc=<pass|fail|none|temperror|permerror>
 *     (p=<P> sp=<SP> dis=<DISPOSITION>) header.from=<domain>`;
 *   - transaction note `dmarc_result`: { result, disposition, policy, p, sp, pct, sampledOut,
 *     domain, orgDomain, record, alignedSpf, alignedDkim };
 *   - disposition quarantine (with `quarantine note`, the default): transaction note
 *     `dmarc_quarantine` = the From domain, and a header field
 *     `X-DMARC-Quarantine: <domain> (p=quarantine)` (incoming fields of that name are removed
 *     first), for the queue or the mailbox filter to act on: a queue plugin can read the note, a
 *     Sieve script can `fileinto "Junk"` on the header. With `quarantine reject` it is refused
 *     like reject (qpsmtpd's behaviour);
 *   - disposition reject: karma -3, refused at data_post ("failed DMARC policy"), following
 *     `reject` and `reject_type`.
 * A message without a From address, or with several, is refused the same way ("empty from
 * address, null sender?" / "multiple From addresses"). A DNS failure gives dmarc=temperror and no
 * refusal. Relay clients are not checked.
 *
 * Arguments, in pairs:
 *   reject 0|1|naughty   default 1.
 *   reject_type perm|temp|disconnect|temp_disconnect   default perm.
 *   quarantine note|reject   what disposition quarantine does (default note).
 *   reporting 0|1        accepted for qpsmtpd configs; aggregate reports are not sent (logged once).
 *   timeout SECONDS      the DNS time budget (default 20).
 *   loglevel N
 * Hooks: data_post_headers, data_post.
 *
 * Differences from qpsmtpd (Mail::DMARC): no aggregate or failure reports; quarantine is a note
 * and a header unless `quarantine reject`.
 */
import {
  Plugin,
  DECLINED,
  LOGINFO,
  LOGWARN,
  adjustKarma,
  authCheckArguments,
  authResolver,
  preloadMailauth,
  checkDmarc,
  formatAuthResult,
  getReject,
  isImmune,
  pairArguments,
  verifyDkim,
  withDeadline,
} from 'qpsmtpd';
import type { DkimSignatureCheck, DkimVerification, DmarcCheck, DmarcPolicy, HookResult, PluginHost, Transaction } from 'qpsmtpd';

export interface DmarcResultNote {
  readonly result: DmarcCheck['result'];
  /** What is done: none, quarantine or reject (after pct). */
  readonly disposition: DmarcPolicy;
  /** The policy before pct. */
  readonly policy: DmarcPolicy | undefined;
  readonly p: DmarcPolicy | undefined;
  readonly sp: DmarcPolicy | undefined;
  readonly pct: number;
  /** pct left this message out of the sample: the milder policy applied. */
  readonly sampledOut: boolean;
  readonly domain: string;
  readonly orgDomain: string;
  readonly record: string | undefined;
  readonly alignedSpf: string | undefined;
  readonly alignedDkim: string | undefined;
}

export const QUARANTINE_HEADER = 'X-DMARC-Quarantine';

export default class Dmarc extends Plugin {
  private reject = '1';
  private rejectType: string | undefined;
  private quarantineRejects = false;
  private timeoutMs = 20_000;
  /** A number in [0, 100): the message is in the pct sample when it is below pct. */
  sample: () => number = () => Math.random() * 100;

  async register(_qp: PluginHost, ...args: string[]): Promise<void> {
    const pairs = pairArguments(this, args, ['reject', 'reject_type', 'quarantine', 'reporting', 'timeout']);
    this.reject = pairs.get('reject') ?? '1';
    this.rejectType = pairs.get('reject_type');
    const quarantine = (pairs.get('quarantine') ?? 'note').toLowerCase();
    if (quarantine !== 'note' && quarantine !== 'reject') throw new Error(`${this.name}: quarantine "${quarantine}": expected note or reject`);
    this.quarantineRejects = quarantine === 'reject';
    if (!/^(0|no|false|off)$/i.test(pairs.get('reporting') ?? '0')) this.log(LOGWARN, 'reporting: aggregate reports are not implemented, none are sent');
    this.timeoutMs = authCheckArguments(this.name, pairs).timeoutMs;
    await preloadMailauth();
    this.registerHook('data_post_headers', 'checkDmarc');
    this.registerHook('data_post', 'rejectDmarc');
  }

  async checkDmarc(tx: Transaction): Promise<HookResult> {
    if (this.connection.relayClient) {
      this.log(LOGINFO, 'skip, relay client');
      return DECLINED;
    }
    tx.header.delete(QUARANTINE_HEADER);
    const fromValues = tx.header.getAll('From');
    const from = fromValues.flatMap(fromAddresses);
    if (from.length === 0) {
      this.log(LOGINFO, 'skip, null sender');
      tx.notes['reject_dmarc'] = 'empty from address, null sender?';
      return DECLINED;
    }
    if (from.length > 1) {
      tx.notes['reject_dmarc'] = 'multiple From addresses';
      this.log(LOGINFO, `fail, ${from.length} From addresses`);
      return DECLINED;
    }
    const spf = tx.notes['dmarc_spf'] as { domain?: string; result?: string } | undefined;
    const spfDomains = spf?.result === 'pass' && spf.domain ? [spf.domain] : [];
    const check = await withDeadline(this.timeoutMs, this.signal, async (signal) => {
      const resolver = authResolver(this.dns, signal);
      let signatures = tx.notes['dkim_results'] as DkimSignatureCheck[] | undefined;
      if (signatures === undefined) {
        // No dkim plugin before us: verify here, once.
        const verification: DkimVerification = await verifyDkim(tx.bodyStream(), { resolver, sender: tx.sender?.address });
        signatures = [...verification.signatures];
      }
      const dkimDomains = [...new Set(signatures.filter((s) => s.result === 'pass').map((s) => s.domain))];
      return checkDmarc({ headerFrom: from, spfDomains, dkimDomains, resolver });
    });

    let disposition: DmarcPolicy = 'none';
    let sampledOut = false;
    if (check.result === 'fail' && check.policy !== undefined && check.policy !== 'none') {
      disposition = check.policy;
      if (check.pct < 100 && !(this.sample() < check.pct)) {
        sampledOut = true;
        disposition = disposition === 'reject' ? 'quarantine' : 'none';
      }
    }
    const note: DmarcResultNote = {
      result: check.result,
      disposition,
      policy: check.policy,
      p: check.p,
      sp: check.sp,
      pct: check.pct,
      sampledOut,
      domain: check.fromDomain,
      orgDomain: check.orgDomain,
      record: check.record,
      alignedSpf: check.alignedSpf,
      alignedDkim: check.alignedDkim,
    };
    tx.notes['dmarc_result'] = note;
    const comment = check.record === undefined ? undefined : [check.p && `p=${check.p.toUpperCase()}`, check.sp && `sp=${check.sp.toUpperCase()}`, `dis=${disposition.toUpperCase()}`].filter(Boolean).join(' ');
    tx.authResults.push(formatAuthResult({ method: 'dmarc', result: check.result, comment, properties: { 'header.from': check.fromDomain } }));

    if (check.result === 'pass') {
      this.log(LOGINFO, `pass, ${check.fromDomain} (${check.alignedDkim ? `dkim ${check.alignedDkim}` : `spf ${check.alignedSpf}`})`);
      return DECLINED;
    }
    if (check.result === 'none') {
      this.log(LOGINFO, `skip, no policy for ${check.fromDomain}`);
      return DECLINED;
    }
    if (check.result === 'temperror' || check.result === 'permerror') {
      this.log(LOGWARN, `${check.result}, ${check.fromDomain}${check.error ? `: ${check.error}` : ''}`);
      return DECLINED;
    }
    const detail = `${check.fromDomain}, policy ${check.policy ?? 'none'}${sampledOut ? ` (pct=${check.pct}: not sampled)` : ''}, disposition ${disposition}`;
    if (disposition === 'none') {
      this.log(LOGINFO, `fail, tolerated, ${detail}`);
      return DECLINED;
    }
    if (isImmune(this)) return DECLINED;
    adjustKarma(this, -3);
    if (disposition === 'quarantine' && !this.quarantineRejects) {
      this.log(LOGINFO, `fail, quarantine, ${detail}`);
      tx.notes['dmarc_quarantine'] = check.fromDomain;
      tx.header.add(QUARANTINE_HEADER, `${check.fromDomain} (p=quarantine)`);
      return DECLINED;
    }
    this.log(LOGINFO, `fail, ${detail}`);
    tx.notes['reject_dmarc'] = 'failed DMARC policy';
    return DECLINED;
  }

  rejectDmarc(tx: Transaction): HookResult {
    const reason = tx.notes['reject_dmarc'];
    if (typeof reason !== 'string') return DECLINED;
    return getReject({ plugin: this, reject: this.reject, rejectType: this.rejectType, message: reason });
  }
}

/** The addresses of a From field: display names, comments and groups aside. */
export function fromAddresses(value: string): string[] {
  const plain = value
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\((?:[^()\\]|\\.)*\)/g, ' ');
  const out: string[] = [];
  for (const part of plain.replace(/^[^:<>]*:(?=[^;]*;?\s*$)/, '').replace(/;\s*$/, '').split(',')) {
    const angle = /<([^<>]*)>/.exec(part);
    const address = (angle === null ? part : angle[1]!).trim();
    if (/^[^\s@]+@[^\s@]+$/.test(address)) out.push(address);
  }
  return out;
}
