/**
 * tls: STARTTLS (RFC 3207) and implicit TLS (SMTPS, RFC 8314), as qpsmtpd's `tls` plugin.
 *
 * In config/plugins, before the other plugins (its `connect` hook always runs first, but its
 * `unrecognized_command` hook must see STARTTLS before a plugin that counts unknown verbs):
 *
 *   tls [CERT [KEY [CA [DHPARAM]]]]
 *
 * Where the files are, first match wins (`-` as an argument means "not given"):
 *   certificate  argument CERT, else config/tls_cert (first line), else DIR/qpsmtpd-server.crt
 *   key          argument KEY, else config/tls_key (first line), else DIR/qpsmtpd-server.key
 *   CA           argument CA, else DIR/qpsmtpd-ca.crt when it exists (optional: certificates that
 *                complete the chain sent to clients; a CA given as an argument must exist)
 *   DH params    argument DHPARAM, else DIR/qpsmtpd-dhparam.pem when it exists and is not empty
 *                (without one, only ECDHE key exchange: the DHE suites are off)
 * DIR is `ssl/` in the config directory (where `qpsmtpd tls-cert` writes); when that folder does
 * not exist but `ssl/` beside the config directory does (qpsmtpd's layout: its working directory),
 * that one. Relative paths in arguments and in tls_cert, tls_key and tls_sni are relative to the
 * config directory. A certificate file may hold the whole chain (leaf first).
 *
 * config/tls_ciphers  OpenSSL cipher string for TLS 1.2 and older (default `HIGH:!aNULL:!MD5`:
 *                     qpsmtpd's `HIGH` without the anonymous suites, which authenticate nobody).
 *                     TLS 1.3 suites (names starting `TLS_`) may be listed too; without any, node's
 *                     default TLS 1.3 suites stay on. The server's order is preferred.
 * config/tls_protocols  which protocol versions to offer, in qpsmtpd's (IO::Socket::SSL's) syntax:
 *                     words separated by `:` (or spaces); `SSLv23`, `ALL`, `TLS` or `DEFAULT` mean every
 *                     version, `TLSv1` (also `TLSv1_0`, `TLSv1.0`), `TLSv1_1`, `TLSv1_2`, `TLSv1_3`
 *                     (also written `TLSv1.2`, `TLSv12`) one version, `!X` takes X away. Positive
 *                     words are added up (none: start from every version), then the `!` words are
 *                     removed. `SSLv2` and `SSLv3` are understood and ignored (node cannot speak
 *                     them). The result must be one unbroken range (node has a minimum and a
 *                     maximum, nothing in between can be left out). Examples:
 *                       SSLv23:!SSLv2:!SSLv3:!TLSv1:!TLSv1_1   TLS 1.2 and 1.3
 *                       TLSv1_3                                TLS 1.3 only
 *                     Missing: TLS 1.2 and 1.3 (qpsmtpd's default also allowed 1.0 and 1.1; a file
 *                     saying so is obeyed, though OpenSSL 3 refuses them at its default security
 *                     level unless tls_ciphers lowers it with `@SECLEVEL=0`).
 * config/tls_sni      a certificate per host name the client asks for (SNI): lines
 *                       HOSTNAME CERTFILE KEYFILE
 *                     HOSTNAME may be `*.example.com` (one label: a.example.com, not example.com
 *                     and not b.a.example.com); an exact name wins over a wildcard. Clients that
 *                     ask for another name, or none, get the main certificate.
 *
 * Every file is read and checked (key matches certificate) in register(): a missing or
 * unreadable file stops the daemon from loading, with the file's name. A reload (SIGHUP) makes a
 * new instance that reads the files again: that is how a renewed certificate is picked up. Sessions
 * already running keep the certificate they started with.
 *
 * Hooks:
 *   connect (registered first)  on an implicit-TLS listener (`--listen-tls`, port 465): TLS starts
 *                               at once, before the greeting; a failed handshake closes the
 *                               connection without a plaintext byte.
 *   ehlo                        advertises STARTTLS while the link is plaintext and can turn TLS.
 *   unrecognized_command        STARTTLS: 501 5.5.4 with arguments, 503 5.5.1 when TLS is already
 *                               on, else `220 2.0.0 Ready to start TLS` and the handshake; whatever
 *                               the client pipelined behind STARTTLS is thrown away, and it must
 *                               EHLO again. A failed handshake closes the connection.
 * After a handshake `connection.notes.tls_enabled` is 1 (as in qpsmtpd) and `connection.tls` holds
 * the protocol, cipher and SNI name. Log: LOGINFO for every handshake and every failure; private
 * keys are never logged.
 */
import { Plugin, DECLINED, DONE, LOGDEBUG, LOGERROR, LOGINFO, LOGWARN } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';

type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
const VERSIONS: readonly TlsVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

export const DEFAULT_CIPHERS = 'HIGH:!aNULL:!MD5';
const DEFAULT_PROTOCOLS = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' } as const satisfies ProtocolRange;

export interface ProtocolRange {
  readonly minVersion: TlsVersion;
  readonly maxVersion: TlsVersion;
}

/**
 * qpsmtpd's tls_protocols (IO::Socket::SSL's SSL_version) as node's minimum and maximum version.
 * Throws on words it does not know and on sets node cannot express.
 */
export function parseProtocols(text: string): ProtocolRange {
  const words = text.split(/[:\s,]+/).filter((w) => w !== '');
  if (words.length === 0) return DEFAULT_PROTOCOLS;
  const added = new Set<TlsVersion>();
  const removed = new Set<TlsVersion>();
  let positive = false;
  for (const word of words) {
    const negated = word.startsWith('!');
    const name = (negated ? word.slice(1) : word).toLowerCase();
    let versions: readonly TlsVersion[];
    if (/^(sslv23|all|tls|default)$/.test(name)) versions = VERSIONS;
    else if (/^sslv[23]$/.test(name)) versions = [];
    else {
      const m = /^tlsv1(?:[._]?([0-3]))?$/.exec(name);
      if (!m) throw new Error(`tls_protocols: unknown protocol "${word}" (expected SSLv23, TLSv1, TLSv1_1, TLSv1_2, TLSv1_3, each possibly with a leading !)`);
      versions = [VERSIONS[m[1] === undefined ? 0 : Number(m[1])]!];
    }
    if (negated) for (const v of versions) removed.add(v);
    else {
      positive = true;
      for (const v of versions) added.add(v);
    }
  }
  const chosen = VERSIONS.filter((v) => (positive ? added.has(v) : true) && !removed.has(v));
  if (chosen.length === 0) throw new Error(`tls_protocols "${text}" leaves no protocol version node can speak (TLSv1 to TLSv1_3)`);
  const first = VERSIONS.indexOf(chosen[0]!);
  const last = VERSIONS.indexOf(chosen[chosen.length - 1]!);
  if (last - first + 1 !== chosen.length) {
    throw new Error(`tls_protocols "${text}" leaves a gap (${chosen.join(', ')}): node offers one range of versions, from a minimum to a maximum`);
  }
  return { minVersion: chosen[0]!, maxVersion: chosen[chosen.length - 1]! };
}

/** One `tls_sni` entry, built. */
interface SniEntry {
  readonly name: string;
  readonly context: SecureContext;
}

/** Host name lookup for SNI: exact names first, then `*.parent` wildcards (one label). */
export class SniTable {
  private readonly exact = new Map<string, SniEntry>();
  private readonly wildcard = new Map<string, SniEntry>();

  get size(): number {
    return this.exact.size + this.wildcard.size;
  }

  add(pattern: string, context: SecureContext): void {
    const name = normalizeHost(pattern);
    if (name.startsWith('*.')) this.wildcard.set(name.slice(2), { name, context });
    else this.exact.set(name, { name, context });
  }

  has(pattern: string): boolean {
    const name = normalizeHost(pattern);
    return name.startsWith('*.') ? this.wildcard.has(name.slice(2)) : this.exact.has(name);
  }

  lookup(servername: string): SniEntry | undefined {
    const name = normalizeHost(servername);
    const exact = this.exact.get(name);
    if (exact) return exact;
    const dot = name.indexOf('.');
    return dot > 0 ? this.wildcard.get(name.slice(dot + 1)) : undefined;
  }
}

function normalizeHost(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

/** What the handshake needs: the main context and, with tls_sni, the per-name lookup. */
interface ServerTls {
  readonly secureContext: SecureContext;
  SNICallback?: (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void;
}

export default class Tls extends Plugin {
  private options!: ServerTls;

  register(qp: PluginHost, ...rawArgs: string[]): void {
    const args = withoutLogLevel(rawArgs).map((a) => (a === '-' ? undefined : a));
    if (args.length > 4) throw new Error(`usage: tls [CERT [KEY [CA [DHPARAM]]]] (got ${args.length} arguments)`);
    const [certArg, keyArg, caArg, dhArg] = args;
    const configDir = resolve(qp.configDir);
    const inConfig = (p: string): string => (isAbsolute(p) ? p : resolve(configDir, p));
    const sslDir = defaultSslDir(configDir);

    const certPath = certArg !== undefined ? inConfig(certArg) : fromConfigFile(qp, 'tls_cert', inConfig) ?? join(sslDir, 'qpsmtpd-server.crt');
    const keyPath = keyArg !== undefined ? inConfig(keyArg) : fromConfigFile(qp, 'tls_key', inConfig) ?? join(sslDir, 'qpsmtpd-server.key');
    const caPath = caArg !== undefined ? inConfig(caArg) : optionalFile(join(sslDir, 'qpsmtpd-ca.crt'));
    const dhPath = dhArg !== undefined ? inConfig(dhArg) : optionalFile(join(sslDir, 'qpsmtpd-dhparam.pem'));

    const ciphers = qp.config('tls_ciphers') ?? DEFAULT_CIPHERS;
    const protocolLines = qp.configList('tls_protocols');
    const protocols = protocolLines.length === 0 ? DEFAULT_PROTOCOLS : parseProtocols(protocolLines.join(':'));
    if (VERSIONS.indexOf(protocols.minVersion) < VERSIONS.indexOf('TLSv1.2')) {
      this.log(LOGWARN, `tls_protocols enables ${protocols.minVersion}: protocol versions before TLS 1.2 are deprecated (RFC 8996)`);
    }

    const common: SecureContextOptions = {
      ciphers,
      minVersion: protocols.minVersion,
      maxVersion: protocols.maxVersion,
      honorCipherOrder: true,
      ...(dhPath !== undefined ? { dhparam: readPem(dhPath, 'DH parameter file') } : {}),
    };
    try {
      createSecureContext(common);
    } catch (err) {
      const culprit = dhPath !== undefined && /\bdh\b/i.test((err as Error).message) ? `DH parameter file ${dhPath}` : `tls_ciphers "${ciphers}"`;
      throw new Error(`${culprit}: ${(err as Error).message}`);
    }
    const main = buildContext(certPath, keyPath, common, caPath);
    this.describe(certPath, main.certificate, qp);

    const sni = new SniTable();
    for (const line of qp.configList('tls_sni')) {
      const [name, cert, key, ...rest] = line.trim().split(/\s+/);
      if (name === undefined || cert === undefined || key === undefined || rest.length > 0 || !/^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/i.test(name)) {
        throw new Error(`config/tls_sni: bad line "${line}" (expected HOSTNAME CERTFILE KEYFILE; HOSTNAME may start with *.)`);
      }
      if (sni.has(name)) throw new Error(`config/tls_sni: ${name} is listed twice`);
      const built = buildContext(inConfig(cert), inConfig(key), common);
      sni.add(name, built.context);
      this.describe(inConfig(cert), built.certificate, qp, name);
    }

    this.options = { secureContext: main.context };
    if (sni.size > 0) {
      this.options.SNICallback = (servername, cb) => {
        const entry = sni.lookup(servername);
        cb(null, entry?.context ?? main.context);
      };
    }
    this.log(
      LOGDEBUG,
      `ready: ${protocols.minVersion} to ${protocols.maxVersion}, ciphers ${ciphers}` +
        (dhPath ? `, DH parameters from ${dhPath}` : ', no DH parameters (ECDHE only)') +
        (sni.size > 0 ? `, ${sni.size} SNI certificate(s)` : ''),
    );
    // Before every other connect plugin: on an implicit-TLS port nothing may be said in plaintext.
    this.registerHook('connect', 'implicitTls', { first: true });
  }

  /** connect: on an implicit-TLS listener, the handshake comes before anything else. */
  async implicitTls(_tx: Transaction): Promise<HookResult> {
    const c = this.connection;
    if (!c.implicitTls || c.tls !== undefined) return DECLINED;
    if (!this.qp.canStartTls) {
      this.log(LOGERROR, 'implicit-TLS connection, but this transport cannot carry TLS: closing');
      this.qp.disconnect();
      return DONE;
    }
    if (!(await this.handshake('implicit TLS'))) return DONE; // the session is closing; not a byte in plaintext
    return DECLINED; // the greeting follows, encrypted
  }

  hook_ehlo(tx: Transaction, _host: string): HookResult {
    if (this.connection.tls !== undefined || !this.qp.canStartTls) return DECLINED;
    const existing = tx.notes['capabilities'];
    if (Array.isArray(existing)) {
      if (!existing.includes('STARTTLS')) existing.push('STARTTLS');
    } else {
      tx.notes['capabilities'] = ['STARTTLS'];
    }
    return DECLINED;
  }

  async hook_unrecognized_command(_tx: Transaction, verb: string, rest: string): Promise<HookResult> {
    if (verb !== 'starttls') return DECLINED;
    if (rest.trim() !== '') {
      this.qp.respond(501, '5.5.4 Syntax error (no parameters allowed)');
      return DONE;
    }
    if (this.connection.tls !== undefined) {
      this.qp.respond(503, '5.5.1 TLS already active');
      return DONE;
    }
    // stdio (inetd, tcpserver): the core answers 502 for a verb nobody serves.
    if (!this.qp.canStartTls) return DECLINED;
    await this.handshake('STARTTLS', { code: 220, message: '2.0.0 Ready to start TLS' });
    return DONE;
  }

  private async handshake(how: string, reply?: { code: number; message: string }): Promise<boolean> {
    const c = this.connection;
    const ok = await this.qp.startTls(this.options, reply);
    if (!ok) {
      this.log(LOGINFO, `fail, ${how} handshake with ${c.remoteIp} failed; connection closed`);
      return false;
    }
    c.notes['tls_enabled'] = 1;
    const tls = c.tls;
    this.log(LOGINFO, `pass, ${how}: ${tls?.protocol ?? '?'} ${tls?.cipher ?? '?'}` + (tls?.servername ? `, SNI ${tls.servername}` : ', no SNI'));
    return true;
  }

  /** Log what was loaded, and warn about a certificate that is expired, not yet valid, or soon to expire. */
  private describe(file: string, cert: X509Certificate | undefined, qp: PluginHost, sniName?: string): void {
    const what = sniName ? `SNI ${sniName}: ${file}` : `certificate ${file}`;
    if (!cert) {
      this.log(LOGINFO, `${what} loaded`);
      return;
    }
    const now = Date.now();
    const notAfter = Date.parse(cert.validTo);
    const notBefore = Date.parse(cert.validFrom);
    this.log(LOGINFO, `${what}: ${cert.subject.replace(/\n/g, ', ')}; valid until ${cert.validTo}`);
    if (notAfter < now) this.log(LOGWARN, `${what} EXPIRED on ${cert.validTo}`);
    else if (notAfter - now < 14 * 86400_000) this.log(LOGWARN, `${what} expires on ${cert.validTo}`);
    if (notBefore > now) this.log(LOGWARN, `${what} is not valid before ${cert.validFrom}`);
    const name = sniName ?? qp.config('me');
    if (name !== undefined && !name.startsWith('*.') && cert.checkHost(name) === undefined) {
      this.log(LOGINFO, `${what} does not name ${name}`);
    }
  }
}

function withoutLogLevel(args: readonly string[]): string[] {
  const at = args.indexOf('loglevel');
  return at === -1 ? [...args] : [...args.slice(0, at), ...args.slice(at + 2)];
}

/** `ssl/` in the config directory, or qpsmtpd's `ssl/` beside it when only that one exists. */
function defaultSslDir(configDir: string): string {
  const own = join(configDir, 'ssl');
  const beside = join(dirname(configDir), 'ssl');
  if (!isDirectory(own) && isDirectory(beside)) return beside;
  return own;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function optionalFile(path: string): string | undefined {
  try {
    const st = statSync(path);
    return st.isFile() && st.size > 0 ? path : undefined;
  } catch {
    return undefined;
  }
}

function fromConfigFile(qp: PluginHost, name: string, inConfig: (p: string) => string): string | undefined {
  const value = qp.config(name)?.trim();
  return value ? inConfig(value) : undefined;
}

function readPem(path: string, what: string): Buffer {
  if (!existsSync(path)) throw new Error(`${what} ${path} does not exist (run "qpsmtpd tls-cert" for a self-signed pair)`);
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new Error(`cannot read the ${what} ${path} (${code})`);
  }
}

function buildContext(certPath: string, keyPath: string, common: SecureContextOptions, caPath?: string): { context: SecureContext; certificate: X509Certificate | undefined } {
  const cert = readPem(certPath, 'certificate');
  const key = readPem(keyPath, 'private key');
  const ca = caPath !== undefined ? readPem(caPath, 'CA file') : undefined;
  let certificate: X509Certificate | undefined;
  try {
    certificate = new X509Certificate(cert);
  } catch (err) {
    throw new Error(`certificate ${certPath} is not a PEM certificate (${(err as Error).message})`);
  }
  try {
    const context = createSecureContext({ ...common, cert, key, ...(ca !== undefined ? { ca } : {}) });
    return { context, certificate };
  } catch (err) {
    // OpenSSL's message names the problem (key values mismatch, bad decrypt ...), never the key.
    throw new Error(`cannot use certificate ${certPath} with key ${keyPath}${caPath ? ` and CA ${caPath}` : ''}: ${(err as Error).message}`);
  }
}
