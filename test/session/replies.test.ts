/**
 * Every return code at every hook that answers the client gives the reply hooks.md lists, and
 * closes the connection exactly when it says so. The expectations are written out here from
 * hooks.md, independently of src/session/responders.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync, rmSync } from 'node:fs';
import { testApp, tempDir, type TestApp } from '../helpers/test-app.ts';
import { TEST_PLUGINS } from '../helpers/plugin-sources.ts';
import type { FakeConn, ParsedReply } from '../helpers/fake-conn.ts';

type CodeName = 'OK' | 'DENY' | 'DENYSOFT' | 'DENY_DISCONNECT' | 'DENYSOFT_DISCONNECT' | 'DECLINED' | 'DONE';
const CODES: CodeName[] = ['OK', 'DENY', 'DENYSOFT', 'DENY_DISCONNECT', 'DENYSOFT_DISCONNECT', 'DECLINED', 'DONE'];

/** [reply code, closes]; 'plugin' = the plugin's own reply (DONE); 'next' = the command went ahead. */
type Expect = readonly [number | 'plugin', boolean];

const EXPECTED: Record<string, Partial<Record<CodeName, Expect>> & { else: Expect }> = {
  'pre-connection': { DENY: [550, true], DENY_DISCONNECT: [550, true], DENYSOFT: [451, true], DENYSOFT_DISCONNECT: [451, true], else: [220, false] },
  connect: { DENY: [550, true], DENY_DISCONNECT: [550, true], DENYSOFT: [450, true], DENYSOFT_DISCONNECT: [450, true], DONE: ['plugin', false], else: [220, false] },
  helo: { DENY: [550, false], DENYSOFT: [450, false], DENY_DISCONNECT: [550, true], DENYSOFT_DISCONNECT: [421, true], DONE: ['plugin', false], else: [250, false] },
  ehlo: { DENY: [550, false], DENYSOFT: [450, false], DENY_DISCONNECT: [550, true], DENYSOFT_DISCONNECT: [421, true], DONE: ['plugin', false], else: [250, false] },
  mail: { DENY: [550, false], DENYSOFT: [450, false], DENY_DISCONNECT: [550, true], DENYSOFT_DISCONNECT: [421, true], DONE: ['plugin', false], else: [250, false] },
  rcpt: { OK: [250, false], DENY: [550, false], DENYSOFT: [450, false], DENY_DISCONNECT: [550, true], DENYSOFT_DISCONNECT: [421, true], DONE: ['plugin', false], else: [450, false] },
  data: { DENY: [554, false], DENY_DISCONNECT: [554, true], DENYSOFT: [451, false], DENYSOFT_DISCONNECT: [451, true], DONE: ['plugin', false], else: [354, false] },
  data_headers_end: { DENY_DISCONNECT: [554, true], DENYSOFT_DISCONNECT: [421, true], else: [250, false] },
  data_post: { DENY: [552, false], DENYSOFT: [452, false], DENY_DISCONNECT: [552, true], DENYSOFT_DISCONNECT: [452, true], DONE: ['plugin', false], else: [250, false] },
  queue_pre: { DONE: ['plugin', false], else: [250, false] },
  queue: { OK: [250, false], DENY: [552, false], DENYSOFT: [452, false], DONE: ['plugin', false], else: [451, false] },
  vrfy: { OK: [250, false], DENY: [554, false], DONE: ['plugin', false], else: [252, false] },
  noop: { DENY: [500, false], DENY_DISCONNECT: [500, true], DONE: ['plugin', false], else: [250, false] },
  help: { DENY: [500, false], DONE: ['plugin', false], else: [214, false] },
  quit: { DONE: ['plugin', true], else: [221, true] },
  unrecognized_command: { DENY: [500, false], DENY_DISCONNECT: [521, true], DONE: ['plugin', false], else: [500, false] },
};

const MESSAGE = 'From: a@example.org\r\nSubject: test\r\n\r\nbody\r\n.\r\n';

/** Drive a session to the command that runs `hook`; return the reply to that command. */
async function trigger(t: TestApp, hook: string): Promise<{ reply: ParsedReply; client: FakeConn }> {
  if (hook === 'pre-connection' || hook === 'connect') {
    const { client } = t.connect();
    return { reply: await client.reply(), client };
  }
  const { client } = await t.greeted();
  if (hook === 'helo') return { reply: await client.command('HELO client.example'), client };
  const ehlo = await client.command('EHLO client.example');
  if (hook === 'ehlo') return { reply: ehlo, client };
  const simple: Record<string, string> = { vrfy: 'VRFY postmaster', noop: 'NOOP', help: 'HELP', quit: 'QUIT', unrecognized_command: 'XYZZY now' };
  if (simple[hook]) return { reply: await client.command(simple[hook]!), client };
  const mail = await client.command('MAIL FROM:<a@example.org>');
  if (hook === 'mail') return { reply: mail, client };
  const rcpt = await client.command('RCPT TO:<b@example.net>');
  if (hook === 'rcpt') return { reply: rcpt, client };
  const data = await client.command('DATA');
  if (hook === 'data') return { reply: data, client };
  assert.equal(data.code, 354);
  client.send(MESSAGE);
  return { reply: await client.reply(), client };
}

describe('the reply table', () => {
  const spool = tempDir('qpsmtpd-replies-');
  after(() => rmSync(spool, { recursive: true, force: true }));

  for (const [hook, expected] of Object.entries(EXPECTED)) {
    for (const code of CODES) {
      const [want, closes] = expected[code] ?? expected.else;
      test(`${hook} ${code} -> ${want}${closes ? ' and close' : ''}`, async () => {
        const t = await testApp({
          plugins: TEST_PLUGINS,
          // The hook under test decides alone: no helper plugin after it on the same hook.
          config: {
            plugins: [
              `answer ${hook} ${code}`,
              ...(hook === 'rcpt' ? [] : ['accept_all']),
              ...(hook === 'queue' ? [] : [`queue_capture ${join(spool, hook, code)}`]),
            ],
          },
        });
        try {
          const { reply, client } = await trigger(t, hook);
          if (want === 'plugin') {
            assert.ok(reply.code === 299 || (hook === 'connect' && reply.text === 'custom greeting'), `expected the plugin's own reply, got ${reply.raw}`);
          } else {
            assert.equal(reply.code, want, `${hook} ${code}: ${reply.raw}`);
          }
          if (want !== 'plugin' && want !== 220 && want !== 354 && !(hook === 'ehlo' || hook === 'helo') ) {
            assert.match(reply.lines[0]!, /^[245]\.\d+\.\d+ /, `enhanced status code missing: ${reply.raw}`);
          }
          if (closes) {
            await client.waitClosed();
          } else {
            if (hook === 'data' && want === 354) client.send(MESSAGE);
            if (hook === 'data' && want === 354) await client.reply();
            const noop = await client.command(hook === 'noop' ? 'RSET' : 'NOOP');
            assert.equal(noop.code, 250, `session should go on after ${hook} ${code}: ${noop.raw}`);
          }
        } finally {
          t.cleanup();
        }
      });
    }
  }
});

describe('a plugin that fails', () => {
  let t: TestApp;
  before(async () => {
    t = await testApp({ plugins: TEST_PLUGINS, config: { plugins: ['throws rcpt', 'accept_all'] } });
  });
  after(() => t.cleanup());

  test('a throwing rcpt plugin gives 451 4.3.0, not a pass to the next plugin, and the session goes on', async () => {
    const { client } = await t.greeted();
    await client.command('EHLO x');
    await client.command('MAIL FROM:<a@example.org>');
    const reply = await client.command('RCPT TO:<b@example.net>');
    assert.equal(reply.code, 451);
    assert.match(reply.text, /^4\.3\.0 /);
    assert.doesNotMatch(reply.text, /boom/, 'the exception text must not reach the client');
    assert.equal((await client.command('NOOP')).code, 250);
    assert.ok(t.logs.some((l) => /FATAL PLUGIN ERROR \[throws\].*boom on rcpt/.test(l)), t.logs.join('\n'));
  });
});

for (const how of ['reject', 'string']) {
  test(`a plugin that ${how === 'reject' ? 'rejects its promise' : 'returns a non-code'} on mail gives 451`, async () => {
    const t = await testApp({ plugins: TEST_PLUGINS, config: { plugins: [`throws mail ${how}`] } });
    try {
      const { client } = await t.greeted();
      await client.command('EHLO x');
      const reply = await client.command('MAIL FROM:<a@example.org>');
      assert.equal(reply.code, 451);
      assert.ok(t.logs.some((l) => /LOG|FATAL PLUGIN ERROR \[throws\]/.test(l)));
    } finally {
      t.cleanup();
    }
  });
}

test('on a hook whose result is ignored a failing plugin is skipped and the next one runs', async () => {
  const dir = tempDir();
  const t = await testApp({
    plugins: {
      ...TEST_PLUGINS,
      'mark.ts': `import { Plugin } from 'qpsmtpd';
import { writeFileSync } from 'node:fs';
export default class Mark extends Plugin { hook_disconnect() { writeFileSync(${JSON.stringify(join(dir, 'ran'))}, 'yes'); } }`,
    },
    config: { plugins: ['throws disconnect', 'mark'] },
  });
  try {
    const { client, done } = await t.greeted();
    await client.command('QUIT');
    await done;
    assert.equal(readFileSync(join(dir, 'ran'), 'utf8'), 'yes');
  } finally {
    t.cleanup();
  }
});

test('a plugin over its time limit gives DENYSOFT "plugin timeout" and is told to stop', async () => {
  const t = await testApp({ plugins: TEST_PLUGINS, config: { plugins: ['slow rcpt 5000', 'accept_all'], plugin_timeout: ['30', 'slow 0.2'] } });
  try {
    const before = ((globalThis as Record<string, unknown>)['__slowAborted'] as number | undefined) ?? 0;
    const { client } = await t.greeted();
    await client.command('EHLO x');
    await client.command('MAIL FROM:<a@example.org>');
    const started = Date.now();
    const reply = await client.command('RCPT TO:<b@example.net>');
    assert.equal(reply.code, 450);
    assert.match(reply.text, /plugin timeout/);
    assert.ok(Date.now() - started < 3000);
    assert.equal((globalThis as Record<string, unknown>)['__slowAborted'], before + 1, 'the AbortSignal fired');
  } finally {
    t.cleanup();
  }
});

test('a parser from a *_parse hook that throws or returns nonsense gives 451 for that command; the session goes on', async () => {
  const parsers = `import { Plugin, OK } from 'qpsmtpd';
export default class BadParsers extends Plugin {
  hook_mail_parse() { return [OK, () => { throw new Error('parser boom'); }]; }
  hook_rcpt_parse() { return [OK, () => 42]; }
  hook_helo_parse() { return [OK, () => { throw new Error('helo parser boom'); }]; }
}
`;
  const t = await testApp({ plugins: { ...TEST_PLUGINS, 'bad_parsers.ts': parsers }, config: { plugins: ['bad_parsers', 'accept_all'] } });
  try {
    const { client } = await t.greeted();
    assert.equal((await client.command('HELO x')).code, 451);
    assert.equal((await client.command('EHLO x')).code, 250);
    assert.equal((await client.command('MAIL FROM:<a@example.org>')).code, 451);
    assert.equal((await client.command('NOOP')).code, 250);
    assert.ok(t.logs.some((l) => /parser from the mail_parse hook failed/.test(l)));
  } finally {
    await t.cleanup();
  }
});
