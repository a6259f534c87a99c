/**
 * From plugin specs to loaded plugins: find the file, import it, check it is a Plugin class,
 * attach its `hook_*` methods, call `register(qp, ...args)`. Every problem is collected with the
 * config file and line it comes from, so `qpsmtpd check` and start-up can report them all at once.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { hookForMethod, type HookName } from '../hooks/hook-map.ts';
import type { HookEntry, PluginRecord } from '../hooks/registry.ts';
import { importPluginModule } from './import-module.ts';
import { Plugin, SETUP, logLevelFromArgs, type PluginHost, type PluginSetup } from './plugin.ts';
import { PLUGIN_ALIASES, type LoadProblem, type PluginSpec } from './plugins-file.ts';

export const PLUGIN_EXTENSIONS = ['.ts', '.js', '.mjs'] as const;

export interface LoadOptions {
  /** Folders to search, in order (plugin_dirs, then plugins/ beside the config dir, then the bundled ones). */
  readonly searchDirs: readonly string[];
  /** The bundled plugins' folder: its files load without the API resolver or TypeScript support. */
  readonly bundledDir: string;
  readonly host: PluginHost;
  /** Time limit of one hook call for a plugin, in ms. */
  readonly timeoutFor: (pluginName: string) => number;
  /** Time limit of `register`, in ms. */
  readonly registerTimeoutMs: number;
  /** Plugin classes given directly, by plugin name (without `:N`): used instead of a file. */
  readonly classes?: ReadonlyMap<string, PluginClass>;
}

/** A plugin's class, as a plugin module's default export (or given directly to the loader). */
export type PluginClass = new () => Plugin;

export interface LoadResult {
  readonly records: PluginRecord[];
  readonly entries: (HookEntry & { first: boolean })[];
  readonly problems: LoadProblem[];
}

/** The file for a plugin name: the first NAME.ts / NAME.js / NAME.mjs in the search folders. */
export function findPluginFile(module: string, dirs: readonly string[]): string | undefined {
  for (const dir of dirs) {
    for (const ext of PLUGIN_EXTENSIONS) {
      const file = join(dir, module + ext);
      if (existsSync(file)) return file;
    }
  }
  return undefined;
}

export async function loadPlugins(specs: readonly PluginSpec[], options: LoadOptions): Promise<LoadResult> {
  const records: PluginRecord[] = [];
  const entries: (HookEntry & { first: boolean })[] = [];
  const problems: LoadProblem[] = [];

  for (const spec of specs) {
    const problem = (message: string): void => {
      problems.push({ file: spec.file, line: spec.line, plugin: spec.name, message });
    };
    const given = options.classes?.get(spec.module);
    const alias = PLUGIN_ALIASES[spec.module];
    const file =
      given !== undefined
        ? `(class ${given.name || 'given directly'})`
        : (findPluginFile(spec.module, options.searchDirs) ?? (alias ? findPluginFile(alias, options.searchDirs) : undefined));
    if (file === undefined) {
      const names = PLUGIN_EXTENSIONS.map((e) => spec.module + e).join(', ');
      problem(`not found: looked for ${names} in ${options.searchDirs.join(', ')}`);
      continue;
    }

    let exported: unknown = given;
    if (given === undefined) {
      try {
        exported = (await importPluginModule(file, isInside(file, options.bundledDir))).default;
      } catch (err) {
        problem(`cannot load ${file}: ${describeLoadError(err)}${await syntaxErrorLocation(err, file)}`);
        continue;
      }
    }
    if (typeof exported !== 'function' || !(exported.prototype instanceof Plugin)) {
      problem(`${file} must have a default export: a class that extends Plugin (import { Plugin } from 'qpsmtpd')`);
      continue;
    }

    let instance: Plugin;
    try {
      instance = new (exported as new () => Plugin)();
    } catch (err) {
      problem(`constructor failed: ${describeLoadError(err)}`);
      continue;
    }
    const setup: PluginSetup = {
      name: spec.name,
      file,
      args: spec.args,
      host: options.host,
      registrations: [],
      logLevel: logLevelFromArgs(spec.args),
      registering: false,
    };
    instance[SETUP] = setup;
    const record: PluginRecord = { name: spec.name, index: records.length, instance, timeoutMs: options.timeoutFor(spec.name) };

    const own: (HookEntry & { first: boolean })[] = [];
    let broken = false;
    for (const method of hookMethodNames(instance)) {
      const hook = hookForMethod(method);
      if (hook === undefined) {
        problem(`unknown hook method ${method}() in ${file}`);
        broken = true;
        continue;
      }
      const fn = (instance as unknown as Record<string, (...args: never[]) => unknown>)[method]!;
      own.push({ plugin: record, hook, fn, first: false });
    }

    if (typeof instance.register === 'function') {
      setup.registering = true;
      try {
        await withTimeout(Promise.resolve(instance.register(options.host, ...spec.args)), options.registerTimeoutMs, 'register() did not finish');
      } catch (err) {
        problem(`register() failed: ${describeLoadError(err)}`);
        broken = true;
      } finally {
        setup.registering = false;
      }
    }
    if (broken) continue;
    for (const r of setup.registrations) own.push({ plugin: record, hook: r.hook as HookName, fn: r.fn, first: r.first });
    records.push(record);
    entries.push(...own);
  }
  return { records, entries, problems };
}

function isInside(file: string, dir: string): boolean {
  const rel = relative(dir, file);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

/** Names of the `hook_*` functions of a plugin (its class chain below Plugin, and own fields). */
function hookMethodNames(instance: Plugin): string[] {
  const names = new Set<string>();
  for (const key of Object.keys(instance)) if (key.startsWith('hook_')) names.add(key);
  let proto: object | null = Object.getPrototypeOf(instance) as object | null;
  while (proto !== null && proto !== Plugin.prototype && proto !== Object.prototype) {
    for (const key of Object.getOwnPropertyNames(proto)) {
      if (!key.startsWith('hook_')) continue;
      const descriptor = Object.getOwnPropertyDescriptor(proto, key);
      if (descriptor && typeof descriptor.value === 'function') names.add(key);
    }
    proto = Object.getPrototypeOf(proto) as object | null;
  }
  return [...names];
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${message} within ${ms / 1000} s`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** One line for a load error: the message, and where in the plugin's source it happened. */
function describeLoadError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // One problem is one line of the report (the TypeScript loader's messages have several).
  const message = err.message
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join(' ');
  const where = err.stack
    ?.split('\n')
    .slice(1)
    .map((l) => l.trim())
    .find((l) => /^at .*(file:|\/)/.test(l) && !/node:internal|node_modules/.test(l));
  const location = where ? ` (${where.replace(/^at\s+/, '')})` : '';
  return `${err.name === 'Error' ? '' : err.name + ': '}${message}${location}`;
}

/**
 * Node's SyntaxError for an ES module says what is wrong but not where: find the place with a parse
 * of our own (esbuild, which builds dist/ and is there at run time), as ` (FILE:LINE:COLUMN)`.
 */
async function syntaxErrorLocation(err: unknown, file: string): Promise<string> {
  if (!(err instanceof SyntaxError) || !/\.m?js$/.test(file) || err.message.includes(file) || err.stack?.includes(file)) return '';
  try {
    const { transform } = await import('esbuild');
    await transform(await readFile(file, 'utf8'), { loader: 'js', format: 'esm', sourcefile: file, logLevel: 'silent' });
  } catch (parseError) {
    const at = (parseError as { errors?: { location?: { line: number; column: number } | null }[] }).errors?.[0]?.location;
    if (at) return ` (${file}:${at.line}:${at.column + 1})`;
  }
  return '';
}
