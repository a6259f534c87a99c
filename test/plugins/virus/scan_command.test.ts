/**
 * virus/scan_command with real programs: clamscan on standard input (exit codes 0/1), and a small
 * shell script standing in for the file-based scanners (uvscan, kavscanner ...): the message as a
 * file of its own that is removed afterwards, a virus told only by its output, other exit codes,
 * a scanner that hangs (killed at the timeout) or dies by a signal.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { testServer } from '../../../src/testing/index.ts';
import { tempDir } from '../../helpers/test-app.ts';
import { EICAR, buildMessage, eicarDatabase, multipartMessage, sendOne, withServer } from '../scanner-support.ts';

const dir = tempDir('qp-scan-command-');
after(() => rmSync(dir, { recursive: true, force: true }));
const db = eicarDatabase(join(dir, 'db'));
const seen = join(dir, 'seen');
const script = join(dir, 'fake-scanner');
// Like uvscan: a report on standard output, "Found" for a virus; the exit code says little.
writeFileSync(
  script,
  `#!/bin/sh
echo "$1" >> ${seen}
cp "$1" ${seen}.last
if grep -q hang-forever "$1"; then sleep 30; fi
if grep -q crash-now "$1"; then kill -9 $$; fi
if grep -q broken-scanner "$1"; then echo "license expired" >&2; exit 7; fi
echo "Scanning $1"
if grep -q INFECTED-MARKER "$1"; then echo "    Found the Test.Marker virus !!!"; fi
exit 0
`,
);
chmodSync(script, 0o755);
const fake = (options = ''): string => `virus/scan_command input file ${options} virus_regexp Found\\s(?:the\\s)?(\\S+) tmp_dir ${dir} ${script} {}`.replace(/\s+/g, ' ');

describe('virus/scan_command', { timeout: 120_000 }, () => {
  it('clamscan on standard input: EICAR refused, a clean message marked with the given name', async () => {
    await withServer([`virus/scan_command name ClamAV-CLI /usr/bin/clamscan --no-summary --database=${db} -`], async (server) => {
      const infected = await sendOne(server, multipartMessage('infected', EICAR));
      assert.deepEqual([infected.code, `${infected.enhanced} ${infected.text}`], [552, '5.7.1 Virus found: EICAR-Test.UNOFFICIAL']);
      assert.equal((await sendOne(server, buildMessage({ subject: 'clean' }))).code, 250);
      assert.equal(server.queued[0]!.header.get('X-Virus-Checked'), 'by ClamAV-CLI on mx.example.test');
    });
  });

  it('a file-based scanner: the message file holds the whole message and is removed; the virus named from the output', async () => {
    rmSync(seen, { force: true });
    await withServer([fake('deny_viruses no')], async (server) => {
      const result = await sendOne(server, buildMessage({ subject: 'marked', body: 'INFECTED-MARKER\n' }));
      assert.equal(result.code, 250, result.raw);
      assert.equal(server.queued[0]!.header.get('X-Virus-Found'), 'Yes');
      assert.equal(server.queued[0]!.header.get('X-Virus-Details'), 'Test.Marker');
      const files = readFileSync(seen, 'utf8').trim().split('\n');
      assert.equal(files.length, 1);
      assert.ok(files[0]!.startsWith(dir), files[0]);
      assert.ok(!existsSync(files[0]!), 'the message file was removed');
      const copy = readFileSync(`${seen}.last`, 'utf8');
      assert.match(copy, /^Received: from client\.example\.test [^]*\r\nSubject: marked\r\n[^]*\r\n\r\nINFECTED-MARKER\r\n$/);
    });
    await withServer([fake()], async (server) => {
      assert.equal((await sendOne(server, buildMessage({ subject: 'marked', body: 'INFECTED-MARKER\n' }))).code, 552);
      assert.equal((await sendOne(server, buildMessage({ subject: 'clean' }))).code, 250);
      assert.equal(server.queued[0]!.header.get('X-Virus-Checked'), 'by fake-scanner on mx.example.test');
    });
  });

  it('an exit code that is neither clean nor virus, a hang and a crash: 452 (or a pass with defer_on_error no)', async () => {
    await withServer([fake('timeout 0.5')], async (server) => {
      const broken = await sendOne(server, buildMessage({ subject: 'x', body: 'broken-scanner\n' }));
      assert.equal(broken.code, 452, broken.raw);
      assert.ok(server.logs.some((l) => l.text.includes('error, fake-scanner failed, exit code 7: license expired')));
      const started = Date.now();
      assert.equal((await sendOne(server, buildMessage({ subject: 'x', body: 'hang-forever\n' }))).code, 452);
      assert.ok(Date.now() - started < 10_000, `killed in time (${Date.now() - started} ms)`);
      assert.ok(server.logs.some((l) => l.text.includes('no verdict within 0.5 s (killed)')));
      assert.equal((await sendOne(server, buildMessage({ subject: 'x', body: 'crash-now\n' }))).code, 452);
      assert.ok(server.logs.some((l) => l.text.includes('fake-scanner ended by signal SIGKILL')));
    });
    await withServer([fake('defer_on_error no')], async (server) => {
      assert.equal((await sendOne(server, buildMessage({ subject: 'x', body: 'broken-scanner\n' }))).code, 250);
    });
  });

  it('refuses bad arguments at load time', async () => {
    await assert.rejects(testServer({ plugins: ['virus/scan_command input file'] }), /no scanner/);
    await assert.rejects(testServer({ plugins: [`virus/scan_command clean_codes 0,1 ${script}`] }), /exit code 1 cannot mean both/);
    await assert.rejects(testServer({ plugins: [`virus/scan_command virus_regexp (\\K) ${script}`] }), /virus_regexp/);
    await assert.rejects(testServer({ plugins: [`virus/scan_command input pipe ${script}`] }), /input "pipe"/);
  });
});
