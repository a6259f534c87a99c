/** Loading plugins: config/plugins lines, the search path, instances, and the errors with file and line. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LoadFailure } from '../../src/app.ts';
import { parsePluginLines } from '../../src/plugins/plugins-file.ts';
import { testApp, tempDir } from '../helpers/test-app.ts';

/** `tagger TAG`: answers rcpt with DENY and its tag, so a test can see which plugin and instance ran. */
const tagger = (where: string): string => `import { Plugin, DENY } from 'qpsmtpd';
import type { PluginHost } from 'qpsmtpd';
export default class Tagger extends Plugin {
  tag = '';
  register(_qp: PluginHost, tag = 'none') { this.tag = tag; }
  hook_rcpt() { return [DENY, '${where} ' + this.name + ' ' + this.tag]; }
}
`;

async function loadProblems(options: Parameters<typeof testApp>[0]): Promise<string[]> {
  try {
    const t = await testApp(options);
    await t.cleanup();
  } catch (err) {
    assert.ok(err instanceof LoadFailure, String(err));
    return err.problems.map((p) => `${p.file.split('/').slice(-2).join('/')}:${p.line}: ${p.plugin ?? ''}: ${p.message}`);
  }
  return [];
}

async function rcptReply(options: Parameters<typeof testApp>[0]): Promise<string> {
  const t = await testApp(options);
  try {
    const { client } = await t.greeted();
    await client.command('EHLO x');
    await client.command('MAIL FROM:<a@example.org>');
    return (await client.command('RCPT TO:<b@example.net>')).text;
  } finally {
    await t.cleanup();
  }
}

test('config/plugins lines: arguments, name:N instances, # comments, duplicates refused', () => {
  const entries = ['rcpt_map:0 domain a.example # first', 'queue/maildir /var/mail', '# whole line', 'rcpt_map:0 again'].map((value, i) => ({
    value,
    file: '/c/plugins',
    line: i + 1,
  }));
  const { specs, problems } = parsePluginLines(entries);
  assert.deepEqual(
    specs.map((s) => [s.name, s.module, s.args]),
    [
      ['rcpt_map:0', 'rcpt_map', ['domain', 'a.example']],
      ['queue/maildir', 'queue/maildir', ['/var/mail']],
    ],
  );
  assert.equal(problems.length, 1);
  assert.match(problems[0]!.message, /already loaded on line 1/);
  assert.equal(problems[0]!.line, 4);
});

test('instances of one plugin file have their own arguments and state', async () => {
  const reply = await rcptReply({
    plugins: { 'tagger.ts': tagger('beside') },
    config: { plugins: ['tagger:0 zero', 'tagger:1 one'] },
  });
  assert.match(reply, /beside tagger:0 zero/);
});

test('search order: plugin_dirs, then plugins/ beside the config dir, then the bundled plugins', async () => {
  const custom = tempDir('qpsmtpd-pdirs-');
  writeFileSync(join(custom, 'tagger.js'), tagger('custom').replace(/import type .*\n/, '').replace(/: PluginHost/, '').replace("(_qp, tag = 'none')", '(_qp, tag)'));
  const fromCustom = await rcptReply({
    plugins: { 'tagger.ts': tagger('beside') },
    config: { plugins: ['tagger x'], plugin_dirs: [custom] },
  });
  assert.match(fromCustom, /custom tagger x/);
  const fromBeside = await rcptReply({ plugins: { 'tagger.ts': tagger('beside') }, config: { plugins: ['tagger y'] } });
  assert.match(fromBeside, /beside tagger y/);
  // A plugin beside the config dir named like a bundled one wins over it.
  const override = await rcptReply({ plugins: { 'rcpt_ok.ts': tagger('override') }, config: { plugins: ['rcpt_ok z'] } });
  assert.match(override, /override rcpt_ok z/);
});

test('.mjs plugins load, and import from qpsmtpd works outside the project', async () => {
  const custom = tempDir('qpsmtpd-mjs-');
  mkdirSync(join(custom, 'sub'));
  writeFileSync(
    join(custom, 'sub', 'm.mjs'),
    "import { Plugin, DENY } from 'qpsmtpd';\nexport default class M extends Plugin { hook_rcpt() { return [DENY, 'from mjs ' + this.name]; } }\n",
  );
  const reply = await rcptReply({ config: { plugins: ['sub/m'], plugin_dirs: [custom] } });
  assert.match(reply, /from mjs sub\/m/);
});

test("qpsmtpd's old names load the new plugins", async () => {
  const t = await testApp({ config: { plugins: ['check_relay', 'rcpt_ok'] } });
  try {
    assert.deepEqual(
      t.app.registry.describe().find((h) => h.hook === 'connect')?.plugins,
      ['check_relay'],
    );
  } finally {
    await t.cleanup();
  }
});

test('every load problem is reported with its file and line, all at once', async () => {
  const problems = await loadProblems({
    plugins: {
      'typo.ts': "import { Plugin, OK } from 'qpsmtpd';\nexport default class T extends Plugin { hook_rpct() { return OK; } }\n",
      'broken.ts': "import { Plugin } from 'qpsmtpd';\nexport default class B extends Plugin { hook_rcpt( { }\n",
      'notaplugin.ts': 'export default class X { hook_rcpt() {} }\n',
      'badregister.ts':
        "import { Plugin } from 'qpsmtpd';\nexport default class R extends Plugin { register() { this.registerHook('rctp', 'x'); } }\n",
      'throwing.ts': "import { Plugin } from 'qpsmtpd';\nexport default class R extends Plugin { register() { throw new Error('no database'); } }\n",
    },
    config: { plugins: ['accept_all_missing', 'typo', 'broken', 'notaplugin', 'badregister', 'throwing', 'bad!name'] },
  });
  const text = problems.join('\n');
  assert.match(text, /config\/plugins:1: accept_all_missing: not found: looked for accept_all_missing\.ts, accept_all_missing\.js, accept_all_missing\.mjs/);
  assert.match(text, /config\/plugins:2: typo: unknown hook method hook_rpct\(\)/);
  assert.match(text, /config\/plugins:3: broken: cannot load .*broken\.ts/);
  assert.match(text, /config\/plugins:4: notaplugin: .*must have a default export: a class that extends Plugin/);
  assert.match(text, /config\/plugins:5: badregister: register\(\) failed: .*unknown hook "rctp"/);
  assert.match(text, /config\/plugins:6: throwing: register\(\) failed: .*no database/);
  assert.match(text, /config\/plugins:7: bad!name: invalid plugin name/);
});

test('a missing or empty config/plugins is an error', async () => {
  const problems = await loadProblems({ config: { plugins: '# nothing here\n' } });
  assert.match(problems.join('\n'), /no plugins configured/);
});

test('config/logging plugins load first', async () => {
  const t = await testApp({
    plugins: { 'tagger.ts': tagger('x'), 'quiet.ts': "import { Plugin, OK } from 'qpsmtpd';\nexport default class Q extends Plugin { hook_logging() { return OK; } }\n" },
    config: { logging: ['quiet'], plugins: ['tagger'] },
  });
  try {
    assert.deepEqual(
      t.app.registry.plugins.map((p) => p.name),
      ['quiet', 'tagger'],
    );
  } finally {
    await t.cleanup();
  }
});

test('`loglevel N` on a plugin line sets the level of its messages; +N/-N shifts them', async () => {
  const noisy = `import { Plugin, LOGDEBUG } from 'qpsmtpd';
export default class Noisy extends Plugin { hook_connect() { this.log(LOGDEBUG, 'debug line from ' + this.name); } }
`;
  const t = await testApp({
    plugins: { 'noisy.ts': noisy },
    config: { plugins: ['noisy:0 loglevel 2', 'noisy:1', 'noisy:2 loglevel -3'], loglevel: '4' },
  });
  try {
    const { client } = await t.greeted();
    await client.command('QUIT');
    const text = t.logs.join('\n');
    assert.match(text, /debug line from noisy:0/);
    assert.doesNotMatch(text, /debug line from noisy:1/);
    assert.match(text, /debug line from noisy:2/);
  } finally {
    await t.cleanup();
  }
});
