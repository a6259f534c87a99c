/**
 * SMTP smuggling over real TCP (CVE-2023-51764 class): the real daemon on loopback, raw bytes, and
 * the Maildir inspected afterwards. Only `<CRLF>.<CRLF>` ends a message: every other end-of-data
 * look-alike (`\n.\n`, `\n.\r\n`, `\r\n.\n`, `\r.\r`, `\r.\r\n`, `\r\n.\r`, NULs around the dot, ...)
 * is content, however TCP cuts the bytes, and a second envelope written after such a fake end is
 * never executed.
 *
 * With `bare_newline reject` (the default) a message holding a bare CR or LF is read to its real
 * end and refused with 550 5.5.2; nothing is stored and the session goes on. With `normalize` the
 * message is stored once, bare line ends made CRLF (LF in the Maildir), the would-be smuggled
 * commands part of its content.
 *
 * Every session ends with `NOOP` and `QUIT` pipelined after the final dot, and its WHOLE transcript
 * is compared: exactly one final reply per DATA, and no reply to any smuggled command.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { cleanupAll, makeRoot, startDaemon, type Daemon } from '../helpers/daemon.ts';
import { cut } from '../helpers/splits.ts';
import { RawSession, bodyOf, closeAllRaw, frame, maildirFiles, maildirState } from './support.ts';

after(async () => {
  closeAllRaw();
  await cleanupAll();
});

type Policy = 'reject' | 'normalize';
const POLICIES: readonly Policy[] = ['reject', 'normalize'];

interface Variant {
  readonly name: string;
  /** The fake end of data, sent between `before` and the payload. */
  readonly fake: string;
  /** How those bytes read in the Maildir file with `normalize` (LF line ends). */
  readonly stored: string;
}

const VARIANTS: readonly Variant[] = [
  { name: 'LF . LF', fake: '\n.\n', stored: '\n.\n' },
  { name: 'LF . CRLF', fake: '\n.\r\n', stored: '\n.\n' },
  // After a real CRLF the dot starts a line, and a line `.<LF>...` is a dot-stuffed line: the dot goes.
  { name: 'CRLF . LF', fake: '\r\n.\n', stored: '\n\n' },
  { name: 'CR . CR', fake: '\r.\r', stored: '\n.\n' },
  { name: 'CR . CRLF', fake: '\r.\r\n', stored: '\n.\n' },
  { name: 'CRLF . CR', fake: '\r\n.\r', stored: '\n\n' },
  { name: 'CRLF . LF CRLF', fake: '\r\n.\n\r\n', stored: '\n\n\n' },
  { name: 'LF LF . LF LF', fake: '\n\n.\n\n', stored: '\n\n.\n\n' },
  // No bare line end at all: accepted even with `reject`, and still not an end.
  { name: 'CRLF NUL . CRLF', fake: '\r\n\0.\r\n', stored: '\n\0.\n' },
  { name: 'CRLF . NUL CRLF', fake: '\r\n.\0\r\n', stored: '\n\0\n' },
  { name: 'CRLF NUL . NUL CRLF', fake: '\r\n\0.\0\r\n', stored: '\n\0.\0\n' },
  { name: 'LF NUL . NUL LF', fake: '\n\0.\0\n', stored: '\n\0.\0\n' },
  { name: 'CRLF SP . CRLF', fake: '\r\n .\r\n', stored: '\n .\n' },
  { name: 'CRLF . SP CRLF', fake: '\r\n. \r\n', stored: '\n \n' },
  { name: 'CRLF .. CRLF (a stuffed dot)', fake: '\r\n..\r\n', stored: '\n.\n' },
];

/** What follows the fake end: a plain line, or a whole second transaction (the smuggling attack). */
const PAYLOADS = {
  plain: 'after\r\n',
  smuggled:
    'MAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n' +
    'From: <smuggled@evil.example>\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n',
} as const;
type PayloadName = keyof typeof PAYLOADS;

const START = 'before';
const HEAD = (id: number): string => `Subject: case ${id}\r\n\r\n`;
const lf = (text: string): string => text.replace(/\r\n/g, '\n');

const daemons = new Map<Policy, { daemon: Daemon; maildir: string }>();
let nextId = 0;

before(async () => {
  await Promise.all(
    POLICIES.map(async (policy) => {
      const root = makeRoot({
        config: {
          // One Maildir per recipient (var/maildir/<local part>): each case looks only at its own,
          // so the cases can run side by side.
          plugins: ['relay', 'rcpt_ok', 'queue/maildir var/maildir %l'],
          rcpthosts: 'example.test',
          // `reject` is the default: no config file for it, so the default is what is tested.
          ...(policy === 'normalize' ? { bare_newline: 'normalize' } : {}),
          loglevel: '5',
        },
      });
      const daemon = await startDaemon(root);
      daemons.set(policy, { daemon, maildir: join(root, 'var', 'maildir') });
    }),
  );
});

interface Outcome {
  readonly codes: number[];
  readonly texts: string[];
  /** Files in new/ of this session's recipient. */
  readonly files: string[];
  readonly tmp: string[];
  readonly sender: string;
  readonly rcpt: string;
}

/**
 * One session: EHLO, MAIL, RCPT, DATA (each awaited), then `data` (everything after the 354, the
 * final dot included) in the given pieces, each a TCP segment of its own, `NOOP` and `QUIT` pipelined
 * after the dot in the last piece. Resolves once the server closed the connection.
 */
async function session(policy: Policy, pieces: (id: number) => readonly (string | Uint8Array)[]): Promise<Outcome & { id: number }> {
  const { daemon, maildir } = daemons.get(policy)!;
  const id = ++nextId;
  const local = `c${id}`;
  const sender = `s${id}@sender.example`;
  const rcpt = `${local}@example.test`;
  const s = await RawSession.open(daemon.port);
  try {
    await s.reply();
    await s.expect('EHLO client.example', 250);
    await s.expect(`MAIL FROM:<${sender}>`, 250);
    await s.expect(`RCPT TO:<${rcpt}>`, 250);
    await s.expect('DATA', 354);
    await s.sendSegments(pieces(id));
    await s.waitClosed();
  } finally {
    s.destroy();
  }
  const box = join(maildir, local);
  return {
    id,
    codes: s.replies.map((r) => r.code),
    texts: s.replies.map((r) => r.text),
    files: maildirFiles(box),
    tmp: maildirState(box).tmp,
    sender,
    rcpt,
  };
}

/**
 * The transcript is greeting, EHLO, MAIL, RCPT, 354, ONE final reply, NOOP, QUIT; with a 250 the
 * recipient's Maildir holds exactly one file, from the real envelope, whose body is `body`; with a
 * 550 it holds nothing.
 */
function assertOutcome(o: Outcome, final: 250 | 550, body: string): void {
  assert.deepEqual(o.codes, [220, 250, 250, 250, 354, final, 250, 221], `replies: ${JSON.stringify(o.texts)}`);
  if (final === 550) assert.match(o.texts[5]!, /^5\.5\.2 /);
  else assert.match(o.texts[5]!, /^2\.0\.0 Queued! /);
  assert.equal(o.texts[6], '2.0.0 OK', 'the NOOP after the dot is answered as a NOOP');
  assert.deepEqual(o.tmp, [], 'nothing left in tmp/');
  if (final === 550) {
    assert.deepEqual(o.files, [], 'nothing stored');
    return;
  }
  assert.equal(o.files.length, 1, 'exactly one message stored');
  const file = o.files[0]!;
  assert.ok(file.startsWith(`Return-Path: <${o.sender}>\nDelivered-To: ${o.rcpt}\n`), `the real envelope: ${JSON.stringify(file.slice(0, 120))}`);
  assert.equal(bodyOf(file), body);
}

test('the stored forms in the table are what the pure framer makes of them', () => {
  for (const v of VARIANTS) {
    const wire = Buffer.from(HEAD(0) + START + v.fake + PAYLOADS.plain + '.\r\n', 'latin1');
    const framed = frame(wire, 'normalize');
    assert.equal(framed.end, wire.length, `${v.name}: only the real terminator ends the message`);
    assert.equal(bodyOf(framed.stored), START + v.stored + 'after\n', v.name);
  }
});

for (const policy of POLICIES) {
  describe(`bare_newline ${policy}`, () => {
    describe('every fake end of data, with and without a smuggled transaction behind it', { concurrency: 6 }, () => {
      for (const v of VARIANTS) {
        for (const payloadName of Object.keys(PAYLOADS) as PayloadName[]) {
          const payload = PAYLOADS[payloadName];
          for (const split of ['one write', 'byte by byte around the dots'] as const) {
            test(`${v.name}, ${payloadName}, ${split}`, async () => {
              const bare = frame(Buffer.from(HEAD(0) + START + v.fake + payload + '.\r\n', 'latin1'), 'reject').bare > 0;
              const final = policy === 'reject' && bare ? 550 : 250;
              const o = await session(policy, (id) =>
                split === 'one write'
                  ? [HEAD(id) + START + v.fake + payload + '.\r\nNOOP\r\nQUIT\r\n']
                  : [HEAD(id) + START, ...v.fake, payload.slice(0, -2), ...'\r\n.\r\n', 'NOOP\r\nQUIT\r\n'],
              );
              assertOutcome(o, final, START + (policy === 'normalize' || !bare ? v.stored : '') + lf(payload));
            });
          }
        }
      }
    });

    test('the real end of data, split at every point', async () => {
      const end = '\r\n.\r\n';
      const cuts = [...Array.from({ length: end.length - 1 }, (_, i) => [end.slice(0, i + 1), end.slice(i + 1)]), [...end]];
      for (const pieces of cuts) {
        const o = await session(policy, (id) => [HEAD(id) + 'body', ...pieces, 'NOOP\r\nQUIT\r\n']);
        assertOutcome(o, 250, 'body\n');
      }
    });

    test('afterwards: nothing was delivered to the smuggled recipient, nothing came from the smuggled sender', () => {
      const { daemon, maildir } = daemons.get(policy)!;
      assert.ok(daemon.running);
      assert.doesNotMatch(daemon.stderr, /session failed|uncaught|unhandled|TypeError|RangeError/i);
      assert.equal(existsSync(join(maildir, 'victim')), false, 'no Maildir for victim@example.test');
      for (const box of readdirSync(maildir)) {
        for (const file of maildirFiles(join(maildir, box))) assert.doesNotMatch(file, /^Return-Path: <smuggled@/);
      }
    });
  });
}

describe('property: over TCP, the daemon does what the pure framer predicts', () => {
  test('random bodies with bare CR, LF, dots and NULs, cut into random TCP segments', async () => {
    // Pieces rather than single bytes, so that the interesting shapes come up often.
    const piece = fc.constantFrom('a', 'b', ' ', '.', '..', '\r', '\n', '\r\n', '\0', '\n.\n', '\r.\r', '\r\n.\n', '\n.\r\n', '\r\n.\r', '\r\nMAIL FROM:<smuggled@evil.example>\r\n');
    const body = fc.array(piece, { maxLength: 24 }).map((parts) => parts.join(''));
    const offsets = fc.array(fc.nat({ max: 10_000 }), { maxLength: 6 });
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...POLICIES), body, offsets, async (policy, text, cuts) => {
        const wireOf = (id: number): Buffer => Buffer.from(HEAD(id) + text + '\r\n.\r\n', 'latin1');
        // Bodies that hold a real `<CRLF>.<CRLF>` of their own end early by design: not this property.
        const predicted = frame(wireOf(0), policy);
        fc.pre(predicted.end === wireOf(0).length);
        const final = policy === 'reject' && predicted.bare > 0 ? 550 : 250;
        const o = await session(policy, (id) => {
          const pieces = cut(wireOf(id), cuts);
          return [...pieces.slice(0, -1), Buffer.concat([pieces[pieces.length - 1]!, Buffer.from('NOOP\r\nQUIT\r\n')])];
        });
        assertOutcome(o, final, bodyOf(predicted.stored));
      }),
      { numRuns: 40, seed: 0x5e6d },
    );
  });
});
