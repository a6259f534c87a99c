/**
 * auth/auth_flat_file: SMTP AUTH against a flat file of users and passwords (qpsmtpd's
 * `auth/auth_flat_file`), for PLAIN, LOGIN and CRAM-MD5.
 *
 * config/flat_auth_pw, one user a line, `address:secret` (split at the first colon, so a clear
 * password may contain colons):
 *
 *   alice@example.com:clear text password
 *   bob@example.com:$2b$12$....................................................   (bcrypt)
 *   carol@example.com:$argon2id$v=19$m=19456,t=2,p=1$....$....                     (argon2)
 *   dave@example.com:$6$saltsalt$....                                               (sha512-crypt)
 *   erin:$5$rounds=10000$saltsalt$....                                             (sha256-crypt)
 *
 * The address is what the client gives as its user name, compared case-insensitively (qpsmtpd
 * lower-cases the user name); it may be a full address or a bare user name (qpsmtpd insisted on
 * `user@domain` and declined bare names). The first line for an address wins.
 *
 * The secret is, by its form:
 *   - `$2a$`, `$2b$`, `$2y$`: bcrypt (bcryptjs); note that bcrypt only uses a password's first
 *     72 bytes.
 *   - `$argon2id$`, `$argon2i$`, `$argon2d$`: argon2 in the PHC string form (hash-wasm).
 *   - `$6$` / `$5$`: sha512-crypt / sha256-crypt, as in /etc/shadow, `openssl passwd -6`/`-5`,
 *     `mkpasswd -m sha-512` (unixcrypt).
 *   - `$1$` (md5-crypt), `$y$`, `$gy$` (yescrypt), `$7$` (scrypt), `$2$`, `$2x$`, `$3$`,
 *     `$md5`, `$sha1$`: a hash in a scheme this plugin cannot check: the entry is refused (DENY)
 *     and an error is logged, rather than taking the hash text for a clear password.
 *   - anything else: the password in clear text.
 * A hashed entry can only serve PLAIN and LOGIN: CRAM-MD5 needs the clear password on the server
 * (the client proves it knows it with an HMAC of our challenge). A CRAM-MD5 attempt on a hashed
 * entry is logged and denied (qpsmtpd declined it instead).
 *
 * Checking: clear passwords and CRAM-MD5 digests are compared in constant time
 * (crypto.timingSafeEqual). Hashes are checked in a worker thread (one per plugin instance,
 * started on first use, holding no reference on the event loop while idle), so that a costly
 * bcrypt or argon2 check does not stall the other sessions: bcrypt and argon2 in JavaScript and
 * WebAssembly run without yielding for as long as the hash is meant to take.
 *
 * Results, as in qpsmtpd:
 *   - OK: the password is right.
 *   - DENY: the user is in the file and the password is wrong (no other plugin is asked), the
 *     entry has no password, its hash scheme is not supported, or a CRAM-MD5 attempt meets a
 *     hashed entry.
 *   - DECLINED: the user is not in the file, so a later auth plugin may know them.
 *   - DENYSOFT (454): the hash could not be checked (the worker failed).
 * Either failure reaches the client as the same 535 (no message of ours is added), so the reply
 * does not tell whether the user exists.
 *
 * Unknown users cost what known ones do: for PLAIN and LOGIN the password given is checked
 * against the first hashed entry of the file (same scheme and cost as that user's: the work of a
 * real check, its result thrown away), or, when the file holds clear passwords only, compared in
 * constant time with a random one; for CRAM-MD5 an HMAC with a random key is computed and
 * compared. Keep one scheme and cost for all the hashed entries of the file: a user whose entry
 * is cheaper (clear, or a lower cost) still answers sooner than the others.
 *
 * Passwords are never logged, at any level; user names are (quoted, control characters escaped).
 *
 * Arguments: none (besides the common `loglevel N`).
 * Config files: flat_auth_pw.
 * Hooks: auth-plain, auth-login, auth-cram-md5.
 */
import { Plugin, DECLINED, DENY, DENYSOFT, OK, LOGDEBUG, LOGERROR, LOGINFO, LOGWARN } from 'qpsmtpd';
import type { HookResult, Transaction } from 'qpsmtpd';
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/** How a secret in flat_auth_pw is stored. */
type Scheme = 'clear' | 'bcrypt' | 'argon2' | 'sha-crypt' | 'unsupported';
type HashScheme = 'bcrypt' | 'argon2' | 'sha-crypt';

interface Entry {
  readonly address: string;
  readonly secret: string;
  readonly scheme: Scheme;
}

const BCRYPT = /^\$2[aby]\$/;
const ARGON2 = /^\$argon2(?:id|i|d)\$/;
const SHA_CRYPT = /^\$[56]\$/;
const UNSUPPORTED = /^\$(?:1|2|2x|3|7|y|gy|sha1|md5)[$,]/;

function schemeOf(secret: string): Scheme {
  if (BCRYPT.test(secret)) return 'bcrypt';
  if (ARGON2.test(secret)) return 'argon2';
  if (SHA_CRYPT.test(secret)) return 'sha-crypt';
  if (UNSUPPORTED.test(secret)) return 'unsupported';
  return 'clear';
}

function isHashed(scheme: Scheme): scheme is HashScheme {
  return scheme === 'bcrypt' || scheme === 'argon2' || scheme === 'sha-crypt';
}

/** A user name as it may appear in a log line: quoted, control characters escaped. */
function shown(user: string): string {
  return JSON.stringify(user);
}

/** Constant-time equality of two strings of any lengths (compares their SHA-256 digests). */
function sameText(a: string, b: string): boolean {
  const da = createHash('sha256').update(a, 'utf8').digest();
  const db = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(da, db);
}

/** The CRAM-MD5 check (RFC 2195): the client's hex digest against HMAC-MD5(password, ticket). */
function cramMatches(password: string, ticket: string, answer: string): boolean {
  const expected = Buffer.from(createHmac('md5', password).update(ticket, 'utf8').digest('hex'), 'latin1');
  const given = /^[0-9a-fA-F]{32}$/.test(answer) ? Buffer.from(answer.toLowerCase(), 'latin1') : undefined;
  // A malformed answer still costs the comparison.
  return timingSafeEqual(expected, given ?? Buffer.alloc(expected.length)) && given !== undefined;
}

/**
 * The worker's program (CommonJS, run with `eval`): loads the three libraries by the URLs it is
 * given and answers `{ id, ok }` or `{ id, error }` for each `{ id, scheme, password, hash }`.
 * Requests are handled one at a time, in order.
 */
const WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const loaded = Promise.all([import(workerData.bcryptjs), import(workerData.hashWasm), import(workerData.unixcrypt)]);
let chain = Promise.resolve();
parentPort.on('message', (request) => {
  chain = chain.then(async () => {
    try {
      const [bcryptjs, hashWasm, unixcrypt] = await loaded;
      const bcrypt = bcryptjs.default ?? bcryptjs;
      const argon2Verify = hashWasm.argon2Verify ?? hashWasm.default.argon2Verify;
      const shaVerify = unixcrypt.verify ?? unixcrypt.default.verify;
      let ok;
      if (request.scheme === 'bcrypt') ok = bcrypt.compareSync(request.password, request.hash);
      else if (request.scheme === 'argon2') ok = await argon2Verify({ password: request.password, hash: request.hash });
      else if (request.scheme === 'sha-crypt') ok = shaVerify(request.password, request.hash);
      else throw new Error('unknown scheme ' + request.scheme);
      parentPort.postMessage({ id: request.id, ok: ok === true });
    } catch (err) {
      parentPort.postMessage({ id: request.id, error: String((err && err.message) || err) });
    }
  });
});
`;

interface Pending {
  readonly resolve: (ok: boolean) => void;
  readonly reject: (err: Error) => void;
}

/** One worker thread that checks hashes; started on first use, restarted after a failure. */
class HashChecker {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  /** True when `password` matches `hash`; rejects when the hash cannot be checked at all. */
  check(scheme: HashScheme, password: string, hash: string): Promise<boolean> {
    const worker = this.start();
    const id = this.nextId++;
    return new Promise<boolean>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ id, scheme, password, hash });
    });
  }

  async stop(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    this.failAll(new Error('hash checker stopped'));
    if (worker !== undefined) await worker.terminate();
  }

  private start(): Worker {
    if (this.worker !== undefined) return this.worker;
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // The worker runs plain JavaScript: no TypeScript loader or other --import of the daemon.
      execArgv: [],
      workerData: {
        bcryptjs: import.meta.resolve('bcryptjs'),
        hashWasm: import.meta.resolve('hash-wasm'),
        unixcrypt: import.meta.resolve('unixcrypt'),
      },
    });
    worker.unref();
    worker.on('message', (reply: { id: number; ok?: boolean; error?: string }) => {
      const waiting = this.pending.get(reply.id);
      if (waiting === undefined) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      if (reply.error !== undefined) waiting.reject(new Error(reply.error));
      else waiting.resolve(reply.ok === true);
    });
    const lost = (err: Error): void => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.failAll(err);
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`hash checker exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }

  private failAll(err: Error): void {
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const p of waiting) p.reject(err);
  }
}

export default class AuthFlatFile extends Plugin {
  /** Made at construction: shared by every session (a field set inside a hook would not be). */
  private readonly checker = new HashChecker();

  hook_auth_plain(tx: Transaction, mechanism: string, user: string, passClear: string | undefined, passHash: string | undefined, ticket: string | undefined): Promise<HookResult> {
    return this.authenticate(tx, mechanism, user, passClear, passHash, ticket);
  }

  hook_auth_login(tx: Transaction, mechanism: string, user: string, passClear: string | undefined, passHash: string | undefined, ticket: string | undefined): Promise<HookResult> {
    return this.authenticate(tx, mechanism, user, passClear, passHash, ticket);
  }

  hook_auth_cram_md5(tx: Transaction, mechanism: string, user: string, passClear: string | undefined, passHash: string | undefined, ticket: string | undefined): Promise<HookResult> {
    return this.authenticate(tx, mechanism, user, passClear, passHash, ticket);
  }

  async shutdown(): Promise<void> {
    await this.checker.stop();
  }

  private async authenticate(_tx: Transaction, mechanism: string, user: string, passClear: string | undefined, passHash: string | undefined, ticket: string | undefined): Promise<HookResult> {
    const cram = mechanism.toUpperCase() === 'CRAM-MD5';
    if (cram ? passHash === undefined || ticket === undefined : passClear === undefined) {
      this.log(LOGINFO, `fail: missing password for ${shown(user)}`);
      return DENY;
    }
    const entries = this.entries();
    const wanted = user.toLowerCase();
    const entry = entries.find((e) => e.address === wanted);

    if (entry === undefined) {
      await this.decoyCheck(entries, cram ? undefined : passClear, passHash, ticket);
      this.log(LOGINFO, `fail: no such user: ${shown(user)}`);
      return DECLINED;
    }
    if (entry.secret === '') {
      this.log(LOGWARN, `fail: the entry of ${shown(user)} has no password`);
      return DENY;
    }
    if (entry.scheme === 'unsupported') {
      this.log(LOGERROR, `fail: the entry of ${shown(user)} is a hash in a scheme this plugin cannot check (bcrypt, argon2, sha512-crypt and sha256-crypt are supported)`);
      return DENY;
    }

    if (cram) {
      if (isHashed(entry.scheme)) {
        this.log(LOGINFO, `fail: CRAM-MD5 needs the clear password, and the entry of ${shown(user)} is a ${entry.scheme} hash: use PLAIN or LOGIN`);
        return DENY;
      }
      if (cramMatches(entry.secret, ticket!, passHash!)) {
        this.log(LOGINFO, `pass: hash match for ${shown(user)}`);
        return OK;
      }
      this.log(LOGINFO, `fail: wrong password for ${shown(user)}`);
      return DENY;
    }

    let matches: boolean;
    if (isHashed(entry.scheme)) {
      try {
        matches = await this.checker.check(entry.scheme, passClear!, entry.secret);
      } catch (err) {
        this.log(LOGERROR, `error: could not check the ${entry.scheme} hash of ${shown(user)}: ${(err as Error).message}`);
        return DENYSOFT;
      }
    } else {
      matches = sameText(entry.secret, passClear!);
    }
    if (matches) {
      this.log(LOGINFO, `pass: ${entry.scheme} match for ${shown(user)}`);
      return OK;
    }
    this.log(LOGINFO, `fail: wrong password for ${shown(user)}`);
    return DENY;
  }

  /** Work comparable to checking a real entry, for a user who has none (see the header). */
  private async decoyCheck(entries: readonly Entry[], passClear: string | undefined, passHash: string | undefined, ticket: string | undefined): Promise<void> {
    const random = randomBytes(18).toString('base64');
    if (passClear === undefined) {
      cramMatches(random, ticket ?? '', passHash ?? '');
      return;
    }
    const decoy = entries.find((e) => isHashed(e.scheme));
    if (decoy === undefined || !isHashed(decoy.scheme)) {
      sameText(random, passClear);
      return;
    }
    try {
      await this.checker.check(decoy.scheme, passClear, decoy.secret);
    } catch {
      // The result is thrown away either way; a broken decoy entry shows when its user logs in.
    }
  }

  /** The lines of flat_auth_pw as entries; lines without a colon are skipped. */
  private entries(): Entry[] {
    const out: Entry[] = [];
    for (const line of this.configList('flat_auth_pw')) {
      const colon = line.indexOf(':');
      if (colon <= 0) {
        this.log(LOGDEBUG, 'skipping a flat_auth_pw line without "address:"');
        continue;
      }
      const secret = line.slice(colon + 1);
      out.push({ address: line.slice(0, colon).trim().toLowerCase(), secret, scheme: schemeOf(secret) });
    }
    return out;
  }
}
