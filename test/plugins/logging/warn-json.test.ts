import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LoadFailure } from '../../../src/app.ts';
import { LOGWARN } from '../../../src/log/levels.ts';
import { testApp } from '../../helpers/test-app.ts';
import type FileLogging from '../../../plugins/logging/file.ts';
import { CHATTY_PLUGINS, captureStderr, pluginInstance, runSession } from './support.ts';

type JsonLine = Record<string, unknown>;

describe('logging/warn format json', () => {
  it('one JSON object per line with the fields of logging/file\'s json, ids included', async () => {
    const t = await testApp({
      config: { plugins: ['chatty'], logging: ['logging/warn LOGINFO format json', 'logging/file loglevel LOGINFO format json log/file.jsonl'] },
      plugins: CHATTY_PLUGINS,
    });
    const stderr = captureStderr();
    try {
      await runSession(t);
      t.app.log(LOGWARN, 'outside a session');
    } finally {
      stderr.restore();
    }
    let fileLines: JsonLine[];
    try {
      pluginInstance<FileLogging>(t, 'logging/file').shutdown();
      fileLines = readFileSync(join(t.root, 'log/file.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as JsonLine);
    } finally {
      await t.cleanup();
    }
    const lines = stderr.lines().map((l) => JSON.parse(l) as JsonLine);
    const info = lines.find((l) => l['message'] === 'ehlo info client.example');
    assert.ok(info, stderr.text);
    assert.deepEqual(Object.keys(info), ['time', 'level', 'levelName', 'host', 'pid', 'connection', 'transaction', 'hook', 'plugin', 'message']);
    assert.equal(info['level'], 6);
    assert.equal(info['levelName'], 'INFO');
    assert.equal(info['pid'], process.pid);
    assert.equal(info['hook'], 'ehlo');
    assert.equal(info['plugin'], 'chatty');
    assert.match(String(info['connection']), new RegExp(`^${process.pid}\\.\\d+$`));
    assert.equal(String(info['transaction']).startsWith(`${String(info['connection'])}.`), true);
    assert.ok(!Number.isNaN(Date.parse(String(info['time']))));
    assert.match(String(info['time']), /Z$/);
    // A multi-line message is one JSON line.
    assert.ok(lines.some((l) => l['message'] === 'first line\nsecond line'));
    // Outside a session: no ids, no hook, no plugin.
    const outside = lines.find((l) => l['message'] === 'outside a session');
    assert.deepEqual([outside?.['connection'], outside?.['transaction'], outside?.['hook'], outside?.['plugin']], [null, null, null, null]);
    // The same records as logging/file's json, field for field (the time aside).
    const strip = (l: JsonLine) => ({ ...l, time: undefined });
    assert.deepEqual(lines.map(strip), fileLines.map(strip));
  });

  it('format text is the default form; format and level in either order; bad values are load errors', async () => {
    for (const line of ['logging/warn format text', 'logging/warn format json loglevel LOGERROR', 'logging/warn 3 format json']) {
      const t = await testApp({ config: { plugins: ['chatty'], logging: [line] }, plugins: CHATTY_PLUGINS });
      const stderr = captureStderr();
      try {
        await runSession(t);
      } finally {
        stderr.restore();
        await t.cleanup();
      }
      const lines = stderr.lines();
      if (line.includes('json')) {
        assert.deepEqual(lines.map((l) => (JSON.parse(l) as JsonLine)['message']), ['first line\nsecond line'], line);
      } else {
        assert.ok(lines.some((l) => l.endsWith(' (ehlo) chatty: ehlo warn')), lines.join('\n'));
      }
    }
    for (const line of ['logging/warn format xml', 'logging/warn format', 'logging/warn 4 format json 5', 'logging/warn 4 loglevel 5']) {
      await assert.rejects(testApp({ config: { logging: [line], plugins: ['chatty'] }, plugins: CHATTY_PLUGINS }), LoadFailure, line);
    }
  });
});
