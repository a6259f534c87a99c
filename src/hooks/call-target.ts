/**
 * The `this` of a plugin's hook call.
 *
 * One plugin object serves every session, and async hooks of different sessions interleave, so
 * `this.qp` cannot be a field of the plugin. Each session gets a view of the plugin instead: an
 * object whose prototype is the plugin, made on first use, holding the session. Reads of the
 * plugin's own fields fall through to it; writes made during a hook stay in that session's view.
 */

const SESSION = Symbol('qpsmtpd.session');
const HOOK = Symbol('qpsmtpd.hook');
const CALL = Symbol('qpsmtpd.call');

interface CallSlots {
  [SESSION]?: unknown;
  [HOOK]?: string;
  [CALL]?: AbortController;
}

/** A view of `plugin` for one session. */
export function makeCallTarget(plugin: object, session: unknown): object {
  const view = Object.create(plugin) as CallSlots;
  view[SESSION] = session;
  return view;
}

/** Mark the start of a call on `hook`: a fresh AbortSignal is made only if the plugin asks for it. */
export function beginCall(target: object, hook: string): void {
  const slots = target as CallSlots;
  slots[HOOK] = hook;
  slots[CALL] = undefined;
}

/** Fire the AbortSignal of the call in progress. */
export function abortCall(target: object): void {
  const slots = target as CallSlots;
  slots[CALL] ??= new AbortController();
  slots[CALL].abort(new Error('plugin timeout'));
}

/** The session a view belongs to; undefined outside a session (in `register`, `pre-connection`). */
export function sessionOf(target: object): unknown {
  return (target as CallSlots)[SESSION];
}

/** The hook being run, for log lines. */
export function hookOf(target: object): string | undefined {
  return (target as CallSlots)[HOOK];
}

/** The AbortSignal of the current call, made on first use. */
export function signalOf(target: object): AbortSignal {
  const slots = target as CallSlots;
  slots[CALL] ??= new AbortController();
  return slots[CALL].signal;
}
