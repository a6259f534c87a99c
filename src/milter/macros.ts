/**
 * Sendmail macros for a milter (SMFIC_MACRO): their values from what the session knows, and the
 * lists sent per stage by default (Postfix's defaults, less what we do not have).
 *
 * A name may be written with or without braces (`{client_addr}` or `client_addr`); the one-letter
 * macros are written bare (`j`, `_`, `i`, `v`). A macro without a value at that moment (no TLS,
 * no AUTH, no transaction yet) is not sent.
 */
import type { Address } from '../protocol/address.ts';
import type { Connection } from '../session/connection.ts';
import type { MacroLists, MacroSource } from './session.ts';

/** The macros sent at each stage unless the milter asks for others, or the plugin's arguments say otherwise. */
export const DEFAULT_MACROS: MacroLists = {
  connect: ['j', '{daemon_name}', '{daemon_addr}', '{daemon_port}', 'v', '_', '{client_addr}', '{client_port}', '{client_name}', '{client_ptr}'],
  helo: ['{tls_version}', '{cipher}'],
  mail: ['i', '{auth_type}', '{auth_authen}', '{mail_addr}', '{mail_host}'],
  rcpt: ['{rcpt_addr}', '{rcpt_host}'],
  data: ['i'],
  eoh: [],
  eom: ['i'],
};

/** The macros we can give a value, for the documentation and for checking a plugin's arguments. */
export const KNOWN_MACROS: readonly string[] = [
  'j', 'v', '_', 'i',
  'daemon_name', 'daemon_addr', 'daemon_port',
  'client_addr', 'client_port', 'client_name', 'client_ptr',
  'tls_version', 'cipher',
  'auth_type', 'auth_authen',
  'mail_addr', 'mail_host', 'rcpt_addr', 'rcpt_host',
];

export interface MacroFacts {
  /** This server's name (`config/me`). */
  readonly me: string;
  readonly version: string;
  /** `{daemon_name}`. */
  readonly daemonName: string;
  readonly connection: Connection;
  /** The transaction's id (the `i` macro, our queue id), once MAIL has been given. */
  readonly transactionId?: string;
  /** The envelope sender (during MAIL, before the transaction holds it). */
  readonly sender?: Address;
  /** The recipient of the RCPT being asked about. */
  readonly recipient?: Address;
}

/** A name without its braces: `{client_addr}` -> `client_addr`. */
export function bareMacroName(name: string): string {
  return name.startsWith('{') && name.endsWith('}') ? name.slice(1, -1) : name;
}

export function macroSource(facts: MacroFacts): MacroSource {
  const { connection: c, sender, recipient } = facts;
  return (name) => {
    switch (bareMacroName(name)) {
      case 'j':
        return facts.me;
      case 'v':
        return `qpsmtpd ${facts.version}`;
      case 'daemon_name':
        return facts.daemonName;
      case 'daemon_addr':
        return c.localIp;
      case 'daemon_port':
        return String(c.localPort);
      case '_':
        return c.describe();
      case 'client_addr':
        return c.remoteIp;
      case 'client_port':
        return String(c.remotePort);
      case 'client_name':
      case 'client_ptr':
        return c.remoteHost;
      case 'tls_version':
        return c.tls?.protocol;
      case 'cipher':
        return c.tls?.cipher;
      case 'auth_type':
        return c.authMechanism;
      case 'auth_authen':
        return c.authUser;
      case 'i':
        return facts.transactionId;
      case 'mail_addr':
        return sender?.address;
      case 'mail_host':
        return sender?.host;
      case 'rcpt_addr':
        return recipient?.address;
      case 'rcpt_host':
        return recipient?.host;
      default:
        return undefined;
    }
  };
}
