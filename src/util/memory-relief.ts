/**
 * A young-generation garbage collection on demand, for the DATA path.
 *
 * A large message arrives as thousands of 64 KiB socket buffers. Each is garbage a moment later,
 * but V8 collects them only when its own heap fills, which their small JS wrappers never do; until
 * then the memory stays allocated, and malloc keeps it once it is freed. So a 50 MB message would
 * raise the daemon's resident size by some 35 MB for good. A minor collection every few megabytes
 * of message data (about a millisecond each) keeps that to a few megabytes.
 *
 * Node has no API for this without `--expose-gc`; the flag can be set at run time, and a fresh VM
 * context then carries the `gc` function. Where that fails, relief is a no-op.
 */
import { lazyV8, lazyVm } from './builtin.ts';

type Gc = (options?: { type?: 'minor' | 'major' }) => void;

export function makeMemoryRelief(): () => void {
  // Found on the first large message, not at start-up: the fresh context costs a few milliseconds.
  let gc: Gc | null | undefined;
  return () => {
    gc ??= findGc();
    gc?.({ type: 'minor' });
  };
}

function findGc(): Gc | null {
  try {
    lazyV8().setFlagsFromString('--expose-gc');
    const found: unknown = lazyVm().runInNewContext('typeof gc === "function" ? gc : undefined');
    return typeof found === 'function' ? (found as Gc) : null;
  } catch {
    return null;
  }
}
