/**
 * Shared by the tests of examples/plugins: where the examples live, two tiny helper plugins that
 * every mail test needs, and a client that sends one message.
 *
 * Without help a session accepts nothing: RCPT gets 450 unless some plugin answers OK on `rcpt`,
 * and the message gets 451 unless a plugin answers OK on `queue`. The helpers fill those roles;
 * a test puts them into testApp's `plugins` option and names them in config/plugins.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FakeConn, ParsedReply } from '../helpers/fake-conn.ts';

/** The folder of the examples, for config/plugin_dirs. */
export const EXAMPLE_PLUGINS = fileURLToPath(new URL('../../examples/plugins/', import.meta.url));

/** `accept_all`: every recipient is welcome. */
export const ACCEPT_ALL = `
import { Plugin, OK } from 'qpsmtpd';
export default class AcceptAll extends Plugin {
  hook_rcpt() {
    return OK;
  }
}
`;

/** `queue_capture FILE`: "queues" the message by writing it, as it would be queued, to FILE. */
export const QUEUE_CAPTURE = `
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Plugin, OK } from 'qpsmtpd';
import type { Transaction } from 'qpsmtpd';
export default class QueueCapture extends Plugin {
  async hook_queue(tx: Transaction) {
    await pipeline(tx.bodyStream(), createWriteStream(this.args[0]!));
    return [OK, 'captured'];
  }
}
`;

/** A message with the headers check_headers wants; `\n` line ends, as tests write them. */
export function message(body = 'Hello.\n', headers = `From: <sender@example.test>\nDate: ${new Date().toUTCString()}\nSubject: test\n`): string {
  return `${headers}\n${body}`;
}

/**
 * EHLO, MAIL, RCPT and DATA (each must succeed), then the message (line ends made CRLF, dots
 * stuffed) and the final dot. Returns the reply to the final dot.
 */
export async function sendMessage(client: FakeConn, text: string, rcpt = 'someone@example.test'): Promise<ParsedReply> {
  const steps: [string, number][] = [
    ['EHLO client.example.test', 250],
    ['MAIL FROM:<sender@example.test>', 250],
    [`RCPT TO:<${rcpt}>`, 250],
    ['DATA', 354],
  ];
  for (const [command, code] of steps) {
    const reply = await client.command(command);
    assert.equal(reply.code, code, `${command}: ${reply.raw}`);
  }
  client.send(toWire(text) + '.\r\n');
  return client.reply();
}

/** A message as the client sends it after DATA, before the final dot: CRLF line ends, dots stuffed. */
export function toWire(text: string): string {
  return text.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
}

/** QUIT, and wait for the session to end. */
export async function quit(session: { client: FakeConn; done: Promise<void> }): Promise<ParsedReply> {
  const reply = await session.client.command('QUIT');
  await session.done;
  return reply;
}

/** Write an executable shell script `name` into `dir`; returns its path. */
export function shellScript(dir: string, name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return path;
}
