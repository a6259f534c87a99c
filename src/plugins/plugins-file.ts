/**
 * `config/plugins` (and `config/logging`) lines into plugin specs: `name[:N] arg1 arg2 ...`.
 *
 * A `#` word ends the line (a comment), arguments are split on white space, `name:N` makes a
 * separate instance of the same plugin file. qpsmtpd's old names are accepted as aliases.
 */
import type { ConfigEntry } from '../config/config-dir.ts';

export interface PluginSpec {
  /** The instance name as written: `rcpt_map:0`, `queue/maildir`. */
  readonly name: string;
  /** The plugin file to look for, without extension: `rcpt_map`, `queue/maildir`. */
  readonly module: string;
  readonly args: readonly string[];
  /** Where the line is, for error messages. */
  readonly file: string;
  readonly line: number;
}

export interface LoadProblem {
  readonly file: string;
  readonly line: number;
  /** The plugin concerned, when known. */
  readonly plugin?: string;
  readonly message: string;
}

/** qpsmtpd plugins that were merged into others; the old names still load (qpsmtpd 1.00 refuses them). */
export const PLUGIN_ALIASES: Readonly<Record<string, string>> = {
  check_relay: 'relay',
  check_norelay: 'relay',
  relay_only: 'relay',
  check_earlytalker: 'earlytalker',
  check_badmailfrom: 'badmailfrom',
  check_badmailfrom_patterns: 'badmailfrom',
  check_badrcptto: 'badrcptto',
  check_badrcptto_patterns: 'badrcptto',
  check_basicheaders: 'headers',
  check_spamhelo: 'helo',
  require_resolvable_fromhost: 'resolvable_fromhost',
};

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.\-]*(?:\/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*$/;

export function parsePluginLines(entries: readonly ConfigEntry[]): { specs: PluginSpec[]; problems: LoadProblem[] } {
  const specs: PluginSpec[] = [];
  const problems: LoadProblem[] = [];
  const seen = new Map<string, number>();
  for (const entry of entries) {
    const at = { file: entry.file, line: entry.line };
    if (/[\x00-\x08\x0b-\x1f\x7f]/.test(entry.value)) {
      problems.push({ ...at, message: 'control characters in the line' });
      continue;
    }
    const words = entry.value.split(/\s+/);
    const comment = words.findIndex((w) => w.startsWith('#'));
    if (comment !== -1) words.length = comment;
    const [name, ...args] = words;
    if (name === undefined || name === '') continue;
    const match = /^(.*?)(?::(\d+))?$/.exec(name)!;
    const module = match[1]!;
    if (!NAME.test(module) || module.split('/').includes('..')) {
      problems.push({ ...at, plugin: name, message: `invalid plugin name "${name}": letters, digits, _ - . and / only` });
      continue;
    }
    const previous = seen.get(name);
    if (previous !== undefined) {
      problems.push({ ...at, plugin: name, message: `plugin "${name}" is already loaded on line ${previous}; use ${module}:0, ${module}:1 ... for several instances` });
      continue;
    }
    seen.set(name, entry.line);
    specs.push({ name, module, args, ...at });
  }
  return { specs, problems };
}

export function formatProblem(p: LoadProblem): string {
  const who = p.plugin ? `plugin "${p.plugin}": ` : '';
  return `${p.file}:${p.line}: ${who}${p.message}`;
}
