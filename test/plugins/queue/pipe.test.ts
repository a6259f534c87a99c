/**
 * queue/pipe with real programs: a shell script that saves what it was given (stdin, arguments,
 * environment) and exits as told, and Postfix's own sendmail(1) feeding a real Postfix started by
 * the test (pickup -> cleanup -> qmgr -> virtual -> Maildir).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { testApp, type TestApp } from '../../helpers/test-app.ts';
import { Postfix, afterLine, lf, openTempDir, send, sleep, tricky, waitForMessage } from './support.ts';

/** deliver.sh OUTDIR [ARG...]: saves stdin, "$@" and the environment; exits $EXIT_WITH (from a file). */
const SCRIPT = `#!/bin/sh
out="$1"; shift
n=$(date +%s%N)
cat > "$out/$n.msg"
printf '%s\\n' "$@" > "$out/$n.args"
env | sort > "$out/$n.env"
printf '%s' "$RECIPIENTS" > "$out/$n.rcpts"
echo $$ > "$out/$n.pid"
if [ -f "$out/sleep" ]; then sleep "$(cat "$out/sleep")"; fi
if [ -f "$out/say" ]; then cat "$out/say"; fi
if [ -f "$out/exit" ]; then exit "$(cat "$out/exit")"; fi
echo "id-$n"
exit 0
`;

async function withPipe(args: string, fn: (t: TestApp) => Promise<void>, config: Record<string, string> = {}): Promise<void> {
  const t = await testApp({ config: { plugins: ['rcpt_ok', `queue/pipe ${args}`], rcpthosts: ['example.com'], ...config }, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
  try {
    await fn(t);
  } finally {
    await t.cleanup();
  }
}

describe('queue/pipe', { timeout: 60_000 }, () => {
  let dir: string;
  let out: string;
  let script: string;
  const runs = (ext: string): string[] => {
    return readdirSync(out).filter((n) => n.endsWith(ext)).sort().map((n) => readFileSync(join(out, n), 'utf8'));
  };
  const reset = (): void => {
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out);
  };

  before(() => {
    dir = openTempDir('qpsmtpd-pipe-');
    out = join(dir, 'out');
    script = join(dir, 'deliver.sh');
    writeFileSync(script, SCRIPT, { mode: 0o755 });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('gives the message on stdin (LF line ends), placeholders as arguments, the envelope in the environment', async () => {
    reset();
    const message = tricky('pipe test', 'pipe-1@origin.example');
    await withPipe(`${script} ${out} -f {sender} -- {recipients}`, async (t) => {
      const reply = await send(t, { to: ['<user@example.com>', '<other@example.com>'], message });
      assert.equal(reply.code, 250, reply.raw);
      assert.match(reply.text, /^2\.0\.0 Queued! id-\d+$/);
    });
    const [msg] = runs('.msg');
    const stdin = Buffer.from(msg!, 'utf8');
    assert.ok(!stdin.includes(0x0d));
    assert.match(msg!, /^Received: from client\.example \(\[192\.0\.2\.10\]\)\n/);
    assert.ok(stdin.subarray(stdin.length - lf(message).length).equals(lf(message)));
    assert.deepEqual(runs('.args'), ['-f\nsender@origin.example\n--\nuser@example.com\nother@example.com\n']);
    const env = runs('.env')[0]!;
    assert.match(env, /^SENDER=sender@origin\.example$/m);
    assert.deepEqual(runs('.rcpts'), ['user@example.com\nother@example.com']);
    assert.match(env, /^REMOTE_IP=192\.0\.2\.10$/m);
    assert.match(env, /^HELO=client\.example$/m);
    assert.match(env, /^SIZE=\d+$/m);
    assert.doesNotMatch(env, /^RECIPIENT=/m);
  });

  it('per_recipient: one run per recipient with RECIPIENT and {recipient}; crlf keeps CRLF', async () => {
    reset();
    await withPipe(`per_recipient crlf ${script} ${out} {recipient}`, async (t) => {
      const reply = await send(t, { from: '<>', to: ['<user@example.com>', '<other@example.com>'], message: tricky('per rcpt', 'pipe-2@origin.example') });
      assert.equal(reply.code, 250, reply.raw);
      assert.equal(reply.text, '2.0.0 Queued! (2 deliveries)');
    });
    assert.deepEqual(runs('.args'), ['user@example.com\n', 'other@example.com\n']);
    const envs = runs('.env');
    assert.match(envs[0]!, /^RECIPIENT=user@example\.com$/m);
    assert.match(envs[1]!, /^RECIPIENT=other@example\.com$/m);
    assert.match(envs[0]!, /^SENDER=$/m);
    assert.ok(runs('.msg')[0]!.includes('\r\n.a line that starts with a dot\r\n'));
  });

  it('exit 100 is a 5xx, other codes a 4xx; the first output line is the text', async () => {
    for (const [code, say, reply, text] of [
      ['100', 'no such user here\n', 552, '5.3.0 no such user here'],
      ['100', '', 552, '5.3.0 Delivery program refused the message'],
      ['75', '4.2.2 mailbox full\n', 452, '4.2.2 mailbox full'],
      ['111', '', 452, '4.3.0 Delivery program failed, try again later'],
    ] as const) {
      reset();
      writeFileSync(join(out, 'exit'), code);
      if (say !== '') writeFileSync(join(out, 'say'), say);
      await withPipe(`${script} ${out}`, async (t) => {
        const r = await send(t, { to: ['<user@example.com>'], message: tricky('exit', `pipe-exit-${code}@origin.example`) });
        assert.equal(r.code, reply, `${code}: ${r.raw}`);
        assert.equal(r.text, text);
      });
    }
  });

  it('kills the program and what it started after timeout=SECONDS: 4xx', async () => {
    reset();
    writeFileSync(join(out, 'sleep'), '30');
    await withPipe(`timeout=1 ${script} ${out}`, async (t) => {
      const started = Date.now();
      const r = await send(t, { to: ['<user@example.com>'], message: tricky('slow', 'pipe-slow@origin.example') });
      assert.equal(r.code, 452, r.raw);
      assert.equal(r.text, '4.3.0 Delivery program timed out, try again later');
      assert.ok(Date.now() - started < 5000);
    });
    const pid = Number(runs('.pid')[0]);
    await sleep(100);
    assert.ok(!existsSync(`/proc/${pid}`) || readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] === 'Z', `script ${pid} is gone`);
  });

  it('an address starting with "-" is never passed where it would be an option', async () => {
    reset();
    await withPipe(`${script} ${out} {recipients}`, async (t) => {
      const r = await send(t, { to: ['<-oQ/tmp/x@example.com>'], message: tricky('dash', 'pipe-dash@origin.example') });
      assert.equal(r.code, 552, r.raw);
    });
    assert.deepEqual(runs('.args'), []);
    await withPipe(`${script} ${out} -- {recipients}`, async (t) => {
      assert.equal((await send(t, { to: ['<-oQ/tmp/x@example.com>'], message: tricky('dash', 'pipe-dash2@origin.example') })).code, 250);
    });
    assert.deepEqual(runs('.args'), ['--\n-oQ/tmp/x@example.com\n']);
  });

  it('a program that cannot be run is a 4xx; bad arguments fail at load time', async () => {
    await withPipe('/nonexistent/program', async (t) => {
      const r = await send(t, { to: ['<user@example.com>'], message: tricky('missing', 'pipe-missing@origin.example') });
      assert.equal(r.code, 452, r.raw);
    });
    await assert.rejects(testApp({ config: { plugins: ['queue/pipe'] } }), /no program/);
    await assert.rejects(testApp({ config: { plugins: ['queue/pipe sendmail -t'] } }), /not an absolute path/);
    await assert.rejects(testApp({ config: { plugins: ['queue/pipe /bin/cat {recipient}'] } }), /needs per_recipient/);
    await assert.rejects(testApp({ config: { plugins: ['queue/pipe /bin/cat x{recipients}'] } }), /argument of its own/);
  });

  describe("with Postfix's sendmail into a real Postfix", () => {
    let postfix: Postfix;
    before(async () => {
      postfix = await Postfix.start();
    });
    after(async () => {
      await postfix?.stop();
    });

    it('sendmail -i -f {sender} -- {recipients}: delivered byte-exact', async () => {
      const message = tricky('sendmail', 'pipe-sendmail@origin.example');
      await withPipe(`/usr/sbin/sendmail -C ${postfix.configDir} -i -f {sender} -- {recipients}`, async (t) => {
        const r = await send(t, { to: ['<user@example.com>', '<other@example.com>'], message });
        assert.equal(r.code, 250, r.raw);
      });
      for (const user of ['user', 'other']) {
        const content = await waitForMessage(postfix.maildir(user), 'pipe-sendmail@origin.example');
        assert.match(content.toString('utf8'), /^Return-Path: <sender@origin\.example>\n/);
        const ours = afterLine(content, 'Received: from client.example ([192.0.2.10])');
        assert.ok(ours.subarray(ours.length - lf(message).length).equals(lf(message)), ours.toString('utf8'));
      }
    });
  });
});
