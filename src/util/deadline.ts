/**
 * An AbortSignal that fires after a time limit or when another signal (a hook's `this.signal`)
 * fires, whichever comes first.
 *
 * Why not `AbortSignal.any([outer, AbortSignal.timeout(ms)])`: on Node 20 the combined signal holds
 * its sources only weakly and AbortSignal.timeout's timer holds its signal weakly too, so once the
 * garbage collector takes the timeout signal the limit silently never fires (a hung scanner or
 * program would hold the session until the client gives up). Here the timer holds the controller.
 */
export interface Deadline {
  readonly signal: AbortSignal;
  /** Stop the timer and let go of the outer signal; call it when the work is done. */
  release(): void;
}

/** The reason a deadline's signal carries when the time ran out. */
export class DeadlineExceeded extends Error {
  override readonly name = 'TimeoutError';
  constructor(readonly ms: number) {
    super(`no result within ${ms} ms`);
  }
}

export function deadline(ms: number, outer?: AbortSignal): Deadline {
  const controller = new AbortController();
  // Whichever ends it first lets go of the other: a deadline whose outer signal fired keeps no
  // timer running, and one whose time ran out keeps no listener on the outer signal. (Until then
  // the timer holds the controller and the outer signal: hence `release()` once the work is done.)
  const release = (): void => {
    clearTimeout(timer);
    outer?.removeEventListener('abort', onOuterAbort);
  };
  const onOuterAbort = (): void => {
    release();
    controller.abort(outer?.reason);
  };
  const timer = setTimeout(() => {
    release();
    controller.abort(new DeadlineExceeded(ms));
  }, ms);
  // The work it limits keeps the process alive if it must; an unreleased deadline need not.
  timer.unref();
  if (outer?.aborted) onOuterAbort();
  else outer?.addEventListener('abort', onOuterAbort, { once: true });
  return { signal: controller.signal, release };
}

/** Run `work` under `deadline(ms, outer)`, released as soon as the work settles. */
export async function withDeadline<T>(ms: number, outer: AbortSignal | undefined, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const limit = deadline(ms, outer);
  try {
    return await work(limit.signal);
  } finally {
    limit.release();
  }
}
