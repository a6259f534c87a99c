/** src/mail/replies.ts and src/mail/envelope.ts: reply parsing at every split, reply texts, MAIL FROM. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Address } from '../../src/protocol/address.ts';
import type { Transaction } from '../../src/session/transaction.ts';
import {
  ReplyParser,
  clipReplyText,
  describeReply,
  enhancedCode,
  parseExtensions,
  recipientRefusalText,
  refusedRecipients,
  replyRefusal,
  stripEnhancedCode,
  type ServerReply,
} from '../../src/mail/replies.ts';
import { isInternational, mailFromCommand, messageSize, rcptCommands } from '../../src/mail/envelope.ts';

function parseAll(parser: ReplyParser, chunks: readonly Buffer[]): { replies: ServerReply[]; error?: string } {
  const replies: ServerReply[] = [];
  for (const chunk of chunks) {
    const out = parser.push(chunk);
    replies.push(...out.replies);
    if (out.error !== undefined) return { replies, error: out.error };
  }
  return { replies };
}

function address(path: string): Address {
  const a = Address.parse(path);
  if (!(a instanceof Address)) throw new Error(a.error);
  return a;
}

describe('ReplyParser', () => {
  const wire = Buffer.from('220 mx.example ESMTP\r\n250-mx.example\r\n250-SIZE 1000\n250 PIPELINING\r\n354\r\n550-5.1.1 no\r\n550 5.1.1 such user\r\n', 'latin1');
  const expected: ServerReply[] = [
    { code: 220, lines: ['mx.example ESMTP'] },
    { code: 250, lines: ['mx.example', 'SIZE 1000', 'PIPELINING'] },
    { code: 354, lines: [''] },
    { code: 550, lines: ['5.1.1 no', '5.1.1 such user'] },
  ];

  it('gives the same replies wherever the bytes are cut', () => {
    for (let i = 0; i <= wire.length; i++) {
      for (let j = i; j <= wire.length; j++) {
        const out = parseAll(new ReplyParser(), [wire.subarray(0, i), wire.subarray(i, j), wire.subarray(j)]);
        assert.deepEqual(out, { replies: expected }, `split at ${i}, ${j}`);
      }
    }
    assert.deepEqual(parseAll(new ReplyParser(), [...wire].map((b) => Buffer.from([b]))), { replies: expected });
  });

  it('keeps UTF-8 text whole across a cut inside a character', () => {
    const bytes = Buffer.from('250 grüße\r\n', 'utf8');
    for (let i = 0; i <= bytes.length; i++) {
      assert.deepEqual(parseAll(new ReplyParser(), [bytes.subarray(0, i), bytes.subarray(i)]).replies, [{ code: 250, lines: ['grüße'] }]);
    }
  });

  it('fails on a line that is not a reply, naming the protocol, after the replies before it', () => {
    const out = parseAll(new ReplyParser('LMTP'), [Buffer.from('250 ok\r\nhello there\r\n250 later\r\n')]);
    assert.deepEqual(out, { replies: [{ code: 250, lines: ['ok'] }], error: 'not an LMTP reply: hello there' });
    const parser = new ReplyParser();
    parser.push(Buffer.from('xx\r\n'));
    assert.deepEqual(parser.push(Buffer.from('250 ok\r\n')), { replies: [] }, 'stays failed');
  });

  it('limits the line length and the lines of one reply', () => {
    assert.equal(new ReplyParser('SMTP', 10).push(Buffer.from('250 0123456789')).error, 'reply line too long');
    assert.match(new ReplyParser('SMTP', 10).push(Buffer.from('250 01234567\r\n')).error ?? '', /^not an SMTP reply/);
    const many = Buffer.from('250-a\r\n'.repeat(4) + '250 b\r\n');
    assert.equal(new ReplyParser('SMTP', 100, 3).push(many).error, 'reply with too many lines');
    assert.equal(new ReplyParser('SMTP', 100, 5).push(many).replies.length, 1);
  });

  it('dropPending forgets an unfinished line', () => {
    const parser = new ReplyParser();
    parser.push(Buffer.from('250 inj'));
    parser.dropPending();
    assert.deepEqual(parser.push(Buffer.from('220 fresh\r\n')).replies, [{ code: 220, lines: ['fresh'] }]);
  });
});

describe('reply texts', () => {
  it('enhancedCode takes a code of the reply class only', () => {
    assert.equal(enhancedCode({ code: 550, lines: ['5.1.1 no such user'] }), '5.1.1');
    assert.equal(enhancedCode({ code: 450, lines: ['5.1.1 mismatch'] }), undefined);
    assert.equal(enhancedCode({ code: 250, lines: ['2.0.0'] }), '2.0.0');
    assert.equal(enhancedCode({ code: 550, lines: ['5.1.1x'] }), undefined);
    assert.equal(enhancedCode({ code: 550, lines: [] }), undefined);
  });

  it('stripEnhancedCode, clipReplyText, describeReply', () => {
    assert.equal(stripEnhancedCode('4.2.2  mailbox full '), 'mailbox full');
    assert.equal(stripEnhancedCode('no code'), 'no code');
    assert.equal(clipReplyText('grüße\tx'), 'gr??e?x');
    assert.equal(clipReplyText('x'.repeat(401)), 'x'.repeat(397) + '...');
    assert.equal(clipReplyText('x'.repeat(400)), 'x'.repeat(400));
    assert.equal(describeReply({ code: 250, lines: ['a', 'b'] }), '250 a b');
    assert.equal(describeReply({ code: 250, lines: ['y'.repeat(400)] }).length, 300);
  });

  it('parseExtensions: keywords upper-cased with their parameters, the first line skipped', () => {
    const caps = parseExtensions({ code: 250, lines: ['mx.example greets you', 'size 1000', 'PIPELINING', 'AUTH=LOGIN PLAIN', '8BITMIME ', 'bad_keyword x'] });
    assert.deepEqual([...caps], [
      ['SIZE', '1000'],
      ['PIPELINING', ''],
      ['AUTH', 'LOGIN PLAIN'],
      ['8BITMIME', ''],
    ]);
  });

  it('refusedRecipients and recipientRefusalText', () => {
    const rcpts = ['<a@x.example>', '<b@x.example>', '<c@x.example>'].map(address);
    const replies: ServerReply[] = [
      { code: 250, lines: ['ok'] },
      { code: 550, lines: ['5.1.1 <b@x.example>: no such user'] },
      { code: 452, lines: ['4.2.2 mailbox full'] },
    ];
    const refused = refusedRecipients(rcpts, replies);
    assert.deepEqual(
      refused.map((r) => r.rcpt.address),
      ['b@x.example', 'c@x.example'],
    );
    assert.equal(recipientRefusalText(refused, '5.1.0'), '5.1.1 <b@x.example>: no such user; <c@x.example>: mailbox full');
    assert.equal(recipientRefusalText(refused.slice(1), '4.1.0', 'delivered to 1 of 3: '), '4.2.2 delivered to 1 of 3: <c@x.example>: mailbox full');
    assert.equal(recipientRefusalText([{ rcpt: rcpts[0]!, reply: { code: 550, lines: ['gone'] } }], '5.1.0'), '5.1.0 <a@x.example>: gone');
    const seven = Array.from({ length: 7 }, (_v, i) => ({ rcpt: address(`<u${i}@x.example>`), reply: { code: 550, lines: ['no'] } }));
    assert.match(recipientRefusalText(seven, '5.1.0'), /<u4@x\.example>: no; and 2 more$/);
  });

  it('replyRefusal: 5xx permanent, else temporary, with the fallback text', () => {
    const permanent = replyRefusal({ code: 554, lines: ['5.7.1 content refused'] }, 'message refused');
    assert.deepEqual([permanent.permanent, permanent.text], [true, '5.7.1 content refused']);
    const temporary = replyRefusal({ code: 451, lines: [''] }, 'DATA refused by the next hop');
    assert.deepEqual([temporary.permanent, temporary.text], [false, '4.0.0 DATA refused by the next hop']);
    const odd = replyRefusal({ code: 354, lines: ['go on'] }, 'x');
    assert.deepEqual([odd.permanent, odd.text], [false, '4.0.0 go on']);
  });
});

describe('envelope', () => {
  const tx = (params: Record<string, unknown>, sender: string | undefined, recipients: string[]): Transaction =>
    ({
      sender: sender === undefined ? undefined : sender === '<>' ? Address.nullSender() : address(sender),
      recipients: recipients.map(address),
      mailParams: params,
      header: { toBuffer: () => Buffer.from('Subject: x\r\n') },
      bodyLength: 10,
    }) as unknown as Transaction;
  const caps = (...keys: string[]): Map<string, string> => new Map(keys.map((k) => [k, '']));

  it('messageSize counts the header block, the blank line and the body', () => {
    assert.equal(messageSize(tx({}, '<s@x.example>', ['<r@y.example>'])), 12 + 2 + 10);
  });

  it('MAIL FROM with the parameters the server understands', () => {
    const t = tx({ body: '8bitmime', smtputf8: true }, '<s@x.example>', ['<r@y.example>']);
    assert.equal(mailFromCommand(t, t.recipients, caps()), 'MAIL FROM:<s@x.example>');
    assert.equal(mailFromCommand(t, t.recipients, caps('SIZE', '8BITMIME', 'SMTPUTF8')), 'MAIL FROM:<s@x.example> SIZE=24 BODY=8BITMIME SMTPUTF8');
    const nul = tx({ body: '7BIT' }, '<>', ['<r@y.example>']);
    assert.equal(mailFromCommand(nul, nul.recipients, caps('8BITMIME')), 'MAIL FROM:<>');
    assert.deepEqual(rcptCommands(t.recipients), ['RCPT TO:<r@y.example>']);
  });

  it('undefined when an address needs SMTPUTF8 the server lacks; only the recipients given count', () => {
    const t = tx({}, '<s@x.example>', ['<r@y.example>', '<jörg@y.example>']);
    assert.ok(isInternational(t));
    assert.equal(mailFromCommand(t, t.recipients, caps('SIZE')), undefined);
    assert.equal(mailFromCommand(t, t.recipients, caps('SMTPUTF8')), 'MAIL FROM:<s@x.example> SMTPUTF8');
    assert.equal(mailFromCommand(t, t.recipients.slice(0, 1), caps()), 'MAIL FROM:<s@x.example>');
  });
});
