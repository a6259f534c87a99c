import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { existsSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { LoadFailure } from '../../../src/app.ts';
import { LOGWARN } from '../../../src/log/levels.ts';
import { tempDir, testApp, type TestApp } from '../../helpers/test-app.ts';
import type SyslogLogging from '../../../plugins/logging/syslog.ts';
import { CHATTY_PLUGINS, captureStderr, pluginInstance, runSession, waitFor } from './support.ts';

const pid = process.pid;
// The system's python3 directly when there is one: a version manager's shim can take a second to start.
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const RFC3164 = /^<(\d+)>([A-Z][a-z]{2}) ([ \d]\d) (\d\d:\d\d:\d\d) (\S+ )?(\S+)\[(\d+)\]: (.*)$/;

async function withSyslog(line: string, body: (app: TestApp, plugin: SyslogLogging) => Promise<void>): Promise<void> {
  const app = await testApp({ config: { plugins: ['chatty'], logging: [line] }, plugins: CHATTY_PLUGINS });
  const plugin = pluginInstance<SyslogLogging>(app, 'logging/syslog');
  try {
    await body(app, plugin);
  } finally {
    await plugin.shutdown();
    app.cleanup();
  }
}

/** A UDP syslog receiver on an ephemeral port. */
async function udpReceiver(): Promise<{ port: number; messages: string[]; close(): void }> {
  const socket = createSocket('udp4');
  const messages: string[] = [];
  socket.on('message', (data) => messages.push(data.toString('utf8')));
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return { port: socket.address().port, messages, close: () => socket.close() };
}

/** A unix datagram socket receiver (python3: Node has no AF_UNIX SOCK_DGRAM) printing one datagram per line. */
async function unixReceiver(path: string): Promise<{ messages: string[]; stop(): Promise<void> }> {
  const script = [
    'import socket, sys',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    's.bind(sys.argv[1])',
    'while True:',
    '    sys.stdout.buffer.write(s.recv(65536).replace(b"\\n", b" ") + b"\\n")',
    '    sys.stdout.flush()',
  ].join('\n');
  const child: ChildProcess = spawn(PYTHON, ['-u', '-c', script, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: string[] = [];
  let partial = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    messages.push(...parts);
  });
  await waitFor(`python3 bound to ${path}`, () => existsSync(path));
  return {
    messages,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill();
        await once(child, 'exit');
      }
      rmSync(path, { force: true });
    },
  };
}

/** The text parts of RFC 3164 messages, checked against the expected tag and pid. */
function texts(messages: readonly string[], tag = 'qpsmtpd'): { pri: number; text: string }[] {
  return messages.map((m) => {
    const match = RFC3164.exec(m);
    assert.ok(match, `not RFC 3164: ${m}`);
    assert.equal(match[6], tag);
    assert.equal(Number(match[7]), pid);
    return { pri: Number(match[1]), text: match[8]! };
  });
}

test('UDP: RFC 3164 datagrams, severities from levels, facility, ident, filtered by loglevel', async () => {
  const receiver = await udpReceiver();
  try {
    await withSyslog(`logging/syslog loglevel LOGINFO facility LOG_LOCAL3 ident qptest logsock udp:127.0.0.1:${receiver.port}`, async (app, plugin) => {
      assert.equal(plugin.logThreshold, 6);
      await runSession(app);
      app.app.log(LOGWARN, 'outside a session');
      await waitFor('8 datagrams', () => receiver.messages.length >= 8);
      const local3 = 19 * 8;
      const c = `${pid}.1`;
      assert.deepEqual(texts(receiver.messages, 'qptest'), [
        { pri: local3 + 6, text: `[${c}.1] (connect) chatty: connect info` },
        { pri: local3 + 6, text: `[${c}.2] (ehlo) chatty: ehlo info client.example` },
        { pri: local3 + 5, text: `[${c}.2] (ehlo) chatty: ehlo notice` },
        { pri: local3 + 4, text: `[${c}.2] (ehlo) chatty: ehlo warn` },
        { pri: local3 + 3, text: `[${c}.2] (ehlo) chatty: first line` },
        { pri: local3 + 3, text: `[${c}.2] (ehlo) chatty: second line` },
        { pri: local3 + 6, text: `[${c}.2] (quit) chatty: quit info` },
        { pri: local3 + 4, text: 'outside a session' },
      ]);
      // Over the network the header carries this host's name (RFC 3164: without its domain).
      assert.match(RFC3164.exec(receiver.messages[0]!)![5]!, /^[^.\s]+ $/);
    });
  } finally {
    receiver.close();
  }
});

test('priority fixes the severity; format rfc5424; the first usable logsock of a list is taken', async () => {
  const receiver = await udpReceiver();
  const dir = tempDir();
  try {
    const missing = join(dir, 'no.sock');
    await withSyslog(`logging/syslog priority LOG_NOTICE format rfc5424 logsock unix:${missing},udp:127.0.0.1:${receiver.port}`, async (app) => {
      await runSession(app);
      await waitFor('3 datagrams', () => receiver.messages.length >= 3);
      const rfc5424 = new RegExp(`^<21>1 \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z \\S+ qpsmtpd ${pid} - - (.*)$`);
      assert.deepEqual(
        receiver.messages.map((m) => rfc5424.exec(m)?.[1] ?? m),
        [`[${pid}.1.2] (ehlo) chatty: ehlo warn`, `[${pid}.1.2] (ehlo) chatty: first line`, `[${pid}.1.2] (ehlo) chatty: second line`],
      );
    });
  } finally {
    receiver.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('unix socket: one long-lived logger process feeds the socket, each line with its own priority', async () => {
  const dir = tempDir();
  const path = join(dir, 'log.sock');
  const receiver = await unixReceiver(path);
  try {
    await withSyslog(`logging/syslog loglevel LOGINFO logsock unix:${path}`, async (app, plugin) => {
      await runSession(app);
      await waitFor('7 messages', () => receiver.messages.length >= 7);
      const first = plugin.loggerPid;
      assert.ok(first !== undefined);
      await runSession(app);
      await waitFor('14 messages', () => receiver.messages.length >= 14);
      assert.equal(plugin.loggerPid, first, 'the same logger serves every session');
      const got = texts(receiver.messages);
      assert.deepEqual(got.slice(0, 7), [
        { pri: 22, text: `[${pid}.1.1] (connect) chatty: connect info` },
        { pri: 22, text: `[${pid}.1.2] (ehlo) chatty: ehlo info client.example` },
        { pri: 21, text: `[${pid}.1.2] (ehlo) chatty: ehlo notice` },
        { pri: 20, text: `[${pid}.1.2] (ehlo) chatty: ehlo warn` },
        { pri: 19, text: `[${pid}.1.2] (ehlo) chatty: first line` },
        { pri: 19, text: `[${pid}.1.2] (ehlo) chatty: second line` },
        { pri: 22, text: `[${pid}.1.2] (quit) chatty: quit info` },
      ]);
      assert.equal(got[7]!.text, `[${pid}.2.1] (connect) chatty: connect info`);
      await plugin.shutdown();
      assert.equal(plugin.loggerPid, undefined);
      assert.throws(() => process.kill(first, 0), /ESRCH/, 'logger has exited');
    });
  } finally {
    await receiver.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a logger that dies is started again; one warning on stderr; the session never notices', async () => {
  const dir = tempDir();
  const path = join(dir, 'log.sock');
  const receiver = await unixReceiver(path);
  const stderr = captureStderr();
  try {
    await withSyslog(`logging/syslog logsock unix:${path}`, async (app, plugin) => {
      await runSession(app);
      await waitFor('3 messages', () => receiver.messages.length >= 3);
      const first = plugin.loggerPid!;
      process.kill(first, 'SIGKILL');
      await waitFor('logger gone', () => plugin.loggerPid === undefined);
      await new Promise((r) => setTimeout(r, 300)); // the first pause before a restart is 0.25 s
      await runSession(app);
      await waitFor('3 more messages', () => receiver.messages.length >= 6);
      assert.notEqual(plugin.loggerPid, first);
      assert.match(receiver.messages[5]!, /\[\d+\.2\.2\] \(ehlo\) chatty: second line$/);
    });
  } finally {
    stderr.restore();
    await receiver.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const warnings = stderr.lines();
  assert.equal(warnings.length, 1, stderr.text);
  assert.match(warnings[0]!, new RegExp(`^${pid} logging/syslog: syslog unavailable \\(logger was killed by SIGKILL\\); dropping log lines until it works again$`));
});

test('a missing socket: one warning, lines dropped; once the socket is there, they flow', async () => {
  const dir = tempDir();
  const path = join(dir, 'later.sock');
  const stderr = captureStderr();
  let receiver: Awaited<ReturnType<typeof unixReceiver>> | undefined;
  try {
    await withSyslog(`logging/syslog logsock unix:${path}`, async (app) => {
      await runSession(app);
      await waitFor('the warning', () => stderr.text.includes('syslog unavailable'));
      await runSession(app);
      receiver = await unixReceiver(path);
      await new Promise((r) => setTimeout(r, 600)); // past the pauses after the first two failures (0.25 s, 0.5 s)
      await runSession(app);
      await waitFor('3 messages', () => receiver!.messages.length >= 3);
      assert.ok(receiver.messages.every((m) => m.includes(`[${pid}.3.2]`)), receiver.messages.join('\n'));
    });
  } finally {
    stderr.restore();
    await receiver?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(stderr.lines().length, 1, stderr.text);
  assert.match(stderr.lines()[0]!, /syslog unavailable \(logger exited with status 1: logger: socket .*later\.sock: No such file or directory\)/);
});

test('no logger program at all: one warning, and sessions go on', async () => {
  const stderr = captureStderr();
  const path = process.env['PATH'];
  process.env['PATH'] = '/nonexistent';
  try {
    await withSyslog('logging/syslog', async (app) => {
      await runSession(app);
      await waitFor('the warning', () => stderr.text.includes('syslog unavailable'));
      await runSession(app);
    });
  } finally {
    process.env['PATH'] = path;
    stderr.restore();
  }
  assert.equal(stderr.lines().length, 1, stderr.text);
  assert.match(stderr.text, /syslog unavailable \(cannot run logger: spawn logger ENOENT\)/);
});

test('TCP goes through logger too', async () => {
  let received = '';
  const server = createServer((socket) => socket.on('data', (d) => (received += d.toString('utf8'))));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const { port } = server.address() as AddressInfo;
    await withSyslog(`logging/syslog ident qptcp logsock tcp:127.0.0.1:${port}`, async (app) => {
      await runSession(app);
      await waitFor('3 messages', () => received.split('\n').length > 3);
    });
    const lines = received.trim().split('\n');
    assert.equal(lines.length, 3);
    assert.match(lines[0]!, new RegExp(`^<20>1 \\S+ \\S+ qptcp ${pid} .*\\[${pid}\\.1\\.2\\] \\(ehlo\\) chatty: ehlo warn$`));
  } finally {
    server.close();
  }
});

test('bad arguments are load errors naming the problem', async () => {
  for (const [line, message] of [
    ['logging/syslog loglevel', /name\/value pairs/],
    ['logging/syslog loglevel LOUD', /unknown log level/],
    ['logging/syslog facility LOG_NOWHERE', /unknown facility/],
    ['logging/syslog priority LOG_LOUD', /unknown priority/],
    ['logging/syslog priority mail', /names no severity/],
    ['logging/syslog logsock console', /not supported/],
    ['logging/syslog logsock udp:host:99999', /bad port/],
    ['logging/syslog ident a/b', /ident "a\/b" must be/],
    ['logging/syslog color blue', /unknown argument "color"/],
  ] as const) {
    await assert.rejects(testApp({ config: { logging: [line], plugins: ['chatty'] }, plugins: CHATTY_PLUGINS }), (err: unknown) => {
      assert.ok(err instanceof LoadFailure, line);
      assert.match(err.message, message, line);
      return true;
    });
  }
});
