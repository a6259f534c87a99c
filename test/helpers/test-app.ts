/**
 * The project's own tests on top of the plugin author's kit (qpsmtpd/testing, src/testing/): an App
 * on a throw-away config directory, and sessions on FakeConns. Config files and plugin sources are
 * given as object literals. Unlike `testServer`, nothing is added to the plugins (no capturing
 * queue), and `logs` holds what the daemon would have written to stderr.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { App } from '../../src/app.ts';
import type { Endpoints } from '../../src/session/connection.ts';
import { testServer, type TestServer } from '../../src/testing/index.ts';
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
  readonly app: App;
  readonly root: string;

  constructor(readonly server: TestServer) {
    this.logs = server.stderr;
    this.app = server.app;
    this.root = server.root;
  }

  get configDir(): string {
    return this.server.configDir;
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
    this.server.writeConfig(name, content);
  }

  /** End every session still open (421), shut the plugins down, remove the folder. */
  async cleanup(): Promise<void> {
    await this.server.close();
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** A temporary qpsmtpd folder (config/, plugins/, spool) and an App loaded from it. */
export async function testApp(options: TestAppOptions = {}): Promise<TestApp> {
  const server = await testServer({
    ...(options.config ? { config: options.config } : {}),
    ...(options.plugins ? { pluginFiles: options.plugins } : {}),
    ...(options.env ? { env: options.env } : {}),
    queue: 'off',
    version: '0.0.0-test',
    captureLogs: false,
  });
  return new TestApp(server);
}

/** Make a temporary folder (removed by the caller). */
export function tempDir(prefix = 'qpsmtpd-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}
