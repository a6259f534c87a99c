/**
 * DKIM signing keys in qpsmtpd's layout: `config/dkim/<domain>/` holds `selector` (one line, the
 * s= value), `private` (the PEM private key) and, when made by `qpsmtpd dkim-key`, `public` and
 * `dns` (the TXT record to publish). A domain without a folder of its own uses its nearest parent
 * domain's (`mail.example.org` -> `example.org`); a folder that is a symbolic link signs with the
 * target's key and domain (qpsmtpd's "sign for others": `ln -s example.org client.com`).
 */
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

export interface DkimKeyFiles {
  /** The signing domain (d=): the folder's name, after a symbolic link. */
  readonly domain: string;
  readonly selector: string;
  readonly privateKey: string;
  /** The folder the key came from. */
  readonly dir: string;
}

/** Where the keys of a config directory live. */
export function dkimKeyRoot(configDir: string): string {
  return join(configDir, 'dkim');
}

const DOMAIN = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const SELECTOR = /^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62}))*$/;

/**
 * The key to sign mail from `domain` with: `{ key }`, or `{ missing }` saying why there is none
 * (for the log). Files are read on each call, so a new key is used from the next message on.
 */
export function findDkimKey(configDir: string, domain: string): { key: DkimKeyFiles } | { missing: string } {
  const root = dkimKeyRoot(configDir);
  const name = domain.toLowerCase().replace(/\.$/, '');
  if (!DOMAIN.test(name)) return { missing: `"${domain}" is no domain name` };
  const labels = name.split('.');
  let dir: string | undefined;
  let signing = name;
  for (let i = 0; i < labels.length - 1 || (i === 0 && labels.length === 1); i++) {
    const candidate = labels.slice(i).join('.');
    if (existsSync(join(root, candidate))) {
      dir = join(root, candidate);
      signing = candidate;
      break;
    }
  }
  if (dir === undefined) return { missing: `DKIM not configured for ${name} (no ${join(root, name)})` };
  if (lstatSync(dir).isSymbolicLink()) {
    dir = realpathSync(dir);
    signing = basename(dir).toLowerCase();
  }
  let selector: string;
  try {
    selector = firstLine(readFileSync(join(dir, 'selector'), 'utf8'));
  } catch (err) {
    return { missing: `unable to read the selector from ${join(dir, 'selector')}: ${(err as Error).message}` };
  }
  if (!SELECTOR.test(selector)) return { missing: `${join(dir, 'selector')}: "${selector}" is no selector` };
  let privateKey: string;
  try {
    privateKey = readFileSync(join(dir, 'private'), 'utf8');
  } catch (err) {
    return { missing: `unable to read the DKIM key from ${join(dir, 'private')}: ${(err as Error).message}` };
  }
  return { key: { domain: signing, selector, privateKey, dir } };
}

function firstLine(text: string): string {
  return (
    text
      .split(/\r?\n/)
      .map((l) => l.replace(/#.*/, '').trim())
      .find((l) => l !== '') ?? ''
  );
}

/** qpsmtpd's dkim_key_gen.sh selector: month and year, `apr2013`. */
export function defaultSelector(now = new Date()): string {
  return now.toLocaleString('en-US', { month: 'short', timeZone: 'UTC' }).toLowerCase() + String(now.getUTCFullYear());
}

/** The TXT record for a public key (PEM, SPKI): `v=DKIM1; k=rsa; p=...`. */
export function dkimTxtRecord(publicKeyPem: string, type: 'rsa' | 'ed25519' = 'rsa'): string {
  const base64 = publicKeyPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  if (type === 'ed25519') {
    // RFC 8463: the raw 32-byte key, not the SPKI wrapping.
    return `v=DKIM1; k=ed25519; p=${Buffer.from(base64, 'base64').subarray(-32).toString('base64')}`;
  }
  return `v=DKIM1; k=rsa; p=${base64}`;
}

export interface NewDkimKey {
  readonly domain: string;
  readonly selector: string;
  readonly dir: string;
  /** `<selector>._domainkey.<domain>` */
  readonly dnsName: string;
  /** The TXT record's value. */
  readonly txt: string;
  /** The TXT record as a zone file line, split into strings of at most 255 characters. */
  readonly zoneLine: string;
}

export class DkimKeyExistsError extends Error {}

export interface NewDkimKeyOptions {
  readonly configDir: string;
  readonly domain: string;
  readonly selector?: string | undefined;
  /** RSA modulus length, 1024 to 4096 (default 2048); ignored for ed25519. */
  readonly bits?: number | undefined;
  readonly type?: 'rsa' | 'ed25519' | undefined;
  /** Replace a key that is there. */
  readonly force?: boolean | undefined;
}

/**
 * Make a key pair for `domain` in `config/dkim/<domain>/`: `selector`, `private` (mode 0600),
 * `public`, and `dns` (the record to publish, with SPF and DMARC suggestions, as qpsmtpd's script).
 */
export function generateDkimKey(options: NewDkimKeyOptions): NewDkimKey {
  const domain = options.domain.toLowerCase().replace(/\.$/, '');
  if (!DOMAIN.test(domain) || !domain.includes('.')) throw new Error(`not a domain name: "${options.domain}"`);
  const selector = options.selector ?? defaultSelector();
  if (!SELECTOR.test(selector)) throw new Error(`not a selector (a DNS label): "${selector}"`);
  const type = options.type ?? 'rsa';
  const bits = options.bits ?? 2048;
  if (type === 'rsa' && (!Number.isInteger(bits) || bits < 1024 || bits > 4096)) throw new Error('bits must be a whole number from 1024 to 4096');
  const dir = join(dkimKeyRoot(options.configDir), domain);
  if (existsSync(join(dir, 'private')) && options.force !== true) {
    throw new DkimKeyExistsError(`${join(dir, 'private')} exists; --force replaces it (and the record in DNS must change with it)`);
  }
  const pair =
    type === 'ed25519'
      ? generateKeyPairSync('ed25519', { publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } })
      : generateKeyPairSync('rsa', { modulusLength: bits, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  const txt = dkimTxtRecord(pair.publicKey, type);
  const dnsName = `${selector}._domainkey.${domain}`;
  const zoneLine = `${dnsName}. IN TXT ${(txt.match(/.{1,255}/g) ?? []).map((s) => `"${s}"`).join(' ')}`;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'private'), pair.privateKey, { mode: 0o600 });
  chmodSync(join(dir, 'private'), 0o600);
  writeFileSync(join(dir, 'public'), pair.publicKey);
  writeFileSync(join(dir, 'selector'), selector + '\n');
  writeFileSync(
    join(dir, 'dns'),
    [
      `; DKIM public key for ${domain} (selector ${selector})`,
      zoneLine,
      '',
      '; Suggested, once signing works: only our servers send mail for the domain (SPF),',
      '; and receivers reject what is neither SPF nor DKIM aligned (DMARC).',
      `${domain}. IN TXT "v=spf1 mx a -all"`,
      `_dmarc.${domain}. IN TXT "v=DMARC1; p=reject; adkim=s; aspf=r; rua=mailto:dmarc-feedback@${domain}; pct=100"`,
      '',
    ].join('\n'),
  );
  return { domain, selector, dir, dnsName, txt, zoneLine };
}
