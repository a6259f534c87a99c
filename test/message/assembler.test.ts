/** From un-stuffed DATA bytes to header block and stored body, with the size limit. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, rmSync } from 'node:fs';
import { MessageAssembler } from '../../src/message/assembler.ts';
import { BodyStore } from '../../src/message/body-store.ts';
import { tempDir } from '../helpers/test-app.ts';

const spool = tempDir('qpsmtpd-assembler-');
after(() => rmSync(spool, { recursive: true, force: true }));
let n = 0;
const store = (threshold = 1 << 20): BodyStore => new BodyStore({ threshold, spoolDir: spool, spoolName: () => `t${++n}` });

async function assemble(
  parts: string[],
  maxBytes = 0,
  threshold?: number,
  header: { maxHeaderBytes?: number; maxHeaderFields?: number } = {},
): Promise<{ a: MessageAssembler; body: string; store: BodyStore }> {
  const s = store(threshold);
  const a = new MessageAssembler(s, { maxBytes, maxHeaderBytes: header.maxHeaderBytes ?? 1 << 20, maxHeaderFields: header.maxHeaderFields ?? 1000 });
  for (const p of parts) {
    a.write(Buffer.from(p, 'latin1'));
    await a.flush();
  }
  await a.finish();
  return { a, body: (await s.toBuffer()).toString('latin1'), store: s };
}

test('the header block ends at the empty line, wherever the chunks are cut', async () => {
  const message = 'From: a\r\nSubject: b\r\n continued\r\n\r\nbody line\r\n';
  for (let cut = 0; cut <= message.length; cut++) {
    const { a, body } = await assemble([message.slice(0, cut), message.slice(cut)]);
    assert.equal(a.parsedHeader?.get('Subject'), 'b continued', `cut at ${cut}`);
    assert.equal(body, 'body line\r\n', `cut at ${cut}`);
    assert.equal(a.dataSize, message.length);
  }
});

test('a line that is no header field starts the body; no separator is consumed', async () => {
  const { a, body } = await assemble(['From: a\r\nthis is not a header\r\nmore\r\n']);
  assert.deepEqual(a.parsedHeader?.names(), ['From']);
  assert.equal(body, 'this is not a header\r\nmore\r\n');
});

test('a message of header fields only has an empty body', async () => {
  const { a, body } = await assemble(['From: a\r\nTo: b\r\n']);
  assert.equal(a.parsedHeader?.count('To'), 1);
  assert.equal(body, '');
});

test('over maxBytes the rest is counted but not kept', async () => {
  const { a, body } = await assemble(['Subject: x\r\n\r\n', 'y'.repeat(100), 'z'.repeat(100)], 150);
  assert.equal(a.tooBig, true);
  assert.equal(a.dataSize, 14 + 200);
  assert.ok(body.length < 150);
});

test('past the threshold the body moves to a spool file, which discard removes', async () => {
  const { body, store: s } = await assemble(['Subject: x\r\n\r\n', 'a'.repeat(600), 'b'.repeat(600)], 0, 1000);
  assert.equal(body, 'a'.repeat(600) + 'b'.repeat(600));
  assert.ok(s.path !== undefined);
  assert.equal(readdirSync(spool).length, 1);
  const streamed: Buffer[] = [];
  for await (const chunk of s.stream()) streamed.push(chunk as Buffer);
  assert.equal(Buffer.concat(streamed).toString(), body);
  await s.discard();
  assert.equal(readdirSync(spool).length, 0);
});

test('a header block over its size or field limit is not kept, and says so', async () => {
  const many = Array.from({ length: 50 }, (_, i) => `X-F${i}: v\r\n`).join('');
  const byFields = await assemble([many, '\r\nbody\r\n'], 0, undefined, { maxHeaderFields: 20 });
  assert.equal(byFields.a.headerTooBig, true);
  assert.equal(byFields.body, '');
  const bySize = await assemble(['X-Big: ' + 'y'.repeat(5000) + '\r\n', '\r\nbody\r\n'], 0, undefined, { maxHeaderBytes: 1000 });
  assert.equal(bySize.a.headerTooBig, true);
  assert.equal(bySize.a.dataSize, 7 + 5000 + 2 + 8, 'everything is still counted');
  const fine = await assemble([many, '\r\nbody\r\n'], 0, undefined, { maxHeaderFields: 50 });
  assert.equal(fine.a.headerTooBig, false);
  assert.equal(fine.a.parsedHeader?.count('X-F49'), 1);
});
