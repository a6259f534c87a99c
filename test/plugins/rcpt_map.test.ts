import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, testApp } from '../helpers/test-app.ts';
import { ENVELOPE_TEST_PLUGINS, envelope, logged, withApp } from '../helpers/envelope-sessions.ts';

const MAP_A = [
  '# map for a.example',
  'me@a.example           OK',
  'You@A.example          OK ',
  'info@a.example         DENY     User not found.',
  'moving@a.example       DENYSOFT Mailbox being moved, try tomorrow',
  'quiet@a.example        DENY',
  'pass@a.example         DECLINED',
  'me@a.example           DENY     the first line for an address wins',
];

async function rcptReplies(t: Parameters<Parameters<typeof withApp>[2]>[0], rcpts: string[]): Promise<{ code: number; text: string }[]> {
  return (await envelope(t, '<sender@example.org>', rcpts)).rcpts;
}

describe('rcpt_map', () => {
  it('answers the recipients of its domain from the map, refusing the unlisted ones', async () => {
    await withApp(['rcpt_map domain A.example file config/map_a', 'answer rcpt DENY next plugin'], { map_a: MAP_A }, async (t) => {
      const [me, you, info, moving, quiet, pass, unknown, other] = await rcptReplies(t, [
        '<ME@a.example>',
        '<you@a.EXAMPLE>',
        '<info@a.example>',
        '<moving@a.example>',
        '<quiet@a.example>',
        '<pass@a.example>',
        '<nobody@a.example>',
        '<me@b.example>',
      ]);
      assert.equal(me!.code, 250);
      assert.doesNotMatch(me!.text, /No such user/, 'OK without a message: the usual text');
      assert.equal(you!.code, 250, 'map addresses are case-insensitive');
      assert.equal(info!.code, 550);
      assert.equal(info!.text, '5.7.1 User not found.');
      assert.equal(moving!.code, 450);
      assert.equal(moving!.text, '4.7.1 Mailbox being moved, try tomorrow');
      assert.equal(quiet!.text, '5.7.1 No such user.');
      assert.equal(pass!.text, '5.7.1 next plugin', 'DECLINED: the next plugin decides');
      assert.equal(unknown!.code, 550);
      assert.equal(unknown!.text, '5.7.1 No such user.', 'the default answer');
      assert.equal(other!.text, '5.7.1 next plugin', 'other domains are not ours');
    });
  });

  it('runs several instances, each with its own domain, map and default', async () => {
    const dir = tempDir('rcpt-map-');
    try {
      const mapB = join(dir, 'map_b');
      writeFileSync(mapB, 'me@b.example OK\n');
      const plugins = ['rcpt_map:0 domain a.example file config/map_a', `rcpt_map:1 domain b.example file ${mapB} default DENYSOFT=Try_again_later`];
      await withApp(plugins, { map_a: MAP_A }, async (t) => {
        const replies = await rcptReplies(t, ['<me@a.example>', '<me@b.example>', '<info@b.example>', '<info@a.example>', '<nobody@a.example>']);
        assert.deepEqual(replies.map((r) => r.code), [250, 250, 450, 550, 550]);
        assert.equal(replies[2]!.text, '4.7.1 Try again later');
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('re-reads a changed map for the next connection; a changed map without valid lines keeps the old one', async () => {
    await withApp(['rcpt_map domain a.example file config/map_a'], { map_a: MAP_A }, async (t) => {
      assert.equal((await rcptReplies(t, ['<new@a.example>']))[0]!.code, 550);
      t.writeConfig('map_a', ['new@a.example OK', 'me@a.example DENY gone now']);
      assert.deepEqual((await rcptReplies(t, ['<new@a.example>', '<me@a.example>'])).map((r) => r.code), [250, 550]);
      assert.ok(logged(t, 'rcpt_map', 'reloaded: 2 addresses').length === 1, t.logs.join('\n'));
      t.writeConfig('map_a', ['# emptied by mistake', 'broken-line']);
      assert.deepEqual((await rcptReplies(t, ['<new@a.example>'])).map((r) => r.code), [250]);
      assert.ok(logged(t, 'rcpt_map', 'has no valid line, keeping the loaded one').length === 1, t.logs.join('\n'));
    });
  });

  it('logs bad map lines with file and line and skips them', async () => {
    const map = ['ok@a.example OK', 'nocode@a.example', 'lower@a.example deny', 'done@a.example DONE'];
    await withApp(['rcpt_map domain a.example file config/map_a'], { map_a: map }, async (t) => {
      const file = join(t.configDir, 'map_a');
      assert.equal(logged(t, `${file}:2`, 'no return code').length, 1, t.logs.join('\n'));
      assert.equal(logged(t, `${file}:3`, '"deny" is not a valid return code').length, 1);
      assert.equal(logged(t, `${file}:4`, '"DONE" is not a valid return code here').length, 1);
      assert.deepEqual((await rcptReplies(t, ['<ok@a.example>', '<nocode@a.example>'])).map((r) => r.code), [250, 550]);
    });
  });

  it('does not load without domain or file, with an empty or missing map, or a bad default', async () => {
    for (const [line, error] of [
      ['rcpt_map file config/map_a', /no domain/],
      ['rcpt_map domain a.example', /no map file/],
      ['rcpt_map domain a.example file config/empty', /empty map file/],
      ['rcpt_map domain a.example file config/missing', /cannot read the map/],
      ['rcpt_map domain a.example file config/map_a default NOPE=x', /not a valid return code/],
      ['rcpt_map domain a.example file', /not "name value" pairs/],
    ] as const) {
      await assert.rejects(
        testApp({ config: { plugins: [line], map_a: MAP_A, empty: '# nothing\n' }, plugins: ENVELOPE_TEST_PLUGINS }),
        (err: Error) => error.test(err.message) || assert.fail(`${line}: ${err.message}`),
      );
    }
  });
});
