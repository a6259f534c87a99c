/**
 * The one place that imports plugin code.
 *
 * The bundled plugins, built into dist/, import the API by a relative path and load natively.
 * The first plugin from anywhere else registers the resolver that makes `import ... from 'qpsmtpd'`
 * work in any folder, and the first `.ts` plugin registers a TypeScript loader (tsx). So a
 * configuration of bundled plugins starts without paying for either, and a user's `.ts` plugin
 * needs no build step and no install next to it.
 */
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';

/** Set by whoever registered these already (the test runner does, before any test imports). */
const API_RESOLVER_FLAG = Symbol.for('qpsmtpd.api-resolver');
const TS_LOADER_FLAG = Symbol.for('qpsmtpd.typescript-loader');
const flags = globalThis as unknown as Record<symbol, unknown>;

/** This module's own flavour: `.ts` when running from the sources, `.js` from dist/. */
const ownExtension = import.meta.url.endsWith('.ts') ? '.ts' : '.js';

function ensureApiResolver(): void {
  if (flags[API_RESOLVER_FLAG]) return;
  // Spelled from the parent folder: in dist/ this code may sit in a chunk (see scripts/build.mjs).
  register(new URL('../plugins/api-specifier-hook.mjs', import.meta.url), {
    data: { apiUrl: new URL(`../index${ownExtension}`, import.meta.url).href },
  });
  flags[API_RESOLVER_FLAG] = true;
}

async function ensureTypeScriptLoader(): Promise<void> {
  if (flags[TS_LOADER_FLAG]) return;
  const { register: registerTsx } = await import('tsx/esm/api');
  registerTsx();
  flags[TS_LOADER_FLAG] = true;
}

/** Import a plugin file; `bundled` files need neither the resolver nor TypeScript support. */
export async function importPluginModule(file: string, bundled: boolean): Promise<Record<string, unknown>> {
  if (!bundled) {
    ensureApiResolver();
    if (/\.[cm]?ts$/.test(file)) await ensureTypeScriptLoader();
  }
  return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
}
