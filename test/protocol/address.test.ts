/**
 * Envelope paths (RFC 5321 §4.1.2, RFC 6531) and the Address value.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Address, isIPv6, isNonAscii, parsePath } from '../../src/protocol/address.ts';

/** Parse and insist on success. */
function parse(path: string): Address {
  const a = Address.parse(path);
  assert.ok(a instanceof Address, `${path}: ${JSON.stringify(a)}`);
  return a;
}

/** Parse and insist on failure; return the reason. */
function refuse(path: string): string {
  const a = Address.parse(path);
  assert.ok(!(a instanceof Address), `${path} was accepted as ${String(a)}`);
  assert.equal(typeof a.error, 'string');
  return a.error;
}

const parts = (a: Address) => ({ user: a.user, host: a.host });

describe('Address.parse: plain addresses', () => {
  test('user and host, as written', () => {
    const a = parse('<john.smith@Example.ORG>');
    assert.deepEqual(parts(a), { user: 'john.smith', host: 'Example.ORG' });
    assert.equal(a.address, 'john.smith@Example.ORG');
    assert.equal(String(a), '<john.smith@Example.ORG>');
    assert.equal(`${a}`, '<john.smith@Example.ORG>');
    assert.equal(a.isNull, false);
    assert.equal(a.isInternational, false);
  });

  test('every atext special is a local-part character', () => {
    const user = "!#$%&'*+-/=?^_`{|}~09AZaz";
    const a = parse(`<${user}@example.org>`);
    assert.equal(a.user, user);
    assert.equal(String(a), `<${user}@example.org>`);
  });

  test('empty atoms are tolerated but re-quoted on output', () => {
    for (const user of ['a..b', '.a', 'a.', '.']) {
      const a = parse(`<${user}@example.org>`);
      assert.equal(a.user, user);
      assert.equal(String(a), `<"${user}"@example.org>`);
      assert.deepEqual(parts(parse(String(a))), parts(a));
    }
  });

  test('parsePath gives the parts or the reason', () => {
    assert.deepEqual(parsePath('<a@b>'), { user: 'a', host: 'b' });
    assert.deepEqual(parsePath('a@b'), { error: 'address must be in angle brackets' });
  });
});

describe('Address.parse: quoted local parts', () => {
  test('"john doe"@x is user `john doe`, and toString quotes it again', () => {
    const a = parse('<"john doe"@example.org>');
    assert.equal(a.user, 'john doe');
    assert.equal(a.address, 'john doe@example.org');
    assert.equal(String(a), '<"john doe"@example.org>');
  });

  test('escapes are removed on input and written back on output', () => {
    const cases: [string, string, string][] = [
      ['<"a\\"b"@x>', 'a"b', '<"a\\"b"@x>'],
      ['<"a\\\\b"@x>', 'a\\b', '<"a\\\\b"@x>'],
      ['<"\\a\\b\\c"@x>', 'abc', '<abc@x>'],
      ['<"\\ "@x>', ' ', '<" "@x>'],
      ['<"abc"@x>', 'abc', '<abc@x>'],
      ['<"a@b"@c>', 'a@b', '<"a@b"@c>'],
      ['<"a>b"@c>', 'a>b', '<"a>b"@c>'],
      ['<"a,b:c"@c>', 'a,b:c', '<"a,b:c"@c>'],
      ['<""@x>', '', '<""@x>'],
      ['<"Postmaster"@x>', 'Postmaster', '<Postmaster@x>'],
    ];
    for (const [path, user, out] of cases) {
      const a = parse(path);
      assert.equal(a.user, user, path);
      assert.equal(a.host, path.slice(path.lastIndexOf('@') + 1, -1), path);
      assert.equal(String(a), out, path);
      assert.deepEqual(parts(parse(out)), parts(a), out);
    }
  });

  test('an empty quoted local part is not the null sender', () => {
    const a = parse('<""@example.org>');
    assert.equal(a.isNull, false);
  });

  test('bad quoted local parts are refused', () => {
    for (const path of ['<"a@x>', '<"a"b@x>', '<"a"@b@c>', '<"a\x01"@x>', '<"a\x7f"@x>', '<"a\\\x01"@x>', '<"a\\"@x>', '<"a\tb"@x>', '<"a">', '<"">']) {
      refuse(path);
    }
  });
});

describe('Address.parse: null sender and postmaster', () => {
  test('<> is the null sender', () => {
    const a = parse('<>');
    assert.deepEqual(parts(a), { user: '', host: '' });
    assert.equal(a.isNull, true);
    assert.equal(a.address, '');
    assert.equal(String(a), '<>');
    assert.ok(Address.nullSender().equals(a));
    assert.equal(String(Address.nullSender()), '<>');
    assert.equal(Address.nullSender().isNull, true);
  });

  test('a bare <postmaster>, any case, has no host', () => {
    for (const pm of ['postmaster', 'Postmaster', 'POSTMASTER']) {
      const a = parse(`<${pm}>`);
      assert.deepEqual(parts(a), { user: pm, host: '' });
      assert.equal(a.isNull, false);
      assert.equal(a.address, pm);
      assert.equal(String(a), `<${pm}>`);
    }
  });

  test('other bare names and postmaster look-alikes are refused', () => {
    assert.equal(refuse('<root>'), 'address has no domain');
    refuse('<postmaster@>');
    refuse('<postmasters>');
    refuse('< postmaster>');
    refuse('<"postmaster">');
  });
});

describe('Address.parse: address literals', () => {
  test('IPv4 and IPv6 literals are accepted and kept as written', () => {
    for (const host of ['[192.0.2.1]', '[0.0.0.0]', '[255.255.255.255]', '[IPv6:2001:db8::1]', '[ipv6:::1]', '[IPv6:::ffff:192.0.2.1]', '[IPv6:1:2:3:4:5:6:7:8]']) {
      const a = parse(`<user@${host}>`);
      assert.equal(a.host, host);
      assert.equal(String(a), `<user@${host}>`);
    }
  });

  test('malformed literals are refused', () => {
    for (const host of [
      '[1.2.3.999]',
      '[256.1.1.1]',
      '[1.2.3]',
      '[1.2.3.4.5]',
      '[01.2.3.4]',
      '[1.2.3.4 ]',
      '[]',
      '[IPv6:zz::1]',
      '[IPv6:]',
      '[IPv6:1.2.3.4]',
      '[IPv6:1::2::3]',
      '[IPv6:1:2:3:4:5:6:7:8:9]',
      '[2001:db8::1]',
      '[IPv4:1.2.3.4]',
      '[x-tag:content]',
      '[192.0.2.1',
      '192.0.2.1]',
      '[[192.0.2.1]]',
    ]) {
      refuse(`<user@${host}>`);
    }
  });
});

describe('Address.parse: internationalized addresses (SMTPUTF8)', () => {
  test('UTF-8 local part and domain', () => {
    const cases: [string, string, string][] = [
      ['<jöhn@exämple.org>', 'jöhn', 'exämple.org'],
      ['<用户@例子.广告>', '用户', '例子.广告'],
      ['<δοκιμή@παράδειγμα.δοκιμή>', 'δοκιμή', 'παράδειγμα.δοκιμή'],
      ['<a@exämple.org>', 'a', 'exämple.org'],
      ['<ü@example.org>', 'ü', 'example.org'],
      ['<"ü x"@example.org>', 'ü x', 'example.org'],
      ['<😀@example.org>', '😀', 'example.org'],
    ];
    for (const [path, user, host] of cases) {
      const a = parse(path);
      assert.deepEqual(parts(a), { user, host });
      assert.equal(a.isInternational, true, path);
      assert.equal(String(a), path);
    }
  });

  test('isInternational is false for ASCII, quoted or not', () => {
    for (const path of ['<a@b>', '<"a b"@c>', '<>', '<postmaster>', '<u@[IPv6:::1]>']) {
      assert.equal(parse(path).isInternational, false, path);
    }
  });

  test('isNonAscii', () => {
    assert.equal(isNonAscii(''), false);
    assert.equal(isNonAscii('abc~\x7f'), false);
    assert.equal(isNonAscii('\x80'), true);
    assert.equal(isNonAscii('é'), true);
    assert.equal(isNonAscii('x😀'), true);
  });
});

describe('Address.parse: refused forms', () => {
  test('a second @ is a routing form', () => {
    assert.equal(refuse('<a@b@c>'), 'more than one @: routing is not accepted');
    refuse('<a@b@c@d>');
    refuse('<"a"@b@c>');
  });

  test('source routes', () => {
    for (const path of ['<@a,@b:u@c>', '<@a:u@c>', '<@c>', '<@>']) {
      assert.equal(refuse(path), 'source routes are not accepted', path);
    }
  });

  test('missing angle brackets', () => {
    for (const path of ['a@b', '<a@b', 'a@b>', '', '<', '>', ' <a@b>', '<a@b> ', '><', 'postmaster']) {
      assert.equal(refuse(path), 'address must be in angle brackets', JSON.stringify(path));
    }
  });

  test('bad local parts', () => {
    for (const path of ['<a b@c>', '<a"b@c>', '<a(b)@c>', '<a,b@c>', '<a[b@c>', '<a\\b@c>', '<a:b@c>', '<a;b@c>', '<a<b@c>', '<a\x00b@c>', '<a\tb@c>']) {
      refuse(path);
    }
  });

  test('no domain', () => {
    assert.equal(refuse('<user>'), 'address has no domain');
    assert.equal(refuse('<user@>'), 'empty domain');
  });
});

describe('Address.parse: domain labels', () => {
  test('accepted domains', () => {
    for (const host of ['localhost', 'a.b', 'b-c.d', 'a--b.c', 'xn--bcher-kva.example', '1.2.3.4', '123.example', 'A.B.C', 'x'.repeat(63) + '.org']) {
      assert.equal(parse(`<u@${host}>`).host, host);
    }
  });

  test('refused domains', () => {
    for (const host of ['-b.c', 'b-.c', 'b..c', '.b', 'b.', 'b_c.d', 'b c', 'b!c', 'x'.repeat(64) + '.org', '-', '.', 'a.-', 'ex\x00ample.org']) {
      refuse(`<u@${host}>`);
    }
  });

  test('a domain longer than 255 characters is refused', () => {
    const label = 'x'.repeat(63);
    const ok = [label, label, label, 'x'.repeat(62)].join('.');
    assert.equal(ok.length, 254);
    parse(`<u@${ok}>`);
    assert.equal(refuse(`<u@${ok}.xx>`), 'domain too long');
  });
});

describe('isIPv6', () => {
  const valid = [
    '::',
    '::1',
    '1::',
    '1:2:3:4:5:6:7:8',
    '2001:db8::1',
    '2001:DB8:0:0:8:800:200C:417A',
    'fe80::1:2',
    'ABCD:ef01::',
    '1:2:3:4:5:6:7::',
    '::2:3:4:5:6:7:8',
    '1::8',
    '0000:0000:0000:0000:0000:0000:0000:0001',
    '::ffff:192.0.2.1',
    '::192.0.2.1',
    '1:2:3:4:5:6:1.2.3.4',
    '1::1.2.3.4',
    '64:ff9b::192.0.2.33',
  ];
  const invalid = [
    '',
    ':',
    ':::',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8:9',
    '1::2::3',
    '12345::',
    'zz::1',
    'g::',
    '1:2:3:4:5:6:7:8::',
    '::1:2:3:4:5:6:7:8',
    '1:2:3:4::5:6:7:8',
    ':1::',
    '1::2:',
    ':1:2:3:4:5:6:7:8',
    '1:2:3:4:5:6:7:8:',
    '1:::2',
    '1.2.3.4',
    '::1.2.3',
    '::1.2.3.999',
    '::01.2.3.4',
    '1:2:3:4:5:6:7:1.2.3.4',
    '1:2:3:4:5:6:7:8:1.2.3.4',
    '::1.2.3.4:5',
    '1.2.3.4::',
    ' ::1',
    '::1 ',
    '::1%eth0',
    '[::1]',
    'IPv6:::1',
  ];
  for (const text of valid) test(`valid: ${text}`, () => assert.equal(isIPv6(text), true));
  test('invalid forms', () => {
    for (const text of invalid) assert.equal(isIPv6(text), false, JSON.stringify(text));
  });
});

describe('Address: compare, equals and the rest of the value', () => {
  test('equals: local part exact, domain case-insensitive', () => {
    const a = parse('<John@Example.ORG>');
    assert.ok(a.equals(parse('<John@example.org>')));
    assert.ok(a.equals(parse('<"John"@EXAMPLE.org>')));
    assert.ok(!a.equals(parse('<john@example.org>')));
    assert.ok(!a.equals(parse('<John@example.net>')));
    assert.ok(parse('<postmaster>').equals(new Address('postmaster', '')));
    assert.ok(!parse('<postmaster>').equals(parse('<postmaster@x>')));
  });

  test('compare: by domain (case-insensitive), then by local part', () => {
    const list = ['<b@B.example>', '<a@c.example>', '<a@b.example>', '<B@b.example>', '<>', '<z@A.example>'].map(parse);
    const sorted = [...list].sort(Address.compare).map(String);
    assert.deepEqual(sorted, ['<>', '<z@A.example>', '<B@b.example>', '<a@b.example>', '<b@B.example>', '<a@c.example>']);
    assert.equal(Address.compare(parse('<a@X.org>'), parse('<a@x.ORG>')), 0);
    assert.equal(Address.compare(parse('<a@x>'), parse('<b@x>')), -1);
    assert.equal(Address.compare(parse('<b@x>'), parse('<a@x>')), 1);
    assert.equal(Address.compare(parse('<b@a>'), parse('<a@b>')), -1);
  });

  test('fields can be changed by plugins and the string forms follow', () => {
    const a = parse('<a@example.org>');
    a.user = 'john doe';
    a.host = 'example.net';
    assert.equal(String(a), '<"john doe"@example.net>');
    assert.equal(a.address, 'john doe@example.net');
  });

  test('notes and per-address config', () => {
    const a = parse('<a@example.org>');
    assert.deepEqual(a.notes, {});
    a.notes['x'] = 1;
    assert.equal(parse('<a@example.org>').notes['x'], undefined);
    assert.equal(a.config('rcpt_limit'), undefined);
    assert.deepEqual(a.configList('rcpt_limit'), []);
    const seen: string[] = [];
    assert.equal(
      a.bindConfig((addr, name) => {
        seen.push(`${addr.address}:${name}`);
        return name === 'multi' ? ['1', '2'] : [];
      }),
      a,
    );
    assert.equal(a.config('multi'), '1');
    assert.deepEqual(a.configList('multi'), ['1', '2']);
    assert.equal(a.config('none'), undefined);
    assert.deepEqual(seen, ['a@example.org:multi', 'a@example.org:multi', 'a@example.org:none']);
  });
});

describe('Address: properties', () => {
  const atext = fc.constantFrom(...'abcXYZ019!#$%&\'*+-/=?^_`{|}~'.split(''), 'é', '用');
  const atom = fc.array(atext, { minLength: 1, maxLength: 8 }).map((a) => a.join(''));
  const dotAtom = fc.array(atom, { minLength: 1, maxLength: 4 }).map((a) => a.join('.'));
  const letDig = fc.constantFrom(...'abcXYZ0189'.split(''), 'ä');
  const label = fc
    .tuple(letDig, fc.array(fc.constantFrom('a', 'Z', '5', '-', 'ö'), { maxLength: 10 }), letDig)
    .map(([first, mid, last]) => (mid.length === 0 ? first : first + mid.join('') + last));
  const domain = fc.array(label, { minLength: 1, maxLength: 4 }).map((a) => a.join('.'));

  test('dot-atom addresses: parse(String(a)) gives the same user and host', () => {
    fc.assert(
      fc.property(dotAtom, domain, (user, host) => {
        const a = parse(`<${user}@${host}>`);
        assert.deepEqual(parts(a), { user, host });
        assert.equal(String(a), `<${user}@${host}>`);
        assert.deepEqual(parts(parse(String(a))), { user, host });
        assert.equal(a.isInternational, isNonAscii(user + host));
      }),
      { numRuns: 300, seed: 2024 },
    );
  });

  test('any printable local part survives toString and parse (quoting where needed)', () => {
    const ch = fc.oneof(
      fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
      fc.constantFrom('"', '\\', ' ', '.', '@', '>', 'ü', '😀'),
    );
    fc.assert(
      fc.property(fc.array(ch, { maxLength: 12 }).map((a) => a.join('')), domain, (user, host) => {
        const a = new Address(user, host);
        const back = parse(String(a));
        assert.deepEqual(parts(back), { user, host }, String(a));
        assert.ok(back.equals(a));
      }),
      { numRuns: 400, seed: 77 },
    );
  });

  test('no exception on any path text', () => {
    const ch = fc.oneof(
      fc.constantFrom('<', '>', '@', '"', '\\', '.', '[', ']', ':', ',', ' ', 'a', '1', 'IPv6:', 'é'),
      fc.integer({ min: 0, max: 0x7f }).map((c) => String.fromCharCode(c)),
    );
    fc.assert(
      fc.property(fc.array(ch, { maxLength: 30 }).map((a) => a.join('')), (text) => {
        const r = Address.parse(`<${text}>`);
        if (r instanceof Address) {
          // Whatever is accepted prints back to something that parses to the same thing.
          assert.deepEqual(parts(parse(String(r))), parts(r));
        }
        Address.parse(text);
      }),
      { numRuns: 1000, seed: 5 },
    );
  });
});
