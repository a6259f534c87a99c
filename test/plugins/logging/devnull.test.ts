import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { LoadFailure } from '../../../src/app.ts';
import { LOGDEBUG, LOGERROR, LOGWARN } from '../../../src/log/levels.ts';
import { testApp } from '../../helpers/test-app.ts';
import type DevNullLogging from '../../../plugins/logging/devnull.ts';
import type FileLogging from '../../../plugins/logging/file.ts';
import { CHATTY_PLUGINS, captureStderr, pluginInstance, runSession } from './support.ts';

const probe = globalThis as { chattyProbeLevel?: number; chattyFormatted?: number };

afterEach(() => {
  delete probe.chattyProbeLevel;
  delete probe.chattyFormatted;
});

test('logging/devnull alone: nothing is written anywhere, and nothing is even formatted', async () => {
  probe.chattyProbeLevel = 0; // LOGEMERG: the most severe line there is
  const app = await testApp({ config: { plugins: ['chatty'], loglevel: '7', logging: ['logging/devnull'] }, plugins: CHATTY_PLUGINS });
  const stderr = captureStderr();
  try {
    await runSession(app);
    app.app.log(LOGERROR, 'outside a session');
  } finally {
    stderr.restore();
  }
  try {
    assert.equal(pluginInstance<DevNullLogging>(app, 'logging/devnull').logThreshold, -1);
    assert.equal(stderr.text, '');
    assert.deepEqual(app.logs, []);
    assert.equal(probe.chattyFormatted, undefined, 'the core formatted a line nobody writes');
  } finally {
    app.cleanup();
  }
});

test('next to logging/file it declines: the file gets its lines, and only its levels are formatted', async () => {
  for (const [level, formatted] of [
    [LOGDEBUG, undefined],
    [LOGWARN, 1],
  ] as const) {
    probe.chattyProbeLevel = level;
    delete probe.chattyFormatted;
    const app = await testApp({ config: { plugins: ['chatty'], logging: ['logging/devnull', 'logging/file log/q.log'] }, plugins: CHATTY_PLUGINS });
    try {
      await runSession(app);
      pluginInstance<FileLogging>(app, 'logging/file').shutdown();
      const lines = readFileSync(join(app.root, 'log/q.log'), 'utf8').trim().split('\n');
      assert.equal(lines.length, formatted === undefined ? 3 : 4);
      assert.equal(probe.chattyFormatted, formatted);
      if (formatted) assert.match(lines[3]!, /chatty: probe PROBE$/);
    } finally {
      app.cleanup();
    }
  }
});

test('logging/devnull takes no arguments', async () => {
  await assert.rejects(testApp({ config: { logging: ['logging/devnull 4'], plugins: ['chatty'] }, plugins: CHATTY_PLUGINS }), LoadFailure);
});
