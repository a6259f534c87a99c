/**
 * The config directory, in qpsmtpd's format: one file per setting, one value per line, `#` starts a
 * comment line, blank lines are skipped, values are trimmed, a missing file means "not set", and
 * `$include PATH` inserts a file or every non-dot file of a directory (sorted; a cycle is reported
 * and broken). Relative include paths are relative to the config directory.
 *
 * Each file is read once and cached. A cached file is checked again (one stat) at most once a
 * second, so an edited `rcpthosts` takes effect without a restart and lookups cost no disk I/O.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { Cdb } from './cdb.ts';

export interface ConfigEntry {
  readonly value: string;
  /** The file the value came from, and its line (1-based), for error messages. */
  readonly file: string;
  readonly line: number;
}

/** A set of keys (with optional values): a cdb file or a plain file of `key [value]` lines. */
export interface ConfigMap {
  has(key: string): boolean;
  get(key: string): string | undefined;
}

interface Cached {
  readonly entries: readonly ConfigEntry[];
  readonly values: readonly string[];
  /** Every file and directory read for this value, with its mtime (-1: did not exist). */
  readonly sources: ReadonlyMap<string, number>;
  checkedAt: number;
}

interface CachedMap {
  readonly map: ConfigMap;
  readonly sources: ReadonlyMap<string, number>;
  checkedAt: number;
}

/**
 * The spool folder for a config directory and its `spool_dir` value: relative to the folder that
 * holds the config directory; without a value, a folder of this user's in the system's temp dir.
 */
export function spoolDirOf(configDir: string, value: string | undefined): string {
  return resolve(dirname(resolve(configDir)), value ?? join(tmpdir(), `qpsmtpd-spool-${process.getuid?.() ?? 'user'}`));
}

const NO_ENTRIES: readonly ConfigEntry[] = Object.freeze([]);
const NO_VALUES: readonly string[] = Object.freeze([]);

export class ConfigDir {
  readonly dir: string;
  private readonly cache = new Map<string, Cached>();
  private readonly maps = new Map<string, CachedMap>();

  constructor(
    dir: string,
    private readonly defaults: Readonly<Record<string, readonly string[]>> = {},
    /** Called with a description of a problem found while reading (include cycles, unreadable files). */
    private readonly report: (problem: string) => void = () => undefined,
    private readonly recheckMs = 1000,
  ) {
    this.dir = resolve(dir);
  }

  /** Values of a setting with where each came from; `[]` when not set and without default. */
  entries(name: string): readonly ConfigEntry[] {
    return this.load(name).entries;
  }

  /** Values of a setting; the default when the file is missing. */
  list(name: string): readonly string[] {
    const cached = this.load(name);
    if (cached.values.length > 0) return cached.values;
    return this.defaults[name] ?? NO_VALUES;
  }

  /** First value of a setting, or its default, or undefined. */
  value(name: string): string | undefined {
    return this.list(name)[0];
  }

  /** The path of a setting's file. */
  pathOf(name: string): string {
    return join(this.dir, name);
  }

  /**
   * A map setting: `NAME.cdb` when it exists (qmail's constant databases), otherwise the plain
   * file NAME, whose lines are `key [value]`.
   */
  map(name: string): ConfigMap {
    this.checkName(name);
    const now = Date.now();
    const hit = this.maps.get(name);
    if (hit && (now - hit.checkedAt < this.recheckMs || unchanged(hit.sources))) {
      hit.checkedAt = now;
      return hit.map;
    }
    const cdbPath = this.pathOf(name + '.cdb');
    const sources = new Map<string, number>([[cdbPath, mtimeOf(cdbPath)]]);
    let map: ConfigMap;
    if (sources.get(cdbPath)! >= 0) {
      try {
        const cdb = new Cdb(readFileSync(cdbPath));
        map = { has: (k) => cdb.has(k), get: (k) => cdb.get(k)?.toString('utf8') };
      } catch (err) {
        this.report(`${cdbPath}: ${(err as Error).message}`);
        map = EMPTY_MAP;
      }
    } else {
      const entries = this.entries(name);
      const table = new Map<string, string>();
      for (const e of entries) {
        const [key, ...rest] = e.value.split(/\s+/);
        if (key !== undefined && !table.has(key)) table.set(key, rest.join(' '));
      }
      map = { has: (k) => table.has(k), get: (k) => table.get(k) };
      for (const [path, mtime] of this.load(name).sources) sources.set(path, mtime);
    }
    this.maps.set(name, { map, sources, checkedAt: now });
    return map;
  }

  private load(name: string): Cached {
    const now = Date.now();
    const hit = this.cache.get(name);
    if (hit) {
      if (now - hit.checkedAt < this.recheckMs) return hit;
      if (unchanged(hit.sources)) {
        hit.checkedAt = now;
        return hit;
      }
    }
    this.checkName(name);
    const sources = new Map<string, number>();
    const entries = this.readFile(this.pathOf(name), sources, []);
    const cached: Cached = {
      entries: entries.length === 0 ? NO_ENTRIES : Object.freeze(entries),
      values: entries.length === 0 ? NO_VALUES : Object.freeze(entries.map((e) => e.value)),
      sources,
      checkedAt: now,
    };
    this.cache.set(name, cached);
    return cached;
  }

  private checkName(name: string): void {
    if (name === '' || isAbsolute(name) || name.split(/[\\/]/).includes('..')) {
      throw new Error(`invalid config name ${JSON.stringify(name)}: must be a path inside the config directory`);
    }
  }

  private readFile(path: string, sources: Map<string, number>, visiting: string[]): ConfigEntry[] {
    const mtime = mtimeOf(path);
    sources.set(path, mtime);
    if (mtime < 0) return [];
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      this.report(`cannot read ${path}: ${(err as Error).message}`);
      return [];
    }
    const out: ConfigEntry[] = [];
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const value = lines[i]!.trim();
      if (value === '' || value.startsWith('#')) continue;
      const include = /^\$include\s+(\S+)$/.exec(value);
      if (!include) {
        out.push({ value, file: path, line: i + 1 });
        continue;
      }
      const target = resolve(this.dir, include[1]!);
      if (visiting.includes(target) || target === path) {
        this.report(`${path}:${i + 1}: circular $include of ${target} (ignored)`);
        continue;
      }
      for (const file of this.expandInclude(target, sources, `${path}:${i + 1}`)) {
        out.push(...this.readFile(file, sources, [...visiting, path]));
      }
    }
    return out;
  }

  /** A directory includes its non-dot files, sorted; a file includes itself. */
  private expandInclude(target: string, sources: Map<string, number>, from: string): string[] {
    let isDir = false;
    try {
      isDir = statSync(target).isDirectory();
    } catch {
      this.report(`${from}: $include ${target}: no such file or directory`);
      sources.set(target, -1);
      return [];
    }
    if (!isDir) return [target];
    sources.set(target, mtimeOf(target));
    return readdirSync(target)
      .filter((f) => !f.startsWith('.'))
      .sort()
      .map((f) => join(target, f))
      .filter((f) => {
        try {
          return statSync(f).isFile();
        } catch {
          return false;
        }
      });
  }
}

const EMPTY_MAP: ConfigMap = { has: () => false, get: () => undefined };

function mtimeOf(path: string): number {
  try {
    // Most settings have no file: a missing one is an answer, not an exception (an exception
    // costs a stack trace, and this runs for every absent setting once a second).
    return statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? -1;
  } catch {
    return -1;
  }
}

function unchanged(sources: ReadonlyMap<string, number>): boolean {
  for (const [path, mtime] of sources) if (mtimeOf(path) !== mtime) return false;
  return true;
}
