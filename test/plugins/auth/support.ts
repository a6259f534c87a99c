/** Client sides of AUTH PLAIN, LOGIN and CRAM-MD5, for the auth plugin tests. */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import type { FakeConn, ParsedReply } from '../../helpers/fake-conn.ts';
import type { TestApp } from '../../helpers/test-app.ts';

export const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
export const unb64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8');

/** A greeted session after a successful EHLO. */
export async function ehlo(t: TestApp): Promise<FakeConn> {
  const { client } = await t.greeted();
  const reply = await client.command('EHLO client.example');
  assert.equal(reply.code, 250, reply.raw);
  return client;
}

/** AUTH PLAIN, with the credentials as initial response or after the empty 334. */
export async function plain(client: FakeConn, user: string, password: string, initial = true): Promise<ParsedReply> {
  const response = b64(`\0${user}\0${password}`);
  if (initial) return client.command(`AUTH PLAIN ${response}`);
  const challenge = await client.command('AUTH PLAIN');
  assert.equal(challenge.code, 334, challenge.raw);
  return client.command(response);
}

/** AUTH LOGIN: Username:, then Password:. */
export async function login(client: FakeConn, user: string, password: string): Promise<ParsedReply> {
  const first = await client.command('AUTH LOGIN');
  assert.equal(first.code, 334, first.raw);
  assert.equal(unb64(first.text), 'Username:');
  const second = await client.command(b64(user));
  assert.equal(second.code, 334, second.raw);
  assert.equal(unb64(second.text), 'Password:');
  return client.command(b64(password));
}

/** AUTH CRAM-MD5: the HMAC-MD5 of the server's challenge, keyed with the password. */
export async function cram(client: FakeConn, user: string, password: string): Promise<ParsedReply> {
  const challenge = await client.command('AUTH CRAM-MD5');
  assert.equal(challenge.code, 334, challenge.raw);
  const ticket = unb64(challenge.text);
  const digest = createHmac('md5', password).update(ticket, 'utf8').digest('hex');
  return client.command(b64(`${user} ${digest}`));
}

export type Mechanism = 'PLAIN' | 'PLAIN-prompted' | 'LOGIN' | 'CRAM-MD5';
export const MECHANISMS: readonly Mechanism[] = ['PLAIN', 'PLAIN-prompted', 'LOGIN', 'CRAM-MD5'];

/** One AUTH attempt in a fresh session; the final reply code. */
export async function authCode(t: TestApp, mechanism: Mechanism, user: string, password: string): Promise<number> {
  const client = await ehlo(t);
  let reply: ParsedReply;
  switch (mechanism) {
    case 'PLAIN':
      reply = await plain(client, user, password);
      break;
    case 'PLAIN-prompted':
      reply = await plain(client, user, password, false);
      break;
    case 'LOGIN':
      reply = await login(client, user, password);
      break;
    case 'CRAM-MD5':
      reply = await cram(client, user, password);
      break;
  }
  await client.command('QUIT');
  return reply.code;
}
