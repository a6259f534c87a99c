/**
 * The hooks of one loaded plugin set: for each hook, the functions to call, in order.
 * Built once per (re)load and never changed afterwards, so a session keeps the set it started with.
 */
import { HOOK_NAMES, type HookName } from './hook-map.ts';

/** A loaded plugin instance, as the runner sees it. */
export interface PluginRecord {
  /** Instance name as written in config/plugins (`queue/maildir`, `rcpt_map:1`). */
  readonly name: string;
  /** Position in load order; sessions keep per-plugin state in an array indexed by it. */
  readonly index: number;
  /** The plugin object (the `this` of its hooks, through a per-session view). */
  readonly instance: object;
  /** Time limit of one hook call, in milliseconds. */
  readonly timeoutMs: number;
}

export interface HookEntry {
  readonly plugin: PluginRecord;
  readonly hook: HookName;
  /** Called with `this` = the plugin's session view, then (transaction, ...hook arguments). */
  readonly fn: (...args: never[]) => unknown;
}

const NONE: readonly HookEntry[] = Object.freeze([]);

export class HookRegistry {
  private readonly byHook: ReadonlyMap<HookName, readonly HookEntry[]>;

  constructor(
    readonly plugins: readonly PluginRecord[],
    entries: Iterable<HookEntry & { first?: boolean }>,
  ) {
    const map = new Map<HookName, HookEntry[]>();
    for (const entry of entries) {
      const list = map.get(entry.hook) ?? [];
      const plain: HookEntry = { plugin: entry.plugin, hook: entry.hook, fn: entry.fn };
      if (entry.first) list.unshift(plain);
      else list.push(plain);
      map.set(entry.hook, list);
    }
    for (const list of map.values()) Object.freeze(list);
    this.byHook = map;
  }

  /** The entries of a hook in call order (empty when no plugin serves it). */
  entries(hook: HookName): readonly HookEntry[] {
    return this.byHook.get(hook) ?? NONE;
  }

  has(hook: HookName): boolean {
    return this.byHook.has(hook);
  }

  /** Every hook with its plugins in order, as `qpsmtpd check` prints them. */
  describe(): { hook: HookName; plugins: string[] }[] {
    return HOOK_NAMES.filter((h) => this.byHook.has(h)).map((hook) => ({
      hook,
      plugins: this.entries(hook).map((e) => e.plugin.name),
    }));
  }

  static empty(): HookRegistry {
    return new HookRegistry([], []);
  }
}
