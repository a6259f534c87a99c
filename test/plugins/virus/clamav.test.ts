/**
 * virus/clamav with the real clamscan (clamav package) and a signature folder holding only EICAR:
 * the message on standard input, exit codes 0 and 1, action add-header or reject, the size limit,
 * and a scanner that fails (exit code 2, a missing program) deferring or passing.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { testServer } from '../../../src/testing/index.ts';
import { tempDir } from '../../helpers/test-app.ts';
import { EICAR, buildMessage, eicarDatabase, multipartMessage, sendOne, withServer } from '../scanner-support.ts';

const dir = tempDir('qp-clamav-');
after(() => rmSync(dir, { recursive: true, force: true }));
const db = eicarDatabase(join(dir, 'db'));

describe('virus/clamav with clamscan', { timeout: 120_000 }, () => {
  it('action=reject: EICAR in an attachment is refused with its name', async () => {
    await withServer([`virus/clamav database=${db} action=reject`], async (server) => {
      const result = await sendOne(server, multipartMessage('infected', EICAR));
      assert.deepEqual([result.code, `${result.enhanced} ${result.text}`], [552, '5.7.1 Virus found: EICAR-Test.UNOFFICIAL']);
      assert.equal(server.queued.length, 0);
    });
  });

  it('add-header (the default): delivered marked; a clean message is marked checked', async () => {
    await withServer([`virus/clamav clamscan_path=/usr/bin/clamscan database=${db}`], async (server) => {
      assert.equal((await sendOne(server, buildMessage({ subject: 'raw', body: `${EICAR}\n` }))).code, 250);
      assert.equal((await sendOne(server, buildMessage({ subject: 'clean' }))).code, 250);
      const [infected, clean] = server.queued;
      assert.equal(infected!.header.get('X-Virus-Found'), 'Yes');
      assert.equal(infected!.header.get('X-Virus-Details'), 'EICAR-Test.UNOFFICIAL');
      assert.deepEqual(infected!.notes['virus'], { scanner: 'ClamAV (clamscan)', found: true, name: 'EICAR-Test.UNOFFICIAL' });
      assert.equal(clean!.header.get('X-Virus-Found'), 'No');
      assert.equal(clean!.header.get('X-Virus-Checked'), 'by ClamAV (clamscan) on mx.example.test');
    });
  });

  it('max_size: a larger message is not scanned', async () => {
    await withServer([`virus/clamav database=${db} action=reject max_size=100`], async (server) => {
      assert.equal((await sendOne(server, multipartMessage('big', EICAR))).code, 250);
      assert.ok(server.logs.some((l) => /skip, too large \(\d+ > 100 bytes\)/.test(l.text)));
    });
  });

  it('a failing scanner (exit code 2: no such database) defers; declined_on_fail passes; a missing program too', async () => {
    await withServer(['virus/clamav database=/nonexistent/db action=reject'], async (server) => {
      const result = await sendOne(server, multipartMessage('error', EICAR));
      assert.deepEqual([result.code, `${result.enhanced} ${result.text}`], [452, '4.3.0 Unable to scan for viruses, try again later']);
      assert.ok(server.logs.some((l) => /error, clamscan failed, exit code 2: /.test(l.text)), server.logs.map((l) => l.text).join('\n'));
    });
    await withServer(['virus/clamav database=/nonexistent/db action=reject declined_on_fail'], async (server) => {
      assert.equal((await sendOne(server, multipartMessage('error', EICAR))).code, 250);
    });
    await withServer(['virus/clamav clamscan_path=/nonexistent/clamscan'], async (server) => {
      assert.equal((await sendOne(server, multipartMessage('missing', EICAR))).code, 452);
      assert.ok(server.logs.some((l) => /error, cannot start \/nonexistent\/clamscan: .*ENOENT/.test(l.text)));
    });
  });

  it('refuses bad arguments at load time', async () => {
    await assert.rejects(testServer({ plugins: ['virus/clamav action=delete'] }), /action=delete: expected add-header or reject/);
    await assert.rejects(testServer({ plugins: ['virus/clamav clamscan_path=clamscan'] }), /expected an absolute path/);
    await assert.rejects(testServer({ plugins: ['virus/clamav scan_everything'] }), /unknown argument "scan_everything"/);
  });
});
