/** The core's limits: line length, recipients, header block, DATA deadline, connections. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testApp } from '../helpers/test-app.ts';
import { TEST_PLUGINS } from '../helpers/plugin-sources.ts';

async function app(config: Record<string, string | string[]> = {}): Promise<Awaited<ReturnType<typeof testApp>>> {
  return testApp({ plugins: TEST_PLUGINS, config: { plugins: ['accept_all'], ...config } });
}

test('max_line_length: 2048 by default; longer commands get 500 5.5.6, AUTH lines may be longer', async () => {
  const t = await app({ tls_before_auth: '0' });
  try {
    const { client } = await t.greeted();
    await client.command('EHLO x');
    assert.equal((await client.command('NOOP ' + 'x'.repeat(2000))).code, 250);
    const long = await client.command('NOOP ' + 'x'.repeat(2100));
    assert.equal(long.code, 500);
    assert.match(long.text, /^5\.5\.6 /);
    // No auth plugin is loaded, so AUTH is an unknown command: but not a line too long.
    assert.equal((await client.command('AUTH PLAIN ' + 'A'.repeat(8000))).code, 500);
    assert.doesNotMatch(client.unread, /5\.5\.6/);
  } finally {
    await t.cleanup();
  }
});

test('max_rcpts: past the limit each RCPT gets 452 4.5.3', async () => {
  const t = await app({ max_rcpts: '3' });
  try {
    const { client } = await t.greeted();
    await client.command('EHLO x');
    await client.command('MAIL FROM:<a@example.org>');
    for (let i = 0; i < 3; i++) assert.equal((await client.command(`RCPT TO:<r${i}@example.net>`)).code, 250);
    const fourth = await client.command('RCPT TO:<r4@example.net>');
    assert.equal(fourth.code, 452);
    assert.match(fourth.text, /^4\.5\.3 /);
  } finally {
    await t.cleanup();
  }
});

test('a header block over max_header_fields is read to the end and refused with 552 5.6.0', async () => {
  const t = await app({ max_header_fields: '100' });
  try {
    const { client } = await t.greeted();
    await client.command('EHLO x');
    await client.command('MAIL FROM:<a@example.org>');
    await client.command('RCPT TO:<b@example.net>');
    assert.equal((await client.command('DATA')).code, 354);
    const header = Array.from({ length: 500 }, (_, i) => `X-Line-${i}: value`).join('\r\n');
    client.send(header + '\r\n\r\nbody\r\n.\r\n');
    const reply = await client.reply();
    assert.equal(reply.code, 552);
    assert.match(reply.text, /^5\.6\.0 /);
    assert.equal((await client.command('NOOP')).code, 250);
  } finally {
    await t.cleanup();
  }
});

test('data_timeout: a message that trickles in past the deadline gets 421 and nothing is kept', async () => {
  const t = await app({ data_timeout: '0.3', timeout: '5' });
  try {
    const { client, done } = await t.greeted();
    await client.command('EHLO x');
    await client.command('MAIL FROM:<a@example.org>');
    await client.command('RCPT TO:<b@example.net>');
    await client.command('DATA');
    const timer = setInterval(() => client.send('x'), 50);
    try {
      const reply = await client.reply(3000);
      assert.equal(reply.code, 421);
      assert.match(reply.text, /^4\.4\.2 /);
    } finally {
      clearInterval(timer);
    }
    await done;
  } finally {
    await t.cleanup();
  }
});

test('max_connections_per_ip and max_connections: 421 and close past them', async () => {
  const t = await app({ max_connections_per_ip: '2', max_connections: '3' });
  try {
    await t.greeted({ remoteIp: '192.0.2.1' });
    await t.greeted({ remoteIp: '192.0.2.1' });
    const third = t.connect({ remoteIp: '192.0.2.1' });
    const refused = await third.client.reply();
    assert.equal(refused.code, 421);
    assert.match(refused.text, /^4\.7\.0 /);
    await third.done;
    assert.ok(third.client.closed);
    await t.greeted({ remoteIp: '192.0.2.2' });
    const fourth = t.connect({ remoteIp: '192.0.2.3' });
    assert.equal((await fourth.client.reply()).code, 421, 'three sessions in all');
  } finally {
    await t.cleanup();
  }
});

test('an implicit-TLS listener without the tls plugin closes without a plaintext greeting', async () => {
  const t = await app();
  try {
    const { client, done } = t.connect({ implicitTls: true, localPort: 465 });
    await done;
    assert.equal(client.written, '');
    assert.ok(t.logs.some((l) => /implicit-TLS listener, but no plugin started TLS/.test(l)));
  } finally {
    await t.cleanup();
  }
});

test('a spool that cannot be written: the message is read to its end, refused with 4xx, the session goes on', async () => {
  const t = await app({ size_threshold: '100' });
  try {
    const { rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    rmSync(join(t.root, 'spool'), { recursive: true, force: true });
    const { client } = await t.greeted();
    await client.command('EHLO x');
    await client.command('MAIL FROM:<a@example.org>');
    await client.command('RCPT TO:<b@example.net>');
    await client.command('DATA');
    client.send('Subject: big\r\n\r\n' + 'x'.repeat(5000) + '\r\n.\r\n');
    const reply = await client.reply();
    assert.equal(reply.code, 451);
    assert.match(reply.text, /^4\.3\.0 /);
    assert.equal((await client.command('NOOP')).code, 250);
    assert.ok(t.logs.some((l) => /cannot spool the message/.test(l)));
  } finally {
    await t.cleanup();
  }
});
