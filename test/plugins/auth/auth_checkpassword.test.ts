/**
 * auth/auth_checkpassword against a real checkpassword-interface program: Debian ships none
 * (no checkpassword or checkpassword-pam package), so the tests write one, a POSIX shell script
 * that reads `user\0password\0timestamp\0` from file descriptor 3, looks the pair up in a file
 * and, as the interface says, runs the rest of its arguments on success.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, testApp, type TestApp, type TestAppOptions } from '../../helpers/test-app.ts';
import { authCode, b64, ehlo, login, plain } from './support.ts';

let dir: string;
let script: string;

const SCRIPT = (d: string): string => `#!/bin/sh
# A checkpassword (https://cr.yp.to/checkpwd/interface.html) for the tests.
PATH=/usr/bin:/bin
dir='${d}'
cat <&3 > "$dir/input"
printf '%s\\n' "$@" > "$dir/argv"
printf '%s' "$TCPREMOTEIP" > "$dir/remoteip"
user=$(tr '\\000' '\\n' < "$dir/input" | sed -n 1p)
pass=$(tr '\\000' '\\n' < "$dir/input" | sed -n 2p)
case "$user" in
  tempfail) exit 111 ;;
  misuse) echo "usage: checkpassword prog" >&2; exit 2 ;;
  crash) kill -SEGV $$ ;;
  slow) sleep 30 & echo $! > "$dir/sleeper"; wait; exit 0 ;;
  echo) echo "bad password: $pass" >&2; exit 1 ;;
esac
if grep -qxF -- "$user:$pass" "$dir/users"; then exec "$@"; fi
exit 1
`;

before(() => {
  dir = tempDir('qpsmtpd-checkpw-');
  script = join(dir, 'checkpassword');
  writeFileSync(script, SCRIPT(dir));
  chmodSync(script, 0o755);
  writeFileSync(join(dir, 'users'), 'alice@example.com:right pw\nbob:b:colon pw\n');
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function withApp(pluginLine: string, fn: (t: TestApp) => Promise<void>, extra: TestAppOptions['config'] = {}): Promise<void> {
  const t = await testApp({ config: { plugins: [pluginLine], tls_before_auth: '0', auth_failure_delay: '0', loglevel: '6', ...extra } });
  try {
    await fn(t);
  } finally {
    await t.cleanup();
  }
}

/** Is the process alive (not gone, not a zombie)? */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

describe('auth_checkpassword', () => {
  test('offers PLAIN and LOGIN, not CRAM-MD5', async () => {
    await withApp(`auth/auth_checkpassword checkpw ${script} true /bin/true`, async (t) => {
      const { client } = await t.greeted();
      const reply = await client.command('EHLO client.example');
      assert.ok(reply.lines.includes('AUTH PLAIN LOGIN'), reply.raw);
      assert.equal((await client.command('AUTH CRAM-MD5')).code, 504);
    });
  });

  test('the right password authenticates with PLAIN (both ways) and LOGIN; fd 3 carries user, password, timestamp', async () => {
    await withApp(`auth/auth_checkpassword checkpw ${script} true /bin/true`, async (t) => {
      assert.equal(await authCode(t, 'PLAIN', 'alice@example.com', 'right pw'), 235);
      assert.match(readFileSync(join(dir, 'input'), 'latin1'), /^alice@example\.com\0right pw\0\d+\0$/);
      assert.equal(readFileSync(join(dir, 'argv'), 'utf8'), '/bin/true\n');
      assert.equal(readFileSync(join(dir, 'remoteip'), 'utf8'), '192.0.2.10');
      assert.equal(await authCode(t, 'PLAIN-prompted', 'alice@example.com', 'right pw'), 235);
      assert.equal(await authCode(t, 'LOGIN', 'bob', 'b:colon pw'), 235);
      assert.ok(t.logs.some((l) => l.includes('auth/auth_checkpassword: pass: auth success for "bob" with LOGIN')), t.logs.join('\n'));
    });
  });

  test('exit 1 (a wrong password, an unknown user) is 535', async () => {
    await withApp(`auth/auth_checkpassword checkpw ${script} true /bin/true`, async (t) => {
      assert.equal(await authCode(t, 'PLAIN', 'alice@example.com', 'wrong pw'), 535);
      assert.equal(await authCode(t, 'LOGIN', 'nobody', 'right pw'), 535);
      assert.ok(t.logs.some((l) => l.includes('fail: wrong password or unknown user "nobody"')), t.logs.join('\n'));
    });
  });

  test('the program it runs on success decides too: `true /bin/false` accepts nobody', async () => {
    await withApp(`auth/auth_checkpassword checkpw ${script} true /bin/false`, async (t) => {
      assert.equal(await authCode(t, 'PLAIN', 'alice@example.com', 'right pw'), 535);
    });
  });

  test('exit 111 is a temporary failure (454)', async () => {
    await withApp(`auth/auth_checkpassword checkpw ${script} true /bin/true`, async (t) => {
      const client = await ehlo(t);
      const reply = await plain(client, 'tempfail', 'x');
      assert.equal(reply.code, 454, reply.raw);
      assert.match(reply.text, /^4\.7\.0 /);
    });
  });

  test('any other exit status, or a death by signal, is 535 and logged as an error with its stderr', async () => {
    await withApp(`auth/auth_checkpassword checkpw ${script} true /bin/true`, async (t) => {
      assert.equal(await authCode(t, 'PLAIN', 'misuse', 'x'), 535);
      assert.ok(t.logs.some((l) => l.includes('exited with status 2 for "misuse"; stderr: "usage: checkpassword prog\\n"')), t.logs.join('\n'));
      assert.equal(await authCode(t, 'PLAIN', 'crash', 'x'), 535);
      assert.ok(t.logs.some((l) => l.includes('killed by SIGSEGV checking "crash"')), t.logs.join('\n'));
    });
  });

  test('a program that takes too long is killed with what it started, and the client gets 454', async () => {
    rmSync(join(dir, 'sleeper'), { force: true });
    await withApp(`auth/auth_checkpassword checkpw ${script} true /bin/true timeout 0.5`, async (t) => {
      const client = await ehlo(t);
      const start = performance.now();
      const reply = await plain(client, 'slow', 'x');
      const took = performance.now() - start;
      assert.equal(reply.code, 454, reply.raw);
      assert.ok(took >= 450 && took < 3000, `answered after ${took} ms`);
      assert.ok(t.logs.some((l) => l.includes('took longer than 0.5 s checking "slow"; killed')), t.logs.join('\n'));
      const sleeper = Number(readFileSync(join(dir, 'sleeper'), 'utf8'));
      for (let i = 0; i < 50 && alive(sleeper); i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(alive(sleeper), false, 'the program\'s own child was killed too');
    });
  });

  test('when the hook call runs out of time (plugin_timeout) the program is killed', async () => {
    rmSync(join(dir, 'sleeper'), { force: true });
    await withApp(
      `auth/auth_checkpassword checkpw ${script} true /bin/true`,
      async (t) => {
        const client = await ehlo(t);
        const reply = await plain(client, 'slow', 'x');
        assert.equal(reply.code, 454, reply.raw);
        for (let i = 0; i < 50 && !existsSync(join(dir, 'sleeper')); i++) await new Promise((r) => setTimeout(r, 20));
        const sleeper = Number(readFileSync(join(dir, 'sleeper'), 'utf8'));
        for (let i = 0; i < 50 && alive(sleeper); i++) await new Promise((r) => setTimeout(r, 20));
        assert.equal(alive(sleeper), false);
        for (let i = 0; i < 50 && !t.logs.some((l) => l.includes('the hook ran out of time')); i++) await new Promise((r) => setTimeout(r, 20));
        assert.ok(t.logs.some((l) => l.includes('the hook ran out of time checking "slow"; the checkpassword program was killed')), t.logs.join('\n'));
      },
      { plugin_timeout: '0.5' },
    );
  });

  test('config/smtpauth-checkpassword holds the command when the arguments do not', async () => {
    await withApp(
      'auth/auth_checkpassword',
      async (t) => {
        assert.equal(await authCode(t, 'LOGIN', 'alice@example.com', 'right pw'), 235);
        assert.equal(await authCode(t, 'LOGIN', 'alice@example.com', 'wrong'), 535);
        assert.ok(t.logs.some((l) => l.includes('reading config from smtpauth-checkpassword')), t.logs.join('\n'));
      },
      { 'smtpauth-checkpassword': `${script} /bin/true` },
    );
  });

  test('without a usable program the plugin logs an error and offers no AUTH', async () => {
    for (const line of ['auth/auth_checkpassword checkpw /nonexistent/checkpassword true /bin/true', 'auth/auth_checkpassword']) {
      await withApp(line, async (t) => {
        const client = await ehlo(t);
        assert.equal((await client.command(`AUTH PLAIN ${b64('\0alice@example.com\0right pw')}`)).code, 500);
        assert.ok(t.logs.some((l) => l.includes('auth/auth_checkpassword: disabled due to invalid configuration')), t.logs.join('\n'));
      });
    }
  });

  test('a successful AUTH lets the client relay through rcpt_ok', async () => {
    const t = await testApp({
      config: { plugins: [`auth/auth_checkpassword checkpw ${script} true /bin/true`, 'rcpt_ok'], tls_before_auth: '0', auth_failure_delay: '0' },
    });
    try {
      const client = await ehlo(t);
      assert.equal((await client.command('MAIL FROM:<alice@example.com>')).code, 250);
      assert.equal((await client.command('RCPT TO:<someone@elsewhere.example>')).code, 550);
      assert.equal((await client.command('RSET')).code, 250);
      assert.equal((await login(client, 'alice@example.com', 'right pw')).code, 235);
      assert.equal((await client.command('MAIL FROM:<alice@example.com>')).code, 250);
      assert.equal((await client.command('RCPT TO:<someone@elsewhere.example>')).code, 250);
    } finally {
      await t.cleanup();
    }
  });

  test('no password reaches the log at loglevel 7, even one the program prints', async () => {
    await withApp(
      `auth/auth_checkpassword checkpw ${script} true /bin/true`,
      async (t) => {
        await authCode(t, 'PLAIN', 'alice@example.com', 'right pw');
        await authCode(t, 'LOGIN', 'alice@example.com', 'sesame42');
        await authCode(t, 'PLAIN', 'echo', 'opensesame99');
        const all = t.logs.join('\n');
        assert.ok(all.includes('stderr of the checkpassword program: "bad password: ********\\n"'), all);
        for (const secret of ['right pw', 'sesame42', 'opensesame99']) {
          assert.ok(!all.includes(secret), `${secret} in the log`);
          assert.ok(!all.includes(b64(secret)), `${secret} (base64) in the log`);
        }
      },
      { loglevel: '7' },
    );
  });
});
