import { describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockList, isIP } from 'node:net';
import fc from 'fast-check';
import {
  IpList,
  cidrContains,
  expandIPv6,
  formatCidr,
  formatIp,
  ipFamily,
  ipInCidr,
  ipMatches,
  ipMatchesPrefix,
  ipPrefixKeys,
  isMappedIPv4,
  normalizeIp,
  parseAddressLiteral,
  parseCidr,
  parseIp,
  unmapIp,
  reverseIpLabels,
  ptrName,
} from '../../src/net/ip.ts';
import * as api from '../../src/index.ts';

const bytesOf = (text: string): number[] => Array.from(parseIp(text)!.bytes);

describe('parseIp', () => {
  it('parses IPv4 dotted quads', () => {
    assert.deepEqual(parseIp('192.0.2.1'), { family: 4, bytes: Uint8Array.from([192, 0, 2, 1]) });
    assert.deepEqual(bytesOf('0.0.0.0'), [0, 0, 0, 0]);
    assert.deepEqual(bytesOf('255.255.255.255'), [255, 255, 255, 255]);
    assert.deepEqual(bytesOf(' 10.1.2.3 '), [10, 1, 2, 3]);
  });

  it('refuses what is not an IPv4 address', () => {
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.-1', '01.2.3.4', '1.2.3.4.', 'a.b.c.d', '1..2.3', '1.2.3.4/24', '1.2.3.0x4']) {
      assert.equal(parseIp(bad), undefined, bad);
    }
  });

  it('parses IPv6 in full, compressed and mixed forms', () => {
    const one = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    assert.deepEqual(bytesOf('2001:db8::1'), one);
    assert.deepEqual(bytesOf('2001:0DB8:0000:0000:0000:0000:0000:0001'), one);
    assert.deepEqual(bytesOf('2001:db8:0:0:0::1'), one);
    assert.deepEqual(bytesOf('::'), new Array(16).fill(0));
    assert.deepEqual(bytesOf('::1'), [...new Array(15).fill(0), 1]);
    assert.deepEqual(bytesOf('1::'), [0, 1, ...new Array(14).fill(0)]);
    assert.deepEqual(bytesOf('::ffff:1.2.3.4'), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4]);
    assert.deepEqual(bytesOf('::1.2.3.4'), [...new Array(12).fill(0), 1, 2, 3, 4]);
    assert.deepEqual(bytesOf('1:2:3:4:5:6:1.2.3.4'), [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 1, 2, 3, 4]);
    assert.deepEqual(bytesOf('1::6:1.2.3.4'), [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 1, 2, 3, 4]);
    assert.deepEqual(bytesOf('fe80::1%eth0'), [0xfe, 0x80, ...new Array(13).fill(0), 1]);
    assert.equal(ipFamily('::ffff:1.2.3.4'), 6);
  });

  it('refuses what is not an IPv6 address', () => {
    for (const bad of [
      ':',
      ':::',
      '1:2:3:4:5:6:7',
      '1:2:3:4:5:6:7:8:9',
      '1::2::3',
      ':1::',
      '1:::2',
      '12345::',
      'g::1',
      '1:2:3:4:5:6:7::8',
      '1:2:3:4:5:6:7:1.2.3.4',
      '::1.2.3',
      '::1.2.3.4:5',
      '2001:db8::/32',
      'fe80::1%',
      '1:2:3:4:5:6:1.2.3.4:',
    ]) {
      assert.equal(parseIp(bad), undefined, bad);
    }
  });

  it('agrees with node:net on random addresses (round trip through formatIp)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.boolean(), (bytes, zeros) => {
        // Put runs of zero groups in half the cases, to exercise `::`.
        const b = Uint8Array.from(bytes);
        if (zeros) b.fill(0, (b[0]! % 8) * 2, (b[0]! % 8) * 2 + ((b[1]! % 5) + 1) * 2);
        const ip = { family: 6 as const, bytes: b };
        const text = formatIp(ip);
        assert.equal(isIP(text), 6, text);
        assert.deepEqual(Array.from(parseIp(text)!.bytes), Array.from(b));
        assert.deepEqual(Array.from(parseIp(expandIPv6(ip)!)!.bytes), Array.from(b));
        if (!isMappedIPv4(ip)) assert.equal(text, new URL(`http://[${text}]/`).hostname.slice(1, -1));
      }),
      { seed: 20240501, numRuns: 400 },
    );
  });
});

describe('formatIp and normalisation', () => {
  it('writes RFC 5952 text', () => {
    assert.equal(normalizeIp('2001:0DB8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
    assert.equal(normalizeIp('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
    assert.equal(normalizeIp('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1');
    assert.equal(normalizeIp('0:0:0:0:0:0:0:0'), '::');
    assert.equal(normalizeIp('::1'), '::1');
    assert.equal(normalizeIp('10.0.0.1'), '10.0.0.1');
    assert.equal(normalizeIp('nonsense'), undefined);
  });

  it('turns an IPv4-mapped address into IPv4', () => {
    assert.equal(normalizeIp('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(normalizeIp('::FFFF:c000:0207'), '192.0.2.7');
    assert.equal(formatIp(parseIp('::ffff:192.0.2.7')!), '::ffff:192.0.2.7');
    assert.equal(formatIp(unmapIp(parseIp('::ffff:192.0.2.7')!)), '192.0.2.7');
    assert.equal(isMappedIPv4(parseIp('::192.0.2.7')!), false);
  });

  it('expands IPv6', () => {
    assert.equal(expandIPv6('2001:db8::1'), '2001:0db8:0000:0000:0000:0000:0000:0001');
    assert.equal(expandIPv6('1.2.3.4'), '0000:0000:0000:0000:0000:ffff:0102:0304');
    assert.equal(expandIPv6('x'), undefined);
  });

  it('reads SMTP address literals', () => {
    assert.equal(formatIp(parseAddressLiteral('[192.0.2.1]')!), '192.0.2.1');
    assert.equal(formatIp(parseAddressLiteral('[IPv6:2001:DB8::1]')!), '2001:db8::1');
    assert.equal(formatIp(parseAddressLiteral('[ipv6:::1]')!), '::1');
    assert.equal(parseAddressLiteral('[2001:db8::1]'), undefined);
    assert.equal(parseAddressLiteral('[IPv6:1.2.3.4]'), undefined);
    assert.equal(parseAddressLiteral('example.com'), undefined);
    assert.equal(parseAddressLiteral('[]'), undefined);
  });
});

describe('CIDR', () => {
  it('parses blocks and clears host bits', () => {
    assert.equal(formatCidr(parseCidr('10.1.0.0/24')!), '10.1.0.0/24');
    assert.equal(formatCidr(parseCidr('10.1.0.77/24')!), '10.1.0.0/24');
    assert.equal(formatCidr(parseCidr('2001:db8:ffff::1/32')!), '2001:db8::/32');
    assert.equal(formatCidr(parseCidr('0.0.0.0/0')!), '0.0.0.0/0');
    for (const bad of ['10.1.0.0', '10.1.0.0/33', '10.1.0.0/', '/8', '::/129', '10.1.0.0/2a', '10.1.0/24']) {
      assert.equal(parseCidr(bad), undefined, bad);
    }
  });

  it('matches IPv4, edges included', () => {
    assert.equal(ipInCidr('10.1.0.0', '10.1.0.0/24'), true);
    assert.equal(ipInCidr('10.1.0.255', '10.1.0.0/24'), true);
    assert.equal(ipInCidr('10.1.1.0', '10.1.0.0/24'), false);
    assert.equal(ipInCidr('10.1.0.9', '10.1.0.9/32'), true);
    assert.equal(ipInCidr('10.1.0.8', '10.1.0.9/32'), false);
    assert.equal(ipInCidr('172.31.255.255', '172.16.0.0/12'), true);
    assert.equal(ipInCidr('172.32.0.0', '172.16.0.0/12'), false);
    assert.equal(ipInCidr('203.0.113.5', '0.0.0.0/0'), true);
    assert.equal(ipInCidr('::ffff:10.1.0.3', '10.1.0.0/24'), true);
    assert.equal(ipInCidr('2001:db8::1', '10.1.0.0/24'), false);
  });

  it('matches IPv6', () => {
    assert.equal(ipInCidr('2001:db8:1234::5', '2001:db8::/32'), true);
    assert.equal(ipInCidr('2001:db9::5', '2001:db8::/32'), false);
    assert.equal(ipInCidr('2001:db8:e431:ae06::1', '2001:db8:e431:ae06::/64'), true);
    assert.equal(ipInCidr('2001:db8:e431:ae07::1', '2001:db8:e431:ae06::/64'), false);
    assert.equal(ipInCidr('10.1.0.3', '2001:db8::/32'), false);
    assert.equal(ipInCidr('10.1.0.3', '::ffff:10.1.0.0/120'), true);
    assert.equal(ipInCidr('garbage', '::/0'), false);
  });

  it('agrees with node:net BlockList on random blocks', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.integer({ min: 0, max: 128 }),
        fc.boolean(),
        (a, b, len, v4) => {
          const family = v4 ? 4 : 6;
          const net = formatIp({ family, bytes: v4 ? a.slice(0, 4) : a });
          // Make the candidate share a random number of leading bytes with the network.
          const candidate = Uint8Array.from(b);
          candidate.set(a.slice(0, b[0]! % 17));
          const ip = formatIp({ family, bytes: v4 ? candidate.slice(0, 4) : candidate });
          const prefix = v4 ? len % 33 : len;
          const list = new BlockList();
          const block = parseCidr(`${net}/${prefix}`)!;
          list.addSubnet(formatIp({ family, bytes: block.network }), prefix, v4 ? 'ipv4' : 'ipv6');
          if (!v4 && isMappedIPv4(parseIp(ip)!)) return;
          assert.equal(cidrContains(block, ip), list.check(ip, v4 ? 'ipv4' : 'ipv6'), `${ip} in ${net}/${prefix}`);
        },
      ),
      { seed: 7, numRuns: 400 },
    );
  });
});

describe('qpsmtpd prefix entries', () => {
  it('a full address matches itself, in any spelling', () => {
    assert.equal(ipMatchesPrefix('192.0.2.1', '192.0.2.1'), true);
    assert.equal(ipMatchesPrefix('192.0.2.10', '192.0.2.1'), false);
    assert.equal(ipMatchesPrefix('2001:db8::1', '2001:0DB8:0:0::1'), true);
    assert.equal(ipMatchesPrefix('::ffff:192.0.2.1', '192.0.2.1'), true);
    assert.equal(ipMatchesPrefix('192.0.2.1', '::ffff:192.0.2.1'), true);
  });

  it('IPv4 prefixes end in a dot', () => {
    assert.equal(ipMatchesPrefix('192.168.42.7', '192.168.42.'), true);
    assert.equal(ipMatchesPrefix('192.168.4.7', '192.168.42.'), false);
    assert.equal(ipMatchesPrefix('192.168.42.7', '192.168.'), true);
    assert.equal(ipMatchesPrefix('192.168.42.7', '192.'), true);
    assert.equal(ipMatchesPrefix('192.168.42.7', '192.168'), false);
    assert.equal(ipMatchesPrefix('192.168.42.7', '19.'), false);
    assert.equal(ipMatchesPrefix('2001:db8::1', '192.'), false);
  });

  it('IPv6 prefixes end in a colon, leading zeros and case do not matter', () => {
    assert.equal(ipMatchesPrefix('2001:db8:e431:ae06::25', '2001:db8:e431:ae06:'), true);
    assert.equal(ipMatchesPrefix('2001:0db8:e431:ae06:0:0:0:25', '2001:DB8:E431:AE06:'), true);
    assert.equal(ipMatchesPrefix('2001:db8:e431:ae06::25', '2001:0db8:e431:'), true);
    assert.equal(ipMatchesPrefix('2001:db8:e431:ae07::25', '2001:db8:e431:ae06:'), false);
    assert.equal(ipMatchesPrefix('2001:db8::25', '2001:db8:0:'), true);
    assert.equal(ipMatchesPrefix('192.168.1.1', '2001:'), false);
  });

  it('hex-digit prefixes of the expanded address, as qpsmtpd looks them up', () => {
    assert.equal(ipMatchesPrefix('2001:db8:e431:ae06::1', '2001:0db8:e431:ae0'), true);
    assert.equal(ipMatchesPrefix('2001:db8:e431:ad06::1', '2001:0db8:e431:ae0'), false);
    assert.equal(ipMatchesPrefix('2001:db8::1', '2001'), true);
  });

  it('CIDR only through ipMatches', () => {
    assert.equal(ipMatchesPrefix('10.1.0.5', '10.1.0.0/24'), false);
    assert.equal(ipMatches('10.1.0.5', '10.1.0.0/24'), true);
    assert.equal(ipMatches('10.1.0.5', '10.1.0.'), true);
    assert.equal(ipMatches('10.1.0.5', 'not-an-ip'), false);
    assert.equal(ipMatches('not-an-ip', '10.1.0.'), false);
  });

  it('lists the keys a map may hold for an address', () => {
    assert.deepEqual(ipPrefixKeys('192.168.42.7'), ['192.168.42.7', '192.168.42.', '192.168.', '192.']);
    assert.deepEqual(ipPrefixKeys('::ffff:192.168.42.7'), ['::ffff:192.168.42.7', '192.168.42.7', '192.168.42.', '192.168.', '192.']);
    const v6 = ipPrefixKeys('2001:DB8:e431:ae06::25');
    for (const key of [
      '2001:DB8:e431:ae06::25',
      '2001:db8:e431:ae06::25',
      '2001:0db8:e431:ae06:0000:0000:0000:0025',
      '2001:db8:e431:ae06:',
      '2001:0db8:e431:ae06:',
      '2001:db8:',
      '2001:',
      '2001:0db8:e431:ae0',
      '2001:0db8:e431:ae06',
      '2',
    ]) {
      assert.ok(v6.includes(key), key);
    }
    assert.ok(!v6.some((k) => k.endsWith('::') && k !== '2001:db8:e431:ae06::25'));
    assert.equal(new Set(v6).size, v6.length);
    assert.deepEqual(ipPrefixKeys('bogus'), []);
  });
});

describe('IpList', () => {
  const list = new IpList([
    '# not a comment here: config files strip them, so this is just invalid',
    '10.9.9.9',
    '192.168.42.',
    '172.16.0.0/12   office',
    '2001:db8:e431:ae06:',
    '2001:db8:ffff::/48',
    'bogus',
    '300.1.1.1/8',
    '',
  ]);

  it('matches each kind and says which entry matched', () => {
    assert.deepEqual(list.match('10.9.9.9'), { entry: '10.9.9.9', kind: 'exact' });
    assert.deepEqual(list.match('192.168.42.200'), { entry: '192.168.42.', kind: 'prefix' });
    assert.deepEqual(list.match('172.20.1.1'), { entry: '172.16.0.0/12', kind: 'cidr' });
    assert.deepEqual(list.match('2001:db8:e431:ae06:1::1'), { entry: '2001:db8:e431:ae06:', kind: 'prefix' });
    assert.deepEqual(list.match('2001:db8:ffff:1::1'), { entry: '2001:db8:ffff::/48', kind: 'cidr' });
    assert.equal(list.match('10.9.9.8'), undefined);
    assert.equal(list.match('::1'), undefined);
    assert.equal(list.match(''), undefined);
  });

  it('keeps the invalid entries apart', () => {
    assert.deepEqual(list.invalid, ['#', 'bogus', '300.1.1.1/8']);
    assert.equal(list.size, 5);
  });

  it('can refuse CIDR entries', () => {
    const noCidr = new IpList(['10.0.0.0/8', '11.'], { cidr: false });
    assert.equal(noCidr.match('10.1.1.1'), undefined);
    assert.deepEqual(noCidr.invalid, ['10.0.0.0/8']);
    assert.equal(noCidr.match('11.1.1.1')?.kind, 'prefix');
  });
});

describe('public API', () => {
  it('exports the helpers from the plugin API', () => {
    assert.equal(api.parseIp, parseIp);
    assert.equal(api.IpList, IpList);
    assert.equal(api.ipPrefixKeys, ipPrefixKeys);
    assert.equal(api.normalizeIp, normalizeIp);
  });
});

test('reverse DNS names: IPv4 octets and IPv6 nibbles backwards; mapped IPv4 counts as IPv4', () => {
  assert.equal(reverseIpLabels('192.0.2.1'), '1.2.0.192');
  assert.equal(reverseIpLabels('::ffff:192.0.2.1'), '1.2.0.192');
  assert.equal(reverseIpLabels('2001:db8::1'), '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2');
  assert.equal(reverseIpLabels('not an ip'), undefined);
  assert.equal(ptrName('192.0.2.1'), '1.2.0.192.in-addr.arpa');
  assert.equal(ptrName('::ffff:192.0.2.1'), '1.2.0.192.in-addr.arpa');
  assert.equal(ptrName('2001:db8::1'), '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
});
