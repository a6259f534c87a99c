import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { TestApp } from '../helpers/test-app.ts';
import { assertLogged, assertReply, closed, probe, quit, withApp } from './connection-policy-support.ts';

const LINE4 = 'PROXY TCP4 192.0.2.7 198.51.100.1 50060 465';
const LINE6 = 'PROXY TCP6 2001:db8::7 2001:db8::1 50061 465';

function app(fn: (t: TestApp) => Promise<void>, plugins: string[] = ['stunnel proxy on', 'probe'], config: Record<string, string | string[]> = {}): Promise<void> {
  return withApp(plugins, fn, { config });
}

describe('stunnel proxy on', () => {
  it('takes the client named by a PROXY TCP4 line from 127.0.0.1, without a reply', async () => {
    await app(async (t) => {
      const session = await t.greeted({ remoteIp: '127.0.0.1', remotePort: 33333 });
      // Pipelined: the first reply after the greeting is XNOTES's, so nothing answered the PROXY line.
      session.client.send(`${LINE4}\r\nXNOTES\r\n`);
      const reply = await session.client.reply();
      assertReply(reply, 250);
      const seen = JSON.parse(reply.text.replace(/^2\.0\.0 /, '')) as Awaited<ReturnType<typeof probe>>;
      assert.equal(seen.remoteIp, '192.0.2.7');
      assert.equal(seen.remotePort, 50060);
      assert.equal(seen.localIp, '198.51.100.1');
      assert.equal(seen.localPort, 465);
      assert.equal(seen.proxiedBy, '127.0.0.1');
      assert.deepEqual(
        { proxy: seen.connection.proxy, protocol: seen.connection.protocol, remote_ip: seen.connection.remote_ip, local_ip: seen.connection.local_ip, remote_port: seen.connection.remote_port, local_port: seen.connection.local_port },
        { proxy: 'YES', protocol: 'TCP4', remote_ip: '192.0.2.7', local_ip: '198.51.100.1', remote_port: 50060, local_port: 465 },
      );
      const ehlo = await session.client.command('EHLO client.example');
      assertReply(ehlo, 250);
      assert.match(ehlo.lines[0]!, /Hi \[192\.0\.2\.7\]/);
      await quit(session);
      assertLogged(t, 'stunnel : 192.0.2.7:50060');
    });
  });

  it('TCP6 from ::1; plugins after it see the real client (relay by its address)', async () => {
    await app(async (t) => {
      const session = await t.greeted({ remoteIp: '::1' });
      session.client.line(LINE6);
      const seen = await probe(session.client);
      assert.equal(seen.remoteIp, '2001:db8::7');
      assert.equal(seen.connection.protocol, 'TCP6');
      await quit(session);
    });
  });

  it('PROXY UNKNOWN (a health check) changes nothing and is not answered', async () => {
    await app(async (t) => {
      const session = await t.greeted({ remoteIp: '127.0.0.1' });
      session.client.line('PROXY UNKNOWN');
      const seen = await probe(session.client);
      assert.equal(seen.remoteIp, '127.0.0.1');
      assert.equal(seen.proxiedBy, null);
      assert.equal(seen.connection.proxy, 'YES');
      await quit(session);
    });
  });

  it('refuses the line from a client that may not send it: 521 and closed', async () => {
    await app(async (t) => {
      const session = await t.greeted({ remoteIp: '192.0.2.10' });
      assertReply(await session.client.command(LINE4), 521, '5.7.1 PROXY not accepted from you');
      await closed(session);
      assertLogged(t, 'fail, PROXY line from 192.0.2.10, which may not send one');
    });
  });

  it('accepts it only once, and only before any other command', async () => {
    await app(async (t) => {
      const twice = await t.greeted({ remoteIp: '127.0.0.1' });
      twice.client.line(LINE4);
      assertReply(await twice.client.command(LINE6), 521, '5.7.1 PROXY already given');
      await closed(twice);
      for (const first of ['EHLO client.example', 'NOOP', 'HELP', 'XFOO']) {
        const late = await t.greeted({ remoteIp: '127.0.0.1' });
        await late.client.command(first);
        assertReply(await late.client.command(LINE4), 521, '5.7.1 PROXY must come first');
        await closed(late);
      }
    });
  });

  it('refuses a malformed line: 521 and closed', async () => {
    await app(async (t) => {
      for (const line of ['PROXY', 'PROXY TCP4 192.0.2.7', 'PROXY TCP4 192.0.2.777 198.51.100.1 1 2', 'PROXY TCP6 192.0.2.7 198.51.100.1 1 2', 'PROXY TCP4 192.0.2.7 198.51.100.1 1 99999', 'PROXY UDP4 192.0.2.7 198.51.100.1 1 2']) {
        const session = await t.greeted({ remoteIp: '127.0.0.1' });
        assertReply(await session.client.command(line), 521, '5.5.2 Malformed PROXY line');
        await closed(session);
      }
    });
  });

  it('leaves other unknown verbs to the plugins after it and to the core (DECLINED, not OK)', async () => {
    await app(async (t) => {
      const session = await t.greeted({ remoteIp: '127.0.0.1' });
      assertReply(await session.client.command('XFOO bar'), 500, '5.5.1 Unrecognized command');
      assertReply(await session.client.command('EXPN list'), 502);
      assert.equal((await probe(session.client)).remoteIp, '127.0.0.1');
      await quit(session);
    });
  });

  it('runs before count_unrecognized_commands, which does not count the PROXY line', async () => {
    await app(async (t) => {
      const session = await t.greeted({ remoteIp: '127.0.0.1' });
      session.client.line(LINE4);
      assertReply(await session.client.command('XFOO'), 500);
      assertReply(await session.client.command('XBAR'), 521);
      await closed(session);
    }, ['count_unrecognized_commands 2', 'stunnel proxy on']);
  });

  it('an address in proxy_trusted may send it too (after a PROXY UNKNOWN the core took)', async () => {
    await app(async (t) => {
      const session = t.connect({ remoteIp: '10.0.0.5' });
      session.client.send('PROXY UNKNOWN\r\n');
      assertReply(await session.client.reply(), 220);
      session.client.line(LINE4);
      assert.equal((await probe(session.client)).remoteIp, '192.0.2.7');
      await quit(session);
    }, ['stunnel proxy on', 'probe'], { proxy_trusted: '10.0.0.0/24' });
  });

  it('after the core took a PROXY header from a trusted proxy, a PROXY line is refused (once)', async () => {
    await app(async (t) => {
      const session = t.connect({ remoteIp: '127.0.0.1' });
      session.client.send(`${LINE4}\r\n`);
      assertReply(await session.client.reply(), 220);
      assertReply(await session.client.command(LINE6), 521);
      await closed(session);
    }, ['stunnel proxy on'], { proxy_trusted: '127.0.0.1' });
  });

  it('without "proxy on" it does nothing: PROXY is an unrecognized command', async () => {
    await app(async (t) => {
      const session = await t.greeted({ remoteIp: '127.0.0.1' });
      assertReply(await session.client.command(LINE4), 500);
      assert.equal((await probe(session.client)).remoteIp, '127.0.0.1');
      await quit(session);
    }, ['stunnel', 'probe']);
  });
});
