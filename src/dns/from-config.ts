/**
 * The resolver a config directory describes: `dns_servers` (one address a line, default the
 * system's), `dns_timeout` (seconds per try, default 3) and `dns_tries` (rounds over the servers,
 * default 2). A bad line is a load problem naming its file and line, like a bad plugin line.
 */
import type { ConfigEntry } from '../config/config-dir.ts';
import type { LoadProblem } from '../plugins/plugins-file.ts';
import { DnsResolver } from './resolver.ts';
import { parseNameServer, systemNameServers, type NameServer } from './servers.ts';

export interface DnsConfigSource {
  entries(name: string): readonly ConfigEntry[];
}

export function resolverFromConfig(config: DnsConfigSource): { resolver: DnsResolver; problems: LoadProblem[] } {
  const problems: LoadProblem[] = [];
  const servers: NameServer[] = [];
  for (const entry of config.entries('dns_servers')) {
    try {
      servers.push(parseNameServer(entry.value));
    } catch (err) {
      problems.push({ file: entry.file, line: entry.line, message: `dns_servers: ${(err as Error).message}` });
    }
  }
  const timeout = positiveNumber(config, 'dns_timeout', problems);
  const tries = positiveNumber(config, 'dns_tries', problems);
  const resolver = new DnsResolver({
    // The system's list when the first query is made: node:dns is not loaded before that.
    servers: servers.length > 0 ? servers : systemNameServers,
    ...(timeout !== undefined ? { timeoutMs: timeout * 1000 } : {}),
    ...(tries !== undefined ? { tries: Math.round(tries) } : {}),
  });
  return { resolver, problems };
}

function positiveNumber(config: DnsConfigSource, name: string, problems: LoadProblem[]): number | undefined {
  const entry = config.entries(name)[0];
  if (entry === undefined) return undefined;
  const value = Number(entry.value);
  if (Number.isFinite(value) && value > 0) return value;
  problems.push({ file: entry.file, line: entry.line, message: `${name}: "${entry.value}" is not a positive number` });
  return undefined;
}
