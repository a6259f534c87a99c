/**
 * The DNS transport's UDP side: questions share a socket for a while and then move to a fresh one
 * (a fresh source port), many questions in flight at once each get their own answer, and forged
 * datagrams (wrong id, another question, another sender) are ignored. Against a real server
 * (startDnsServer) and a hand-written one on loopback that answers with forgeries first.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type RemoteInfo } from 'node:dgram';
import Dns2 from 'dns2';
import { askUdp } from '../../src/transport/dns-exchange.ts';
import { loadCodec } from '../../src/dns/wire.ts';
import { startDnsServer, type TestDnsServer } from '../../src/testing/dns-server.ts';

const { Packet } = Dns2;
const OPTIONS = { timeoutMs: 3000 };

describe('UDP questions', () => {
  let dns: TestDnsServer;
  const names = Array.from({ length: 250 }, (_, i) => `n${i}.many.test`);

  before(async () => {
    await loadCodec();
    dns = await startDnsServer({ records: names.map((name, i) => [name, 'A', `10.0.${i >> 8}.${i & 255}`, 0] as const) });
  });
  after(async () => {
    await dns.close();
  });

  test('250 questions at once (more than one socket carries) each get their own answer', async () => {
    const server = { host: '127.0.0.1', port: dns.port };
    const answers = await Promise.all(names.map((name) => askUdp(server, name, 'A', OPTIONS)));
    answers.forEach((answer, i) => {
      assert.equal(answer.rcode, 'NOERROR');
      assert.deepEqual(answer.records, [`10.0.${i >> 8}.${i & 255}`], names[i]);
    });
  });
});

describe('a server that sends forgeries before the answer', () => {
  const ports: number[] = [];
  let server: ReturnType<typeof createSocket>;
  let stranger: ReturnType<typeof createSocket>;
  let port = 0;

  const answerTo = (query: InstanceType<typeof Packet>, address: string, id = query.header.id, name = query.questions[0]!.name): Buffer => {
    const response = new Packet();
    response.header.id = id;
    response.header.qr = 1;
    response.header.rd = 1;
    response.header.ra = 1;
    response.questions.push(new Packet.Question(name, Packet.TYPE.A, Packet.CLASS.IN));
    response.answers.push({ name, type: Packet.TYPE.A, class: Packet.CLASS.IN, ttl: 60, address } as never);
    return response.toBuffer();
  };

  before(async () => {
    await loadCodec();
    server = createSocket('udp4');
    stranger = createSocket('udp4');
    server.on('message', (bytes: Buffer, from: RemoteInfo) => {
      const query = Packet.parse(bytes);
      ports.push(from.port);
      if (query.questions[0]!.name.startsWith('quiet')) {
        server.send(answerTo(query, '192.0.2.1'), from.port, from.address);
        return;
      }
      // Wrong id, another question, the right answer from another port: none may be taken.
      server.send(answerTo(query, '198.51.100.1', (query.header.id + 1) & 0xffff), from.port, from.address);
      server.send(answerTo(query, '198.51.100.2', query.header.id, 'other.test'), from.port, from.address);
      stranger.send(answerTo(query, '198.51.100.3'), from.port, from.address);
      setTimeout(() => server.send(answerTo(query, '192.0.2.1'), from.port, from.address), 50);
    });
    await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', () => resolve()));
    await new Promise<void>((resolve) => stranger.bind(0, '127.0.0.1', () => resolve()));
    port = server.address().port;
  });
  after(() => {
    server.close();
    stranger.close();
  });

  test('only the genuine answer is taken', async () => {
    const answer = await askUdp({ host: '127.0.0.1', port }, 'forged.test', 'A', OPTIONS);
    assert.deepEqual(answer.records, ['192.0.2.1']);
  });

  test('a socket carries a hundred questions, then a fresh source port takes over', async () => {
    ports.length = 0;
    for (let i = 0; i < 150; i++) await askUdp({ host: '127.0.0.1', port }, `quiet${i}.test`, 'A', OPTIONS);
    const distinct = [...new Set(ports)];
    assert.ok(distinct.length >= 2 && distinct.length <= 3, `source ports: ${distinct.join(', ')}`);
    assert.ok(new Set(ports.slice(0, 50)).size <= 2, 'questions share a socket');
  });
});
