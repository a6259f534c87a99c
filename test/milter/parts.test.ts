/**
 * The pieces the milter plugin stands on: socket specifications, CRLF normalisation at every
 * split, a transaction's body replaced (in memory and spooled), header fields as written, the
 * end-of-message changes on a transaction, and the macro values.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseMilterSocket, describeMilterTarget } from '../../src/milter/socket-spec.ts';
import { ToCrlf, convertStream } from '../../src/mail/line-ends.ts';
import { Transaction } from '../../src/session/transaction.ts';
import { Header } from '../../src/message/header.ts';
import { Address } from '../../src/protocol/address.ts';
import { Connection } from '../../src/session/connection.ts';
import { MilterChanges } from '../../src/milter/changes.ts';
import { macroSource } from '../../src/milter/macros.ts';
import { twoWaySplits } from '../helpers/splits.ts';

describe('milter socket specifications', () => {
  it('reads Sendmail and Postfix forms', () => {
    assert.deepEqual(parseMilterSocket('inet:8891@127.0.0.1'), { host: '127.0.0.1', port: 8891 });
    assert.deepEqual(parseMilterSocket('inet:8891@localhost'), { host: 'localhost', port: 8891 });
    assert.deepEqual(parseMilterSocket('inet6:8891@::1'), { host: '::1', port: 8891 });
    assert.deepEqual(parseMilterSocket('inet:localhost:8891'), { host: 'localhost', port: 8891 });
    assert.deepEqual(parseMilterSocket('inet:[::1]:8891'), { host: '::1', port: 8891 });
    assert.deepEqual(parseMilterSocket('unix:/run/opendkim/opendkim.sock'), { path: '/run/opendkim/opendkim.sock' });
    assert.deepEqual(parseMilterSocket('local:milter.sock'), { path: 'milter.sock' });
    assert.equal(describeMilterTarget({ host: '::1', port: 1 }), 'inet:1@::1');
    assert.equal(describeMilterTarget({ path: '/x' }), 'unix:/x');
  });

  it('refuses what is none', () => {
    for (const bad of ['', '8891', 'tcp:1@x', 'inet:', 'inet:x@localhost', 'inet:0@localhost', 'inet:70000@localhost', 'inet:localhost', 'inet:1@', 'inet:1@bad host', 'inet:[::1]8891', 'unix:', 'local:']) {
      assert.ok('error' in parseMilterSocket(bad), bad);
    }
  });
});

describe('ToCrlf', () => {
  it('makes every line end CRLF, wherever the input is cut', async () => {
    const input = Buffer.from('a\nb\r\nc\rd\r\r\n\n\re\r');
    const expected = 'a\r\nb\r\nc\r\nd\r\n\r\n\r\n\r\ne\r\n';
    for (const chunks of twoWaySplits(input)) {
      const out: Buffer[] = [];
      const source = (async function* () {
        yield* chunks;
      })();
      for await (const piece of convertStream(source, new ToCrlf())) out.push(piece);
      assert.equal(Buffer.concat(out).toString(), expected, chunks.map((c) => JSON.stringify(c.toString())).join(' | '));
    }
  });
});

function transaction(dir: string, threshold: number): Transaction {
  let n = 0;
  return new Transaction('t.1', () => ({ threshold, spoolDir: dir, spoolName: () => `spool-${++n}` }));
}

async function text(tx: Transaction): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of tx.bodyStream()) parts.push(chunk as Buffer);
  return Buffer.concat(parts).toString();
}

describe('Transaction.newBody and replaceBody', () => {
  for (const threshold of [1 << 20, 10]) {
    it(`swap the body, the old one (and its spool file) discarded (threshold ${threshold})`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'milter-body-'));
      try {
        const tx = transaction(dir, threshold);
        tx.header = Header.parse('Subject: s\r\n');
        await tx.bodyWrite('old body line\r\n');
        const fresh = tx.newBody();
        await fresh.append([Buffer.from('new body, ')]);
        await fresh.append([Buffer.from('longer than the threshold\r\n')]);
        assert.equal(await text(tx), 'Subject: s\r\n\r\nold body line\r\n', 'not before replaceBody');
        await tx.replaceBody(fresh);
        assert.equal(await text(tx), 'Subject: s\r\n\r\nnew body, longer than the threshold\r\n');
        assert.equal(await tx.bodyAsString(), 'new body, longer than the threshold\r\n');
        assert.equal(tx.bodyLength, 37);
        assert.deepEqual(readdirSync(dir), threshold === 10 ? ['spool-2'] : [], 'only the new body is spooled');
        await tx.discard();
        assert.deepEqual(readdirSync(dir), []);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

describe('Header.rawEntries', () => {
  it('gives each value as written: leading space, folds, encoding', () => {
    const h = Header.parse('Subject:  two spaces\r\nX-F: a\r\n\tb\r\nX-Tight:tight\r\n');
    h.add('X-Added', 'v');
    assert.deepEqual(h.rawEntries(), [
      { name: 'Subject', value: '  two spaces', encoding: 'utf8' },
      { name: 'X-F', value: ' a\r\n\tb', encoding: 'utf8' },
      { name: 'X-Tight', value: 'tight', encoding: 'utf8' },
      { name: 'X-Added', value: ' v', encoding: 'utf8' },
    ]);
  });
});

describe('MilterChanges', () => {
  it('applies in order; skips what cannot be applied, saying why', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'milter-changes-'));
    try {
      const tx = transaction(dir, 1 << 20);
      tx.header = Header.parse('Subject: one\r\nSubject: two\r\n');
      tx.sender = Address.parse('<a@example.com>') as Address;
      tx.addRecipient(Address.parse('<b@example.com>') as Address);
      const changes = new MilterChanges(tx);
      assert.equal(changes.empty, true);
      await changes.take({ type: 'chgheader', index: 0, name: 'subject', value: 'first' });
      await changes.take({ type: 'chgheader', index: 2, name: 'Subject', value: ' ' });
      await changes.take({ type: 'chgheader', index: 5, name: 'Subject', value: '' });
      await changes.take({ type: 'addrcpt', address: '<b@EXAMPLE.com>' });
      await changes.take({ type: 'addrcpt', address: 'not an address' });
      await changes.take({ type: 'delrcpt', address: '<nobody@example.com>' });
      await changes.take({ type: 'chgfrom', address: '<>', args: 'BAD PARAM=' });
      await changes.take({ type: 'quarantine', reason: '' });
      assert.equal(changes.empty, false);
      const log = await changes.apply({ by: 'milter:1', quarantineHeader: 'X-Q' });
      assert.deepEqual(tx.header.entries(), [
        { name: 'X-Q', value: 'by milter:1' },
        { name: 'subject', value: 'first' },
      ]);
      assert.deepEqual(tx.recipients.map(String), ['<b@example.com>']);
      assert.equal(String(tx.sender), '<>');
      assert.deepEqual(log, [
        'header changed: subject #1',
        'header removed: Subject #2',
        'no header Subject #5 to remove',
        'recipient <b@EXAMPLE.com> is already there',
        log[4],
        'recipient <nobody@example.com> was not there',
        log[6],
        'quarantined: ',
      ]);
      assert.match(log[4]!, /^recipient not added, .*: not an address$/);
      assert.match(log[6]!, /^sender changed to <>; its arguments were not used/);
      await assert.rejects(changes.take({ type: 'addheader', name: 'X', value: 'y' }), /after they were applied/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a dropped replacement body leaves the message as it was and its spool file removed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'milter-changes-'));
    try {
      const tx = transaction(dir, 4);
      await tx.bodyWrite('kept\r\n');
      const changes = new MilterChanges(tx);
      await changes.take({ type: 'replbody', chunk: Buffer.from('never used\n') });
      assert.equal(readdirSync(dir).length, 2);
      await changes.drop();
      assert.equal(await tx.bodyAsString(), 'kept\r\n');
      assert.equal(readdirSync(dir).length, 1);
      await tx.discard();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('milter macros', () => {
  it('gives what the session knows, with or without braces, and nothing for what it does not', () => {
    const c = new Connection('c1', { remoteIp: '192.0.2.1', remotePort: 1234, localIp: '127.0.0.1', localPort: 25, remoteHost: 'client.example' });
    c.tls = { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' };
    const sender = Address.parse('<s@origin.example>') as Address;
    const m = macroSource({ me: 'mx.example', version: '1.2.3', daemonName: 'qp', connection: c, transactionId: 'c1.1', sender });
    assert.equal(m('j'), 'mx.example');
    assert.equal(m('{j}'), 'mx.example');
    assert.equal(m('_'), 'client.example [192.0.2.1]');
    assert.equal(m('{client_name}'), 'client.example');
    assert.equal(m('client_port'), '1234');
    assert.equal(m('{daemon_port}'), '25');
    assert.equal(m('v'), 'qpsmtpd 1.2.3');
    assert.equal(m('{tls_version}'), 'TLSv1.3');
    assert.equal(m('i'), 'c1.1');
    assert.equal(m('{mail_addr}'), 's@origin.example');
    assert.equal(m('{auth_authen}'), undefined);
    assert.equal(m('{rcpt_addr}'), undefined);
    assert.equal(m('{no_such_macro}'), undefined);
  });
});
