/**
 * `qpsmtpd test [FILE|DIR ...]`: run plugin tests with `node --test`, with `qpsmtpd` and
 * `qpsmtpd/testing` importable from any folder and TypeScript loaded (setup.mjs beside this file),
 * so a plugin folder outside the project needs nothing installed.
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const TEST_FILE = /\.test\.(ts|mts|js|mjs)$/;

/** A target that is neither a test file nor a folder. */
export class TestTargetError extends Error {}

/** The test files of the targets: files as given, folders searched (not node_modules or dot folders). */
export function findTestFiles(targets: readonly string[], cwd: string): string[] {
  const out: string[] = [];
  for (const target of targets) {
    const path = resolve(cwd, target);
    let stat;
    try {
      stat = statSync(path);
    } catch {
      throw new TestTargetError(`${target}: no such file or folder`);
    }
    if (stat.isDirectory()) out.push(...walk(path));
    else out.push(path);
  }
  return [...new Set(out)];
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(path));
    else if (TEST_FILE.test(entry.name)) out.push(path);
  }
  return out;
}

export interface RunTestsOptions {
  readonly files: readonly string[];
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Extra arguments for `node --test` (`--test-reporter=spec` ...). */
  readonly nodeArgs?: readonly string[];
}

/** Run the files with node's test runner; resolves with its exit code. */
export function runTests(options: RunTestsOptions): Promise<number> {
  // Spelled from the parent folder: in dist/ this code may sit in a chunk (see scripts/build.mjs).
  const setup = new URL('../testing/setup.mjs', import.meta.url).href;
  const args = ['--import', setup, '--test', ...(options.nodeArgs ?? ['--test-reporter=spec']), ...options.files];
  return new Promise((resolvePromise) => {
    // Run as a test runner of its own, even when started from inside another one's test.
    const env = { ...options.env, NODE_TEST_CONTEXT: undefined };
    const child = spawn(process.execPath, args, { cwd: options.cwd, env, stdio: 'inherit' });
    child.on('error', () => resolvePromise(1));
    child.on('exit', (code, signal) => resolvePromise(code ?? (signal ? 1 : 0)));
  });
}
