import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testApp } from '../helpers/test-app.ts';
import { assertLogged, assertReply, closed, probe, quit, withApp } from './connection-policy-support.ts';

const RULES = [
  '# comment lines are skipped',
  '192.168.3.4    DECLINED',
  '192.168.3.0/24 DENY Sorry, known spam only source',
  '198.51.100.0/24 DENYSOFT come back later',
  '203.0.113.9 DENY_DISCONNECT',
  '203.0.113.10 denysoft_disconnect',
  '203.0.113.11 OK',
  '203.0.113.12 BOGUS never mind',
  '203.0.113.12 DENY not reached',
  '2001:db8:bad::/48 DENY no IPv6 spam',
  '10.9.9.9',
];

describe('hosts_allow: config/hosts_allow', () => {
  it('greets a client no rule names', async () => {
    await withApp(['hosts_allow', 'accept_all'], async (t) => {
      await quit(await t.greeted({ remoteIp: '192.0.2.10' }));
      await quit(await t.greeted({ remoteIp: '10.9.9.9' })); // a line without a CODE is skipped
    }, { config: { hosts_allow: RULES } });
  });

  it('DENY with a message: 550 with it, and the connection is closed', async () => {
    await withApp(['hosts_allow'], async (t) => {
      const session = t.connect({ remoteIp: '192.168.3.77' });
      assertReply(await session.client.reply(), 550, '5.7.1 Sorry, known spam only source');
      await closed(session);
      assertLogged(t, 'fail, 192.168.3.77 matches 192.168.3.0/24 DENY, Sorry, known spam only source');
    }, { config: { hosts_allow: RULES } });
  });

  it('the first matching rule wins: DECLINED before a DENY exempts that address', async () => {
    await withApp(['hosts_allow'], async (t) => {
      await quit(await t.greeted({ remoteIp: '192.168.3.4' }));
    }, { config: { hosts_allow: RULES } });
  });

  it('DENYSOFT: 451 and closed; DENY_DISCONNECT without a message: 550 with the default text', async () => {
    await withApp(['hosts_allow'], async (t) => {
      const soft = t.connect({ remoteIp: '198.51.100.20' });
      assertReply(await soft.client.reply(), 451, '4.7.1 come back later');
      await closed(soft);
      const hard = t.connect({ remoteIp: '203.0.113.9' });
      assertReply(await hard.client.reply(), 550, '5.7.1 Sorry, service not available for you');
      await closed(hard);
      const lower = t.connect({ remoteIp: '203.0.113.10' });
      assertReply(await lower.client.reply(), 451, '4.7.1 Sorry, try again later');
      await closed(lower);
    }, { config: { hosts_allow: RULES } });
  });

  it('OK and an unknown code name let the client in (the unknown one is logged)', async () => {
    await withApp(['hosts_allow'], async (t) => {
      await quit(await t.greeted({ remoteIp: '203.0.113.11' }));
      await quit(await t.greeted({ remoteIp: '203.0.113.12' }));
      assertLogged(t, '"BOGUS" (for 203.0.113.12) is no return code name');
    }, { config: { hosts_allow: RULES, loglevel: '4' } });
  });

  it('IPv6 nets, and IPv4 clients seen as ::ffff:a.b.c.d', async () => {
    await withApp(['hosts_allow'], async (t) => {
      const v6 = t.connect({ remoteIp: '2001:db8:bad:1::25' });
      assertReply(await v6.client.reply(), 550, '5.7.1 no IPv6 spam');
      await closed(v6);
      const mapped = t.connect({ remoteIp: '::ffff:192.168.3.200' });
      assertReply(await mapped.client.reply(), 550);
      await closed(mapped);
      await quit(await t.greeted({ remoteIp: '2001:db8:900d::25' }));
    }, { config: { hosts_allow: RULES } });
  });
});

describe('hosts_allow: connections from one IP', () => {
  it('max_from_ip N: the N+1st simultaneous session from an IP gets 451 and is closed; others are served', async () => {
    await withApp(['hosts_allow max_from_ip 2'], async (t) => {
      const first = await t.greeted({ remoteIp: '192.0.2.77' });
      const second = await t.greeted({ remoteIp: '192.0.2.77' });
      const third = t.connect({ remoteIp: '192.0.2.77' });
      assertReply(await third.client.reply(), 451, '4.7.1 too many connections from 192.0.2.77, try again later');
      await closed(third);
      assertLogged(t, 'fail: too many connections from 192.0.2.77 (3 > 2)');
      await quit(await t.greeted({ remoteIp: '192.0.2.78' }));
      await quit(first);
      const again = await t.greeted({ remoteIp: '192.0.2.77' });
      await quit(again);
      await quit(second);
    });
  });

  it('without max_from_ip the limit is config/max_connections_per_ip', async () => {
    await withApp(['hosts_allow'], async (t) => {
      const sessions = [await t.greeted(), await t.greeted(), await t.greeted()];
      for (const s of sessions) await quit(s);
    }, { config: { max_connections_per_ip: '3' } });
  });

  it('karma_history 0 or less allows one session; above 5 allows 3 more', async () => {
    await withApp(['probe karma_history -2', 'hosts_allow max_from_ip 2'], async (t) => {
      const first = await t.greeted();
      const second = t.connect();
      assertReply(await second.client.reply(), 451);
      await closed(second);
      assertLogged(t, 'connect limit 1, karma -2');
      await quit(first);
    });
    await withApp(['probe karma_history 9', 'hosts_allow max_from_ip 1'], async (t) => {
      const sessions = [await t.greeted(), await t.greeted(), await t.greeted(), await t.greeted()];
      const fifth = t.connect();
      assertReply(await fifth.client.reply(), 451);
      await closed(fifth);
      for (const s of sessions) await quit(s);
    });
  });

  it('the client a trusted proxy names is the one checked', async () => {
    await withApp(['hosts_allow', 'probe'], async (t) => {
      const session = t.connect({ remoteIp: '127.0.0.1' });
      session.client.send('PROXY TCP4 192.168.3.9 127.0.0.1 40000 25\r\n');
      assertReply(await session.client.reply(), 550, '5.7.1 Sorry, known spam only source');
      await closed(session);
    }, { config: { hosts_allow: RULES, proxy_trusted: '127.0.0.1' } });
  });

  it('refuses to load with a bad max_from_ip', async () => {
    await assert.rejects(testApp({ config: { plugins: ['hosts_allow max_from_ip lots'] } }), /hosts_allow/);
    await assert.rejects(testApp({ config: { plugins: ['hosts_allow max_from_ip'] } }), /hosts_allow/);
  });
});

describe('hosts_allow with probe', () => {
  it('a client let in keeps its address for the session', async () => {
    await withApp(['hosts_allow', 'probe'], async (t) => {
      const session = await t.greeted({ remoteIp: '192.168.3.4' });
      assert.equal((await probe(session.client)).remoteIp, '192.168.3.4');
      await quit(session);
    }, { config: { hosts_allow: RULES } });
  });
});
