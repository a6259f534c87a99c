import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { authResultValue, authservIdOf, claimsAuthservId, formatAuthResult, ownAuthservId } from '../../src/message/auth-results.ts';

describe('Authentication-Results', () => {
  test('formatAuthResult: method=result, comment, reason, properties in order, empty ones left out', () => {
    assert.equal(
      formatAuthResult({ method: 'SPF', result: 'Pass', comment: 'mx: ok (really)', properties: { 'smtp.mailfrom': 'a@example.com', 'smtp.helo': undefined } }),
      'spf=pass (mx: ok \\(really\\)) smtp.mailfrom=a@example.com',
    );
    assert.equal(
      formatAuthResult({ method: 'dkim', result: 'fail', reason: 'bad sig', properties: { 'header.d': 'example.com', 'header.b': 'ab/+CD==' } }),
      'dkim=fail reason="bad sig" header.d=example.com header.b="ab/+CD=="',
    );
    assert.equal(formatAuthResult({ method: 'dmarc', result: 'none' }), 'dmarc=none');
    assert.throws(() => formatAuthResult({ method: 'sp f', result: 'pass' }));
    assert.throws(() => formatAuthResult({ method: 'spf', result: 'pass', properties: { 'smtp mailfrom': 'x' } }));
  });

  test('values: tokens bare, everything else quoted with escapes; no line ends get through', () => {
    assert.equal(authResultValue('example.com'), 'example.com');
    assert.equal(authResultValue('a b'), '"a b"');
    assert.equal(authResultValue('say "hi"\\'), '"say \\"hi\\"\\\\"');
    assert.equal(authResultValue('x\r\nInjected: 1'), '"x Injected: 1"');
    assert.equal(formatAuthResult({ method: 'spf', result: 'pass', comment: 'a\r\nX-Evil: 1' }), 'spf=pass (a X-Evil: 1)');
  });

  test('authservIdOf reads past comments and quotes; claimsAuthservId compares case-insensitively', () => {
    assert.equal(authservIdOf('mx.example.com; spf=pass'), 'mx.example.com');
    assert.equal(authservIdOf('  mx.example.com 1; none'), 'mx.example.com');
    assert.equal(authservIdOf('(forged (nested)) "MX.Example.COM"; dkim=pass'), 'MX.Example.COM');
    assert.equal(authservIdOf('mx.example.com;'), 'mx.example.com');
    assert.equal(authservIdOf('; spf=pass'), undefined);
    assert.equal(authservIdOf(''), undefined);
    assert.ok(claimsAuthservId('(x) mx.EXAMPLE.com; dkim=pass', 'mx.example.com'));
    assert.ok(!claimsAuthservId('mx.example.com.evil; dkim=pass', 'mx.example.com'));
  });

  test('ownAuthservId: config me-auth-results, else me', () => {
    assert.equal(ownAuthservId({ me: 'mx.a', config: () => undefined }), 'mx.a');
    assert.equal(ownAuthservId({ me: 'mx.a', config: (n) => (n === 'me-auth-results' ? 'auth.a' : undefined) }), 'auth.a');
  });
});
