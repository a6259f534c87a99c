import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LoadFailure } from '../../src/app.ts';
import { tempDir, type TestApp } from '../helpers/test-app.ts';
import { eventually, quit, withApp } from './content-support.ts';

const REAL_FORTUNE = '/usr/games/fortune';
const GOODBYE = '2.0.0 mx.example.test closing connection. Have a wonderful day.';
const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));

function script(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return path;
}

/** Greet with `hello` (or not at all), then QUIT: the reply; the connection must be closed after it. */
async function quitAfter(t: TestApp, hello: string | undefined) {
  const session = await t.greeted();
  if (hello !== undefined) assert.equal((await session.client.command(hello)).code, 250);
  const reply = await quit(session);
  assert.ok(session.client.closed);
  return reply;
}

describe('quit_fortune', () => {
  it('with Debian\'s fortune, a HELO client gets a fortune with its 221', { skip: !existsSync(REAL_FORTUNE) && `${REAL_FORTUNE} is not installed` }, async () => {
    await withApp(['quit_fortune'], async (t) => {
      const reply = await quitAfter(t, 'HELO client.example.test');
      assert.equal(reply.code, 221);
      assert.equal(reply.lines[0], '2.0.0 mx.example.test closing connection.');
      assert.ok(reply.lines.length >= 2, reply.raw);
      for (const line of reply.lines.slice(1)) assert.match(line, /^2\.0\.0 {3}\/ /);
    });
  });

  it('EHLO clients and clients that never greeted get the usual goodbye', async () => {
    const fake = script('fortune-ok', 'echo "never shown"');
    await withApp([`quit_fortune ${fake}`], async (t) => {
      assert.deepEqual((await quitAfter(t, 'EHLO client.example.test')).lines, [GOODBYE]);
      assert.deepEqual((await quitAfter(t, undefined)).lines, [GOODBYE]);
    });
  });

  it('runs the program with -s and no shell, each line prefixed "  / "', async () => {
    const fake = script('fortune-args', 'printf "%s|" "$@" > "$0.args"\nprintf "Line one\\n  Line two; \\$HOME\\n"');
    await withApp([`quit_fortune ${fake}`], async (t) => {
      const reply = await quitAfter(t, 'HELO client.example.test');
      assert.equal(reply.code, 221);
      assert.deepEqual(reply.lines, ['2.0.0 mx.example.test closing connection.', '2.0.0   / Line one', '2.0.0   /   Line two; $HOME']);
      assert.equal(readFileSync(`${fake}.args`, 'utf8'), '-s|');
    });
  });

  it('a program that fails is logged, and the usual goodbye sent', async () => {
    const broken = script('fortune-broken', 'exit 3');
    await withApp([`quit_fortune ${broken}`], async (t) => {
      assert.deepEqual((await quitAfter(t, 'HELO client.example.test')).lines, [GOODBYE]);
      assert.ok(t.logs.some((l) => l.includes('quit_fortune') && l.includes(`${broken} failed`)), t.logs.join('\n'));
    });
  });

  it('a program that hangs is killed when the hook runs out of time; the session still ends', async () => {
    const pidFile = join(dir, 'hang.pid');
    const hanging = script('fortune-hang', `echo $$ > ${pidFile}\nexec sleep 30`);
    await withApp([`quit_fortune ${hanging}`], async (t) => {
      const reply = await quitAfter(t, 'HELO client.example.test');
      // The core's 221 (its text is the core's business: it says "plugin timeout" at present).
      assert.equal(reply.code, 221);
      assert.equal(reply.lines.length, 1);
      // (On a very slow machine the program may be killed before it wrote its PID: nothing to check then.)
      if (!existsSync(pidFile)) return;
      const pid = Number(readFileSync(pidFile, 'utf8'));
      await eventually('the program to be killed', () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      });
    }, { plugin_timeout: ['quit_fortune 1'] });
  });

  it('without the program no hook is registered (logged), and QUIT gets the usual reply', async () => {
    await withApp([`quit_fortune ${join(dir, 'no-such-fortune')}`], async (t) => {
      assert.ok(t.logs.some((l) => l.includes('is not installed')), t.logs.join('\n'));
      assert.deepEqual((await quitAfter(t, 'HELO client.example.test')).lines, [GOODBYE]);
    });
  });

  it('more than one argument is a load error', async () => {
    await assert.rejects(withApp(['quit_fortune /a /b'], async () => undefined), LoadFailure);
  });
});
