/**
 * What the sender and recipient plugin tests share: a probe plugin, a config-hook plugin whose
 * values a test changes on the fly, and short SMTP dialogues through a test app.
 */
import assert from 'node:assert/strict';
import type { Endpoints } from '../../src/session/connection.ts';
import type { FakeConn, ParsedReply } from './fake-conn.ts';
import { TEST_PLUGINS } from './plugin-sources.ts';
import { testApp, type TestApp } from './test-app.ts';

/**
 * `probe [NAME VALUE ...]`: on connect sets those connection notes (`relayclient 1` sets
 * relayClient instead; `tx:NAME VALUE` sets a transaction note at MAIL); the verb XNOTES answers
 * 250 with `{ connection, transaction }` notes as JSON.
 */
const PROBE = `import { Plugin, DECLINED, DONE } from 'qpsmtpd';
import type { PluginHost, Transaction } from 'qpsmtpd';
export default class Probe extends Plugin {
  pairs: [string, string][] = [];
  register(_qp: PluginHost, ...args: string[]) {
    for (let i = 0; i + 1 < args.length; i += 2) this.pairs.push([args[i]!, args[i + 1]!]);
  }
  hook_connect() {
    for (const [name, value] of this.pairs) {
      if (name === 'relayclient') this.connection.relayClient = value === '1';
      else if (!name.startsWith('tx:')) this.connection.notes[name] = value;
    }
    return DECLINED;
  }
  hook_mail(tx: Transaction) {
    for (const [name, value] of this.pairs) if (name.startsWith('tx:')) tx.notes[name.slice(3)] = value;
    return DECLINED;
  }
  hook_unrecognized_command(tx: Transaction, verb: string) {
    if (verb !== 'xnotes') return DECLINED;
    this.qp.respond(250, JSON.stringify({ connection: this.connection.notes, transaction: tx.notes }));
    return DONE;
  }
}
`;

/**
 * \`dyncfg\`: a config hook answering from values a client sets with \`XCFG NAME VALUE|VALUE...\`
 * (\`XCFG NAME\` alone: back to the files); they hold for every later session of the app.
 */
const DYNCFG = `import { Plugin, DECLINED, DONE, OK } from 'qpsmtpd';
import type { Transaction } from 'qpsmtpd';
export default class DynCfg extends Plugin {
  readonly values = new Map<string, string[]>();
  hook_config(_tx: Transaction, name: string) {
    const v = this.values.get(name);
    return v === undefined ? DECLINED : [OK, v];
  }
  hook_unrecognized_command(_tx: Transaction, verb: string, rest: string) {
    if (verb !== 'xcfg') return DECLINED;
    const [name, ...value] = rest.split(' ');
    if (value.length === 0) this.values.delete(name!);
    else this.values.set(name!, value.join(' ').split('|'));
    this.qp.respond(250, 'set');
    return DONE;
  }
}
`;

export const ENVELOPE_TEST_PLUGINS: Readonly<Record<string, string>> = { ...TEST_PLUGINS, 'probe.ts': PROBE, 'dyncfg.ts': DYNCFG };

export async function withApp(
  plugins: string[],
  config: Record<string, string | string[]>,
  fn: (t: TestApp) => Promise<void>,
): Promise<void> {
  const t = await testApp({ config: { plugins, loglevel: '7', ...config }, plugins: ENVELOPE_TEST_PLUGINS });
  try {
    await fn(t);
  } finally {
    await t.cleanup();
  }
}

/** A greeted client that said EHLO (or HELO with `hello: 'HELO'`). */
export async function open(t: TestApp, options: { hello?: 'EHLO' | 'HELO'; endpoints?: Partial<Endpoints> } = {}): Promise<{ client: FakeConn; done: Promise<void> }> {
  const session = await t.greeted({ remoteIp: '198.51.100.7', ...options.endpoints });
  const reply = await session.client.command(`${options.hello ?? 'EHLO'} client.example`);
  assert.equal(reply.code, 250, reply.raw);
  return session;
}

/** QUIT and wait for the end of the session. */
export async function quit(session: { client: FakeConn; done: Promise<void> }): Promise<void> {
  assert.equal((await session.client.command('QUIT')).code, 221);
  await session.done;
}

/** One session: MAIL FROM `from`, then RCPT TO each of `rcpts`; the replies. */
export async function envelope(t: TestApp, from: string, rcpts: string[], options: { endpoints?: Partial<Endpoints> } = {}): Promise<{ mail: ParsedReply; rcpts: ParsedReply[] }> {
  const session = await open(t, options);
  const mail = await session.client.command(`MAIL FROM:${from}`);
  const replies: ParsedReply[] = [];
  for (const rcpt of rcpts) replies.push(await session.client.command(`RCPT TO:${rcpt}`));
  await quit(session);
  return { mail, rcpts: replies };
}

/** The probe's notes. */
export async function notesOf(client: FakeConn): Promise<{ connection: Record<string, unknown>; transaction: Record<string, unknown> }> {
  const reply = await client.command('XNOTES');
  assert.equal(reply.code, 250, reply.raw);
  return JSON.parse(reply.text.replace(/^2\.0\.0 /, '')) as { connection: Record<string, unknown>; transaction: Record<string, unknown> };
}

/** Log lines holding every one of `parts`. */
export function logged(t: TestApp, ...parts: string[]): string[] {
  return t.logs.filter((l) => parts.every((p) => l.includes(p)));
}
