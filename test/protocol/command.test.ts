/**
 * Command lines into verb, path and parameters (RFC 5321 §4.1, RFC 1869), HELO and AUTH arguments.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  parseAuthArgument,
  parseHelloArgument,
  parseParams,
  parsePathArgument,
  splitCommand,
} from '../../src/protocol/command.ts';

/** Params as a plain object, for deepEqual (the parser uses a null-prototype record). */
function path(rest: string, keyword: 'FROM' | 'TO') {
  const r = parsePathArgument(rest, keyword);
  if ('error' in r) return r;
  return { path: r.path, params: { ...r.params } };
}

describe('splitCommand', () => {
  test('verb upper-cased, rest after the blanks', () => {
    assert.deepEqual(splitCommand('mail FROM:<a@b> SIZE=10'), { verb: 'MAIL', rest: 'FROM:<a@b> SIZE=10' });
    assert.deepEqual(splitCommand('QUIT'), { verb: 'QUIT', rest: '' });
    assert.deepEqual(splitCommand('ehlo \t  client.example  \t '), { verb: 'EHLO', rest: 'client.example' });
    assert.deepEqual(splitCommand('NOOP   '), { verb: 'NOOP', rest: '' });
    assert.deepEqual(splitCommand('Rcpt\tTO:<x@y>'), { verb: 'RCPT', rest: 'TO:<x@y>' });
    assert.deepEqual(splitCommand('X-FOO_1 a  b'), { verb: 'X-FOO_1', rest: 'a  b' });
  });

  test('null when there is no word-like verb', () => {
    for (const line of ['', '   ', '\t', ' NOOP', '1NOOP', '-', 'NO\x00OP', 'MAIL:FROM', 'ÉHLO x', 'A'.repeat(21)]) {
      assert.equal(splitCommand(line), null, JSON.stringify(line));
    }
    assert.notEqual(splitCommand('A'.repeat(20)), null);
  });

  test('a long run of blanks costs linear time', () => {
    const line = 'NOOP' + ' '.repeat(200_000) + 'x';
    const t = performance.now();
    assert.deepEqual(splitCommand(line), { verb: 'NOOP', rest: 'x' });
    assert.deepEqual(splitCommand('NOOP' + ' \t'.repeat(100_000)), { verb: 'NOOP', rest: '' });
    // The old trailing-blank regex took seconds here.
    assert.ok(performance.now() - t < 500, `${performance.now() - t} ms`);
  });
});

describe('parsePathArgument', () => {
  test('MAIL FROM with and without blanks after the colon, keyword in any case', () => {
    for (const rest of ['FROM:<a@example.org>', 'FROM: <a@example.org>', 'from:\t <a@example.org>', 'From:<a@example.org>  ']) {
      assert.deepEqual(path(rest, 'FROM'), { path: '<a@example.org>', params: {} }, rest);
    }
  });

  test('RCPT TO', () => {
    assert.deepEqual(path('TO:<b@example.net>', 'TO'), { path: '<b@example.net>', params: {} });
    assert.deepEqual(path('to: <b@example.net> NOTIFY=NEVER', 'TO'), { path: '<b@example.net>', params: { notify: 'NEVER' } });
  });

  test('the wrong keyword or none is a syntax error', () => {
    for (const [rest, kw] of [
      ['TO:<a@b>', 'FROM'],
      ['FROM:<a@b>', 'TO'],
      ['FROM <a@b>', 'FROM'],
      ['FROM :<a@b>', 'FROM'],
      ['<a@b>', 'FROM'],
      ['', 'TO'],
      ['FRO', 'FROM'],
    ] as const) {
      const r = parsePathArgument(rest, kw);
      assert.ok('error' in r, rest);
      assert.match(r.error, new RegExp(`expected ${kw}:`));
    }
  });

  test('null sender and a bare postmaster', () => {
    assert.deepEqual(path('FROM:<>', 'FROM'), { path: '<>', params: {} });
    assert.deepEqual(path('FROM:<> BODY=8BITMIME', 'FROM'), { path: '<>', params: { body: '8BITMIME' } });
    assert.deepEqual(path('TO:<Postmaster>', 'TO'), { path: '<Postmaster>', params: {} });
  });

  test('parameters: keys lower-cased, values as sent, valueless ones true', () => {
    const r = path('FROM:<a@b>  SIZE=1000\tBODY=8BITMIME SMTPUTF8 Ret=HDRS ENVID=QQ+2B1 AUTH=<>', 'FROM');
    assert.deepEqual(r, {
      path: '<a@b>',
      params: { size: '1000', body: '8BITMIME', smtputf8: true, ret: 'HDRS', envid: 'QQ+2B1', auth: '<>' },
    });
  });

  test('a missing path', () => {
    for (const rest of ['FROM:', 'FROM:   ', 'FROM:\t']) {
      assert.deepEqual(parsePathArgument(rest, 'FROM'), { error: 'Syntax error: missing address' }, rest);
    }
  });

  test('an unterminated path', () => {
    for (const rest of ['FROM:<a@b', 'FROM:<a@b SIZE=1', 'FROM:<"a>b@c', 'FROM:<"a\\">b@c', 'FROM:<"a\\']) {
      assert.deepEqual(parsePathArgument(rest, 'FROM'), { error: 'Syntax error: unterminated address' }, rest);
    }
  });

  test('junk right after the closing bracket', () => {
    for (const rest of ['FROM:<a@b>SIZE=1', 'FROM:<a@b>>', 'FROM:<a@b>x', 'TO:<>,<c@d>']) {
      const kw = rest.startsWith('TO') ? 'TO' : 'FROM';
      assert.deepEqual(parsePathArgument(rest, kw), { error: 'Syntax error: junk after address' }, rest);
    }
  });

  test('quoted local parts may hold > and blanks', () => {
    assert.deepEqual(path('FROM:<"john doe"@example.org> SIZE=5', 'FROM'), { path: '<"john doe"@example.org>', params: { size: '5' } });
    assert.deepEqual(path('TO:<"a>b"@example.org>', 'TO'), { path: '<"a>b"@example.org>', params: {} });
    assert.deepEqual(path('TO:<"a\\">  b"@example.org> NOTIFY=NEVER', 'TO'), {
      path: '<"a\\">  b"@example.org>',
      params: { notify: 'NEVER' },
    });
    assert.deepEqual(path('TO:<"a\\\\"@example.org>', 'TO'), { path: '<"a\\\\"@example.org>', params: {} });
  });

  test('paths without angle brackets are passed on as written, for the *_pre hooks', () => {
    assert.deepEqual(path('FROM:a@example.org', 'FROM'), { path: 'a@example.org', params: {} });
    assert.deepEqual(path('FROM: a@example.org SIZE=10', 'FROM'), { path: 'a@example.org', params: { size: '10' } });
    assert.deepEqual(path('TO:b@example.net\tNOTIFY=NEVER', 'TO'), { path: 'b@example.net', params: { notify: 'NEVER' } });
    assert.deepEqual(path('TO:a@b>', 'TO'), { path: 'a@b>', params: {} });
  });

  test('a bad parameter after the path is reported', () => {
    assert.deepEqual(parsePathArgument('FROM:<a@b> SIZE=', 'FROM'), { error: 'Syntax error in value of parameter "SIZE"' });
    assert.deepEqual(parsePathArgument('FROM:<a@b> -X', 'FROM'), { error: 'Syntax error in parameter "-X"' });
    assert.deepEqual(parsePathArgument('FROM:a@b =x', 'FROM'), { error: 'Syntax error in parameter ""' });
  });

  test('UTF-8 in the path and in parameter values', () => {
    assert.deepEqual(path('FROM:<jöhn@exämple.org> SMTPUTF8', 'FROM'), { path: '<jöhn@exämple.org>', params: { smtputf8: true } });
    assert.deepEqual(path('TO:<a@b> X-NOTE=ünïcode', 'TO'), { path: '<a@b>', params: { 'x-note': 'ünïcode' } });
  });
});

describe('parseParams', () => {
  test('empty and blank text give no parameters', () => {
    for (const text of ['', ' ', ' \t  ']) assert.deepEqual({ ...(parseParams(text) as { params: object }).params }, {});
  });

  test('the record has no prototype: keys like constructor are plain data', () => {
    const r = parseParams(' constructor=1 toString');
    assert.ok('params' in r);
    assert.equal(Object.getPrototypeOf(r.params), null);
    assert.equal(r.params['constructor'], '1');
    assert.equal(r.params['tostring'], true);
  });

  test('a later duplicate wins', () => {
    const r = parseParams(' SIZE=1 size=2');
    assert.ok('params' in r);
    assert.deepEqual({ ...r.params }, { size: '2' });
  });

  test('keyword syntax: ALPHA/DIGIT first, then ALPHA/DIGIT/-', () => {
    for (const ok of ['A', '8BIT', 'X-A-1', 'a-']) assert.ok('params' in parseParams(` ${ok}`), ok);
    for (const bad of ['-A', 'A_B', 'A.B', 'Ä', 'A+', '=1', 'A:B=1']) {
      const r = parseParams(` ${bad}`);
      assert.ok('error' in r, bad);
      assert.match(r.error, /^Syntax error in parameter "/);
    }
  });

  test('value syntax: printable, no "=", no blanks or controls', () => {
    for (const ok of ['1', '<>', 'a+2Bb', 'x;y', '~!@#$%^&*()', 'ü']) {
      const r = parseParams(` K=${ok}`);
      assert.ok('params' in r, ok);
      assert.equal(r.params['k'], ok);
    }
    for (const bad of ['', 'a=b', 'a\x00', 'a\x7f', 'a\x1b', '\x01']) {
      const r = parseParams(` K=${bad}`);
      assert.deepEqual(r, { error: 'Syntax error in value of parameter "K"' }, JSON.stringify(bad));
    }
  });

  test('the first error wins and nothing is returned half-parsed', () => {
    assert.deepEqual(parseParams(' A=1 B= C=3'), { error: 'Syntax error in value of parameter "B"' });
  });
});

describe('parseHelloArgument', () => {
  test('the first word is the host', () => {
    assert.deepEqual(parseHelloArgument('client.example'), { host: 'client.example' });
    assert.deepEqual(parseHelloArgument('[192.0.2.1] extra words'), { host: '[192.0.2.1]' });
    assert.deepEqual(parseHelloArgument('client.example\tfoo'), { host: 'client.example' });
    assert.deepEqual(parseHelloArgument('exämple.org'), { host: 'exämple.org' });
  });

  test('leading blanks do not hide the host', () => {
    assert.deepEqual(parseHelloArgument('  client.example '), { host: 'client.example' });
  });

  test('no argument is an error', () => {
    for (const rest of ['', ' ', '\t ']) {
      assert.deepEqual(parseHelloArgument(rest), { error: 'requires domain/address - see RFC-5321 4.1.1.1' });
    }
  });
});

describe('parseAuthArgument', () => {
  test('mechanism upper-cased, optional initial response kept as sent', () => {
    assert.deepEqual(parseAuthArgument('plain'), { mechanism: 'PLAIN' });
    assert.deepEqual(parseAuthArgument('PLAIN AGFsaWNlAHNlY3JldA=='), { mechanism: 'PLAIN', initialResponse: 'AGFsaWNlAHNlY3JldA==' });
    assert.deepEqual(parseAuthArgument('login  \t dXNlcg=='), { mechanism: 'LOGIN', initialResponse: 'dXNlcg==' });
    assert.deepEqual(parseAuthArgument('PLAIN ='), { mechanism: 'PLAIN', initialResponse: '=' });
    assert.deepEqual(parseAuthArgument('CRAM-MD5'), { mechanism: 'CRAM-MD5' });
    assert.deepEqual(parseAuthArgument('SCRAM-SHA-256-PLUS'), { mechanism: 'SCRAM-SHA-256-PLUS' });
    assert.deepEqual(parseAuthArgument('  xoauth2 '), { mechanism: 'XOAUTH2' });
  });

  test('the initial response is not a property when absent', () => {
    const r = parseAuthArgument('PLAIN');
    assert.ok(!('initialResponse' in r));
  });

  test('errors: no mechanism, a bad one, too many words', () => {
    const error = { error: 'Syntax error: AUTH mechanism [initial-response]' };
    for (const rest of ['', '  ', 'PL@IN', 'A'.repeat(21), 'PLAIN a b', 'PLAIN.X', 'ÄUTH']) {
      assert.deepEqual(parseAuthArgument(rest), error, rest);
    }
    assert.deepEqual(parseAuthArgument('A'.repeat(20)), { mechanism: 'A'.repeat(20) });
  });
});

describe('command properties', () => {
  const atom = fc.stringMatching(/^[a-z0-9]{1,8}$/);
  const key = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9-]{0,8}$/);
  const value = fc.stringMatching(/^[!-<>-~]{1,10}$/);
  const blanks = fc.stringMatching(/^[ \t]{1,3}$/);

  test('any path and well-formed parameters come back apart', () => {
    fc.assert(
      fc.property(
        atom,
        atom,
        fc.array(fc.tuple(key, fc.option(value, { nil: undefined }), blanks), { maxLength: 5 }),
        fc.stringMatching(/^[ \t]{0,3}$/),
        (user, domain, params, afterColon) => {
          const text = params.map(([k, v, sp]) => (v === undefined ? `${sp}${k}` : `${sp}${k}=${v}`)).join('');
          const r = parsePathArgument(`FROM:${afterColon}<${user}@${domain}>${text}`, 'FROM');
          assert.ok('path' in r, JSON.stringify(r));
          assert.equal(r.path, `<${user}@${domain}>`);
          const expected: Record<string, string | true> = {};
          for (const [k, v] of params) expected[k.toLowerCase()] = v ?? true;
          assert.deepEqual({ ...r.params }, expected);
        },
      ),
      { numRuns: 300, seed: 42 },
    );
  });

  const lineChar = fc.oneof(
    fc.constantFrom('M', 'a', 'T', 'O', ':', ' ', '\t', '<', '>', '@', '"', '\\', '=', '\x00', 'é', '\u{1F600}'),
    fc.integer({ min: 0, max: 0x17f }).map((c) => String.fromCharCode(c)),
  );

  test('no exception on any line, and splitCommand never invents a verb', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60, unit: lineChar }), (line) => {
        const c = splitCommand(line);
        if (c !== null) {
          assert.match(c.verb, /^[A-Z][A-Z0-9_-]*$/);
          assert.equal(line.trimStart().toUpperCase().startsWith(c.verb), true);
          for (const kw of ['FROM', 'TO'] as const) parsePathArgument(c.rest, kw);
          parseHelloArgument(c.rest);
          parseAuthArgument(c.rest);
        }
        parseParams(line);
      }),
      { numRuns: 500, seed: 1 },
    );
  });
});
