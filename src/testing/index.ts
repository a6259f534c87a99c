/**
 * `qpsmtpd/testing`: run a plugin, or a whole config directory, through SMTP sessions in the test's
 * own process, without a socket. It depends on no test runner: use node:test, or any other.
 *
 *   const server = await testServer({ plugins: ['my_plugin arg'], pluginDirs: [dir], acceptAllRecipients: true });
 *   const session = await server.connect({ remoteIp: '192.0.2.7' });
 *   const result = await session.sendMail('a@example.test', ['b@example.test'], 'Subject: hi\n\nHello.\n');
 *   // result.code 250, server.queued[0].message, server.logs ...
 *   await server.close();
 *
 * docs/plugins.md ("Testing a plugin") describes it all.
 */
export { testServer, TestServer, pluginNameOf, CAPTURE_QUEUE_NAME, ACCEPT_ALL_NAME } from './server.ts';
export type { TestServerOptions, ConnectOptions, PluginEntry, PluginClass, ConfigValue, QueuedMessage, LogEntry } from './server.ts';
export { TestSession } from './session.ts';
export type { MailResult, SendMailOptions } from './session.ts';
export type { SmtpReply } from './reply.ts';
export { toSmtpReply } from './reply.ts';
export { TestConn, ConnectionClosedError, TEST_TLS, DEFAULT_ENDPOINTS } from './conn.ts';
export type { WireReply, TestConnOptions } from './conn.ts';
export { buildMessage, toWire, toPath } from './message.ts';
export type { MessageParts } from './message.ts';
export { startDnsServer } from './dns-server.ts';
export type { TestDnsServer, TestRecord, TestRecordType, DnsServerOptions } from './dns-server.ts';
