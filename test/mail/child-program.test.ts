/** src/mail/child-program.ts with /bin/sh scripts. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProgram, type ProgramRan, type ProgramRun } from '../../src/mail/child-program.ts';

const ENV = { PATH: '/usr/bin:/bin' };

function ran(run: ProgramRun): ProgramRan {
  if (!run.started) throw new Error(`not started: ${run.error.message}`);
  return run;
}

function alive(pid: number): boolean {
  if (!existsSync(`/proc/${pid}`)) return false;
  return readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] !== 'Z';
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

describe('runProgram', { timeout: 30_000 }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'qpsmtpd-child-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const sh = (script: string, extra: Partial<Parameters<typeof runProgram>[0]> = {}): Promise<ProgramRun> =>
    runProgram({ command: '/bin/sh', args: ['-c', script, 'sh', dir], env: ENV, timeoutMs: 10_000, collect: { 1: 4096, 2: 4096 }, ...extra });

  it('feeds standard input, collects standard output and error, gives the exit code', async () => {
    const run = ran(await sh('cat; echo oops >&2; exit 3', { input: [{ fd: 0, data: () => ['one ', Buffer.from('two'), ''] }] }));
    assert.equal(run.code, 3);
    assert.equal(run.signal, null);
    assert.equal(run.killed, false);
    assert.equal(run.inputError, undefined);
    assert.ok(run.pid > 0);
    assert.equal(run.output(1).toString(), 'one two');
    assert.equal(run.output(2).toString(), 'oops\n');
    assert.equal(run.output(5).length, 0, 'a descriptor not collected');
  });

  it('takes async iterables as input, made only once the program has started', async () => {
    let made = 0;
    const data = (): AsyncIterable<Buffer> => {
      made++;
      return (async function* () {
        yield Buffer.from('a\n');
        yield Buffer.from('b\n');
      })();
    };
    assert.equal(ran(await sh('wc -l', { input: [{ fd: 0, data }] })).output(1).toString().trim(), '2');
    assert.equal(made, 1);
    const missing = await runProgram({ command: join(dir, 'no-such-program'), env: ENV, timeoutMs: 1000, input: [{ fd: 0, data }] });
    assert.equal(missing.started, false);
    assert.equal(!missing.started && (missing.error as NodeJS.ErrnoException).code, 'ENOENT');
    assert.equal(made, 1, 'no input made for a program that did not start');
  });

  it('keeps at most the cap of each output and reads the rest', async () => {
    const run = ran(await sh('head -c 100000 /dev/zero; head -c 5000 /dev/zero >&2', { collect: { 1: 100, 2: 10 } }));
    assert.equal(run.code, 0);
    assert.equal(run.output(1).length, 100);
    assert.equal(run.output(2).length, 10);
  });

  it('gives the program only the environment passed', async () => {
    const run = ran(await sh('env', { env: { ...ENV, ONLY_THIS: 'yes' } }));
    const env = run.output(1).toString();
    assert.match(env, /^ONLY_THIS=yes$/m);
    assert.doesNotMatch(env, /^HOME=/m);
  });

  it('a program that stops reading: the input error is reported, nothing is thrown', async () => {
    const big = Buffer.alloc(1 << 20, 0x61);
    const run = ran(await sh('exit 0', { input: [{ fd: 0, data: () => Array.from({ length: 16 }, () => big) }] }));
    assert.equal(run.code, 0);
    assert.ok(run.inputError instanceof Error, 'input error');
    assert.equal(run.killed, false);
  });

  it('kills the program at the time limit', async () => {
    const started = Date.now();
    const run = ran(await sh('exec sleep 30', { timeoutMs: 200 }));
    assert.ok(Date.now() - started < 5000);
    assert.equal(run.killed, true);
    assert.equal(run.code, null);
    assert.equal(run.signal, 'SIGKILL');
  });

  it('processGroup: what the program started dies with it', async () => {
    const pidFile = join(dir, 'child.pid');
    const run = ran(await sh('sleep 30 & echo $! > "$1/child.pid"; wait', { timeoutMs: 300, processGroup: true }));
    assert.equal(run.killed, true);
    const child = Number(readFileSync(pidFile, 'utf8'));
    await sleep(100);
    assert.equal(alive(child), false, `background sleep ${child} is gone`);
  });

  it('kills the program when the signal aborts, and stops feeding it', async () => {
    const controller = new AbortController();
    async function* slowly(): AsyncGenerator<string> {
      yield 'first\n';
      // Once the program has it (a kill before would lose it), the hook gives up.
      for (let i = 0; i < 200 && !(existsSync(join(dir, 'fed')) && readFileSync(join(dir, 'fed'), 'utf8') !== ''); i++) await sleep(10);
      controller.abort(new Error('hook timed out'));
      yield 'second\n';
    }
    const run = ran(await sh('cat > "$1/fed"; exec sleep 30', { signal: controller.signal, input: [{ fd: 0, data: slowly }] }));
    assert.equal(run.killed, true);
    assert.match(run.inputError?.message ?? '', /hook timed out/);
    assert.equal(readFileSync(join(dir, 'fed'), 'utf8'), 'first\n');
  });

  it('several inputs in order, on other descriptors; others collected (the qmail-queue way)', async () => {
    writeFileSync(join(dir, 'qq.sh'), 'cat > "$1/message"; cat <&1 > "$1/envelope"; printf "Dno thanks" >&6; exit 82\n');
    const run = ran(
      await runProgram({
        command: '/bin/sh',
        args: [join(dir, 'qq.sh'), dir],
        env: ENV,
        timeoutMs: 10_000,
        input: [
          { fd: 0, data: () => ['the message\n'] },
          { fd: 1, data: () => [Buffer.from('Fs@x\0Tr@y\0\0')] },
        ],
        collect: { 2: 100, 6: 100 },
      }),
    );
    assert.equal(run.code, 82);
    assert.equal(run.inputError, undefined);
    assert.equal(readFileSync(join(dir, 'message'), 'utf8'), 'the message\n');
    assert.equal(readFileSync(join(dir, 'envelope'), 'latin1'), 'Fs@x\0Tr@y\0\0');
    assert.equal(run.output(6).toString(), 'Dno thanks');
  });
});
