/**
 * No open relay, over real TCP with the shipped-style config (relay, rcpt_ok with rcpthosts
 * `example.test`, queue/maildir) and a client on 127.0.0.1 that is not a relay client: every
 * routing trick that would make us (or an MTA behind us) forward mail to another host is refused;
 * mail for our own domains, and `postmaster` without a domain, is accepted. A relay client may send
 * anywhere.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cleanupAll, makeRoot, startDaemon, type Daemon } from '../helpers/daemon.ts';
import { RawSession, closeAllRaw, maildirFiles, maildirState } from './support.ts';

after(async () => {
  closeAllRaw();
  await cleanupAll();
});

interface Server {
  readonly daemon: Daemon;
  readonly maildir: string;
}

async function server(config: Record<string, string | readonly string[]>): Promise<Server> {
  const root = makeRoot({
    config: { plugins: ['relay', 'rcpt_ok', 'queue/maildir var/maildir'], rcpthosts: 'example.test', loglevel: '5', ...config },
  });
  return { daemon: await startDaemon(root), maildir: join(root, 'var', 'maildir') };
}

let plain: Server;
let subdomains: Server;
let relay: Server;

before(async () => {
  [plain, subdomains, relay] = await Promise.all([
    server({}),
    server({ rcpthosts: ['example.test', '.example.test'] }),
    server({ relayclients: '127.0.0.1' }),
  ]);
});

/** A session up to MAIL FROM; resolves with the RCPT reply for each recipient path (as written). */
async function rcptReplies(s: Server, paths: readonly string[]): Promise<{ code: number; text: string }[]> {
  const c = await RawSession.open(s.daemon.port);
  try {
    assert.equal((await c.reply()).code, 220);
    await c.expect('EHLO client.example', 250);
    await c.expect('MAIL FROM:<someone@sender.example>', 250);
    const out = [];
    for (const path of paths) out.push(await c.command(`RCPT TO:${path}`));
    await c.expect('QUIT', 221);
    return out;
  } finally {
    c.destroy();
  }
}

const REFUSED: readonly { readonly what: string; readonly path: string; readonly code: 550 | 501 }[] = [
  { what: 'the percent hack', path: '<u%other.example@example.test>', code: 550 },
  { what: 'the percent hack, twice', path: '<u%other.example%example.test@example.test>', code: 550 },
  { what: 'a bang path', path: '<other.example!u@example.test>', code: 550 },
  { what: 'a quoted @', path: '<"u@other.example"@example.test>', code: 550 },
  { what: 'a quoted percent hack', path: '<"u%other.example"@example.test>', code: 550 },
  { what: 'a source route (the core refuses it)', path: '<@a.example:u@example.test>', code: 501 },
  { what: 'a source route through us', path: '<@example.test:u@other.example>', code: 501 },
  { what: 'two @ (the core refuses it)', path: '<a@b.example@example.test>', code: 501 },
  { what: 'an IP literal that is not ours', path: '<u@[192.0.2.99]>', code: 550 },
  { what: 'an IPv6 literal that is not ours', path: '<u@[IPv6:2001:db8::99]>', code: 550 },
  { what: 'another domain', path: '<u@other.example>', code: 550 },
  { what: 'a domain that merely ends like ours', path: '<u@notexample.test>', code: 550 },
  { what: 'a subdomain, without .example.test in rcpthosts', path: '<u@sub.example.test>', code: 550 },
  { what: 'a bare local part other than postmaster (the core refuses it)', path: '<someone>', code: 501 },
];

describe('a client that is not a relay client', () => {
  for (const { what, path, code } of REFUSED) {
    test(`refused: ${what} ${path}`, async () => {
      const [r] = await rcptReplies(plain, [path]);
      assert.equal(r!.code, code, r!.text);
      if (code === 550) assert.equal(r!.text, '5.7.1 Relaying denied');
    });
  }

  test('accepted: our domain (any case), postmaster without a domain, our own IP literal', async () => {
    const replies = await rcptReplies(plain, ['<u@example.test>', '<U@Example.TEST>', '<postmaster>', '<u@[127.0.0.1]>']);
    assert.deepEqual(
      replies.map((r) => r.code),
      [250, 250, 250, 250],
      JSON.stringify(replies),
    );
  });

  test('a transaction mixing all of them delivers only to the accepted recipients', async () => {
    const before = maildirState(plain.maildir).new.length;
    const c = await RawSession.open(plain.daemon.port);
    assert.equal((await c.reply()).code, 220);
    await c.expect('EHLO client.example', 250);
    await c.expect('MAIL FROM:<someone@sender.example>', 250);
    for (const { path, code } of REFUSED) await c.expect(`RCPT TO:${path}`, code);
    await c.expect('RCPT TO:<u@example.test>', 250);
    await c.expect('RCPT TO:<postmaster>', 250);
    await c.expect('DATA', 354);
    await c.write('Subject: mixed\r\n\r\nbody\r\n.\r\n');
    assert.equal((await c.reply()).code, 250);
    await c.expect('QUIT', 221);
    const files = maildirFiles(plain.maildir).slice(before);
    assert.equal(files.length, 1);
    const deliveredTo = [...files[0]!.matchAll(/^Delivered-To: (.*)$/gm)].map((m) => m[1]);
    assert.equal(deliveredTo.length, 2, files[0]);
    assert.equal(deliveredTo[0], 'u@example.test');
    assert.match(deliveredTo[1]!, /^postmaster@/);
  });
});

describe('rcpthosts with .example.test', () => {
  test('accepts subdomains, and still refuses the routing forms there', async () => {
    const replies = await rcptReplies(subdomains, [
      '<u@sub.example.test>',
      '<u@deep.sub.example.test>',
      '<u@example.test>',
      '<u%other.example@sub.example.test>',
      '<other.example!u@sub.example.test>',
      '<"u@other.example"@sub.example.test>',
      '<u@other.example>',
    ]);
    assert.deepEqual(
      replies.map((r) => r.code),
      [250, 250, 250, 550, 550, 550, 550],
      JSON.stringify(replies),
    );
  });
});

describe('a relay client (relayclients 127.0.0.1)', () => {
  test('may send to other domains, the routing forms included', async () => {
    const replies = await rcptReplies(relay, ['<u@other.example>', '<u%other.example@example.test>', '<u@[192.0.2.99]>', '<u@example.test>']);
    assert.deepEqual(
      replies.map((r) => r.code),
      [250, 250, 250, 250],
      JSON.stringify(replies),
    );
  });

  test('and its message for other.example is queued', async () => {
    const c = await RawSession.open(relay.daemon.port);
    assert.equal((await c.reply()).code, 220);
    await c.expect('EHLO client.example', 250);
    await c.expect('MAIL FROM:<me@example.test>', 250);
    await c.expect('RCPT TO:<u@other.example>', 250);
    await c.expect('DATA', 354);
    await c.write('Subject: relayed\r\n\r\nbody\r\n.\r\n');
    assert.equal((await c.reply()).code, 250);
    await c.expect('QUIT', 221);
    const files = maildirFiles(relay.maildir);
    assert.equal(files.length, 1);
    assert.match(files[0]!, /^Return-Path: <me@example\.test>\nDelivered-To: u@other\.example\n/);
  });
});
