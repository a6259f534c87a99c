/** Connections from a trusted proxy: the PROXY header names the client every plugin then sees. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testApp } from '../helpers/test-app.ts';

const SHOW_CLIENT = `import { Plugin, DENY } from 'qpsmtpd';
export default class ShowClient extends Plugin {
  hook_pre_connection(_tx: unknown, info: { remoteIp: string }) { this.connection.notes['pre'] = info.remoteIp; }
  hook_rcpt() { return [DENY, 'client ' + this.connection.remoteIp + ':' + this.connection.remotePort + ' via ' + (this.connection.proxiedBy ?? 'none') + ' pre ' + String(this.connection.notes['pre'])]; }
}
`;

async function clientSeen(header: string | Buffer, from = '10.0.0.5'): Promise<string> {
  const t = await testApp({ plugins: { 'show_client.ts': SHOW_CLIENT }, config: { plugins: ['show_client'], proxy_trusted: ['10.0.0.0/24'] } });
  try {
    const { client } = t.connect({ remoteIp: from });
    client.send(header);
    assert.equal((await client.reply()).code, 220);
    await client.command('EHLO x');
    await client.command('MAIL FROM:<a@example.org>');
    return (await client.command('RCPT TO:<b@example.net>')).text;
  } finally {
    await t.cleanup();
  }
}

test('a trusted proxy names the client with PROXY v1; pre-connection already sees it', async () => {
  assert.match(await clientSeen('PROXY TCP4 198.51.100.7 192.0.2.1 40000 25\r\n'), /client 198\.51\.100\.7:40000 via 10\.0\.0\.5 pre 198\.51\.100\.7/);
});

test('PROXY v2 binary header, sent together with the first command', async () => {
  const signature = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 0x0c]);
  const header = Buffer.concat([signature, Buffer.from([203, 0, 113, 9, 192, 0, 2, 1, 0x30, 0x39, 0, 25])]);
  assert.match(await clientSeen(header), /client 203\.0\.113\.9:12345 via 10\.0\.0\.5/);
});

test('a trusted proxy without a PROXY header is closed without a word', async () => {
  const t = await testApp({ plugins: { 'show_client.ts': SHOW_CLIENT }, config: { plugins: ['show_client'], proxy_trusted: ['10.0.0.5'] } });
  try {
    const { client, done } = t.connect({ remoteIp: '10.0.0.5' });
    client.send('EHLO sneaky\r\n');
    await done;
    assert.equal(client.written, '');
  } finally {
    await t.cleanup();
  }
});

test('a client that is no trusted proxy cannot claim another address', async () => {
  const t = await testApp({ plugins: { 'show_client.ts': SHOW_CLIENT }, config: { plugins: ['show_client'], proxy_trusted: ['10.0.0.5'] } });
  try {
    const { client } = await t.greeted({ remoteIp: '192.0.2.66' });
    assert.equal((await client.command('PROXY TCP4 1.2.3.4 5.6.7.8 1 2')).code, 500);
    await client.command('EHLO x');
    await client.command('MAIL FROM:<a@example.org>');
    assert.match((await client.command('RCPT TO:<b@example.net>')).text, /client 192\.0\.2\.66/);
  } finally {
    await t.cleanup();
  }
});

test('behind a trusted proxy, max_connections_per_ip counts the clients the proxy names, not the proxy', async () => {
  const t = await testApp({ plugins: { 'show_client.ts': SHOW_CLIENT }, config: { plugins: ['show_client'], proxy_trusted: ['10.0.0.5'], max_connections_per_ip: '1' } });
  try {
    const greet = async (client: string): Promise<number> => {
      const { client: c } = t.connect({ remoteIp: '10.0.0.5' });
      c.send(`PROXY TCP4 ${client} 192.0.2.1 40000 25\r\n`);
      return (await c.reply()).code;
    };
    assert.equal(await greet('198.51.100.1'), 220);
    assert.equal(await greet('198.51.100.2'), 220, 'another client through the same proxy');
    assert.equal(await greet('198.51.100.1'), 421, 'the same client again is over its limit');
  } finally {
    await t.cleanup();
  }
});
