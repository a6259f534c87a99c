/**
 * A self-signed certificate and key for first runs (`qpsmtpd tls-cert`), written where the `tls`
 * plugin looks by default: `ssl/qpsmtpd-server.crt` and `ssl/qpsmtpd-server.key` in the config
 * directory. The pair is made with the `selfsigned` package (WebCrypto): an RSA 2048-bit key (the
 * type every SMTP client speaks) and a SHA-256 signature; subject CN=<host>, subjectAltName
 * DNS:<host> (IP:<host> for an address), for TLS servers only.
 */
import { lazyCrypto } from '../util/builtin.ts';
import { chmodSync, linkSync, lstatSync, mkdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigDir } from '../config/config-dir.ts';
import { isIp } from '../net/ip.ts';

export const DEFAULT_DAYS = 730;
export const KEY_DESCRIPTION = 'RSA 2048-bit key, SHA-256 signature';

export interface SelfSignedOptions {
  /** The host name the certificate is for (CN and subjectAltName). */
  readonly host: string;
  /** Days of validity from now (default 730, as qpsmtpd's tls_cert). */
  readonly days?: number;
}

export interface SelfSignedPair {
  /** PEM certificate. */
  readonly cert: string;
  /** PEM private key (PKCS#8, unencrypted). */
  readonly key: string;
  /** SHA-256 fingerprint, colon-separated hex. */
  readonly fingerprint256: string;
  readonly validFrom: Date;
  readonly validTo: Date;
}

/** Make a self-signed server certificate and its key. */
export async function generateSelfSigned(options: SelfSignedOptions): Promise<SelfSignedPair> {
  const host = options.host.trim().replace(/\.$/, '');
  if (!/^[A-Za-z0-9_.:*-]+$/.test(host)) throw new Error(`not a host name: "${options.host}"`);
  const days = options.days ?? DEFAULT_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > 36500) throw new Error(`days must be a whole number from 1 to 36500, not ${days}`);
  // A few minutes back: a client whose clock is slightly behind still accepts it.
  const notBeforeDate = new Date(Date.now() - 5 * 60_000);
  const notAfterDate = new Date(notBeforeDate.getTime() + days * 86400_000);
  const altName = isIp(host) ? { type: 7 as const, ip: host } : { type: 2 as const, value: host };
  // Loaded here, not at start-up: its ASN.1 libraries take a quarter of a second to load.
  const { generate } = await import('selfsigned');
  const pems = await generate(
    [
      { name: 'commonName', value: host },
      { name: 'organizationName', value: 'qpsmtpd' },
    ],
    {
      keyType: 'rsa',
      keySize: 2048,
      algorithm: 'sha256',
      notBeforeDate,
      notAfterDate,
      extensions: [
        { name: 'basicConstraints', cA: false, critical: true },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'subjectAltName', altNames: [altName] },
      ],
    },
  );
  const x509 = new (lazyCrypto().X509Certificate)(pems.cert);
  return {
    cert: pems.cert,
    key: pems.private,
    fingerprint256: x509.fingerprint256,
    validFrom: new Date(x509.validFrom),
    validTo: new Date(x509.validTo),
  };
}

/** The default certificate and key paths of the `tls` plugin for a config directory. */
export function defaultPaths(configDir: string): { dir: string; cert: string; key: string } {
  const dir = join(resolve(configDir), 'ssl');
  return { dir, cert: join(dir, 'qpsmtpd-server.crt'), key: join(dir, 'qpsmtpd-server.key') };
}

/** The name to certify when none is given: config/me, else the machine's name. */
export function defaultHost(configDir: string): string {
  const me = new ConfigDir(configDir).value('me')?.trim();
  return me !== undefined && me !== '' ? me : hostname();
}

export class ExistsError extends Error {}

/**
 * Write the pair: the key with mode 0600, the certificate 0644, each through a temporary file so
 * a reader never sees half a file. Without `force` an existing file is left alone (ExistsError).
 */
export function writePair(pair: SelfSignedPair, paths: { cert: string; key: string }, force: boolean): void {
  if (!force) {
    for (const path of [paths.key, paths.cert]) {
      if (exists(path)) throw new ExistsError(`${path} exists; use --force to replace it`);
    }
  }
  mkdirSync(resolve(paths.key, '..'), { recursive: true, mode: 0o755 });
  mkdirSync(resolve(paths.cert, '..'), { recursive: true, mode: 0o755 });
  // The key first: a reload between the two writes fails on a mismatched pair and keeps the old one.
  place(paths.key, pair.key, 0o600, force);
  place(paths.cert, pair.cert, 0o644, force);
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function place(path: string, data: string, mode: number, force: boolean): void {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  writeFileSync(tmp, data, { mode, flag: 'wx' });
  try {
    chmodSync(tmp, mode); // whatever the umask
    if (force) {
      renameSync(tmp, path);
      return;
    }
    // link() refuses to replace a file that appeared since the check.
    try {
      linkSync(tmp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ExistsError(`${path} exists; use --force to replace it`);
      throw err;
    }
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // renamed away
    }
  }
}
