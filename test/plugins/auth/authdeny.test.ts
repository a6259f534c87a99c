/** auth/authdeny: every AUTH that no plugin before it accepted fails, and is logged at LOGWARN. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testApp, type TestApp, type TestAppOptions } from '../../helpers/test-app.ts';
import { authCode, MECHANISMS } from './support.ts';

async function withApp(options: TestAppOptions, fn: (t: TestApp) => Promise<void>): Promise<void> {
  const t = await testApp({ ...options, config: { tls_before_auth: '0', auth_failure_delay: '0', ...options.config } });
  try {
    await fn(t);
  } finally {
    await t.cleanup();
  }
}

const denials = (t: TestApp): string[] => t.logs.filter((l) => l.includes('auth/authdeny: fail: cannot authenticate'));

describe('authdeny', () => {
  test('alone: all three mechanisms are offered and every attempt fails with 535, logged at the default level', async () => {
    await withApp({ config: { plugins: ['auth/authdeny'] } }, async (t) => {
      const { client } = await t.greeted();
      const ehlo = await client.command('EHLO client.example');
      assert.ok(ehlo.lines.includes('AUTH PLAIN LOGIN CRAM-MD5'), ehlo.raw);
      for (const mechanism of MECHANISMS) assert.equal(await authCode(t, mechanism, 'alice@example.com', 'anything'), 535, mechanism);
      assert.equal(denials(t).length, MECHANISMS.length, t.logs.join('\n'));
      assert.ok(t.logs.some((l) => l.includes('fail: cannot authenticate "alice@example.com" (CRAM-MD5)')), t.logs.join('\n'));
      assert.ok(!t.logs.join('\n').includes('anything'), 'no password in the log');
    });
  });

  test('after auth_flat_file: it sees only the attempts auth_flat_file declined (users not in the file)', async () => {
    await withApp({ config: { plugins: ['auth/authdeny', 'auth/auth_flat_file'], flat_auth_pw: ['alice@example.com:right'] } }, async (t) => {
      // Listed first, it still runs last: the core asks the mechanism hooks before `auth`.
      assert.equal(await authCode(t, 'PLAIN', 'alice@example.com', 'right'), 235);
      assert.equal(await authCode(t, 'CRAM-MD5', 'alice@example.com', 'right'), 235);
      assert.equal(await authCode(t, 'LOGIN', 'alice@example.com', 'wrong'), 535);
      assert.equal(denials(t).length, 0, 'a wrong password is auth_flat_file\'s DENY: authdeny is not asked');
      assert.equal(await authCode(t, 'LOGIN', 'mallory@example.com', 'guess'), 535);
      assert.deepEqual(denials(t).map((l) => l.replace(/^.*authdeny: /, '')), ['fail: cannot authenticate "mallory@example.com" (LOGIN)']);
    });
  });

  test('it declines, as qpsmtpd\'s does: a plugin after it on the auth hook is still asked', async () => {
    const lateAccept = `import { Plugin, OK, DECLINED } from 'qpsmtpd';
export default class LateAccept extends Plugin {
  hook_auth(_tx: unknown, _m: string, user: string) { return user === 'zed' ? OK : DECLINED; }
}
`;
    await withApp({ plugins: { 'late_accept.ts': lateAccept }, config: { plugins: ['auth/authdeny', 'late_accept'] } }, async (t) => {
      assert.equal(await authCode(t, 'PLAIN', 'zed', 'x'), 235);
      assert.equal(await authCode(t, 'PLAIN', 'amy', 'x'), 535);
      assert.equal(denials(t).length, 2);
    });
  });
});
