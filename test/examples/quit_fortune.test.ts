import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { tempDir, testApp } from '../helpers/test-app.ts';
import { EXAMPLE_PLUGINS, quit , shellScript } from './support.ts';

const REAL_FORTUNE = '/usr/games/fortune';
const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));

/** An executable shell script in the temp folder. */
const script = (name: string, body: string): string => shellScript(dir, name, body);

/** The reply to QUIT in a session with `quit_fortune [args]` (the connection must close after it), and the log. */
async function quitWith(pluginLine: string) {
  const app = await testApp({ config: { plugin_dirs: [EXAMPLE_PLUGINS], plugins: [pluginLine] } });
  try {
    const session = await app.greeted();
    const reply = await quit(session);
    assert.ok(session.client.closed);
    return Object.assign(reply, { logs: app.logs });
  } finally {
    app.cleanup();
  }
}

test('with the real fortune program, QUIT is answered with a fortune', { skip: !existsSync(REAL_FORTUNE) && `${REAL_FORTUNE} is not installed` }, async () => {
  const reply = await quitWith('quit_fortune');
  assert.equal(reply.code, 221);
  assert.equal(reply.lines[0], '2.0.0 mx.example.test closing connection.');
  assert.ok(reply.lines.length >= 2, reply.raw);
  for (const line of reply.lines.slice(1)) assert.match(line, /^2\.0\.0 {2}\/ /);
});

test('the program named as the argument is run with -s, each line of its output prefixed " / "', async () => {
  const fake = script('fortune', '[ "$1" = "-s" ] || exit 9\nprintf "Line one\\nLine two\\n"');
  const reply = await quitWith(`quit_fortune ${fake}`);
  assert.equal(reply.code, 221);
  assert.deepEqual(reply.lines, ['2.0.0 mx.example.test closing connection.', '2.0.0  / Line one', '2.0.0  / Line two']);
});

test('without the program the plugin declines and the core says goodbye', async () => {
  const reply = await quitWith(`quit_fortune ${join(dir, 'no-such-fortune')}`);
  assert.equal(reply.code, 221);
  assert.deepEqual(reply.lines, ['2.0.0 mx.example.test closing connection. Have a wonderful day.']);
});

test('a program that fails is logged and the plugin declines', async () => {
  const broken = script('broken', 'exit 3');
  const reply = await quitWith(`quit_fortune ${broken}`);
  assert.deepEqual([reply.code, reply.lines], [221, ['2.0.0 mx.example.test closing connection. Have a wonderful day.']]);
  assert.ok(reply.logs.some((line) => line.includes('quit_fortune') && line.includes(`${broken} failed`)), reply.logs.join('\n'));
});
