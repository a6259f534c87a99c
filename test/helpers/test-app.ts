/**
 * An App on a throw-away config directory, and sessions on FakeConns: the `Test::Qpsmtpd` of this
 * project. Config files and plugin sources are given as object literals.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App } from '../../src/app.ts';
import type { Endpoints } from '../../src/session/connection.ts';
import { FakeConn } from './fake-conn.ts';

export const BUNDLED_PLUGINS = fileURLToPath(new URL('../../plugins/', import.meta.url));

export interface TestAppOptions {
  /** Files of the config directory: name to content (an array is one line per entry). */
  readonly config?: Readonly<Record<string, string | readonly string[]>>;
  /** Plugin sources for the plugins/ folder beside the config dir: `name.ts` to source. */
  readonly plugins?: Readonly<Record<string, string>>;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export interface TestSession {
  readonly client: FakeConn;
  /** Resolves when the session has ended. */
  readonly done: Promise<void>;
}

export class TestApp {
  /** Log lines the app would have written to stderr. */
  readonly logs: string[];

  constructor(
    readonly app: App,
    readonly root: string,
    logs: string[],
  ) {
    this.logs = logs;
  }

  get configDir(): string {
    return join(this.root, 'config');
  }

  /** Start a session as a client from `endpoints` (default 192.0.2.10 -> 127.0.0.1:25). */
  connect(endpoints: Partial<Endpoints> = {}): TestSession {
    const client = new FakeConn(endpoints);
    return { client, done: this.app.handle(client) };
  }

  /** Connect and read the greeting; fails unless it is a 220. */
  async greeted(endpoints: Partial<Endpoints> = {}): Promise<TestSession> {
    const session = this.connect(endpoints);
    const greeting = await session.client.reply();
    if (greeting.code !== 220) throw new Error(`expected a 220 greeting, got ${greeting.raw}`);
    return session;
  }

  /** Write (or overwrite) a config file. */
  writeConfig(name: string, content: string | readonly string[]): void {
    writeFile(join(this.configDir, name), content);
  }

  /** End every session still open (421) and remove the folder. */
  async cleanup(): Promise<void> {
    await this.app.stop(0);
    rmSync(this.root, { recursive: true, force: true });
  }
}

function writeFile(path: string, content: string | readonly string[]): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, typeof content === 'string' ? content : content.join('\n') + '\n');
}

/** A temporary qpsmtpd folder (config/, plugins/, spool) and an App loaded from it. */
export async function testApp(options: TestAppOptions = {}): Promise<TestApp> {
  const root = mkdtempSync(join(tmpdir(), 'qpsmtpd-test-'));
  const files: Record<string, string | readonly string[]> = {
    me: 'mx.example.test',
    spool_dir: join(root, 'spool'),
    ...options.config,
  };
  for (const [name, content] of Object.entries(files)) writeFile(join(root, 'config', name), content);
  for (const [name, source] of Object.entries(options.plugins ?? {})) writeFile(join(root, 'plugins', name), source);
  const logs: string[] = [];
  try {
    const app = await App.load({
      configDir: join(root, 'config'),
      env: options.env ?? {},
      version: '0.0.0-test',
      bundledPluginDir: BUNDLED_PLUGINS,
      writeStderr: (line) => logs.push(line),
    });
    return new TestApp(app, root, logs);
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
}

/** Make a temporary folder (removed by the caller). */
export function tempDir(prefix = 'qpsmtpd-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}
