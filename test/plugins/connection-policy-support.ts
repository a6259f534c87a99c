/**
 * Shared by the tests of the connection and HELO policy plugins (hosts_allow, whitelist,
 * loadcheck, naughty, random_error, connection_time, helo, stunnel).
 */
import assert from 'node:assert/strict';
import type { FakeConn, ParsedReply } from '../helpers/fake-conn.ts';
import { TEST_PLUGINS } from '../helpers/plugin-sources.ts';
import { testApp, type TestApp, type TestSession } from '../helpers/test-app.ts';

/**
 * `probe [NAME VALUE ...]`: at pre-connection sets those connection notes (`relayclient 1` sets
 * relayClient instead). The verb XNOTES answers 250 with JSON: the connection notes, the
 * transaction notes, the client's address and port, and the proxy it came through.
 */
export const PROBE = `import { Plugin, DECLINED, DONE } from 'qpsmtpd';
import type { PluginHost, Transaction } from 'qpsmtpd';
export default class Probe extends Plugin {
  pairs: [string, string][] = [];
  register(_qp: PluginHost, ...args: string[]) {
    for (let i = 0; i + 1 < args.length; i += 2) this.pairs.push([args[i]!, args[i + 1]!]);
  }
  hook_pre_connection() {
    for (const [name, value] of this.pairs) {
      if (name === 'relayclient') this.connection.relayClient = value === '1';
      else this.connection.notes[name] = value;
    }
    return DECLINED;
  }
  hook_unrecognized_command(tx: Transaction, verb: string) {
    if (verb !== 'xnotes') return DECLINED;
    const c = this.connection;
    this.qp.respond(250, JSON.stringify({ connection: c.notes, transaction: tx.notes, remoteIp: c.remoteIp, remotePort: c.remotePort, localIp: c.localIp, localPort: c.localPort, proxiedBy: c.proxiedBy ?? null }));
    return DONE;
  }
}
`;

export interface Probed {
  connection: Record<string, unknown>;
  transaction: Record<string, unknown>;
  remoteIp: string;
  remotePort: number;
  localIp: string;
  localPort: number;
  proxiedBy: string | null;
}

export interface AppOptions {
  readonly config?: Record<string, string | string[]>;
  readonly plugins?: Record<string, string>;
  readonly env?: Record<string, string | undefined>;
}

/** A test app with the test plugins and the probe, loglevel 6 unless given; cleaned up after `fn`. */
export async function withApp(plugins: string[], fn: (t: TestApp) => Promise<void>, options: AppOptions = {}): Promise<void> {
  const t = await testApp({
    config: { plugins, loglevel: '6', ...options.config },
    plugins: { ...TEST_PLUGINS, 'probe.ts': PROBE, ...options.plugins },
    ...(options.env ? { env: options.env } : {}),
  });
  try {
    await fn(t);
  } finally {
    await t.cleanup();
  }
}

/** What the probe reports (XNOTES). */
export async function probe(client: FakeConn): Promise<Probed> {
  const reply = await client.command('XNOTES');
  assert.equal(reply.code, 250, reply.raw);
  return JSON.parse(reply.text.replace(/^2\.0\.0 /, '')) as Probed;
}

/** Greeted and said EHLO. */
export async function ehloed(t: TestApp, remoteIp?: string, name = 'client.example.net'): Promise<TestSession> {
  const session = await t.greeted(remoteIp === undefined ? {} : { remoteIp });
  const reply = await session.client.command(`EHLO ${name}`);
  assert.equal(reply.code, 250, reply.raw);
  return session;
}

/** QUIT and wait for the end of the session. */
export async function quit(session: TestSession): Promise<void> {
  assert.equal((await session.client.command('QUIT')).code, 221);
  await session.done;
}

/** The session ended: the connection is closed and no further reply is pending. */
export async function closed(session: TestSession): Promise<void> {
  await session.done;
  assert.ok(session.client.closed, 'connection closed');
}

export function logged(t: TestApp, text: string | RegExp): boolean {
  return t.logs.some((l) => (typeof text === 'string' ? l.includes(text) : text.test(l)));
}

export function assertLogged(t: TestApp, text: string | RegExp): void {
  assert.ok(logged(t, text), `log should have ${String(text)}:\n${t.logs.join('\n')}`);
}

export function assertReply(reply: ParsedReply, code: number, text?: string | RegExp): void {
  assert.equal(reply.code, code, reply.raw);
  if (typeof text === 'string') assert.equal(reply.text, text, reply.raw);
  else if (text !== undefined) assert.match(reply.text, text);
}

export const MESSAGE = 'Subject: hi\r\nFrom: <a@sender.example>\r\n\r\nbody\r\n.';
