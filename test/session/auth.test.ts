/** AUTH: the core's SASL exchange (PLAIN, LOGIN, CRAM-MD5) and what the auth hooks decide. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { testApp, type TestApp } from '../helpers/test-app.ts';
import type { FakeConn } from '../helpers/fake-conn.ts';

const AUTH_PLUGIN = `import { Plugin, OK, DENY, DECLINED } from 'qpsmtpd';
import type { Transaction } from 'qpsmtpd';
import { createHmac } from 'node:crypto';
export default class AuthTest extends Plugin {
  hook_auth(_tx: Transaction, mechanism: string, user: string, passClear: string | undefined, passHash: string | undefined, ticket: string | undefined) {
    if (user !== 'alice') return DECLINED;
    if (mechanism === 'CRAM-MD5') {
      const expected = createHmac('md5', 'secret').update(ticket ?? '').digest('hex');
      return passHash === expected ? OK : DENY;
    }
    return passClear === 'secret' ? OK : DENY;
  }
}
`;

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

let t: TestApp;
before(async () => {
  t = await testApp({ plugins: { 'auth_test.ts': AUTH_PLUGIN }, config: { plugins: ['auth_test'], tls_before_auth: '0', auth_failure_delay: '0' } });
});
after(async () => {
  await t.cleanup();
});

async function ehlo(app: TestApp = t): Promise<FakeConn> {
  const { client } = await app.greeted();
  const reply = await client.command('EHLO client.example');
  assert.equal(reply.code, 250);
  return client;
}

describe('advertising', () => {
  test('a plugin on the auth hook makes PLAIN, LOGIN and CRAM-MD5 advertised', async () => {
    const { client } = await t.greeted();
    const reply = await client.command('EHLO x');
    assert.ok(reply.lines.includes('AUTH PLAIN LOGIN CRAM-MD5'), reply.raw);
  });

  test('tls_before_auth (the default) hides AUTH and refuses it on a plaintext link', async () => {
    const strict = await testApp({ plugins: { 'auth_test.ts': AUTH_PLUGIN }, config: { plugins: ['auth_test'] } });
    try {
      const { client } = await strict.greeted();
      const reply = await client.command('EHLO x');
      assert.ok(!reply.lines.some((l) => l.startsWith('AUTH')), reply.raw);
      const auth = await client.command(`AUTH PLAIN ${b64('\0alice\0secret')}`);
      assert.equal(auth.code, 530);
    } finally {
      await strict.cleanup();
    }
  });

  test('without any auth plugin AUTH is an unrecognized command', async () => {
    const other = await testApp({ plugins: { 'noop_plugin.ts': `import { Plugin } from 'qpsmtpd';\nexport default class N extends Plugin { hook_noop() {} }` }, config: { plugins: ['noop_plugin'], tls_before_auth: '0' } });
    try {
      const client = await ehlo(other);
      assert.equal((await client.command('AUTH PLAIN')).code, 500);
    } finally {
      await other.cleanup();
    }
  });
});

describe('PLAIN', () => {
  test('with an initial response: 235, the client becomes a relay client, Received says ESMTPA', async () => {
    const client = await ehlo();
    const reply = await client.command(`AUTH PLAIN ${b64('\0alice\0secret')}`);
    assert.equal(reply.code, 235);
    assert.match(reply.text, /^2\.7\.0 PLAIN authentication successful for alice/);
    assert.equal((await client.command(`AUTH PLAIN ${b64('\0alice\0secret')}`)).code, 503, 'a second AUTH is 503');
  });

  test('without an initial response: an empty 334 challenge first', async () => {
    const client = await ehlo();
    const challenge = await client.command('AUTH PLAIN');
    assert.equal(challenge.code, 334);
    assert.equal(challenge.raw, '334 \r\n');
    assert.equal((await client.command(b64('\0alice\0secret'))).code, 235);
  });

  test('a wrong password is 535; an authzid other than the user is refused', async () => {
    const client = await ehlo();
    const wrong = await client.command(`AUTH PLAIN ${b64('\0alice\0nope')}`);
    assert.equal(wrong.code, 535);
    assert.match(wrong.text, /^5\.7\.8 /);
    assert.equal((await client.command(`AUTH PLAIN ${b64('bob\0alice\0secret')}`)).code, 535);
  });

  test('`*` cancels with 501; undecodable base64 is 501', async () => {
    const client = await ehlo();
    await client.command('AUTH PLAIN');
    assert.equal((await client.command('*')).code, 501);
    assert.equal((await client.command('AUTH PLAIN !!!notbase64')).code, 501);
  });
});

describe('LOGIN and CRAM-MD5', () => {
  test('LOGIN asks for Username: and Password:', async () => {
    const client = await ehlo();
    const user = await client.command('AUTH LOGIN');
    assert.equal(user.code, 334);
    assert.equal(Buffer.from(user.text, 'base64').toString(), 'Username:');
    const pass = await client.command(b64('alice'));
    assert.equal(Buffer.from(pass.text, 'base64').toString(), 'Password:');
    assert.equal((await client.command(b64('secret'))).code, 235);
  });

  test('LOGIN with the user name as initial response', async () => {
    const client = await ehlo();
    const pass = await client.command(`AUTH LOGIN ${b64('alice')}`);
    assert.equal(Buffer.from(pass.text, 'base64').toString(), 'Password:');
    assert.equal((await client.command(b64('secret'))).code, 235);
  });

  test('CRAM-MD5: a fresh challenge each time; the HMAC of it authenticates', async () => {
    const client = await ehlo();
    const first = await client.command('AUTH CRAM-MD5');
    assert.equal(first.code, 334);
    const ticket = Buffer.from(first.text, 'base64').toString();
    assert.match(ticket, /^<[0-9a-f]{24}\.\d+@mx\.example\.test>$/);
    const digest = createHmac('md5', 'secret').update(ticket).digest('hex');
    assert.equal((await client.command(b64(`alice ${digest}`))).code, 235);

    const again = await ehlo();
    const second = await again.command('AUTH CRAM-MD5');
    assert.notEqual(Buffer.from(second.text, 'base64').toString(), ticket);
    assert.equal((await again.command(b64(`alice ${digest}`))).code, 535, 'an old answer does not fit a new challenge');
  });
});

describe('rules', () => {
  test('AUTH after HELO is 503, AUTH inside a transaction is 503, an unknown mechanism 504', async () => {
    const { client } = await t.greeted();
    await client.command('HELO x');
    assert.equal((await client.command('AUTH PLAIN')).code, 503);
    const c2 = await ehlo();
    assert.equal((await c2.command('AUTH GSSAPI')).code, 504);
    await c2.command('MAIL FROM:<a@example.org>');
    assert.equal((await c2.command('AUTH PLAIN')).code, 503);
  });

  test('after auth_max_failures failures the client gets 421 and is disconnected', async () => {
    const client = await ehlo();
    assert.equal((await client.command(`AUTH PLAIN ${b64('\0alice\0x')}`)).code, 535);
    assert.equal((await client.command(`AUTH PLAIN ${b64('\0alice\0y')}`)).code, 535);
    const third = await client.command(`AUTH PLAIN ${b64('\0alice\0z')}`);
    assert.equal(third.code, 535);
    const bye = await client.reply();
    assert.equal(bye.code, 421);
    await client.waitClosed();
  });

  test('each failure slows the next answer down (auth_failure_delay)', async () => {
    const slow = await testApp({ plugins: { 'auth_test.ts': AUTH_PLUGIN }, config: { plugins: ['auth_test'], tls_before_auth: '0', auth_failure_delay: '0.2' } });
    try {
      const client = await ehlo(slow);
      let started = Date.now();
      assert.equal((await client.command(`AUTH PLAIN ${b64('\0alice\0x')}`)).code, 535);
      const first = Date.now() - started;
      started = Date.now();
      assert.equal((await client.command(`AUTH PLAIN ${b64('\0alice\0y')}`)).code, 535);
      const second = Date.now() - started;
      assert.ok(first >= 180, `first failure answered after ${first} ms`);
      assert.ok(second >= 380, `second failure answered after ${second} ms`);
      assert.equal((await client.command(`AUTH PLAIN ${b64('\0alice\0secret')}`)).code, 235);
    } finally {
      await slow.cleanup();
    }
  });

  test('the password never reaches the log, even at LOGDEBUG', async () => {
    const verbose = await testApp({ plugins: { 'auth_test.ts': AUTH_PLUGIN }, config: { plugins: ['auth_test'], tls_before_auth: '0', loglevel: '7', auth_failure_delay: '0' } });
    try {
      const client = await ehlo(verbose);
      await client.command(`AUTH PLAIN ${b64('\0alice\0topsecret')}`);
      await client.command('AUTH LOGIN');
      await client.command(b64('alice'));
      await client.command(b64('topsecret'));
      const all = verbose.logs.join('\n');
      assert.ok(all.length > 0);
      assert.doesNotMatch(all, /topsecret|dG9wc2VjcmV0|AGFsaWNlAHRvcHNlY3JldA/);
    } finally {
      await verbose.cleanup();
    }
  });
});
