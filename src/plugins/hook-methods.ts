/**
 * The `hook_*` method signatures of a Plugin, derived from HookArgs and HookReturn.
 *
 * They are written as methods (not a mapped type) because TypeScript lets a subclass override a
 * method with a method, not a property with one. Each line takes its types from the hook map, and
 * the check at the bottom fails to compile if a hook is missing here or a name is wrong.
 */
import type { HookArgs, HookMethodName, HookName, HookReturn } from '../hooks/hook-map.ts';
import type { Transaction } from '../session/transaction.ts';

type A<H extends HookName> = HookArgs[H];
type R<H extends HookName> = HookReturn<H>;

export interface HookMethods {
  hook_logging?(tx: Transaction, ...args: A<'logging'>): R<'logging'>;
  hook_config?(tx: Transaction, ...args: A<'config'>): R<'config'>;
  hook_user_config?(tx: Transaction, ...args: A<'user_config'>): R<'user_config'>;
  hook_pre_connection?(tx: Transaction, ...args: A<'pre-connection'>): R<'pre-connection'>;
  hook_connect?(tx: Transaction, ...args: A<'connect'>): R<'connect'>;
  hook_ehlo_parse?(tx: Transaction, ...args: A<'ehlo_parse'>): R<'ehlo_parse'>;
  hook_ehlo?(tx: Transaction, ...args: A<'ehlo'>): R<'ehlo'>;
  hook_helo_parse?(tx: Transaction, ...args: A<'helo_parse'>): R<'helo_parse'>;
  hook_helo?(tx: Transaction, ...args: A<'helo'>): R<'helo'>;
  hook_auth_parse?(tx: Transaction, ...args: A<'auth_parse'>): R<'auth_parse'>;
  hook_auth?(tx: Transaction, ...args: A<'auth'>): R<'auth'>;
  hook_auth_plain?(tx: Transaction, ...args: A<'auth-plain'>): R<'auth-plain'>;
  hook_auth_login?(tx: Transaction, ...args: A<'auth-login'>): R<'auth-login'>;
  hook_auth_cram_md5?(tx: Transaction, ...args: A<'auth-cram-md5'>): R<'auth-cram-md5'>;
  hook_mail_parse?(tx: Transaction, ...args: A<'mail_parse'>): R<'mail_parse'>;
  hook_mail_pre?(tx: Transaction, ...args: A<'mail_pre'>): R<'mail_pre'>;
  hook_mail?(tx: Transaction, ...args: A<'mail'>): R<'mail'>;
  hook_rcpt_parse?(tx: Transaction, ...args: A<'rcpt_parse'>): R<'rcpt_parse'>;
  hook_rcpt_pre?(tx: Transaction, ...args: A<'rcpt_pre'>): R<'rcpt_pre'>;
  hook_rcpt?(tx: Transaction, ...args: A<'rcpt'>): R<'rcpt'>;
  hook_data?(tx: Transaction, ...args: A<'data'>): R<'data'>;
  hook_data_headers_end?(tx: Transaction, ...args: A<'data_headers_end'>): R<'data_headers_end'>;
  hook_data_post_headers?(tx: Transaction, ...args: A<'data_post_headers'>): R<'data_post_headers'>;
  hook_received_line?(tx: Transaction, ...args: A<'received_line'>): R<'received_line'>;
  hook_data_post?(tx: Transaction, ...args: A<'data_post'>): R<'data_post'>;
  hook_queue_pre?(tx: Transaction, ...args: A<'queue_pre'>): R<'queue_pre'>;
  hook_queue?(tx: Transaction, ...args: A<'queue'>): R<'queue'>;
  hook_queue_post?(tx: Transaction, ...args: A<'queue_post'>): R<'queue_post'>;
  hook_vrfy?(tx: Transaction, ...args: A<'vrfy'>): R<'vrfy'>;
  hook_noop?(tx: Transaction, ...args: A<'noop'>): R<'noop'>;
  hook_help?(tx: Transaction, ...args: A<'help'>): R<'help'>;
  hook_quit?(tx: Transaction, ...args: A<'quit'>): R<'quit'>;
  hook_unrecognized_command?(tx: Transaction, ...args: A<'unrecognized_command'>): R<'unrecognized_command'>;
  hook_reset_transaction?(tx: Transaction, ...args: A<'reset_transaction'>): R<'reset_transaction'>;
  hook_disconnect?(tx: Transaction, ...args: A<'disconnect'>): R<'disconnect'>;
  hook_post_connection?(tx: Transaction, ...args: A<'post-connection'>): R<'post-connection'>;
  hook_deny?(tx: Transaction, ...args: A<'deny'>): R<'deny'>;
  hook_ok?(tx: Transaction, ...args: A<'ok'>): R<'ok'>;
}

/** A function registered with `registerHook` for hook H; `this` is the plugin. */
export type HookFunction<H extends HookName = HookName> = (tx: Transaction, ...args: HookArgs[H]) => HookReturn<H>;

// Compile-time proof that the list above names every hook and nothing else.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const methodsCoverAllHooks: Same<keyof HookMethods, HookMethodName<HookName>> = true;
void methodsCoverAllHooks;
