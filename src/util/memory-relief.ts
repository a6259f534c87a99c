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
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Gc = (options?: { type?: 'minor' | 'major' }) => void;

export function makeMemoryRelief(): () => void {
  let gc: Gc | undefined;
  try {
    setFlagsFromString('--expose-gc');
    const found: unknown = runInNewContext('typeof gc === "function" ? gc : undefined');
    if (typeof found === 'function') gc = found as Gc;
  } catch {
    gc = undefined;
  }
  return () => gc?.({ type: 'minor' });
}
