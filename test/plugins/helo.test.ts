import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { tempDir, testApp, type TestApp } from '../helpers/test-app.ts';
import { MESSAGE, assertLogged, assertReply, closed, probe, quit, withApp } from './connection-policy-support.ts';
import { startDnsServer, type TestDnsServer } from '../../src/testing/dns-server.ts';
import { DNS_TIMEOUT_S, timed } from './dns-support.ts';

let dns: TestDnsServer;
before(async () => {
  dns = await startDnsServer({
    records: [
      ['mx.good.example', 'A', '192.0.2.10'],
      ['mx-1.good.example', 'A', '192.0.2.10'],
      ['10.2.0.192.in-addr.arpa', 'PTR', 'mx.good.example'],
      // the same network, another host: a forward network match
      ['pool.good.example', 'A', '192.0.2.99'],
      // a name that exists without addresses
      ['noaddr.example', 'TXT', 'nothing here'],
      // IPv6 client with matching forward and reverse DNS
      ['mx6.good.example', 'AAAA', '2001:db8::10'],
      ['0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa', 'PTR', 'mx6.good.example'],
      // 192.0.2.20 reverses to a name in another domain
      ['20.2.0.192.in-addr.arpa', 'PTR', 'host.elsewhere.example'],
      ['other.unrelated.example', 'A', '198.51.100.50'],
      ['sibling.good.example', 'A', '198.51.100.51'],
    ],
    silent: ['slow.example', '*.slow.example', '30.2.0.192.in-addr.arpa'],
  });
});
after(() => dns.close());

const BADHELO = [
  '# qpsmtpd sample entries',
  'aol.com',
  'Yahoo.com',
  '^mail\\d+\\.spam\\.example$',
  '/^dyn-[0-9]+\\.isp\\.example$/',
  '\\Appp[[:digit:]]+\\.dial\\.example\\z',
  '[192.0.2.1]',
  'rude.example go away, you know why',
  'bad(regex*',
];

function app(plugins: string[], fn: (t: TestApp) => Promise<void>, config: Record<string, string | string[]> = {}): Promise<void> {
  return withApp(plugins, fn, { config: { badhelo: BADHELO, dns_servers: dns.address, dns_timeout: String(DNS_TIMEOUT_S), dns_tries: '1', ...config } });
}

/** EHLO `name` from `ip`: the reply, and the session. */
async function ehlo(t: TestApp, name: string, ip = '192.0.2.10', verb = 'EHLO') {
  const session = await t.greeted({ remoteIp: ip });
  const reply = await session.client.command(`${verb} ${name}`);
  return { session, reply };
}

async function accepted(t: TestApp, name: string, ip?: string, verb?: string): Promise<void> {
  const { session, reply } = await ehlo(t, name, ip, verb);
  assertReply(reply, 250);
  await quit(session);
}

async function refused(t: TestApp, name: string, text: string, ip?: string): Promise<void> {
  const { session, reply } = await ehlo(t, name, ip);
  assertReply(reply, 550, `5.7.1 ${text}`);
  await closed(session);
}

describe('helo: badhelo', () => {
  it('an exact entry (any case) is refused with 550, and the connection closed (reject_type disconnect)', async () => {
    await app(['helo'], async (t) => {
      await refused(t, 'yahoo.com', 'I do not believe you are yahoo.com.');
      await refused(t, 'AOL.com', 'I do not believe you are aol.com.');
      assertLogged(t, 'helo: fail, in badhelo');
      assertLogged(t, 'karma -1 (-1)');
    });
  });

  it('HELO is checked as EHLO is', async () => {
    await app(['helo'], async (t) => {
      const { session, reply } = await ehlo(t, 'yahoo.com', undefined, 'HELO');
      assertReply(reply, 550);
      await closed(session);
    });
  });

  it('patterns: bare (Perl) regular expressions and /re/', async () => {
    await app(['helo'], async (t) => {
      await refused(t, 'mail42.spam.example', 'I do not believe you are mail42.spam.example.');
      await refused(t, 'dyn-1234.ISP.example', 'I do not believe you are dyn-1234.isp.example.');
      await accepted(t, 'mail.spam.example');
      await accepted(t, 'dyn-x.isp.example');
      await refused(t, 'ppp7.dial.example', 'I do not believe you are ppp7.dial.example.'); // Perl syntax: \A, [[:digit:]], \z
      await accepted(t, 'pppx.dial.example');
      assertLogged(t, 'badhelo pattern match (^mail\\d+\\.spam\\.example$)');
    });
  });

  it('a leading ! negates a pattern: a name NOT matching it is refused', async () => {
    await app(['helo'], async (t) => {
      await refused(t, 'nodots', 'I do not believe you are nodots.');
      await accepted(t, 'has.dots');
    }, { badhelo: ['!\\.'] });
    await app(['helo'], async (t) => {
      await refused(t, 'mx.example.org', 'I do not believe you are mx.example.org.');
      await accepted(t, 'mx.example');
    }, { badhelo: ['!/\\.example$/'] });
  });

  it('an entry with a reason replies with the reason', async () => {
    await app(['helo'], async (t) => {
      await refused(t, 'rude.example', 'go away, you know why');
    });
  });

  it('[192.0.2.1] is an exact entry, not a character class; a broken pattern is skipped with a warning', async () => {
    await app(['helo'], async (t) => {
      await refused(t, '[192.0.2.1]', 'I do not believe you are [192.0.2.1].', '192.0.2.1');
      await accepted(t, 'host2.example'); // would match the class [192.0.2.1]
      await accepted(t, 'bad(regex.example');
      assertLogged(t, 'badhelo: "bad(regex*" is no valid regular expression');
    });
  });

  it('other names pass (log: pass), and the client is served', async () => {
    await app(['helo', 'accept_all', 'answer queue OK queued'], async (t) => {
      const { session, reply } = await ehlo(t, 'mx.good.example');
      assertReply(reply, 250);
      assertReply(await session.client.command('MAIL FROM:<a@good.example>'), 250);
      await quit(session);
      assertLogged(t, 'helo: pass');
    });
  });
});

describe('helo: the local checks of policy lenient', () => {
  it('invalid_localhost: "localhost" only from the loopback addresses', async () => {
    await app(['helo'], async (t) => {
      await refused(t, 'localhost', 'You are not localhost');
      await refused(t, 'LocalHost', 'You are not localhost', '2001:db8::5');
      await accepted(t, 'localhost', '127.0.0.1');
      await accepted(t, 'localhost', '127.3.2.1');
      await accepted(t, 'localhost', '::1');
      await accepted(t, 'localhost', '::ffff:127.0.0.1');
    });
  });

  it('is_forged_literal: an address literal must be the client\'s own address', async () => {
    await app(['helo'], async (t) => {
      await refused(t, '[192.0.2.99]', 'Forged IPs not accepted here');
      await refused(t, '[IPv6:2001:db8::99]', 'Forged IPs not accepted here', '2001:db8::1');
      await accepted(t, '[192.0.2.10]');
      await accepted(t, '[192.0.2.10]', '::ffff:192.0.2.10');
      await accepted(t, '[IPv6:2001:DB8:0::1]', '2001:db8::1');
      assertLogged(t, 'fail, forged IP literal');
    });
  });

  it('is_plain_ip: a bare address is no HELO name (255 in it too)', async () => {
    await app(['helo'], async (t) => {
      await refused(t, '192.0.2.10', 'Plain IP is invalid HELO hostname (RFC 2821)');
      await refused(t, '192.168.255.1', 'Plain IP is invalid HELO hostname (RFC 2821)');
      await refused(t, '2001:db8::1', 'Plain IP is invalid HELO hostname (RFC 2821)', '2001:db8::1');
    });
  });

  it('lenient does not check FQDNs nor literals', async () => {
    await app(['helo policy lenient'], async (t) => {
      await accepted(t, 'workstation');
      await accepted(t, 'under_score.example');
      await accepted(t, '[192.0.2.10]');
    }, { badhelo: [] });
  });
});

describe('helo: policy rfc and strict', () => {
  it('rfc: is_not_fqdn refuses names without a dot or with characters no host name has', async () => {
    await app(['helo policy rfc'], async (t) => {
      await refused(t, 'workstation', 'HELO name is not fully qualified. Read RFC 2821');
      await refused(t, 'under_score.example', 'HELO name contains invalid FQDN characters. Read RFC 1035');
      await accepted(t, 'mx-1.good.example');
      await accepted(t, '[192.0.2.10]'); // a literal is no FQDN and needs none
    }, { badhelo: [] });
  });

  it('strict: an address literal is refused even when it is the client\'s own', async () => {
    await app(['helo policy strict'], async (t) => {
      await refused(t, '[192.0.2.10]', 'RFC 2821 allows an address literal, but we do not');
      await refused(t, 'workstation', 'HELO name is not fully qualified. Read RFC 2821');
      await accepted(t, 'mx.good.example');
    }, { badhelo: [] });
  });
});

describe('helo: the DNS checks', () => {
  it('no_forward_dns: a name that does not exist, or has no address, is refused (rfc)', async () => {
    await app(['helo policy rfc'], async (t) => {
      await refused(t, 'nowhere.example', 'HELO hostname does not exist');
      await refused(t, 'noaddr.example', 'HELO hostname did not resolve');
      assertLogged(t, 'helo: fail, no such host');
      assertLogged(t, 'helo: fail, no forward DNS');
    }, { badhelo: [] });
  });

  it('no_reverse_dns: a client without PTR is refused (rfc), whatever its name', async () => {
    await app(['helo policy rfc'], async (t) => {
      await refused(t, 'mx.good.example', 'no rDNS for 192.0.2.11', '192.0.2.11');
      await refused(t, 'mx.good.example', 'no rDNS for 2001:db8::11', '2001:db8::11');
    }, { badhelo: [] });
  });

  it('forward and reverse matches set the notes helo_forward_match and helo_reverse_match (IPv4 and IPv6)', async () => {
    await app(['helo policy strict', 'probe'], async (t) => {
      for (const [name, ip] of [['mx.good.example', '192.0.2.10'], ['mx6.good.example', '2001:db8::10']] as const) {
        const { session, reply } = await ehlo(t, name, ip);
        assertReply(reply, 250);
        const notes = (await probe(session.client)).connection;
        assert.equal(notes['helo_forward_match'], 1);
        assert.equal(notes['helo_reverse_match'], 1);
        assert.equal(notes['karma'], 1);
        await quit(session);
      }
      // forward network match only (same /24), and reverse domain match only (same domain)
      let { session, reply } = await ehlo(t, 'pool.good.example', '192.0.2.20');
      assertReply(reply, 250);
      let notes = (await probe(session.client)).connection;
      assert.equal(notes['helo_forward_match'], 1);
      assert.equal(notes['helo_reverse_match'], undefined);
      await quit(session);
      ({ session, reply } = await ehlo(t, 'sibling.good.example', '192.0.2.10'));
      assertReply(reply, 250);
      notes = (await probe(session.client)).connection;
      assert.equal(notes['helo_forward_match'], undefined);
      assert.equal(notes['helo_reverse_match'], 1);
      await quit(session);
      assertLogged(t, 'forward network match');
      assertLogged(t, 'reverse domain match');
    }, { badhelo: [] });
  });

  it('no_matching_dns (strict): neither the name\'s addresses nor the client\'s PTR match', async () => {
    await app(['helo policy strict'], async (t) => {
      await refused(t, 'other.unrelated.example', 'That HELO hostname fails FCrDNS', '192.0.2.20');
    }, { badhelo: [] });
    await app(['helo policy rfc'], async (t) => {
      await accepted(t, 'other.unrelated.example', '192.0.2.20'); // rfc does not ask for a match
    }, { badhelo: [] });
  });

  it('a lookup that times out skips the check (and no_matching_dns) within the DNS time-out', async () => {
    await app(['helo policy strict'], async (t) => {
      const ms = await timed(() => accepted(t, 'mx.slow.example', '192.0.2.30'));
      assert.ok(ms < DNS_TIMEOUT_S * 2000 + 1500, `took ${ms} ms`);
      assertLogged(t, 'skip, forward lookup of mx.slow.example failed (ETIMEOUT)');
      assertLogged(t, 'skip, reverse lookup of 192.0.2.30 failed (ETIMEOUT)');
      assertLogged(t, 'skip, no_matching_dns after a failed lookup');
    }, { badhelo: [] });
  });

  it('lenient asks no DNS at all', async () => {
    await app(['helo'], async (t) => {
      const before = dns.queries.length;
      await accepted(t, 'nowhere.example', '192.0.2.11');
      assert.equal(dns.queries.length, before);
    }, { badhelo: [] });
  });
});

describe('helo: reject and reject_type', () => {
  it('reject_type perm: 550, and the session goes on', async () => {
    await app(['helo reject_type perm'], async (t) => {
      const { session, reply } = await ehlo(t, 'yahoo.com');
      assertReply(reply, 550, '5.7.1 I do not believe you are yahoo.com.');
      assertReply(await session.client.command('EHLO mx.good.example'), 250);
      await quit(session);
    });
  });

  it('reject_type temp: 450; temp_disconnect: 421 and closed', async () => {
    await app(['helo reject_type temp'], async (t) => {
      const { session, reply } = await ehlo(t, 'yahoo.com');
      assertReply(reply, 450, '4.7.1 I do not believe you are yahoo.com.');
      await quit(session);
    });
    await app(['helo reject_type temp_disconnect'], async (t) => {
      const { session, reply } = await ehlo(t, 'yahoo.com');
      assertReply(reply, 421, '4.7.1 I do not believe you are yahoo.com.');
      await closed(session);
    });
  });

  it('reject 0: only logged; the client is greeted', async () => {
    await app(['helo reject 0'], async (t) => {
      await accepted(t, 'yahoo.com');
      assertLogged(t, 'helo: fail, tolerated, in badhelo');
    });
  });

  it('reject naughty: the naughty plugin refuses later, with helo\'s message and reject_type', async () => {
    await app(['helo reject naughty reject_type perm', 'naughty reject rcpt', 'accept_all', 'probe'], async (t) => {
      const { session, reply } = await ehlo(t, 'yahoo.com');
      assertReply(reply, 250);
      assert.equal((await probe(session.client)).connection.naughty, '(helo) I do not believe you are yahoo.com.');
      assertReply(await session.client.command('MAIL FROM:<a@b.example>'), 250);
      assertReply(await session.client.command('RCPT TO:<c@d.example>'), 550, '5.7.1 (helo) I do not believe you are yahoo.com.');
      await quit(session); // perm: the session goes on
    });
  });

  it('relay clients and whitelisted hosts are not checked', async () => {
    await app(['relay', 'whitelist', 'helo'], async (t) => {
      await accepted(t, 'yahoo.com', '192.0.2.10');
      await accepted(t, 'localhost', '198.51.100.9');
      await refused(t, 'yahoo.com', 'I do not believe you are yahoo.com.', '203.0.113.1');
      assertLogged(t, 'skip, relay client');
      assertLogged(t, 'skip, whitelisted host');
    }, { relayclients: ['192.0.2.10'], whitelisthosts: ['198.51.100.9'] });
  });
});

describe('helo: X-HELO', () => {
  it('puts X-HELO with the name on top of each message, replacing one the client sent', async () => {
    const queue = join(tempDir(), 'queue');
    await withApp(['helo', 'accept_all', `queue_capture ${queue}`], async (t) => {
      const { session } = await ehlo(t, 'Mx.Good.Example');
      assertReply(await session.client.command('MAIL FROM:<a@good.example>'), 250);
      assertReply(await session.client.command('RCPT TO:<b@example.test>'), 250);
      assertReply(await session.client.command('DATA'), 354);
      assertReply(await session.client.command('X-HELO: forged.example\r\n' + MESSAGE), 250);
      await quit(session);
      const files = readdirSync(queue);
      assert.equal(files.length, 1);
      const text = readFileSync(join(queue, files[0]!), 'utf8');
      assert.match(text, /^X-HELO: Mx\.Good\.Example\r\n/);
      assert.doesNotMatch(text, /forged\.example/);
    });
    rmSync(dirname(queue), { recursive: true, force: true });
  });
});

describe('helo: loading', () => {
  it('loads under its old name check_spamhelo', async () => {
    await app(['check_spamhelo'], async (t) => {
      await refused(t, 'yahoo.com', 'I do not believe you are yahoo.com.');
      await accepted(t, 'mx.good.example');
    });
  });

  it('refuses to load with an unknown policy or reject_type, or an odd argument list', async () => {
    for (const args of ['policy paranoid', 'reject_type never', 'policy', 'timeout soon']) {
      await assert.rejects(testApp({ config: { plugins: [`helo ${args}`] } }), /helo/);
    }
  });
});
