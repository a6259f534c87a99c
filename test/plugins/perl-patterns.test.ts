/**
 * The Perl-pattern helpers the sender and recipient plugins share (src/plugins/policy.ts):
 * operators' regular expressions from qpsmtpd control files, compiled as JavaScript.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isListPattern, perlRegExp, returnCodeByName } from '../../src/plugins/policy.ts';
import { DECLINED, DENY, DENYSOFT, DENY_DISCONNECT, DENYSOFT_DISCONNECT, DONE, OK } from '../../src/hooks/codes.ts';

function compile(source: string, flags = ''): RegExp {
  const result = perlRegExp(source, flags);
  if ('error' in result) assert.fail(`${source}: ${result.error}`);
  return result.regexp;
}

function refused(source: string): string {
  const result = perlRegExp(source);
  assert.ok('error' in result, `${source} should be refused, compiled to ${'regexp' in result ? String(result.regexp) : ''}`);
  return result.error;
}

describe('isListPattern (qpsmtpd: an entry holding / ^ $ * + ! % ? \\ is a pattern)', () => {
  it('tells patterns from addresses and @domain entries', () => {
    for (const p of ['^admin', 'spam$', '.*@x', 'a+b', '!', '%', 'a?', '\\d', 'a/b']) assert.ok(isListPattern(p), p);
    for (const a of ['bad@example.com', '@example.com', 'user.name@example.com', 'a-b@x.example']) assert.ok(!isListPattern(a), a);
  });
});

describe('perlRegExp', () => {
  it('takes the syntax Perl and JavaScript share as it is', () => {
    const re = compile('^return.*@.*\\.pidplate\\.biz$');
    assert.ok(re.test('return-1@mx.pidplate.biz'));
    assert.ok(!re.test('return-1@mx.pidplate.biz.example'));
    assert.ok(compile('^(abuse|postmaster)\\@').test('abuse@x'), 'escaped @ (common in Perl) is the character');
    assert.ok(compile('^user\\d+\\@doma\\.in$').test('user12@doma.in'));
    assert.ok(compile('a/b').test('xa/by'), 'a slash needs no escape');
    assert.ok(compile('^[^@]+@(?:[a-z]+\\.){2,}biz$').test('x@a.b.biz'));
  });

  it('translates Perl forms JavaScript spells otherwise', () => {
    assert.ok(compile('\\Aspam').test('spammer@x'));
    assert.ok(!compile('\\Aspam').test('nospam@x'));
    assert.ok(compile('\\.biz\\z').test('a@b.biz'));
    assert.ok(!compile('\\.biz\\z').test('a@b.biz\n'));
    assert.ok(compile('\\.biz\\Z').test('a@b.biz\n'));
    assert.ok(compile('\\Qa.b+c\\E@').test('a.b+c@x'));
    assert.ok(!compile('\\Qa.b+c\\E@').test('aXbbc@x'));
    assert.ok(compile('^[[:digit:]]{4}@').test('1234@x'));
    assert.ok(compile('^[[:alpha:]_]+@').test('ab_c@x'));
    assert.ok(compile('[]x]').test(']'), '] first in a class is literal');
    assert.ok(compile('a\\hb').test('a b'));
    assert.ok(compile('\\x{41}\\x41\\x9').test('AA\t'));
    assert.ok(compile('\\x{1F600}').test('\u{1F600}'));
    assert.ok(compile('(?#a comment)^x').test('xy'));
    assert.ok(compile('(?P<u>[a-z]+)@\\k{u}\\.').test('ab@ab.example'));
  });

  it('takes leading modifiers as flags, and the caller\'s flags', () => {
    assert.ok(compile('(?i)^ADMIN').test('admin@x'));
    assert.ok(!compile('^ADMIN').test('admin@x'));
    assert.ok(compile('^ADMIN', 'i').test('admin@x'));
    assert.ok(!compile('^ADMIN', 'gi').global, 'never global: test() stays stateless');
  });

  it('refuses what JavaScript cannot do the same, with a reason', () => {
    assert.match(refused('^(unclosed'), /Unterminated group/);
    assert.match(refused('a++'), /Nothing to repeat/);
    refused('(?>atomic)');
    assert.match(refused('\\Kfoo'), /\\K has no JavaScript equivalent/);
    assert.match(refused('\\p{L}'), /\\p has no JavaScript equivalent/);
    assert.match(refused('(?x) a b '), /x modifier/);
    assert.match(refused('a(?i)b'), /only supported at the start/);
    assert.match(refused('a(?i:b)'), /only supported at the start/);
    assert.match(refused('[[:^alpha:]]'), /negated POSIX/);
    assert.match(refused('[[:nosuch:]]'), /unknown POSIX/);
    assert.match(refused('abc\\'), /trailing backslash/);
    assert.match(refused('[abc'), /unterminated/);
  });
});

describe('returnCodeByName', () => {
  it('knows qpsmtpd\'s names, upper case only', () => {
    assert.equal(returnCodeByName('OK'), OK);
    assert.equal(returnCodeByName('DENY'), DENY);
    assert.equal(returnCodeByName('DENYSOFT'), DENYSOFT);
    assert.equal(returnCodeByName('DENYHARD'), DENY_DISCONNECT);
    assert.equal(returnCodeByName('DENY_DISCONNECT'), DENY_DISCONNECT);
    assert.equal(returnCodeByName('DENYSOFT_DISCONNECT'), DENYSOFT_DISCONNECT);
    assert.equal(returnCodeByName('DECLINED'), DECLINED);
    assert.equal(returnCodeByName('DONE'), DONE);
    assert.equal(returnCodeByName('deny'), undefined);
    assert.equal(returnCodeByName('901'), undefined);
  });
});
