/**
 * arc: Authenticated Received Chain (RFC 8617), for mail that passes through on its way (a
 * forwarder, a mailing list, a filtering gateway): verify the chain a message arrives with, and
 * seal the mail we pass on, so that the next hop can trust what we saw. Neither qpsmtpd nor
 * Haraka's core has it. The cryptography is mailauth's, with the dkim plugin's keys.
 *
 * Verifying (at data_post_headers; for relay clients only with seal_relay 1): the ARC sets are checked (instances
 * 1..N complete, cv= values, every ARC-Seal, the latest ARC-Message-Signature). The result goes
 * into Authentication-Results as `arc=<none|pass|fail> [(i=N ...)]` and into the transaction note
 * `arc_result` ({ result, instance, comment, cv, sealable }). When the dkim plugin ran before, its
 * reading of the message is reused (note `dkim_verification`): one pass over the message.
 *
 * Sealing (with `seal DOMAIN`, at queue_pre, after content filters): an ARC set i=N+1 with
 * cv=<the verification result> is added on top: ARC-Authentication-Results (a copy of our
 * Authentication-Results field), ARC-Message-Signature and ARC-Seal (relaxed/relaxed, rsa-sha256
 * or ed25519-sha256), signed with the key in `config/dkim/DOMAIN/` (`selector` and `private`,
 * as for dkim signing; `qpsmtpd dkim-key DOMAIN` makes one). A chain that arrived with cv=fail is
 * not sealed (RFC 8617 §5.1.2); nor is the mail of relay clients, unless `seal_relay 1` (that mail
 * is DKIM-signed instead). List arc after dkim, so that the ARC-Message-Signature covers our
 * DKIM-Signature. A missing key or a signing error is logged and the mail goes on unsealed.
 * Note (transaction) `arc_sealed`: { domain, selector, instance, cv }.
 *
 * Arguments, in pairs:
 *   seal DOMAIN       seal with this domain's key (default: no sealing, only verifying).
 *   seal_relay 0|1    seal relay clients' mail too (default 0).
 *   min_bits N        shortest RSA key accepted when verifying (default 1024).
 *   timeout SECONDS   the verification's DNS time budget (default 20).
 *   loglevel N
 * Hooks: data_post_headers, queue_pre.
 */
import {
  Plugin,
  DECLINED,
  LOGERROR,
  LOGINFO,
  authCheckArguments,
  authResolver,
  preloadMailauth,
  claimsAuthservId,
  findDkimKey,
  formatAuthResult,
  ownAuthservId,
  pairArguments,
  sealArc,
  verifyArc,
  verifyDkim,
  withDeadline,
} from 'qpsmtpd';
import type { ArcCheck, DkimVerification, HookResult, PluginHost, Transaction } from 'qpsmtpd';

export default class Arc extends Plugin {
  private sealDomain: string | undefined;
  private sealRelay = false;
  private minBits = 1024;
  private timeoutMs = 20_000;
  private configDir = '';

  async register(qp: PluginHost, ...args: string[]): Promise<void> {
    const pairs = pairArguments(this, args, ['seal', 'seal_relay', 'min_bits', 'timeout']);
    this.sealDomain = pairs.get('seal')?.toLowerCase();
    this.sealRelay = /^(1|yes|true|on)$/i.test(pairs.get('seal_relay') ?? '0');
    ({ timeoutMs: this.timeoutMs, minBits: this.minBits } = authCheckArguments(this.name, pairs));
    this.configDir = qp.configDir;
    if (this.sealDomain !== undefined) {
      // Say at start-up (and in `qpsmtpd check`) when the key is not there.
      const found = findDkimKey(this.configDir, this.sealDomain);
      if ('missing' in found) this.log(LOGERROR, `seal ${this.sealDomain}: ${found.missing}`);
    }
    await preloadMailauth();
    this.registerHook('data_post_headers', 'verify');
    if (this.sealDomain !== undefined) this.registerHook('queue_pre', 'seal');
  }

  async verify(tx: Transaction): Promise<HookResult> {
    // A relay client's mail is only verified when it is to be sealed (the cv= must be known).
    if (this.connection.relayClient && !(this.sealDomain !== undefined && this.sealRelay)) return DECLINED;
    let check: ArcCheck;
    try {
      check = await withDeadline(this.timeoutMs, this.signal, async (signal) => {
        const resolver = authResolver(this.dns, signal);
        const verification =
          (tx.notes['dkim_verification'] as DkimVerification | undefined) ??
          (await verifyDkim(tx.bodyStream(), { resolver, sender: tx.sender?.address, minBitLength: this.minBits }));
        return verifyArc(verification, resolver, this.minBits);
      });
    } catch (err) {
      this.log(LOGERROR, `error, verification failed: ${(err as Error).message}`);
      check = { result: 'fail', instance: 0, comment: 'verification failed', sealable: false, cv: 'fail' };
    }
    tx.notes['arc_result'] = check;
    const comment = check.result === 'none' ? undefined : (check.comment ?? `i=${check.instance}`);
    tx.authResults.push(formatAuthResult({ method: 'arc', result: check.result, comment }));
    this.log(LOGINFO, `${check.result}${check.instance > 0 ? `, i=${check.instance}` : ''}${check.comment ? `, ${check.comment}` : ''}`);
    return DECLINED;
  }

  async seal(tx: Transaction): Promise<HookResult> {
    const domain = this.sealDomain!;
    if (this.connection.relayClient && !this.sealRelay) return DECLINED;
    const check = tx.notes['arc_result'] as ArcCheck | undefined;
    const cv = check?.cv ?? 'none';
    if (check !== undefined && !check.sealable) {
      this.log(LOGINFO, `skip, the chain arrived broken (cv=fail): not sealed`);
      return DECLINED;
    }
    const found = findDkimKey(this.configDir, domain);
    if ('missing' in found) {
      this.log(LOGERROR, `skip, not sealed: ${found.missing}`);
      return DECLINED;
    }
    const authservId = ownAuthservId(this.qp);
    const ours = tx.header.getAll('Authentication-Results').find((v) => claimsAuthservId(v, authservId));
    const authResults = ours ?? `${authservId}; none`;
    let fields: { name: string; value: string }[];
    try {
      fields = await sealArc(tx.bodyStream(), { ...found.key, cv, authResults });
    } catch (err) {
      this.log(LOGERROR, `error, could not seal with ${found.key.dir}/private: ${(err as Error).message}`);
      return DECLINED;
    }
    // [ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results]: the seal ends up on top.
    for (const field of [...fields].reverse()) tx.header.add(field.name, field.value, 0);
    const instance = (check?.instance ?? 0) + 1;
    tx.notes['arc_sealed'] = { domain: found.key.domain, selector: found.key.selector, instance, cv };
    this.log(LOGINFO, `pass, sealed i=${instance} cv=${cv} as ${found.key.domain}`);
    return DECLINED;
  }
}
