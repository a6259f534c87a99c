/**
 * Every hook: its name, the arguments it passes after the Transaction, and what may follow the
 * code in its result. This is the single source: the runner's checks, the loader's list of known
 * hooks and the `hook_*` method types of `Plugin` are all derived from here.
 */
import type { Address } from '../protocol/address.ts';
import type { EsmtpParams, PathArgument } from '../protocol/command.ts';
import type { LogLevel } from '../log/levels.ts';
import type { Code } from './codes.ts';

/** All hooks, in the order a session meets them (qpsmtpd's lib/Qpsmtpd/Plugin.pm order). */
export const HOOK_NAMES = [
  'logging',
  'config',
  'user_config',
  'pre-connection',
  'connect',
  'ehlo_parse',
  'ehlo',
  'helo_parse',
  'helo',
  'auth_parse',
  'auth',
  'auth-plain',
  'auth-login',
  'auth-cram-md5',
  'mail_parse',
  'mail_pre',
  'mail',
  'rcpt_parse',
  'rcpt_pre',
  'rcpt',
  'data',
  'data_headers_end',
  'data_post_headers',
  'received_line',
  'data_post',
  'queue_pre',
  'queue',
  'queue_post',
  'vrfy',
  'noop',
  'help',
  'quit',
  'unrecognized_command',
  'reset_transaction',
  'disconnect',
  'post-connection',
  'deny',
  'ok',
] as const;

export type HookName = (typeof HOOK_NAMES)[number];

/** A reply text: one string (may contain `\n`) or one string per line. */
export type Message = string | readonly string[];

/** What `pre-connection` learns about a new client before the session exists. */
export interface PreConnectionInfo {
  readonly remoteIp: string;
  readonly remotePort: number;
  readonly localIp: string;
  readonly localPort: number;
  /** Sessions from this IP in this process, this one included. */
  readonly connectionsFromIp: number;
}

/** Replaces the built-in HELO/EHLO argument parser. */
export type HelloParser = (argument: string) => { host: string } | { error: string };
/** Replaces the built-in MAIL FROM / RCPT TO argument parser. */
export type PathParser = (argument: string) => PathArgument;
/** Replaces the built-in AUTH argument parser. */
export type AuthParser = (argument: string) => { mechanism: string; initialResponse?: string } | { error: string };

/** Arguments after `(transaction, ...)` of the AUTH hooks. */
export type AuthArgs = [
  mechanism: string,
  user: string,
  passClear: string | undefined,
  passHash: string | undefined,
  ticket: string | undefined,
];

/** Arguments each hook passes after the Transaction. */
export interface HookArgs {
  /** Every log line; logging plugins load first, from `config/logging`. */
  logging: [level: LogLevel, hook: string, pluginName: string, ...message: string[]];
  /** Every config lookup, before the files. */
  config: [name: string];
  /** A per-address config lookup (`address.config(name)`). */
  user_config: [address: Address, name: string];
  /** Right after accept, before the session starts; must be fast. */
  'pre-connection': [info: PreConnectionInfo];
  /** Session start, before the greeting. */
  connect: [];
  /** Before the EHLO argument is parsed. */
  ehlo_parse: [];
  /** After EHLO was parsed (a missing host is 501 first). */
  ehlo: [host: string];
  /** Before the HELO argument is parsed. */
  helo_parse: [];
  /** After HELO was parsed (a missing host is 501 first). */
  helo: [host: string];
  /** On `AUTH ...`, before its argument is parsed. */
  auth_parse: [argument: string];
  /** After the SASL exchange, when no mechanism hook decided. */
  auth: AuthArgs;
  /** After the SASL exchange of AUTH PLAIN. */
  'auth-plain': AuthArgs;
  /** After the SASL exchange of AUTH LOGIN. */
  'auth-login': AuthArgs;
  /** After the SASL exchange of AUTH CRAM-MD5. */
  'auth-cram-md5': AuthArgs;
  /** Before `MAIL FROM:` is parsed. */
  mail_parse: [argument: string];
  /** After parsing, before the sender Address is built. */
  mail_pre: [addressString: string, params: EsmtpParams];
  /** The sender is known (MAIL before HELO is 503; a MAIL starts a new transaction). */
  mail: [sender: Address, params: EsmtpParams];
  /** Before `RCPT TO:` is parsed. */
  rcpt_parse: [argument: string];
  /** After parsing, before the recipient Address is built. */
  rcpt_pre: [addressString: string, params: EsmtpParams];
  /** Per recipient (RCPT before MAIL is 503). */
  rcpt: [recipient: Address, params: EsmtpParams];
  /** On DATA (or the first BDAT), before the sequence check. */
  data: [];
  /** Once, when the header block ends, while the body is still arriving. */
  data_headers_end: [];
  /** After the final dot, before the Received header is added. */
  data_post_headers: [];
  /** While the Received header is built. */
  received_line: [smtpProto: string, authComment: string, tlsComment: string];
  /** The message is complete and its headers added: content filters. */
  data_post: [];
  /** Before queuing: the last chance to change the message. */
  queue_pre: [];
  /** Hand the message on; OK only once it is durable. */
  queue: [];
  /** After the reply to the queue step. */
  queue_post: [];
  /** On VRFY. */
  vrfy: [address: string];
  /** On NOOP. */
  noop: [];
  /** On HELP. */
  help: [args: string];
  /** On QUIT; the session then always ends. */
  quit: [];
  /** Any other verb (how STARTTLS, PROXY and custom verbs are built). */
  unrecognized_command: [verb: string, rest: string];
  /** Whenever a transaction is dropped: MAIL, RSET, after queue, after a DATA rejection, on disconnect. */
  reset_transaction: [];
  /** The session ends (QUIT, a DISCONNECT result, client EOF, time-out). */
  disconnect: [];
  /** After the connection closed. */
  'post-connection': [];
  /** After a plugin denied on any hook. */
  deny: [pluginName: string, code: Code, message: string];
  /** After a plugin answered anything but a denial on any hook. */
  ok: [pluginName: string, code: Code, message: string];
}

/** What follows the code in `[code, x]`, where it is not a reply message. */
export interface HookPayloads {
  helo_parse: HelloParser;
  ehlo_parse: HelloParser;
  mail_parse: PathParser;
  rcpt_parse: PathParser;
  auth_parse: AuthParser;
  mail_pre: string;
  rcpt_pre: string;
  config: string | readonly string[];
  user_config: string | readonly string[];
}

export type HookPayload<H extends HookName> = H extends keyof HookPayloads ? HookPayloads[H] : Message;

/**
 * A hook's answer: a code, `[code]`, `[code, message]` (or the hook's payload), or nothing, which
 * means DECLINED. A plain array literal (`[DENY, 'no']`) is accepted as it is inferred.
 */
export type HookResult<P = Message> = Code | readonly [Code] | readonly [Code, P] | ReadonlyArray<Code | P> | void | undefined;

/** Hooks that are called synchronously: config lookups and logging are on every hot path. */
export type SyncHookName = 'config' | 'user_config' | 'logging';

export type HookReturn<H extends HookName> = H extends SyncHookName
  ? HookResult<HookPayload<H>>
  : HookResult<HookPayload<H>> | Promise<HookResult<HookPayload<H>>>;

/** Hook name to method name: `pre-connection` to `hook_pre_connection`. */
export type HookMethodName<H extends string> = `hook_${Underscored<H>}`;
type Underscored<S extends string> = S extends `${infer A}-${infer B}` ? `${A}_${Underscored<B>}` : S;

export function hookMethodName(hook: HookName): string {
  return 'hook_' + hook.replace(/-/g, '_');
}

const BY_METHOD: ReadonlyMap<string, HookName> = new Map(HOOK_NAMES.map((h) => [hookMethodName(h), h]));
const KNOWN: ReadonlySet<string> = new Set(HOOK_NAMES);

/** `hook_pre_connection` to `pre-connection`; undefined for a name that is no hook. */
export function hookForMethod(method: string): HookName | undefined {
  return BY_METHOD.get(method);
}

/** Accepts `pre-connection` and also `pre_connection`, as qpsmtpd's register_hook does. */
export function toHookName(name: string): HookName | undefined {
  if (KNOWN.has(name)) return name as HookName;
  return BY_METHOD.get('hook_' + name.replace(/-/g, '_'));
}

// Compile-time proof that HookArgs covers exactly HOOK_NAMES.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const hookArgsCoverAllHooks: Same<keyof HookArgs, HookName> = true;
void hookArgsCoverAllHooks;
