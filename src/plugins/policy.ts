/**
 * The reject policy every bundled plugin that refuses clients shares (qpsmtpd's get_reject,
 * get_reject_type, store_deferred_reject and is_immune in lib/Qpsmtpd/Plugin.pm).
 *
 * The common plugin arguments (hooks.md):
 *   reject 0|1|naughty    0: only log (and note); naughty: note the rejection for the `naughty`
 *                         plugin, which rejects later at the hook it is told to; 1 (default): reject
 *   reject_type perm|temp|disconnect|temp_disconnect
 *                         perm (alias hard) -> DENY, temp (alias soft) -> DENYSOFT,
 *                         disconnect -> DENY_DISCONNECT, temp_disconnect -> DENYSOFT_DISCONNECT
 * and immunity: relay clients and whitelisted hosts or senders are never refused.
 *
 * The `naughty` convention: connection note `naughty` holds the reject message(s), each
 * `(<plugin name>) <message>`, several joined with CRLF; connection note `naughty_reject_type`
 * holds the reject_type word of the first plugin that stored one.
 *
 * Plain functions over a plugin (inside a hook: `this`); they log through the plugin.
 */
import { DECLINED, DENY, DENYSOFT, DENYSOFT_DISCONNECT, DENY_DISCONNECT, type Code } from '../hooks/codes.ts';
import { LOGINFO } from '../log/levels.ts';
import type { Plugin } from './plugin.ts';

/** What `getReject` needs to know. */
export interface RejectArgs {
  /** The plugin that rejects (inside a hook: `this`). */
  readonly plugin: Plugin;
  /**
   * The plugin's `reject` argument: `0` (also `no`, `false`, `off`, empty, or `false`): tolerate;
   * `naughty`: defer to the naughty plugin; anything else, or undefined: reject.
   */
  readonly reject?: string | boolean | undefined;
  /** The plugin's `reject_type` argument (see `rejectCode`); undefined: perm. */
  readonly rejectType?: string | undefined;
  /** The reply text for the client. */
  readonly message?: string | undefined;
  /** Detail for the log line only. */
  readonly logMessage?: string | undefined;
}

/** A falsy `reject` value: qpsmtpd's Perl false (`0`, empty), plus the usual words for "no". */
const TOLERATE = /^(0|no|false|off)?$/i;

/**
 * qpsmtpd's get_reject: what a plugin returns when a client failed its check, following the
 * plugin's `reject` and `reject_type`. Tolerated and naughty both answer DECLINED (the session
 * goes on); naughty notes the message first.
 */
export function getReject(args: RejectArgs): Code | readonly [Code, string] {
  const { plugin } = args;
  const message = args.message !== undefined && args.message !== '' ? args.message : 'unspecified error';
  const detail = args.logMessage !== undefined && args.logMessage !== '' ? `, ${args.logMessage}` : '';
  const reject = args.reject;

  if (reject === false || (typeof reject === 'string' && TOLERATE.test(reject.trim()))) {
    plugin.log(LOGINFO, `fail, tolerated${detail}`);
    return DECLINED;
  }
  if (typeof reject === 'string' && reject.trim().toLowerCase() === 'naughty') {
    plugin.log(LOGINFO, `fail, NAUGHTY${detail}`);
    storeDeferredReject(plugin, `(${plugin.name}) ${message}`, args.rejectType);
    return DECLINED;
  }
  plugin.log(LOGINFO, `fail${detail}`);
  return [rejectCode(args.rejectType), message];
}

/**
 * qpsmtpd's get_reject_type: the code for a `reject_type` word (case-insensitive): perm or hard ->
 * DENY, temp or soft -> DENYSOFT, disconnect -> DENY_DISCONNECT, temp_disconnect ->
 * DENYSOFT_DISCONNECT; undefined or anything else -> `fallback` (DENY).
 */
export function rejectCode(type: string | undefined, fallback: Code = DENY): Code {
  switch (type?.trim().toLowerCase()) {
    case 'perm':
    case 'hard':
      return DENY;
    case 'temp':
    case 'soft':
      return DENYSOFT;
    case 'disconnect':
      return DENY_DISCONNECT;
    case 'temp_disconnect':
      return DENYSOFT_DISCONNECT;
    default:
      return fallback;
  }
}

/**
 * qpsmtpd's is_immune: true (and a `skip, ...` log line) for a relay client (plugins/relay,
 * AUTH), a host whitelisted by another plugin (connection note `whitelisthost`) or a sender
 * whitelisted for this transaction (transaction note `whitelistsender`). Only inside a hook.
 */
export function isImmune(plugin: Plugin): boolean {
  const qp = plugin.qp;
  if (qp.connection.relayClient) {
    plugin.log(LOGINFO, 'skip, relay client');
    return true;
  }
  if (truthy(qp.connection.notes['whitelisthost'])) {
    plugin.log(LOGINFO, 'skip, whitelisted host');
    return true;
  }
  if (truthy(qp.transaction.notes['whitelistsender'])) {
    plugin.log(LOGINFO, 'skip, whitelisted sender');
    return true;
  }
  return false;
}

/** Note the rejection for the naughty plugin (qpsmtpd's store_deferred_reject). */
function storeDeferredReject(plugin: Plugin, message: string, rejectType: string | undefined): void {
  const notes = plugin.qp.connection.notes;
  const previous = notes['naughty'];
  if (typeof previous !== 'string' || previous === '') {
    notes['naughty'] = message;
  } else if (!previous.split('\r\n').includes(message)) {
    // Several plugins (or one plugin at several hooks) may have something to say; once each.
    notes['naughty'] = `${previous}\r\n${message}`;
  }
  if (!truthy(notes['naughty_reject_type']) && rejectType !== undefined) notes['naughty_reject_type'] = rejectType;
}

/** Perl's idea of true for a note: set, and not 0, '' or '0'. */
function truthy(value: unknown): boolean {
  return value !== undefined && value !== null && value !== false && value !== 0 && value !== '' && value !== '0';
}
