import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertLogged, assertReply, ehloed, probe, quit, withApp } from './connection-policy-support.ts';

const CONFIG = {
  whitelisthosts: ['192.0.2.25', '10.1', '198.51.100.0/24', '2001:db8:cafe::/48'],
  whitelisthelo: ['Friendly.Example.Org'],
  whitelistsenders: ['boss@partner.example', 'trusted.example'],
  whitelistrcpt: ['postmaster@mx.example.test', 'abuse.example.test'],
};

/** `deny HOOK`: DENY on HOOK unless the shared immunity applies (what a policy plugin does). */
const DENY_UNLESS_IMMUNE = `import { Plugin, DECLINED, DENY, isImmune } from 'qpsmtpd';
import type { PluginHost } from 'qpsmtpd';
export default class DenyUnlessImmune extends Plugin {
  register(_qp: PluginHost, hook: string) {
    this.registerHook(hook, function (this: Plugin) { return isImmune(this) ? DECLINED : [DENY, 'denied by policy']; });
  }
}
`;
const plugins = { 'deny.ts': DENY_UNLESS_IMMUNE };

describe('whitelist: whitelisthosts', () => {
  for (const ip of ['192.0.2.25', '10.1.2.3', '10.10.0.1', '198.51.100.200', '2001:db8:cafe:1::9', '::ffff:198.51.100.7']) {
    it(`${ip} is whitelisted: connection note whitelisthost, karma +5, later connect plugins skipped`, async () => {
      await withApp(['whitelist', 'answer connect DENY should not run', 'probe'], async (t) => {
        const session = await t.greeted({ remoteIp: ip });
        const seen = await probe(session.client);
        assert.equal(seen.connection.whitelisthost, 1);
        assert.equal(seen.connection.karma, 5);
        await quit(session);
      }, { config: CONFIG });
    });
  }

  it('other hosts are not: the next connect plugin runs', async () => {
    await withApp(['whitelist', 'answer connect DENY go away'], async (t) => {
      for (const ip of ['192.0.2.26', '192.0.2.250', '11.1.2.3', '198.51.101.1', '2001:db8:caff::1']) {
        const session = t.connect({ remoteIp: ip });
        assertReply(await session.client.reply(), 550, '5.7.1 go away');
        await session.done;
      }
    }, { config: CONFIG });
  });

  it('a whitelisted host is immune to the policy plugins (isImmune) for the whole session', async () => {
    await withApp(['whitelist', 'deny mail', 'deny:1 rcpt', 'accept_all'], async (t) => {
      const session = await ehloed(t, '192.0.2.25');
      assertReply(await session.client.command('MAIL FROM:<x@anywhere.example>'), 250);
      assertReply(await session.client.command('RCPT TO:<someone@mx.example.test>'), 250);
      await quit(session);
      const other = await ehloed(t, '192.0.2.26');
      assertReply(await other.client.command('MAIL FROM:<x@anywhere.example>'), 550, '5.7.1 denied by policy');
      await quit(other);
      assertLogged(t, 'skip, whitelisted host');
    }, { config: CONFIG, plugins });
  });

  it('WHITELISTCLIENT in the environment: connection note whitelistclient', async () => {
    await withApp(['whitelist', 'answer connect DENY should not run', 'probe'], async (t) => {
      const session = await t.greeted({ remoteIp: '203.0.113.1' });
      const seen = await probe(session.client);
      assert.equal(seen.connection.whitelistclient, 1);
      assert.equal(seen.connection.whitelisthost, undefined);
      await quit(session);
    }, { config: CONFIG, env: { WHITELISTCLIENT: '' } });
  });
});

describe('whitelist: whitelisthelo', () => {
  it('a listed HELO name (any case) sets whitelisthelo and skips later helo plugins', async () => {
    await withApp(['whitelist', 'answer:0 helo DENY bad helo', 'answer:1 ehlo DENY bad ehlo', 'probe'], async (t) => {
      const session = await t.greeted({ remoteIp: '203.0.113.1' });
      assertReply(await session.client.command('EHLO friendly.example.org'), 250);
      assert.equal((await probe(session.client)).connection.whitelisthelo, 1);
      assertReply(await session.client.command('HELO FRIENDLY.example.org'), 250);
      assertReply(await session.client.command('HELO stranger.example.org'), 550, '5.7.1 bad helo');
      await quit(session);
      assertLogged(t, 'helo host friendly.example.org in whitelisthelo');
    }, { config: CONFIG });
  });
});

describe('whitelist: whitelistsenders', () => {
  it('a listed address or domain sets the transaction note whitelistsender; later mail plugins skipped', async () => {
    await withApp(['whitelist', 'answer mail DENY no senders today', 'probe'], async (t) => {
      const session = await ehloed(t, '203.0.113.1');
      assertReply(await session.client.command('MAIL FROM:<Boss@Partner.example>'), 250);
      assert.equal((await probe(session.client)).transaction.whitelistsender, 1);
      assertReply(await session.client.command('RSET'), 250);
      assertReply(await session.client.command('MAIL FROM:<anyone@trusted.example>'), 250);
      assertReply(await session.client.command('RSET'), 250);
      assertReply(await session.client.command('MAIL FROM:<anyone@sub.trusted.example>'), 550, '5.7.1 no senders today');
      assertReply(await session.client.command('MAIL FROM:<>'), 550, '5.7.1 no senders today');
      assert.equal((await probe(session.client)).transaction.whitelistsender, undefined);
      await quit(session);
    }, { config: CONFIG });
  });

  it('the whitelisted sender is immune to the rcpt policy of the same transaction only', async () => {
    await withApp(['whitelist', 'deny rcpt', 'accept_all'], async (t) => {
      const session = await ehloed(t, '203.0.113.1');
      assertReply(await session.client.command('MAIL FROM:<boss@partner.example>'), 250);
      assertReply(await session.client.command('RCPT TO:<a@b.example>'), 250);
      assertReply(await session.client.command('RSET'), 250);
      assertReply(await session.client.command('MAIL FROM:<other@partner.example>'), 250);
      assertReply(await session.client.command('RCPT TO:<a@b.example>'), 550, '5.7.1 denied by policy');
      await quit(session);
      assertLogged(t, 'skip, whitelisted sender');
    }, { config: CONFIG, plugins });
  });
});

describe('whitelist: whitelistrcpt', () => {
  it('a listed recipient or domain is accepted (OK) and counted in the transaction note whitelistrcpt', async () => {
    await withApp(['whitelist', 'answer rcpt DENY nobody here', 'probe'], async (t) => {
      const session = await ehloed(t, '203.0.113.1');
      assertReply(await session.client.command('MAIL FROM:<x@y.example>'), 250);
      assertReply(await session.client.command('RCPT TO:<postmaster@mx.example.test>'), 250);
      assertReply(await session.client.command('RCPT TO:<anyone@ABUSE.example.test>'), 250);
      assertReply(await session.client.command('RCPT TO:<other@mx.example.test>'), 550, '5.7.1 nobody here');
      assert.equal((await probe(session.client)).transaction.whitelistrcpt, 2);
      await quit(session);
    }, { config: CONFIG });
  });
});

describe('whitelist per_recipient 1', () => {
  it('checks everything at RCPT, with notes only: a whitelisted HELO name accepts no recipient', async () => {
    await withApp(['whitelist per_recipient 1', 'answer connect DENY at connect', 'rcpt_ok', 'probe'], async (t) => {
      const refused = t.connect({ remoteIp: '192.0.2.25' });
      assertReply(await refused.client.reply(), 550, '5.7.1 at connect'); // nothing happens at connect
      await refused.done;
    }, { config: CONFIG });
    await withApp(['whitelist per_recipient 1', 'rcpt_ok', 'probe'], async (t) => {
      const session = await ehloed(t, '203.0.113.1', 'friendly.example.org');
      assertReply(await session.client.command('MAIL FROM:<someone@nowhere.example>'), 250);
      assert.equal((await probe(session.client)).connection.whitelisthelo, undefined, 'nothing at HELO');
      assertReply(await session.client.command('RCPT TO:<victim@elsewhere.example>'), 550);
      assert.equal((await probe(session.client)).connection.whitelisthelo, 1);
      assertReply(await session.client.command('RCPT TO:<anyone@abuse.example.test>'), 250);
      assert.equal((await probe(session.client)).transaction.whitelistrcpt, 1);
      await quit(session);
    }, { config: CONFIG });
    await withApp(['whitelist per_recipient 1', 'deny rcpt', 'probe'], async (t) => {
      const session = await ehloed(t, '192.0.2.25');
      assertReply(await session.client.command('MAIL FROM:<boss@partner.example>'), 250);
      assert.equal((await probe(session.client)).transaction.whitelistsender, undefined, 'nothing at MAIL');
      // Host and sender are whitelisted at RCPT, before the policy plugin listed after whitelist.
      assertReply(await session.client.command('RCPT TO:<a@b.example>'), 450);
      const seen = await probe(session.client);
      assert.equal(seen.connection.whitelisthost, 1);
      assert.equal(seen.transaction.whitelistsender, 1);
      await quit(session);
    }, { config: CONFIG, plugins });
  });

  it('merge 0 uses the recipient settings from the user_config hook only', async () => {
    const userConfig = `import { Plugin, OK, DECLINED } from 'qpsmtpd';
import type { Address, Transaction } from 'qpsmtpd';
export default class UserConfig extends Plugin {
  hook_user_config(_tx: Transaction, address: Address, name: string) {
    return address.user === 'vip' && name === 'whitelistrcpt' ? [OK, ['vip@elsewhere.example']] : DECLINED;
  }
}
`;
    await withApp(['user_cfg', 'whitelist per_recipient 1 merge 0', 'answer rcpt DENY no'], async (t) => {
      const session = await ehloed(t, '203.0.113.1');
      assertReply(await session.client.command('MAIL FROM:<x@y.example>'), 250);
      assertReply(await session.client.command('RCPT TO:<vip@elsewhere.example>'), 250);
      assertReply(await session.client.command('RCPT TO:<postmaster@mx.example.test>'), 250, undefined); // falls back to the global file
      await quit(session);
    }, { config: CONFIG, plugins: { 'user_cfg.ts': userConfig } });
  });
});
