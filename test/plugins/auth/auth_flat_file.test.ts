/** auth/auth_flat_file: PLAIN, LOGIN and CRAM-MD5 against config/flat_auth_pw, clear and hashed. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { argon2d, argon2i, argon2id } from 'hash-wasm';
import { encrypt as shaCrypt } from 'unixcrypt';
import { TEST_PLUGINS } from '../../helpers/plugin-sources.ts';
import { tempDir, testApp, type TestApp } from '../../helpers/test-app.ts';
import { authCode, b64, cram, ehlo, login, MECHANISMS, plain } from './support.ts';

const SALT = Buffer.from('0123456789abcdef');
/** Small argon2 parameters: the tests are about the plumbing, not the cost. */
const argon2Params = (password: string) => ({ password, salt: SALT, iterations: 1, parallelism: 1, memorySize: 8, hashLength: 32, outputType: 'encoded' as const });

/** Made with `openssl passwd -6 -salt saltstring password` and `openssl passwd -5 -salt saltstring password`. */
const OPENSSL_SHA512 = '$6$saltstring$adDbXsJjcDlq2662QPgd.tkSOVmnG9Tt3oXl4HR60SusC3AGjirnDenVZp3DGwLwqy6iYKCzannhaX9DR72nN1';
const OPENSSL_SHA256 = '$5$saltstring$OH4IDuTlsuTYPdED1gsuiRMyTAwNlRWyA6Xr3I4/dQ5';
/** Made with `mkpasswd -m sha-512 -S Mkp4sswdSalt0123 'dave pässword'` and `mkpasswd -m sha-256 -R 2000 -S shortsalt erin:colon`. */
const MKPASSWD_SHA512 = '$6$Mkp4sswdSalt0123$z53q6Xoj5OwPUImTimglI0S2gWSys8gVENL3trC0YF4QVoNEfctcdcD4M5ZqzMNC4W42K9CkfejR/R0Bqjw2e/';
const MKPASSWD_SHA256 = '$5$rounds=2000$shortsalt$rwI1h3OgZzfPODDcR9OUOYkDbpgktEWI2IYFQGVFwAC';
/** Test vectors of Drepper's SHA-crypt specification. */
const SPEC_SHA256 = '$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5';
const SPEC_SHA512_ROUNDS = '$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.';

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** user (as the client types it), password, and the flat_auth_pw line. */
interface User {
  readonly login: string;
  readonly password: string;
  readonly kind: string;
}

const users: User[] = [];
let lines: string[] = [];

async function makeUsers(): Promise<void> {
  const bcrypt2b = bcrypt.hashSync('bcrypt b pw', 4);
  const salt2a = bcrypt.genSaltSync(4).replace(/^\$2b\$/, '$2a$');
  const salt2y = bcrypt.genSaltSync(4).replace(/^\$2b\$/, '$2y$');
  const entries: [string, string, string, string][] = [
    // [address in the file, password, secret, kind]
    ['alice@example.com', 'clear:pass word', 'clear:pass word', 'clear'],
    ['Mixed.Case@Example.COM', 'Mixed secret', 'Mixed secret', 'clear (mixed case address)'],
    ['plainname', 'bare name secret', 'bare name secret', 'clear (bare user name)'],
    ['b2b@example.com', 'bcrypt b pw', bcrypt2b, 'bcrypt $2b$'],
    ['b2a@example.com', 'bcrypt a pw', bcrypt.hashSync('bcrypt a pw', salt2a), 'bcrypt $2a$'],
    ['b2y@example.com', 'bcrypt y pw', bcrypt.hashSync('bcrypt y pw', salt2y), 'bcrypt $2y$'],
    ['a2id@example.com', 'argon id pw', await argon2id(argon2Params('argon id pw')), 'argon2id'],
    ['a2i@example.com', 'argon i pw', await argon2i(argon2Params('argon i pw')), 'argon2i'],
    ['a2d@example.com', 'argon d pw', await argon2d(argon2Params('argon d pw')), 'argon2d'],
    ['s512@example.com', 'password', OPENSSL_SHA512, 'sha512-crypt (openssl)'],
    ['s256@example.com', 'password', OPENSSL_SHA256, 'sha256-crypt (openssl)'],
    ['dave@example.com', 'dave pässword', MKPASSWD_SHA512, 'sha512-crypt (mkpasswd, UTF-8 password)'],
    ['erin@example.com', 'erin:colon', MKPASSWD_SHA256, 'sha256-crypt (mkpasswd, rounds=2000)'],
    ['spec256', 'Hello world!', SPEC_SHA256, 'sha256-crypt (spec vector)'],
    ['spec512@example.com', 'Hello world!', SPEC_SHA512_ROUNDS, 'sha512-crypt (spec vector, rounds=10000)'],
    ['gen512@example.com', 'generated pw', shaCrypt('generated pw', '$6$rounds=1000'), 'sha512-crypt (unixcrypt)'],
  ];
  if (hasOpenssl()) {
    const fresh = execFileSync('openssl', ['passwd', '-6', 'fresh openssl pw'], { encoding: 'utf8' }).trim();
    entries.push(['fresh@example.com', 'fresh openssl pw', fresh, 'sha512-crypt (openssl, random salt)']);
  }
  for (const [address, password, secret, kind] of entries) {
    users.push({ login: address, password, kind });
    lines.push(`${address}:${secret}`);
  }
  lines = [
    '# a comment',
    ...lines,
    'alice@example.com:a later line for alice is ignored',
    'md5crypt@example.com:$1$salt$qJH7.N4xYta3aEG/dfqo/0',
    'empty@example.com:',
    'broken@example.com:$argon2id$v=19$m=8,t=1,p=1$garbage',
    'no colon on this line',
  ];
}

let t: TestApp;
before(async () => {
  await makeUsers();
  t = await testApp({ config: { plugins: ['auth/auth_flat_file'], flat_auth_pw: lines, tls_before_auth: '0', auth_failure_delay: '0', loglevel: '6' } });
});
after(async () => {
  await t.cleanup();
});

describe('auth_flat_file', () => {
  test('makes PLAIN, LOGIN and CRAM-MD5 advertised', async () => {
    const { client } = await t.greeted();
    const reply = await client.command('EHLO client.example');
    assert.ok(reply.lines.includes('AUTH PLAIN LOGIN CRAM-MD5'), reply.raw);
  });

  test('every kind of entry authenticates with PLAIN (with and without initial response) and LOGIN', async () => {
    for (const user of users) {
      for (const mechanism of ['PLAIN', 'PLAIN-prompted', 'LOGIN'] as const) {
        assert.equal(await authCode(t, mechanism, user.login, user.password), 235, `${user.kind} with ${mechanism}`);
      }
    }
  });

  test('the reply names the mechanism and the user', async () => {
    const client = await ehlo(t);
    const reply = await plain(client, 'alice@example.com', 'clear:pass word');
    assert.equal(reply.code, 235);
    assert.match(reply.text, /^2\.7\.0 PLAIN authentication successful for alice@example\.com/);
  });

  test('a wrong password is 535 for every kind of entry and every mechanism', async () => {
    for (const user of users) {
      for (const mechanism of MECHANISMS) {
        assert.equal(await authCode(t, mechanism, user.login, `${user.password}x`), 535, `${user.kind} with ${mechanism}`);
      }
    }
    assert.equal(await authCode(t, 'PLAIN', 'alice@example.com', ''), 535, 'an empty password');
    assert.equal(await authCode(t, 'PLAIN', 'alice@example.com', 'CLEAR:PASS WORD'), 535, 'clear passwords are case-sensitive');
  });

  test('CRAM-MD5 works with clear-text entries', async () => {
    for (const user of users.filter((u) => u.kind.startsWith('clear'))) {
      assert.equal(await authCode(t, 'CRAM-MD5', user.login, user.password), 235, user.kind);
    }
  });

  test('CRAM-MD5 against a hashed entry is denied, and the log says why', async () => {
    for (const user of users.filter((u) => !u.kind.startsWith('clear'))) {
      assert.equal(await authCode(t, 'CRAM-MD5', user.login, user.password), 535, user.kind);
    }
    assert.ok(t.logs.some((l) => /auth\/auth_flat_file.*CRAM-MD5 needs the clear password.*"b2b@example\.com".*bcrypt hash: use PLAIN or LOGIN/.test(l)), t.logs.join('\n'));
  });

  test('the address matches in any case; a bare user name is an entry of its own', async () => {
    assert.equal(await authCode(t, 'PLAIN', 'ALICE@EXAMPLE.COM', 'clear:pass word'), 235);
    assert.equal(await authCode(t, 'LOGIN', 'mixed.case@example.com', 'Mixed secret'), 235);
    assert.equal(await authCode(t, 'CRAM-MD5', 'MIXED.CASE@EXAMPLE.COM', 'Mixed secret'), 235);
    assert.equal(await authCode(t, 'PLAIN', 'PlainName', 'bare name secret'), 235);
    assert.equal(await authCode(t, 'PLAIN', 'plainname@example.com', 'bare name secret'), 535);
    assert.equal(await authCode(t, 'PLAIN', 'alice', 'clear:pass word'), 535);
  });

  test('the first line of an address wins', async () => {
    assert.equal(await authCode(t, 'PLAIN', 'alice@example.com', 'a later line for alice is ignored'), 535);
  });

  test('unknown users get 535 with the same text as a wrong password', async () => {
    const unknown = await ehlo(t);
    const a = await plain(unknown, 'nobody@example.com', 'whatever');
    const known = await ehlo(t);
    const b = await plain(known, 'nobody@example.com'.replace('nobody', 'b2b'), 'whatever');
    assert.equal(a.code, 535);
    assert.equal(b.code, 535);
    assert.equal(a.text.replace('nobody', 'b2b'), b.text);
    assert.equal(await authCode(t, 'LOGIN', 'nobody@example.com', 'x'), 535);
    assert.equal(await authCode(t, 'CRAM-MD5', 'nobody@example.com', 'x'), 535);
    assert.ok(t.logs.some((l) => l.includes('fail: no such user: "nobody@example.com"')), t.logs.join('\n'));
  });

  test('entries without a password, or hashed in an unsupported scheme, never authenticate', async () => {
    assert.equal(await authCode(t, 'PLAIN', 'empty@example.com', ''), 535);
    assert.equal(await authCode(t, 'PLAIN', 'md5crypt@example.com', 'password'), 535);
    assert.equal(await authCode(t, 'PLAIN', 'md5crypt@example.com', '$1$salt$qJH7.N4xYta3aEG/dfqo/0'), 535, 'the hash is not a clear password');
    assert.ok(t.logs.some((l) => l.includes('"md5crypt@example.com" is a hash in a scheme this plugin cannot check')), t.logs.join('\n'));
  });

  test('a hash that cannot be checked is a temporary failure (454)', async () => {
    const client = await ehlo(t);
    const reply = await plain(client, 'broken@example.com', 'anything');
    assert.equal(reply.code, 454, reply.raw);
    assert.ok(t.logs.some((l) => l.includes('could not check the argon2 hash of "broken@example.com"')), t.logs.join('\n'));
  });
});

/** An auth plugin after auth_flat_file: it knows `zed` and says OK to anyone's password. */
const LENIENT = `import { Plugin, OK, DECLINED } from 'qpsmtpd';
export default class Lenient extends Plugin {
  hook_auth(_tx: unknown, _m: string, user: string) {
    return user === 'zed@example.com' || user === 'alice@example.com' ? OK : DECLINED;
  }
}
`;

describe('with another auth plugin after it', () => {
  test('an unknown user is DECLINED (the next plugin may know them); a wrong password is DENY (it is not asked)', async () => {
    const app = await testApp({
      plugins: { 'lenient.ts': LENIENT },
      config: { plugins: ['auth/auth_flat_file', 'lenient'], flat_auth_pw: ['alice@example.com:right'], tls_before_auth: '0', auth_failure_delay: '0' },
    });
    try {
      for (const mechanism of MECHANISMS) {
        assert.equal(await authCode(app, mechanism, 'zed@example.com', 'anything'), 235, mechanism);
        assert.equal(await authCode(app, mechanism, 'alice@example.com', 'wrong'), 535, mechanism);
        assert.equal(await authCode(app, mechanism, 'alice@example.com', 'right'), 235, mechanism);
      }
    } finally {
      await app.cleanup();
    }
  });
});

describe('what a successful AUTH does', () => {
  test('a recipient at a foreign domain is accepted by rcpt_ok only after AUTH', async () => {
    const app = await testApp({
      config: { plugins: ['auth/auth_flat_file', 'rcpt_ok'], flat_auth_pw: lines, rcpthosts: ['example.com'], tls_before_auth: '0', auth_failure_delay: '0' },
    });
    try {
      const client = await ehlo(app);
      assert.equal((await client.command('MAIL FROM:<b2b@example.com>')).code, 250);
      assert.equal((await client.command('RCPT TO:<someone@elsewhere.example>')).code, 550);
      assert.equal((await client.command('RSET')).code, 250);
      assert.equal((await plain(client, 'b2b@example.com', 'bcrypt b pw')).code, 235);
      assert.equal((await client.command('MAIL FROM:<b2b@example.com>')).code, 250);
      assert.equal((await client.command('RCPT TO:<someone@elsewhere.example>')).code, 250);

      const failed = await ehlo(app);
      assert.equal((await plain(failed, 'b2b@example.com', 'wrong')).code, 535);
      assert.equal((await failed.command('MAIL FROM:<b2b@example.com>')).code, 250);
      assert.equal((await failed.command('RCPT TO:<someone@elsewhere.example>')).code, 550, 'a failed AUTH gives nothing');
    } finally {
      await app.cleanup();
    }
  });

  test('the Received header says ESMTPA', async () => {
    const dir = tempDir('qpsmtpd-auth-queue-');
    const app = await testApp({
      plugins: { 'queue_capture.ts': TEST_PLUGINS['queue_capture.ts']! },
      config: { plugins: ['auth/auth_flat_file', 'rcpt_ok', `queue_capture ${dir}`], flat_auth_pw: lines, tls_before_auth: '0', auth_failure_delay: '0' },
    });
    try {
      const client = await ehlo(app);
      assert.equal((await login(client, 'a2id@example.com', 'argon id pw')).code, 235);
      assert.equal((await client.command('MAIL FROM:<a2id@example.com>')).code, 250);
      assert.equal((await client.command('RCPT TO:<someone@elsewhere.example>')).code, 250);
      assert.equal((await client.command('DATA')).code, 354);
      client.send('Subject: hi\r\n\r\nbody\r\n.\r\n');
      assert.equal((await client.reply()).code, 250);
      const [file] = readdirSync(dir);
      const message = readFileSync(join(dir, file!), 'utf8');
      const received = message.split(/\r\n(?![ \t])/)[0]!;
      assert.match(received, /^Received: from /, message);
      assert.match(received, /\bwith ESMTPA\b/, received);
    } finally {
      await app.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('no password reaches the log, even at loglevel 7', async () => {
    const app = await testApp({
      plugins: { 'lenient.ts': LENIENT },
      config: { plugins: ['auth/auth_flat_file', 'lenient'], flat_auth_pw: ['alice@example.com:topsecret1', `bob@example.com:${bcrypt.hashSync('the real bob pw', 4)}`], tls_before_auth: '0', auth_failure_delay: '0', loglevel: '7' },
    });
    try {
      const passwords = ['topsecret1', 'wrongsecret2', 'unknownsecret3', 'bobsecret4'];
      await authCode(app, 'PLAIN', 'alice@example.com', 'topsecret1');
      await authCode(app, 'PLAIN-prompted', 'alice@example.com', 'wrongsecret2');
      await authCode(app, 'LOGIN', 'alice@example.com', 'wrongsecret2');
      await authCode(app, 'LOGIN', 'nobody@example.com', 'unknownsecret3');
      await authCode(app, 'CRAM-MD5', 'alice@example.com', 'wrongsecret2');
      await authCode(app, 'PLAIN', 'bob@example.com', 'bobsecret4');
      const all = app.logs.join('\n');
      assert.ok(all.includes('auth_flat_file'), all);
      for (const secret of passwords) {
        assert.ok(!all.includes(secret), `${secret} in the log`);
        assert.ok(!all.includes(b64(secret)), `${secret} (base64) in the log`);
      }
      assert.ok(!/AGFsaWNlQGV4YW1wbGUuY29tA/.test(all), 'no PLAIN response in the log');
    } finally {
      await app.cleanup();
    }
  });
});

describe('cost', () => {
  test('an unknown user takes about as long as a known one (the check is done anyway)', async () => {
    // Cost 10: long enough (tens of ms) to tell a real check from none at all.
    const hash = bcrypt.hashSync('slow pw', 10);
    const app = await testApp({ config: { plugins: ['auth/auth_flat_file'], flat_auth_pw: ['clear@example.com:x', `slow@example.com:${hash}`], tls_before_auth: '0', auth_failure_delay: '0' } });
    try {
      await authCode(app, 'PLAIN', 'slow@example.com', 'warm up the worker');
      const time = async (user: string): Promise<number> => {
        const client = await ehlo(app);
        const start = performance.now();
        assert.equal((await plain(client, user, 'wrong pw')).code, 535);
        return performance.now() - start;
      };
      const known: number[] = [];
      const unknown: number[] = [];
      for (let i = 0; i < 3; i++) {
        known.push(await time('slow@example.com'));
        unknown.push(await time(`nobody${i}@example.com`));
      }
      const median = (xs: number[]): number => xs.sort((a, b) => a - b)[1]!;
      assert.ok(median(known) > 10, `a cost-10 bcrypt check takes time (${median(known)} ms)`);
      assert.ok(median(unknown) > median(known) / 3, `unknown ${unknown.join(', ')} ms vs known ${known.join(', ')} ms`);
    } finally {
      await app.cleanup();
    }
  });

  test('a costly hash is checked off the event loop', async () => {
    const hash = await argon2id({ password: 'heavy pw', salt: SALT, iterations: 2, parallelism: 1, memorySize: 32768, hashLength: 32, outputType: 'encoded' });
    const app = await testApp({ config: { plugins: ['auth/auth_flat_file'], flat_auth_pw: [`heavy@example.com:${hash}`], tls_before_auth: '0', auth_failure_delay: '0' } });
    try {
      await authCode(app, 'PLAIN', 'heavy@example.com', 'warm up the worker');
      const client = await ehlo(app);
      let longest = 0;
      let last = performance.now();
      const timer = setInterval(() => {
        const now = performance.now();
        longest = Math.max(longest, now - last);
        last = now;
      }, 2);
      const start = performance.now();
      const reply = await plain(client, 'heavy@example.com', 'heavy pw');
      const took = performance.now() - start;
      clearInterval(timer);
      assert.equal(reply.code, 235);
      assert.ok(longest < took / 2, `the event loop stalled ${longest.toFixed(1)} ms of the ${took.toFixed(1)} ms check`);
    } finally {
      await app.cleanup();
    }
  });
});

describe('CRAM-MD5 details', () => {
  test('an answer in upper-case hex is accepted; a digest of the wrong length is not', async () => {
    const client = await ehlo(t);
    const challenge = await client.command('AUTH CRAM-MD5');
    const ticket = Buffer.from(challenge.text, 'base64').toString('utf8');
    const digest = createHmac('md5', 'clear:pass word').update(ticket).digest('hex').toUpperCase();
    assert.equal((await client.command(b64(`alice@example.com ${digest}`))).code, 235);

    const other = await ehlo(t);
    await other.command('AUTH CRAM-MD5');
    assert.equal((await other.command(b64(`alice@example.com ${digest.slice(0, 30)}`))).code, 535);
    assert.equal((await cram(await ehlo(t), 'alice@example.com', 'clear:pass word')).code, 235);
  });
});
