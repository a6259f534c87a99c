/** Shared by the logging plugin tests: a plugin that logs at known levels, sessions, stderr capture. */
import type { TestApp } from '../../helpers/test-app.ts';

/**
 * `chatty`: logs known lines on connect, EHLO, NOOP and QUIT. On EHLO one line at each level from
 * LOGDEBUG to LOGERROR (the LOGERROR one has two lines), and, at the level named by
 * `globalThis.chattyProbeLevel` (if set), an object whose formatting counts itself in
 * `globalThis.chattyFormatted`: the way to see whether the core formatted a line at all.
 */
export const CHATTY = `
import { Plugin, LOGDEBUG, LOGINFO, LOGNOTICE, LOGWARN, LOGERROR } from 'qpsmtpd';
import { inspect } from 'node:util';

export default class Chatty extends Plugin {
  hook_connect() { this.log(LOGINFO, 'connect info'); }
  hook_ehlo(_tx, host) {
    this.log(LOGDEBUG, 'ehlo debug');
    this.log(LOGINFO, 'ehlo info', host);
    this.log(LOGNOTICE, 'ehlo notice');
    this.log(LOGWARN, 'ehlo warn');
    this.log(LOGERROR, 'first line\\nsecond line');
    const level = globalThis.chattyProbeLevel;
    if (level !== undefined) {
      this.log(level, 'probe', { [inspect.custom]() { globalThis.chattyFormatted = (globalThis.chattyFormatted ?? 0) + 1; return 'PROBE'; } });
    }
  }
  hook_noop() { this.log(LOGINFO, 'noop info'); }
  hook_quit() { this.log(LOGINFO, 'quit info'); }
}
`;

export const CHATTY_PLUGINS = { 'chatty.ts': CHATTY } as const;

/** One session: greeting, the commands (each must get a 2xx reply), QUIT, the end. */
export async function runSession(app: TestApp, commands: readonly string[] = ['EHLO client.example']): Promise<void> {
  const { client, done } = await app.greeted();
  for (const command of commands) {
    const reply = await client.command(command);
    if (reply.code >= 300) throw new Error(`${command}: ${reply.raw}`);
  }
  await client.command('QUIT');
  await done;
}

/** The plugin object loaded under `name`. */
export function pluginInstance<T>(app: TestApp, name: string): T {
  const record = app.app.registry.plugins.find((p) => p.name === name);
  if (record === undefined) throw new Error(`plugin ${name} is not loaded`);
  return record.instance as T;
}

/** Capture what is written to process.stderr until `restore()`. */
export function captureStderr(): { readonly text: string; lines(): string[]; restore(): void } {
  const original = process.stderr.write;
  let text = '';
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    const callback = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
    callback?.();
    return true;
  }) as typeof process.stderr.write;
  return {
    get text() {
      return text;
    },
    lines: () => text.split('\n').filter((l) => l !== ''),
    restore: () => {
      process.stderr.write = original;
    },
  };
}

/** Poll until `check` returns a value other than undefined/false, or fail after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Let a setImmediate-scheduled flush run. */
export function nextTurn(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
