/**
 * The wire codec's reading of answers, checked against packets made by another implementation
 * (dns2's encoder, the one the test DNS server uses): every record shape the resolver hands out,
 * the negative TTL, the truncation flag, and what is not an answer to our question.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Dns2 from 'dns2';
import { decodeAnswer, encodeQuery, loadCodec, type RecordType } from '../../src/dns/wire.ts';

const { Packet } = Dns2;

interface Built {
  readonly id?: number;
  readonly name: string;
  readonly type: RecordType;
  readonly rcode?: number;
  readonly tc?: boolean;
  readonly qr?: 0 | 1;
  readonly answers?: readonly Record<string, unknown>[];
  readonly authorities?: readonly Record<string, unknown>[];
}

/** A response as a server would send it, encoded by dns2. */
function response(b: Built): Buffer {
  const p = new Packet();
  p.header.id = b.id ?? 4242;
  p.header.qr = b.qr ?? 1;
  p.header.rd = 1;
  p.header.ra = 1;
  p.header.rcode = b.rcode ?? 0;
  if (b.tc) p.header.tc = 1;
  p.questions.push(new Packet.Question(b.name, Packet.TYPE[b.type], Packet.CLASS.IN));
  for (const a of b.answers ?? []) p.answers.push({ name: b.name, class: Packet.CLASS.IN, ttl: 300, ...a } as never);
  for (const a of b.authorities ?? []) p.authorities.push({ class: Packet.CLASS.IN, ...a } as never);
  return p.toBuffer();
}

describe('DNS wire codec', () => {
  before(async () => {
    await loadCodec();
  });

  test('a query asks one question, recursion desired, under a random id', () => {
    const ids = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const { id, bytes } = encodeQuery('Example.TEST', 'MX');
      ids.add(id);
      const parsed = Packet.parse(bytes);
      assert.equal(parsed.header.id, id);
      assert.equal(parsed.header.qr, 0);
      assert.equal(parsed.header.rd, 1);
      assert.deepEqual(
        parsed.questions.map((q) => [q.name, q.type, q.class]),
        [['Example.TEST', Packet.TYPE.MX, Packet.CLASS.IN]],
      );
    }
    assert.ok(ids.size > 1, 'ids differ');
  });

  test('every record shape, names lower-cased without the final dot, the smallest TTL', () => {
    const cases: [RecordType, Record<string, unknown>[], unknown[]][] = [
      ['A', [{ type: Packet.TYPE.A, address: '192.0.2.1', ttl: 60 }, { type: Packet.TYPE.A, address: '192.0.2.2' }], ['192.0.2.1', '192.0.2.2']],
      ['AAAA', [{ type: Packet.TYPE.AAAA, address: '2001:db8::1' }], ['2001:db8::1']],
      ['MX', [{ type: Packet.TYPE.MX, priority: 10, exchange: 'MX1.Example.TEST' }], [{ exchange: 'mx1.example.test', priority: 10 }]],
      ['TXT', [{ type: Packet.TYPE.TXT, data: ['v=spf1 ', '-all'] }, { type: Packet.TYPE.TXT, data: 'grüß' }], [['v=spf1 ', '-all'], ['grüß']]],
      ['PTR', [{ type: Packet.TYPE.PTR, domain: 'Host.Example.TEST' }], ['host.example.test']],
      ['CNAME', [{ type: Packet.TYPE.CNAME, domain: 'Alias.Example.TEST' }], ['alias.example.test']],
      ['NS', [{ type: Packet.TYPE.NS, ns: 'NS1.Example.TEST' }], ['ns1.example.test']],
      [
        'SOA',
        [{ type: Packet.TYPE.SOA, primary: 'NS.Example.TEST', admin: 'Host.Example.TEST', serial: 7, refresh: 3600, retry: 600, expiration: 86400, minimum: 30 }],
        [{ nsname: 'ns.example.test', hostmaster: 'host.example.test', serial: 7, refresh: 3600, retry: 600, expire: 86400, minttl: 30 }],
      ],
    ];
    for (const [type, answers, expected] of cases) {
      const answer = decodeAnswer(response({ name: 'q.example.test', type, answers }), 4242, 'Q.example.test.', type);
      assert.ok(answer, type);
      assert.equal(answer.rcode, 'NOERROR', type);
      assert.equal(answer.truncated, false, type);
      assert.deepEqual(answer.records, expected, type);
      assert.equal(answer.ttl, type === 'A' ? 60 : 300, type);
    }
  });

  test('records of other types in the answer are left out', () => {
    const answer = decodeAnswer(
      response({ name: 'q.test', type: 'A', answers: [{ type: Packet.TYPE.CNAME, domain: 'r.test' }, { name: 'r.test', type: Packet.TYPE.A, address: '192.0.2.9' }] }),
      4242,
      'q.test',
      'A',
    );
    assert.deepEqual(answer?.records, ['192.0.2.9']);
  });

  test('a negative answer: its rcode, no records, the TTL from the SOA (the lesser of its TTL and minimum)', () => {
    const soa = { name: 'test', type: Packet.TYPE.SOA, primary: 'ns.test', admin: 'h.test', serial: 1, refresh: 1, retry: 1, expiration: 1 };
    const nx = decodeAnswer(response({ name: 'q.test', type: 'A', rcode: 3, authorities: [{ ...soa, ttl: 900, minimum: 120 }] }), 4242, 'q.test', 'A');
    assert.deepEqual(nx, { rcode: 'NXDOMAIN', truncated: false, records: [], ttl: 120 });
    const nodata = decodeAnswer(response({ name: 'q.test', type: 'MX', authorities: [{ ...soa, ttl: 60, minimum: 3600 }] }), 4242, 'q.test', 'MX');
    assert.deepEqual(nodata, { rcode: 'NOERROR', truncated: false, records: [], ttl: 60 });
    const bare = decodeAnswer(response({ name: 'q.test', type: 'A', rcode: 2 }), 4242, 'q.test', 'A');
    assert.deepEqual(bare, { rcode: 'SERVFAIL', truncated: false, records: [], ttl: undefined });
    assert.equal(decodeAnswer(response({ name: 'q.test', type: 'A', rcode: 9 }), 4242, 'q.test', 'A')?.rcode, 'OTHER');
  });

  test('the truncation flag is reported', () => {
    assert.equal(decodeAnswer(response({ name: 'q.test', type: 'TXT', tc: true }), 4242, 'q.test', 'TXT')?.truncated, true);
  });

  test('not an answer to this question: wrong id, a query, another name or type, garbage', () => {
    const good = response({ name: 'q.test', type: 'A', answers: [{ type: Packet.TYPE.A, address: '192.0.2.1' }] });
    assert.ok(decodeAnswer(good, 4242, 'q.test', 'A'));
    assert.equal(decodeAnswer(good, 4243, 'q.test', 'A'), undefined);
    assert.equal(decodeAnswer(good, 4242, 'other.test', 'A'), undefined);
    assert.equal(decodeAnswer(good, 4242, 'q.test', 'AAAA'), undefined);
    assert.equal(decodeAnswer(response({ name: 'q.test', type: 'A', qr: 0 }), 4242, 'q.test', 'A'), undefined);
    for (const bytes of [Buffer.alloc(0), Buffer.from([0x10, 0x92]), good.subarray(0, good.length - 3), Buffer.alloc(64, 0xff)]) {
      assert.equal(decodeAnswer(bytes, 4242, 'q.test', 'A'), undefined, bytes.toString('hex'));
    }
  });

  test('no strict prefix of an answer is taken for one, and no corrupted datagram throws', () => {
    const answers: [RecordType, Buffer][] = [
      ['MX', response({ name: 'q.test', type: 'MX', answers: [{ type: Packet.TYPE.MX, priority: 5, exchange: 'mx.q.test' }, { type: Packet.TYPE.MX, priority: 9, exchange: 'mx2.q.test' }] })],
      ['TXT', response({ name: 'q.test', type: 'TXT', answers: [{ type: Packet.TYPE.TXT, data: ['v=DKIM1; k=rsa; p=MIIB', 'AQAB'] }] })],
      ['AAAA', response({ name: 'q.test', type: 'AAAA', answers: [{ type: Packet.TYPE.AAAA, address: '2001:db8::7' }] })],
      ['A', response({ name: 'q.test', type: 'A', rcode: 3, authorities: [{ name: 'test', type: Packet.TYPE.SOA, primary: 'ns.test', admin: 'h.test', serial: 1, refresh: 1, retry: 1, expiration: 1, minimum: 5, ttl: 5 }] })],
    ];
    for (const [type, bytes] of answers) {
      assert.ok(decodeAnswer(bytes, 4242, 'q.test', type), `${type} whole`);
      for (let cut = 0; cut < bytes.length; cut++) {
        assert.equal(decodeAnswer(bytes.subarray(0, cut), 4242, 'q.test', type), undefined, `${type} cut at ${cut} of ${bytes.length}`);
      }
      for (let at = 0; at < bytes.length; at++) {
        for (const value of [0x00, 0x3f, 0xc0, 0xff]) {
          const corrupted = Buffer.from(bytes);
          corrupted[at] = value;
          decodeAnswer(corrupted, 4242, 'q.test', type); // must not throw
        }
      }
    }
  });
});
