/**
 * dkim: verify the DKIM signatures (RFC 6376) of incoming mail, and sign the mail of relay clients
 * (qpsmtpd's dkim plugin). The cryptography and record parsing are mailauth's; key lookups go
 * through the daemon's resolver with a time limit.
 *
 * Verifying (clients that are not relay clients, at data_post_headers): every signature is
 * checked. Each gets an Authentication-Results entry,
 *   dkim=<result> [(<why>)] header.d=<d> [header.i=<i>] header.s=<s> header.a=<a> header.b=<first 8 of b>
 * with result pass, fail (bad signature, or a body hash that does not verify: the body or a signed
 * header was changed), permerror (no key, or a key that cannot be used), temperror (DNS failure or
 * time-out), policy (key too short), neutral (anything else that could not be checked); a message
 * without signatures gets `dkim=none`.
 * Notes (transaction): `dkim_result` (the message's verdict: pass if any signature passed, else
 * temperror, fail, permerror, policy, neutral, or none), `dkim_results` (one { domain, selector,
 * algorithm, identity, b, result, comment, aligned } per signature), `dkim_pass_domains` (the d=
 * of the signatures that passed), `dkim_verification` (the whole verification, which the dmarc
 * and arc plugins reuse instead of reading the message again). Karma +1 for a pass, -1 for a fail.
 *
 * Refusing (at data_post, where a refusal can be answered): a message whose signatures failed and
 * none passed is refused as qpsmtpd does ("signature invalid: ..."), following `reject` and
 * `reject_type`; a temporary DNS failure with no passing signature is deferred (451) unless
 * `reject 0`. Unsigned mail is never refused here (that is DMARC's job).
 *
 * Signing (relay clients: authenticated or relay-listed, at queue_pre so that content filters at
 * data_post come first): the key is qpsmtpd's layout, `config/dkim/<domain>/selector` (one line)
 * and `config/dkim/<domain>/private` (PEM; RSA or Ed25519), where <domain> is the envelope
 * sender's domain (the From domain for the null sender); a subdomain without a folder uses its
 * nearest parent's, a folder that is a symbolic link signs as the target domain. Make one with
 * `qpsmtpd dkim-key DOMAIN [SELECTOR]`. Canonicalization relaxed/relaxed, rsa-sha256 (ed25519-sha256
 * for an Ed25519 key). A domain without a key is logged and sent unsigned; so is a signing error
 * (LOGERROR). Note (transaction) `dkim_signed`: { domain, selector }.
 *
 * Arguments, in pairs:
 *   reject 0|1|naughty   default 1 (qpsmtpd's).
 *   reject_type perm|temp|disconnect|temp_disconnect   default perm.
 *   sign 0|1             sign relay clients' mail (default 1).
 *   headers A:B:C        the header fields to sign (default mailauth's list: From, Sender,
 *                        Reply-To, Subject, Date, Message-ID, To, Cc, MIME-Version, Content-*,
 *                        In-Reply-To, References, List-* ...).
 *   min_bits N           shortest RSA key accepted when verifying (default 1024).
 *   timeout SECONDS      the verification's DNS time budget (default 20).
 *   loglevel N
 * Hooks: data_post_headers, data_post, queue_pre.
 *
 * Differences from qpsmtpd: ADSP and DomainKeys policies (obsolete) are not consulted; results
 * are transaction notes (qpsmtpd put them on the connection, shared by every message of it);
 * signing is at queue_pre (qpsmtpd: data_post_headers), so a footer added at data_post is signed;
 * no X-DKIM-Authentication header (the Authentication-Results entry says it).
 */
import {
  Plugin,
  DECLINED,
  DENYSOFT,
  LOGERROR,
  LOGINFO,
  LOGWARN,
  adjustKarma,
  authCheckArguments,
  authResolver,
  preloadMailauth,
  findDkimKey,
  formatAuthResult,
  getReject,
  isImmune,
  overallDkimResult,
  pairArguments,
  signDkim,
  verifyDkim,
  withDeadline,
} from 'qpsmtpd';
import type { DkimSignatureCheck, DkimVerification, HookResult, PluginHost, Transaction } from 'qpsmtpd';

export default class Dkim extends Plugin {
  private reject = '1';
  private rejectType: string | undefined;
  private sign = true;
  private headers: string[] | undefined;
  private minBits = 1024;
  private timeoutMs = 20_000;
  private configDir = '';

  async register(qp: PluginHost, ...args: string[]): Promise<void> {
    const pairs = pairArguments(this, args, ['reject', 'reject_type', 'sign', 'headers', 'min_bits', 'timeout']);
    this.reject = pairs.get('reject') ?? '1';
    this.rejectType = pairs.get('reject_type');
    this.sign = !/^(0|no|false|off)$/i.test(pairs.get('sign') ?? '1');
    const headers = pairs.get('headers');
    if (headers !== undefined) {
      this.headers = headers.split(':').map((h) => h.trim()).filter((h) => h !== '');
      if (!this.headers.some((h) => h.toLowerCase() === 'from')) throw new Error(`${this.name}: headers must include From (RFC 6376 §5.4)`);
    }
    ({ timeoutMs: this.timeoutMs, minBits: this.minBits } = authCheckArguments(this.name, pairs));
    this.configDir = qp.configDir;
    await preloadMailauth();
    this.registerHook('data_post_headers', 'verify');
    this.registerHook('data_post', 'decide');
    if (this.sign) this.registerHook('queue_pre', 'signMessage');
  }

  async verify(tx: Transaction): Promise<HookResult> {
    if (this.connection.relayClient) return DECLINED; // signed at queue_pre instead
    if (isImmune(this)) return DECLINED;
    let verification: DkimVerification;
    try {
      verification = await withDeadline(this.timeoutMs, this.signal, (signal) =>
        verifyDkim(tx.bodyStream(), { resolver: authResolver(this.dns, signal), sender: tx.sender?.address, minBitLength: this.minBits }),
      );
    } catch (err) {
      this.log(LOGERROR, `error, verification failed: ${(err as Error).message}`);
      tx.authResults.push(formatAuthResult({ method: 'dkim', result: 'temperror', comment: 'verification failed' }));
      tx.notes['dkim_result'] = 'temperror';
      return DECLINED;
    }
    const signatures = verification.signatures;
    const overall = overallDkimResult(signatures);
    tx.notes['dkim_verification'] = verification;
    tx.notes['dkim_results'] = signatures;
    tx.notes['dkim_result'] = overall;
    const passed = [...new Set(signatures.filter((s) => s.result === 'pass').map((s) => s.domain))];
    tx.notes['dkim_pass_domains'] = passed;

    if (signatures.length === 0) {
      tx.authResults.push(formatAuthResult({ method: 'dkim', result: 'none' }));
      this.log(LOGINFO, 'skip, no signature');
      return DECLINED;
    }
    for (const s of signatures) tx.authResults.push(authEntry(s));
    const summary = signatures.map((s) => `${s.domain}/${s.selector}: ${s.result}${s.comment ? ` (${s.comment})` : ''}`).join(', ');
    if (overall === 'pass') {
      adjustKarma(this, 1);
      this.log(LOGINFO, `pass, ${summary}`);
    } else {
      if (overall === 'fail') adjustKarma(this, -1);
      this.log(overall === 'temperror' ? LOGWARN : LOGINFO, `${overall}, ${summary}`);
    }
    return DECLINED;
  }

  /** The refusal, where the reply can say so (data_post_headers results are not answered). */
  decide(tx: Transaction): HookResult {
    if (this.connection.relayClient) return DECLINED;
    const overall = tx.notes['dkim_result'];
    if (overall === 'fail') {
      const failed = (tx.notes['dkim_results'] as DkimSignatureCheck[] | undefined)?.find((s) => s.result === 'fail');
      const why = failed?.comment ?? 'bad signature';
      return getReject({
        plugin: this,
        reject: this.reject,
        rejectType: this.rejectType,
        message: `signature invalid: ${why}`,
        logMessage: `${failed?.domain ?? ''} ${why}`,
      });
    }
    if (overall === 'temperror' && !/^(0|no|false|off)?$/i.test(this.reject.trim()) && this.reject.toLowerCase() !== 'naughty') {
      this.log(LOGINFO, 'error, temporary DNS failure');
      return [DENYSOFT, 'Please try again later - DKIM key lookup failed'];
    }
    return DECLINED;
  }

  async signMessage(tx: Transaction): Promise<HookResult> {
    if (!this.connection.relayClient) return DECLINED;
    const domain = signingDomainOf(tx);
    if (domain === undefined) {
      this.log(LOGINFO, 'skip, no sender domain to sign for');
      return DECLINED;
    }
    const found = findDkimKey(this.configDir, domain);
    if ('missing' in found) {
      this.log(LOGINFO, `skip, ${found.missing}`);
      return DECLINED;
    }
    const key = found.key;
    try {
      const field = await signDkim(tx.bodyStream(), key, this.headers);
      tx.header.add(field.name, field.value, 0);
    } catch (err) {
      this.log(LOGERROR, `error, could not sign with ${key.dir}/private: ${(err as Error).message}`);
      return DECLINED;
    }
    tx.notes['dkim_signed'] = { domain: key.domain, selector: key.selector };
    this.log(LOGINFO, `pass, signed for ${key.domain} with selector ${key.selector}`);
    return DECLINED;
  }
}

function authEntry(s: DkimSignatureCheck): string {
  return formatAuthResult({
    method: 'dkim',
    result: s.result,
    comment: s.comment,
    properties: { 'header.d': s.domain, 'header.i': s.identity, 'header.s': s.selector, 'header.a': s.algorithm, 'header.b': s.b },
  });
}

/** The envelope sender's domain, or the From header's for the null sender. */
function signingDomainOf(tx: Transaction): string | undefined {
  const host = tx.sender?.host;
  if (host !== undefined && host !== '') return host.toLowerCase();
  const from = tx.header.get('From');
  const m = from === undefined ? null : /@([A-Za-z0-9.-]+)>?\s*$/.exec(from);
  return m === null ? undefined : m[1]!.toLowerCase();
}
