/** The command line as a process: --help, --version, and usage errors (exit 64, EX_USAGE). */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { cleanupAll, runCli } from '../helpers/daemon.ts';

after(cleanupAll);

const USAGE = /^Usage:\n {2}qpsmtpd \[--config DIR\] \[--listen HOST:PORT \.\.\.\]/m;

describe('command line', { concurrency: 3 }, () => {
  test('--help prints the usage on stdout and exits 0', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, USAGE);
    for (const option of ['--config DIR', '--listen HOST:PORT', '--workers N', '--stdio', '--grace SECONDS', 'check']) {
      assert.ok(r.stdout.includes(option), `usage mentions ${option}`);
    }
    assert.equal(r.stderr, '');
  });

  test('-h is --help, and --help wins over everything else', async () => {
    const r = await runCli(['-h', '--config', '/nonexistent', 'check']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, USAGE);
  });

  test('--version prints the package version', async () => {
    const r = await runCli(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^qpsmtpd \d+\.\d+\.\d+/);
  });

  for (const [what, args, message] of [
    ['an unknown option', ['--frobnicate'], /Unknown option '--frobnicate'/],
    ['an unknown command', ['serve-forever'], /unknown command "serve-forever"/],
    ['a bad --listen', ['--listen', 'localhost'], /invalid listen address "localhost"/],
    ['a bad --workers', ['--workers', 'two'], /--workers must be a whole number/],
    ['a bad --grace', ['--grace', 'soon'], /--grace must be a number/],
    ['--config without its value', ['--config'], /--config/],
  ] as const) {
    test(`${what} exits 64 with the usage on stderr`, async () => {
      const r = await runCli(args);
      assert.equal(r.code, 64, r.stderr);
      assert.match(r.stderr, /^qpsmtpd: /);
      assert.match(r.stderr, message);
      assert.match(r.stderr, USAGE);
      assert.equal(r.stdout, '');
      assert.doesNotMatch(r.stderr, /^\s+at /m);
    });
  }
});
