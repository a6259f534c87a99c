import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LoadFailure } from '../../../src/app.ts';
import { LOGWARN } from '../../../src/log/levels.ts';
import { tempDir, testApp, type TestApp } from '../../helpers/test-app.ts';
import FileLogging, { strftime } from '../../../plugins/logging/file.ts';
import { CHATTY_PLUGINS, captureStderr, nextTurn, pluginInstance, runSession, waitFor } from './support.ts';

const pid = process.pid;
const host = hostname();

async function withApp(logging: readonly string[], body: (app: TestApp) => Promise<void>): Promise<void> {
  const app = await testApp({ config: { logging, plugins: ['chatty'] }, plugins: CHATTY_PLUGINS });
  try {
    await body(app);
  } finally {
    for (const record of app.app.registry.plugins) if (record.instance instanceof FileLogging) record.instance.shutdown();
    app.cleanup();
  }
}

function read(app: TestApp, relative: string): string[] {
  return readFileSync(join(app.root, relative), 'utf8').split('\n').filter((l) => l !== '');
}

/** The lines of `file` without their timestamp and `host[pid]: ` prefix (checked here). */
function bodies(lines: readonly string[]): string[] {
  const prefix = new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d ${host.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\[${pid}\\]: `);
  return lines.map((line) => {
    assert.match(line, prefix);
    return line.replace(prefix, '');
  });
}

test('text lines: timestamp, host[pid], transaction id, (hook), plugin, message; filtered by loglevel', async () => {
  await withApp(['logging/file:0 loglevel LOGINFO log/info.log', 'logging/file:1 log/warn.log'], async (app) => {
    await runSession(app);
    const info = bodies(read(app, 'log/info.log'));
    const c = `${pid}.1`;
    assert.deepEqual(info, [
      `[${c}.1] (connect) chatty: connect info`,
      `[${c}.2] (ehlo) chatty: ehlo info client.example`,
      `[${c}.2] (ehlo) chatty: ehlo notice`,
      `[${c}.2] (ehlo) chatty: ehlo warn`,
      `[${c}.2] (ehlo) chatty: first line`,
      `[${c}.2] (ehlo) chatty: second line`,
      `[${c}.2] (quit) chatty: quit info`,
    ]);
    // The default level is LOGWARN.
    assert.deepEqual(bodies(read(app, 'log/warn.log')), [
      `[${c}.2] (ehlo) chatty: ehlo warn`,
      `[${c}.2] (ehlo) chatty: first line`,
      `[${c}.2] (ehlo) chatty: second line`,
    ]);
    assert.equal(pluginInstance<FileLogging>(app, 'logging/file:0').logThreshold, 6);
    assert.equal(pluginInstance<FileLogging>(app, 'logging/file:1').logThreshold, LOGWARN);
    // Nothing went to the stderr fallback: a logging plugin is loaded.
    assert.deepEqual(app.logs.filter((l) => l.includes('chatty')), []);

    // A line from outside any session has no id, hook or plugin.
    app.app.log(LOGWARN, 'outside a session');
    await nextTurn();
    assert.equal(bodies(read(app, 'log/warn.log')).at(-1), 'outside a session');
  });
});

test('oneline keeps a multi-line message on one line, its breaks written as \\n', async () => {
  await withApp(['logging/file oneline log/one.log'], async (app) => {
    await runSession(app);
    assert.deepEqual(bodies(read(app, 'log/one.log')), [`[${pid}.1.2] (ehlo) chatty: ehlo warn`, `[${pid}.1.2] (ehlo) chatty: first line\\nsecond line`]);
  });
});

test('format json: one object per line with time, level, name, ids, hook, plugin, message', async () => {
  await withApp(['logging/file loglevel INFO format json log/q.jsonl'], async (app) => {
    const before = Date.now();
    await runSession(app);
    app.app.log(LOGWARN, 'outside a session');
    await nextTurn();
    const records = read(app, 'log/q.jsonl').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(records.length, 7);
    const error = records.find((r) => r['level'] === 3)!;
    assert.deepEqual(Object.keys(error), ['time', 'level', 'levelName', 'host', 'pid', 'connection', 'transaction', 'hook', 'plugin', 'message']);
    assert.deepEqual({ ...error, time: undefined }, {
      time: undefined,
      level: 3,
      levelName: 'ERROR',
      host,
      pid,
      connection: `${pid}.1`,
      transaction: `${pid}.1.2`,
      hook: 'ehlo',
      plugin: 'chatty',
      message: 'first line\nsecond line',
    });
    const time = Date.parse(error['time'] as string);
    assert.match(error['time'] as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(time >= before - 1000 && time <= Date.now());
    assert.deepEqual(
      records.map((r) => [r['levelName'], r['message']]),
      [
        ['INFO', 'connect info'],
        ['INFO', 'ehlo info client.example'],
        ['NOTICE', 'ehlo notice'],
        ['WARN', 'ehlo warn'],
        ['ERROR', 'first line\nsecond line'],
        ['INFO', 'quit info'],
        ['WARN', 'outside a session'],
      ],
    );
    for (const r of records.slice(0, 6)) assert.equal(r['connection'], `${pid}.1`);
    assert.deepEqual(records[6], { ...records[6], connection: null, transaction: null, hook: null, plugin: null });
  });
});

test('strftime sequences in PATH make dated files, in folders made as needed', async () => {
  await withApp(['logging/file log/%Y/%m/qp-%Y%m%d.log'], async (app) => {
    const names = new Set([strftime('log/%Y/%m/qp-%Y%m%d.log', new Date())]);
    await runSession(app);
    names.add(strftime('log/%Y/%m/qp-%Y%m%d.log', new Date()));
    const written = [...names].filter((n) => existsSync(join(app.root, n)));
    assert.equal(written.length, 1, `one of ${[...names].join(', ')}`);
    assert.equal(bodies(read(app, written[0]!)).length, 3);
  });
});

test('%i in PATH: a file per connection, "parent" outside sessions; closed at the end of the connection', async () => {
  await withApp(['logging/file log/conn-%i.log'], async (app) => {
    await runSession(app);
    await runSession(app);
    app.app.log(LOGWARN, 'outside');
    await nextTurn();
    assert.deepEqual(readdirSync(join(app.root, 'log')).sort(), [`conn-${pid}.1.log`, `conn-${pid}.2.log`, 'conn-parent.log']);
    assert.deepEqual(bodies(read(app, `log/conn-${pid}.2.log`)), [
      `[${pid}.2.2] (ehlo) chatty: ehlo warn`,
      `[${pid}.2.2] (ehlo) chatty: first line`,
      `[${pid}.2.2] (ehlo) chatty: second line`,
    ]);
    assert.deepEqual(bodies(read(app, 'log/conn-parent.log')), ['outside']);
  });
});

test('reopen: each connection reopens the file, so a rotated log is followed', async () => {
  await withApp(['logging/file reopen log/r.log'], async (app) => {
    await runSession(app);
    renameSync(join(app.root, 'log/r.log'), join(app.root, 'log/r.log.1'));
    await runSession(app);
    assert.equal(read(app, 'log/r.log.1').length, 3);
    assert.ok(read(app, 'log/r.log.1').every((l) => l.includes(`[${pid}.1.`)));
    assert.equal(read(app, 'log/r.log').length, 3);
    assert.ok(read(app, 'log/r.log').every((l) => l.includes(`[${pid}.2.`)));
  });
});

test('without reopen a rotated or deleted file is noticed at the next connection', async () => {
  await withApp(['logging/file log/plain.log'], async (app) => {
    await runSession(app);
    renameSync(join(app.root, 'log/plain.log'), join(app.root, 'log/plain.log.1'));
    await runSession(app);
    assert.ok(read(app, 'log/plain.log').every((l) => l.includes(`[${pid}.2.`)));
    unlinkSync(join(app.root, 'log/plain.log'));
    await runSession(app);
    assert.ok(read(app, 'log/plain.log').every((l) => l.includes(`[${pid}.3.`)));
    assert.equal(read(app, 'log/plain.log').length, 3);
    assert.equal(read(app, 'log/plain.log.1').length, 3);
  });
});

test('nosplit keeps a session in the file it started in; without it the session follows the dated name', async () => {
  await withApp(['logging/file:0 loglevel LOGINFO nosplit log/ns-%s.log', 'logging/file:1 loglevel LOGINFO log/sp-%s.log'], async (app) => {
    const { client, done } = await app.greeted();
    await client.command('EHLO client.example');
    const second = Math.floor(Date.now() / 1000);
    await waitFor('the next second', () => Math.floor(Date.now() / 1000) > second, 1500);
    await client.command('NOOP');
    await client.command('QUIT');
    await done;
    const files = readdirSync(join(app.root, 'log')).sort();
    const nosplit = files.filter((f) => f.startsWith('ns-'));
    const split = files.filter((f) => f.startsWith('sp-'));
    assert.equal(nosplit.length, 1, files.join(' '));
    assert.ok(split.length >= 2, files.join(' '));
    const all = read(app, `log/${nosplit[0]}`).join('\n');
    assert.match(all, /ehlo info/);
    assert.match(all, /noop info/);
    const withEhlo = split.find((f) => read(app, `log/${f}`).some((l) => l.includes('ehlo info')));
    const withNoop = split.find((f) => read(app, `log/${f}`).some((l) => l.includes('noop info')));
    assert.notEqual(withEhlo, withNoop);
  });
});

test('tsformat sets the timestamp; %c is the form of qpsmtpd\'s default', async () => {
  await withApp(['logging/file:0 tsformat %H:%M:%S.%L log/a.log', 'logging/file:1 tsformat %c log/b.log'], async (app) => {
    await runSession(app);
    for (const line of read(app, 'log/a.log')) assert.match(line, new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} \\S+\\[${pid}\\]: \\[`));
    for (const line of read(app, 'log/b.log')) assert.match(line, /^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4} /);
  });
});

test('|COMMAND: the lines are written to a program\'s stdin', async () => {
  const dir = tempDir();
  const target = join(dir, 'piped.log');
  try {
    await withApp([`logging/file |cat >> ${target}`], async (app) => {
      await runSession(app);
      await waitFor('the piped lines', () => existsSync(target) && readFileSync(target, 'utf8').split('\n').length > 3);
      assert.deepEqual(bodies(readFileSync(target, 'utf8').trim().split('\n')), [
        `[${pid}.1.2] (ehlo) chatty: ehlo warn`,
        `[${pid}.1.2] (ehlo) chatty: first line`,
        `[${pid}.1.2] (ehlo) chatty: second line`,
      ]);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an output that cannot be opened costs one warning on stderr and never the session', async () => {
  await withApp(['logging/file log/blocker/x.log'], async (app) => {
    writeFileSync(join(app.root, 'log'), 'a file where a folder should be');
    const stderr = captureStderr();
    try {
      await runSession(app);
      await runSession(app);
    } finally {
      stderr.restore();
    }
    const warnings = stderr.lines().filter((l) => l.includes('logging/file'));
    assert.equal(warnings.length, 1, stderr.text);
    assert.match(warnings[0]!, new RegExp(`^${pid} logging/file: cannot open .*x\\.log: .*dropping log lines`));
  });
});

test('lines still buffered when the process exits are written by the exit listener', () => {
  const script = `
    import { testApp } from './test/helpers/test-app.ts';
    const app = await testApp({ config: { plugins: ['chatty'], logging: ['logging/file log/exit.log'] }, plugins: { 'chatty.ts': 'import { Plugin } from "qpsmtpd"; export default class C extends Plugin {}' } });
    app.app.log(4, 'last words');
    process.stdout.write(app.root);
    process.exit(0); // no turn of the event loop: only the 'exit' listener can write the line
  `;
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const child = spawnSync(process.execPath, ['--import', './test/setup.mjs', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 20_000 });
  assert.equal(child.status, 0, child.stderr);
  const dir = child.stdout.trim();
  try {
    const lines = readFileSync(join(dir, 'log/exit.log'), 'utf8').trim().split('\n');
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /: last words$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad arguments are load errors naming the problem', async () => {
  for (const [line, message] of [
    ['logging/file', /usage: logging\/file/],
    ['logging/file loglevel', /"loglevel" needs a value/],
    ['logging/file loglevel LOGLOUD x.log', /unknown log level "LOGLOUD"/],
    ['logging/file format xml x.log', /format is "text" or "json"/],
  ] as const) {
    await assert.rejects(testApp({ config: { logging: [line], plugins: ['chatty'] }, plugins: CHATTY_PLUGINS }), (err: unknown) => {
      assert.ok(err instanceof LoadFailure);
      assert.match(err.message, message);
      return true;
    });
  }
});

test('strftime: the supported conversions, local time', () => {
  const d = new Date(2024, 0, 5, 7, 8, 9, 12);
  assert.equal(strftime('%Y-%m-%d %H:%M:%S.%L', d), '2024-01-05 07:08:09.012');
  assert.equal(strftime('%y %e %j %a %A %b %B %h %p %I %l %k %u %w %C', d), '24  5 005 Fri Friday Jan January Jan AM 07  7  7 5 5 20');
  assert.equal(strftime('%F %T %D %R %r', d), '2024-01-05 07:08:09 01/05/24 07:08 07:08:09 AM');
  assert.equal(strftime('%c', d), 'Fri Jan  5 07:08:09 2024');
  assert.equal(strftime('%s', d), String(Math.floor(d.getTime() / 1000)));
  assert.match(strftime('%z', d), /^[+-]\d{4}$/);
  assert.equal(strftime('100%% %Q %i', d, (c) => (c === 'i' ? 'ID' : undefined)), '100% %Q ID');
  assert.equal(strftime('%j %P', new Date(2024, 11, 31, 23, 0, 0)), '366 pm');
});
