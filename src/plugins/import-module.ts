/**
 * The one place that imports plugin code. `.js` and `.mjs` load natively; the first `.ts` plugin
 * registers a TypeScript loader (tsx) for the process, so the default configuration starts without
 * paying for it and a user's `.ts` plugin needs no build step.
 */
import { pathToFileURL } from 'node:url';

/** Set by whoever registered a TypeScript loader already (the test runner does). */
const TS_LOADER_FLAG = Symbol.for('qpsmtpd.typescript-loader');

async function ensureTypeScriptLoader(): Promise<void> {
  const flags = globalThis as unknown as Record<symbol, unknown>;
  if (flags[TS_LOADER_FLAG]) return;
  const { register } = await import('tsx/esm/api');
  register();
  flags[TS_LOADER_FLAG] = true;
}

export async function importPluginModule(file: string): Promise<Record<string, unknown>> {
  if (/\.[cm]?ts$/.test(file)) await ensureTypeScriptLoader();
  return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
}
