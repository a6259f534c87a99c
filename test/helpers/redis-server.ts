/**
 * A real redis-server (Debian's package) for the store tests: on 127.0.0.1, a free port, no
 * persistence, its working folder in a temp dir. `stop()` and `start()` again keep the port, so a
 * test can take Redis away under a running daemon and bring it back where the clients reconnect.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REDIS_SERVER = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p));

/** Why the Redis tests cannot run here, or undefined when they can. */
export const redisMissing = REDIS_SERVER === undefined ? 'redis-server is not installed (apt-get install redis-server)' : undefined;

export class RedisServer {
  private child: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'qpsmtpd-redis-'));

  private constructor(readonly port: number) {}

  /** A server on a free port, started and ready. */
  static async start(): Promise<RedisServer> {
    // The port is free when asked; another test could take it before redis binds, so retry.
    for (let attempt = 0; ; attempt++) {
      const server = new RedisServer(await freePort());
      try {
        await server.start();
        return server;
      } catch (err) {
        server.remove();
        if (attempt >= 4) throw err;
      }
    }
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** (Re)start on the same port; resolves once it accepts connections. */
  start(): Promise<void> {
    if (REDIS_SERVER === undefined) return Promise.reject(new Error(redisMissing));
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--loglevel', 'notice', '--daemonize', 'no'];
    const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let output = '';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`redis-server did not get ready in 5 s:\n${output}`)), 5000);
      const fail = (err: Error): void => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(err);
      };
      child.stdout!.setEncoding('utf8');
      child.stdout!.on('data', (s: string) => {
        output += s;
        if (/Ready to accept connections/.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.stderr!.on('data', (s: Buffer) => (output += s.toString()));
      child.on('exit', (code, signal) => fail(new Error(`redis-server exited (${code ?? signal}):\n${output}`)));
    });
  }

  /** Stop the server (SIGTERM, SIGKILL after 3 s); the port stays reserved for `start`. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.running) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }

  /** Stop and remove the working folder. */
  async close(): Promise<void> {
    await this.stop();
    this.remove();
  }

  private remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
