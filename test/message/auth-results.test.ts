import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { addAuthResult, authResultValue, formatAuthResult, parseAuthResult } from '../../src/message/auth-results.ts';

describe('formatAuthResult', () => {
  it('writes method=result, the comment, the reason and the properties in order', () => {
    assert.equal(formatAuthResult({ method: 'iprev', result: 'pass', properties: { 'smtp.remote-ip': '192.0.2.1' }, comment: 'mx.example.net' }), 'iprev=pass (mx.example.net) smtp.remote-ip=192.0.2.1');
    assert.equal(
      formatAuthResult({ method: 'SPF', result: 'Fail', reason: 'not permitted', properties: { 'smtp.mailfrom': 'a.b+c@example.org', 'smtp.helo': 'mx.example.org' } }),
      'spf=fail reason="not permitted" smtp.mailfrom=a.b+c@example.org smtp.helo=mx.example.org',
    );
  });

  it('quotes what is no token, address or domain (IPv6, spaces, quotes); parentheses in comments are escaped', () => {
    assert.equal(authResultValue('2001:db8::1'), '"2001:db8::1"');
    assert.equal(authResultValue('say "hi"'), '"say \\"hi\\""');
    assert.equal(authResultValue(''), '""');
    assert.equal(authResultValue('example.com'), 'example.com');
    assert.equal(formatAuthResult({ method: 'iprev', result: 'fail', comment: 'a (b) c' }), 'iprev=fail (a \\(b\\) c)');
  });
});

describe('parseAuthResult', () => {
  it('reads method, result, reason and properties; comments and spaces around = are ignored', () => {
    assert.deepEqual(parseAuthResult('dkim=pass (2048-bit key) reason="good sig" header.d=example.com header.s = sel1'), {
      method: 'dkim',
      result: 'pass',
      reason: 'good sig',
      properties: { 'header.d': 'example.com', 'header.s': 'sel1' },
    });
    assert.deepEqual(parseAuthResult('iprev=pass smtp.remote-ip="2001:db8::1"')?.properties, { 'smtp.remote-ip': '2001:db8::1' });
    assert.equal(parseAuthResult('not an entry'), undefined);
  });

  it('round-trips what formatAuthResult writes', () => {
    const entry = { method: 'spf', result: 'pass', reason: 'a "quoted" word', properties: { 'smtp.mailfrom': 'x@example.org', 'smtp.remote-ip': '2001:db8::5' } };
    assert.deepEqual(parseAuthResult(formatAuthResult(entry)), entry);
  });
});

describe('addAuthResult', () => {
  it('replaces an entry of the same method about the same things, keeps the others', () => {
    const list: string[] = [];
    addAuthResult(list, { method: 'iprev', result: 'temperror', properties: { 'smtp.remote-ip': '192.0.2.1' } });
    addAuthResult(list, { method: 'dkim', result: 'pass', properties: { 'header.d': 'a.example' } });
    addAuthResult(list, 'dkim=fail header.d=b.example');
    addAuthResult(list, { method: 'iprev', result: 'pass', properties: { 'smtp.remote-ip': '192.0.2.1' } });
    assert.deepEqual(list, ['dkim=pass header.d=a.example', 'dkim=fail header.d=b.example', 'iprev=pass smtp.remote-ip=192.0.2.1']);
    addAuthResult(list, 'DKIM=neutral (again) header.d=A.example');
    assert.deepEqual(list, ['dkim=fail header.d=b.example', 'iprev=pass smtp.remote-ip=192.0.2.1', 'DKIM=neutral (again) header.d=A.example']);
  });

  it('returns the text it added; text it cannot read is added as it is', () => {
    const list = ['whatever'];
    assert.equal(addAuthResult(list, { method: 'auth', result: 'pass', properties: { 'smtp.auth': 'joe' } }), 'auth=pass smtp.auth=joe');
    addAuthResult(list, 'whatever');
    assert.deepEqual(list, ['whatever', 'auth=pass smtp.auth=joe', 'whatever']);
  });
});
