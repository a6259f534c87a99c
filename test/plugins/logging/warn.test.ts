import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { LoadFailure } from '../../../src/app.ts';
import { LOGERROR, LOGINFO, LOGWARN } from '../../../src/log/levels.ts';
import { testApp, type TestApp } from '../../helpers/test-app.ts';
import type FileLogging from '../../../plugins/logging/file.ts';
import type WarnLogging from '../../../plugins/logging/warn.ts';
import { CHATTY_PLUGINS, captureStderr, pluginInstance, runSession } from './support.ts';

const pid = process.pid;

/** Run one session with the given config; returns what went to process.stderr and the app. */
async function stderrOf(config: Record<string, string | readonly string[]>, after?: (app: TestApp) => void): Promise<{ text: string; lines: string[]; app: TestApp }> {
  const app = await testApp({ config: { plugins: ['chatty'], ...config }, plugins: CHATTY_PLUGINS });
  const stderr = captureStderr();
  try {
    await runSession(app);
    after?.(app);
  } finally {
    stderr.restore();
    app.cleanup();
  }
  return { text: stderr.text, lines: stderr.lines(), app };
}

test('logging/warn writes exactly what the core writes to stderr without logging plugins', async () => {
  // The core's fallback at loglevel 6, as the test app records it ...
  const fallback = await testApp({ config: { plugins: ['chatty'], loglevel: '6' }, plugins: CHATTY_PLUGINS });
  try {
    await runSession(fallback);
  } finally {
    fallback.cleanup();
  }
  // ... and logging/warn at LOGINFO (qpsmtpd's positional form), on the real process.stderr.
  const { text, lines, app } = await stderrOf({ logging: ['logging/warn LOGINFO'] });
  assert.equal(text, fallback.logs.map((l) => l + '\n').join(''));
  assert.ok(lines.includes(`${pid} [${pid}.1.2] (ehlo) chatty: ehlo info client.example`), lines.join('\n'));
  assert.ok(!lines.some((l) => l.includes('ehlo debug')));
  // A loaded logging plugin turns the fallback off.
  assert.deepEqual(app.logs, []);
});

test('default level LOGWARN; `loglevel LEVEL` and numbers work too; logThreshold follows', async () => {
  const cases: [string, number, string[]][] = [
    ['logging/warn', LOGWARN, ['ehlo warn', 'first line']],
    ['logging/warn loglevel LOGERROR', LOGERROR, ['first line']],
    ['logging/warn 6', LOGINFO, ['connect info', 'ehlo info client.example', 'ehlo notice', 'ehlo warn', 'first line', 'quit info']],
  ];
  for (const [line, level, messages] of cases) {
    let threshold: number | undefined;
    const { lines } = await stderrOf({ logging: [line] }, (app) => {
      threshold = pluginInstance<WarnLogging>(app, 'logging/warn').logThreshold;
    });
    assert.equal(threshold, level, line);
    const chatty = lines.filter((l) => l.includes(' chatty: ')).map((l) => l.replace(/^.* chatty: /, ''));
    assert.deepEqual(chatty, messages, line);
  }
});

test('outside a session the line has no id; inside, the multi-line message is written as it is', async () => {
  const { lines } = await stderrOf({ logging: ['logging/warn'] }, (app) => app.app.log(LOGWARN, 'outside a session'));
  assert.deepEqual(lines, [`${pid} [${pid}.1.2] (ehlo) chatty: ehlo warn`, `${pid} [${pid}.1.2] (ehlo) chatty: first line`, 'second line', `${pid} outside a session`]);
});

test('warn answers DECLINED: a logging plugin after it still gets every line', async () => {
  const app = await testApp({ config: { plugins: ['chatty'], logging: ['logging/warn', 'logging/file log/after.log'] }, plugins: CHATTY_PLUGINS });
  const stderr = captureStderr();
  try {
    await runSession(app);
  } finally {
    stderr.restore();
  }
  try {
    pluginInstance<FileLogging>(app, 'logging/file').shutdown();
    const file = readFileSync(join(app.root, 'log/after.log'), 'utf8').trim().split('\n');
    assert.equal(file.length, 3);
    assert.equal(stderr.lines().length, 3);
  } finally {
    app.cleanup();
  }
});

test('bad arguments are load errors', async () => {
  for (const line of ['logging/warn LOUD', 'logging/warn 4 5', 'logging/warn level 4']) {
    await assert.rejects(testApp({ config: { logging: [line], plugins: ['chatty'] }, plugins: CHATTY_PLUGINS }), LoadFailure, line);
  }
});
