/** Every hook in hooks.md fires, at its moment, with its arguments. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { HOOK_NAMES } from '../../src/hooks/hook-map.ts';
import { testApp, tempDir, type TestApp } from '../helpers/test-app.ts';

/** Records every call as a JSON line: hook, arguments (Addresses as strings), a look at the transaction. */
const RECORDER = `import { Plugin, HOOK_NAMES, OK, DENY, DECLINED, Address } from 'qpsmtpd';
import type { PluginHost, Transaction } from 'qpsmtpd';
import { appendFileSync } from 'node:fs';
export default class Recorder extends Plugin {
  file = '';
  register(_qp: PluginHost, file: string) {
    this.file = file;
    for (const hook of HOOK_NAMES) {
      this.registerHook(hook, function (this: Recorder, tx: Transaction, ...args: unknown[]) {
        if (hook === 'logging' || hook === 'config') {
          if (hook === 'config' && args[0] === 'recorder_probe') appendFileSync(this.file, JSON.stringify({ hook, args }) + '\\n');
          if (hook === 'logging' && String(args[3]).includes('recorder says hi')) appendFileSync(this.file, JSON.stringify({ hook, args: args.slice(0, 4) }) + '\\n');
          return DECLINED;
        }
        const shown = args.map((a) => (a instanceof Address ? String(a) : typeof a === 'function' ? 'function' : a));
        const look = { sender: tx.sender ? String(tx.sender) : null, rcpts: tx.recipients.length, received: tx.header.count('Received'), subject: tx.header.get('Subject') ?? null };
        appendFileSync(this.file, JSON.stringify({ hook, args: shown, tx: look }) + '\\n');
        if (hook === 'rcpt') {
          (args[0] as Address).config('recorder_probe');
          this.log(6, 'recorder says hi');
          return (args[0] as Address).user === 'nobody' ? [DENY, 'no such user'] : OK;
        }
        if (hook === 'queue' || hook === 'auth-plain') return OK;
        if (hook === 'received_line') return DECLINED;
        return DECLINED;
      });
    }
  }
}
`;

interface Event {
  hook: string;
  args: unknown[];
  tx?: { sender: string | null; rcpts: number; received: number; subject: string | null };
}

let t: TestApp;
let log: string;
const dir = tempDir('qpsmtpd-fire-');

before(async () => {
  log = join(dir, 'events.jsonl');
  t = await testApp({
    plugins: { 'recorder.ts': RECORDER },
    config: { plugins: [`recorder ${log}`], tls_before_auth: '0', loglevel: '7' },
  });
});
after(async () => {
  await t.cleanup();
});

async function events(): Promise<Event[]> {
  const { readFileSync } = await import('node:fs');
  return readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Event);
}

test('a full session fires every hook in order with its arguments', async () => {
  const { client, done } = t.connect({ remoteIp: '203.0.113.9', remotePort: 5555 });
  assert.equal((await client.reply()).code, 220);
  assert.equal((await client.command('EHLO client.example')).code, 250);
  const plain = Buffer.from('\0alice\0secret').toString('base64');
  assert.equal((await client.command(`AUTH PLAIN ${plain}`)).code, 235);
  assert.equal((await client.command('MAIL FROM:<a@example.org> SIZE=100 BODY=8BITMIME')).code, 250);
  assert.equal((await client.command('RCPT TO:<b@example.net> NOTIFY=NEVER')).code, 250);
  assert.equal((await client.command('RCPT TO:<nobody@example.net>')).code, 550);
  assert.equal((await client.command('DATA')).code, 354);
  client.send('Subject: fire\r\nFrom: a@example.org\r\n\r\nbody\r\n.\r\n');
  assert.equal((await client.reply()).code, 250);
  assert.equal((await client.command('VRFY postmaster')).code, 252);
  assert.equal((await client.command('NOOP')).code, 250);
  assert.equal((await client.command('HELP me please')).code, 214);
  assert.equal((await client.command('XYZZY a b')).code, 500);
  assert.equal((await client.command('RSET')).code, 250);
  assert.equal((await client.command('QUIT')).code, 221);
  await done;

  const all = await events();
  const main = all.filter((e) => !['deny', 'ok', 'logging', 'config', 'user_config', 'reset_transaction'].includes(e.hook)).map((e) => e.hook);
  assert.deepEqual(main, [
    'pre-connection',
    'connect',
    'ehlo_parse',
    'ehlo',
    'auth_parse',
    'auth-plain',
    'mail_parse',
    'mail_pre',
    'mail',
    'rcpt_parse',
    'rcpt_pre',
    'rcpt',
    'rcpt_parse',
    'rcpt_pre',
    'rcpt',
    'data',
    'data_headers_end',
    'data_post_headers',
    'received_line',
    'data_post',
    'queue_pre',
    'queue',
    'queue_post',
    'vrfy',
    'noop',
    'help',
    'unrecognized_command',
    'quit',
    'disconnect',
    'post-connection',
  ]);

  const first = (hook: string): Event => all.find((e) => e.hook === hook)!;
  assert.deepEqual(first('pre-connection').args, [
    { remoteIp: '203.0.113.9', remotePort: 5555, localIp: '127.0.0.1', localPort: 25, connectionsFromIp: 1 },
  ]);
  assert.deepEqual(first('ehlo').args, ['client.example']);
  assert.deepEqual(first('auth_parse').args, [`PLAIN ${plain}`]);
  assert.deepEqual(first('auth-plain').args, ['PLAIN', 'alice', 'secret', null, null]);
  assert.deepEqual(first('mail_parse').args, ['FROM:<a@example.org> SIZE=100 BODY=8BITMIME']);
  assert.deepEqual(first('mail_pre').args, ['<a@example.org>', { size: '100', body: '8BITMIME' }]);
  assert.deepEqual(first('mail').args, ['<a@example.org>', { size: '100', body: '8BITMIME' }]);
  assert.deepEqual(first('rcpt').args, ['<b@example.net>', { notify: 'NEVER' }]);
  assert.equal(first('rcpt').tx!.sender, '<a@example.org>');
  // The header is there from data_headers_end on; Received is added after data_post_headers.
  assert.equal(first('data_headers_end').tx!.subject, 'fire');
  assert.equal(first('data_post_headers').tx!.received, 0);
  assert.deepEqual(first('received_line').args, ['ESMTPA', '(smtp-auth username alice, mechanism PLAIN)', '']);
  assert.equal(first('data_post').tx!.received, 1);
  assert.equal(first('queue').tx!.rcpts, 1);
  assert.equal(first('queue_post').tx!.sender, '<a@example.org>', 'queue_post still sees the transaction');
  assert.deepEqual(first('vrfy').args, ['postmaster']);
  assert.deepEqual(first('help').args, ['me please']);
  assert.deepEqual(first('unrecognized_command').args, ['xyzzy', 'a b']);

  // Observers: ok after a declining or accepting plugin, deny after a denial, with name, code, message.
  const deny = all.find((e) => e.hook === 'deny');
  assert.deepEqual(deny?.args, ['recorder', 901, 'no such user']);
  assert.ok(all.some((e) => e.hook === 'ok' && e.args[1] === 909));
  // reset_transaction: on MAIL, after the queue, on RSET.
  assert.ok(all.filter((e) => e.hook === 'reset_transaction').length >= 3);
  // config and user_config from address.config(), logging from this.log().
  assert.ok(all.some((e) => e.hook === 'user_config' && e.args[1] === 'recorder_probe' && e.args[0] === '<b@example.net>'));
  assert.ok(all.some((e) => e.hook === 'config' && e.args[0] === 'recorder_probe'));
  assert.ok(all.some((e) => e.hook === 'logging' && e.args[0] === 6 && e.args[1] === 'rcpt' && e.args[2] === 'recorder'));
});

test('HELO fires helo_parse and helo', async () => {
  const { readFileSync, writeFileSync } = await import('node:fs');
  writeFileSync(log, '');
  const { client, done } = await t.greeted();
  assert.equal((await client.command('HELO old.example')).code, 250);
  await client.command('QUIT');
  await done;
  const hooks = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as Event).hook)
    .filter((h) => !['ok', 'deny', 'reset_transaction'].includes(h));
  const i = hooks.indexOf('helo_parse');
  assert.ok(i >= 0 && hooks[i + 1] === 'helo', hooks.join(' '));
});

test('every hook of hooks.md is known to the runner', () => {
  for (const hook of ['logging', 'config', 'user_config', 'pre-connection', 'connect', 'helo_parse', 'ehlo_parse', 'helo', 'ehlo', 'auth_parse', 'auth', 'auth-plain', 'auth-login', 'auth-cram-md5', 'mail_parse', 'rcpt_parse', 'mail_pre', 'rcpt_pre', 'mail', 'rcpt', 'data', 'data_headers_end', 'data_post_headers', 'received_line', 'data_post', 'queue_pre', 'queue', 'queue_post', 'vrfy', 'noop', 'help', 'quit', 'unrecognized_command', 'reset_transaction', 'disconnect', 'post-connection', 'deny', 'ok']) {
    assert.ok((HOOK_NAMES as readonly string[]).includes(hook), hook);
  }
});
