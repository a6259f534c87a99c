/**
 * A real milter for the tests: OpenDKIM (Debian's `opendkim` package), started in the foreground
 * on a random free loopback port with its own config, key and public-key table in a private
 * folder, and stopped by pid.
 *
 * OpenDKIM refuses a config file or key in a folder that others may write to (any parent of it:
 * /tmp is), so the folder is made under /var/lib/qpsmtpd-test (root's, 0755; the folder itself
 * 0700). `timeout 300` ends it by itself should the test process die first. Needs root (we are
 * root in CI and on the development machines).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canConnect, freePort, sleep, stopChild } from '../queue/support.ts';

const BINARY = '/usr/sbin/opendkim';
const PARENT = '/var/lib/qpsmtpd-test';

export interface DkimKey {
  readonly privatePem: string;
  /** The TXT record: `v=DKIM1; k=rsa; p=...`. */
  readonly record: string;
}

/** A fresh 2048-bit RSA key pair for signing, and its DNS record. */
export function dkimKey(): DkimKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const der = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  return { privatePem: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(), record: `v=DKIM1; k=rsa; p=${der}` };
}

export interface OpenDkimOptions {
  /** The domain it signs for. */
  readonly domain: string;
  readonly selector: string;
  readonly key: DkimKey;
  /** More opendkim.conf lines (`On-BadSignature reject`, ...). */
  readonly conf?: readonly string[];
}

export class OpenDkim {
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly child: ChildProcess,
    private readonly output: string[],
  ) {}

  /** The plugin's socket argument. */
  get socket(): string {
    return `inet:${this.port}@127.0.0.1`;
  }

  /** What it wrote to stdout and stderr. */
  get log(): string {
    return this.output.join('');
  }

  static async start(options: OpenDkimOptions): Promise<OpenDkim> {
    if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: apt-get install opendkim (.ci/run does)`);
    mkdirSync(PARENT, { recursive: true });
    chmodSync(PARENT, 0o755);
    const dir = mkdtempSync(join(PARENT, 'opendkim-'));
    chmodSync(dir, 0o700);
    const keyFile = join(dir, `${options.selector}.private`);
    writeFileSync(keyFile, options.key.privatePem, { mode: 0o600 });
    // The verifier finds public keys here instead of in the DNS (there is none in the tests).
    const publicKeys = join(dir, 'public-keys');
    writeFileSync(publicKeys, `${options.selector}._domainkey.${options.domain} ${options.key.record}\n`, { mode: 0o600 });
    const port = await freePort();
    const conf = join(dir, 'opendkim.conf');
    writeFileSync(
      conf,
      [
        'Syslog no',
        'Mode sv',
        `Domain ${options.domain}`,
        `Selector ${options.selector}`,
        `KeyFile ${keyFile}`,
        `TestPublicKeys ${publicKeys}`,
        `Socket inet:${port}@127.0.0.1`,
        `PidFile ${join(dir, 'opendkim.pid')}`,
        `TemporaryDirectory ${dir}`,
        'Background no',
        'InternalHosts 127.0.0.1',
        'AuthservID mx.example.test',
        ...(options.conf ?? []),
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const output: string[] = [];
    const child = spawn('timeout', ['300', BINARY, '-f', '-x', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => output.push(d.toString()));
    child.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
    const dkim = new OpenDkim(dir, port, child, output);
    const deadline = Date.now() + 15_000;
    while (!(await canConnect(port))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        await dkim.stop();
        throw new Error(`opendkim did not start (exit ${child.exitCode}): ${output.join('')}`);
      }
      await sleep(50);
    }
    return dkim;
  }

  async stop(): Promise<void> {
    // libmilter takes about 4 s to wind down after SIGTERM; `timeout` passes the signal on.
    await stopChild(this.child, 15_000);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
