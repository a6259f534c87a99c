/**
 * Shared by the tests of the content, misc and logging plugins (headers, loop, content_log, help,
 * quit_fortune, user_config, http_config, logging/adaptive ...): an app with the test plugins, and
 * a client that sends one message.
 */
import assert from 'node:assert/strict';
import type { FakeConn, ParsedReply } from '../helpers/fake-conn.ts';
import { TEST_PLUGINS } from '../helpers/plugin-sources.ts';
import { testApp, type TestApp } from '../helpers/test-app.ts';

/**
 * `probe [NAME VALUE ...]`: on connect sets those connection notes (`relayclient 1` makes the
 * client a relay client); the verb XNOTES answers 250 with the connection notes as JSON; the verb
 * XCONFIG NAME answers 250 with `this.config(NAME)` (the config hook, then the files) as JSON;
 * XUSERCONFIG ADDRESS NAME with the address's config (the user_config hook first).
 */
export const PROBE = `import { Plugin, Address, DECLINED, DONE } from 'qpsmtpd';
import type { PluginHost, Transaction } from 'qpsmtpd';
export default class Probe extends Plugin {
  pairs: [string, string][] = [];
  register(_qp: PluginHost, ...args: string[]) {
    for (let i = 0; i + 1 < args.length; i += 2) this.pairs.push([args[i]!, args[i + 1]!]);
  }
  hook_connect() {
    for (const [name, value] of this.pairs) {
      if (name === 'relayclient') this.connection.relayClient = value === '1';
      else this.connection.notes[name] = value;
    }
    return DECLINED;
  }
  hook_unrecognized_command(tx: Transaction, verb: string, rest: string) {
    if (verb === 'xnotes') {
      this.qp.respond(250, JSON.stringify(this.connection.notes));
      return DONE;
    }
    if (verb === 'xconfig') {
      this.qp.respond(250, JSON.stringify(this.configList(rest)));
      return DONE;
    }
    if (verb === 'xuserconfig') {
      const [path, name] = rest.split(' ');
      const address = tx.recipients.find((r) => r.toString() === path) ?? (tx.sender?.toString() === path ? tx.sender : undefined);
      this.qp.respond(250, JSON.stringify(address ? address.configList(name!) : null));
      return DONE;
    }
    return DECLINED;
  }
}
`;

export const PLUGINS: Readonly<Record<string, string>> = { ...TEST_PLUGINS, 'probe.ts': PROBE };

/** An app with the test plugins (accept_all, queue_capture DIR, probe ...), loglevel 6; cleaned up after `fn`. */
export async function withApp(
  plugins: readonly string[],
  fn: (t: TestApp) => Promise<void>,
  config: Readonly<Record<string, string | readonly string[]>> = {},
): Promise<void> {
  const t = await testApp({ config: { plugins, loglevel: '6', ...config }, plugins: PLUGINS });
  try {
    await fn(t);
  } finally {
    await t.cleanup();
  }
}

/** A message: headers (`\n` line ends), an empty line, the body. */
export function message(headers: string, body = 'Hello.\n'): string {
  return `${headers}\n${body}`;
}

/** The usual good headers: From, To, Subject and a current Date. */
export function goodHeaders(extra = ''): string {
  return `From: <sender@example.test>\nTo: <someone@example.test>\nSubject: test\nDate: ${new Date().toUTCString()}\n${extra}`;
}

/** A message as the client sends it after DATA, before the final dot: CRLF line ends, dots stuffed. */
export function toWire(text: string): string {
  return text.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
}

/**
 * EHLO (unless `hello` is false), MAIL, RCPT and DATA, each of which must succeed, then the
 * message and the final dot. Returns the reply to the final dot.
 */
export async function sendMessage(client: FakeConn, text: string, options: { rcpt?: string; from?: string; hello?: boolean } = {}): Promise<ParsedReply> {
  const steps: [string, number][] = [
    ['MAIL FROM:<' + (options.from ?? 'sender@example.test') + '>', 250],
    [`RCPT TO:<${options.rcpt ?? 'someone@example.test'}>`, 250],
    ['DATA', 354],
  ];
  if (options.hello !== false) steps.unshift(['EHLO client.example.test', 250]);
  for (const [command, code] of steps) {
    const reply = await client.command(command);
    assert.equal(reply.code, code, `${command}: ${reply.raw}`);
  }
  client.send(toWire(text) + '.\r\n');
  return client.reply();
}

/** One session that sends one message and quits; the reply to the final dot. */
export async function sendOne(t: TestApp, text: string, options: { rcpt?: string; from?: string; endpoints?: { remoteIp?: string } } = {}): Promise<ParsedReply> {
  const session = await t.greeted(options.endpoints ?? {});
  const reply = await sendMessage(session.client, text, options);
  await quit(session);
  return reply;
}

/** QUIT, and wait for the session to end. */
export async function quit(session: { client: FakeConn; done: Promise<void> }): Promise<ParsedReply> {
  const reply = await session.client.command('QUIT');
  await session.done;
  return reply;
}

/** The connection notes, through the probe's XNOTES verb. */
export async function notesOf(client: FakeConn): Promise<Record<string, unknown>> {
  const reply = await client.command('XNOTES');
  assert.equal(reply.code, 250, reply.raw);
  return JSON.parse(reply.text.replace(/^2\.0\.0 /, '')) as Record<string, unknown>;
}

/** Poll until `check` gives something other than undefined/false, or fail after `timeoutMs`. */
export async function eventually<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
