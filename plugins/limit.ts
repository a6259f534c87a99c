/**
 * limit: concurrency and rate limits per client address, per authenticated user and per sender
 * domain, counted across processes and servers through the shared state store (`config/store`:
 * a SQLite file for one server's `--workers`, Redis for several servers). The limits Haraka's
 * `limit` plugin is known for (concurrency, rate_conn, rate_rcpt_host, rate_rcpt_sender), as one
 * small file. Rates are exact sliding windows: "30/1m" means at most 30 in any 60 seconds.
 *
 * Config file `limit`, one limit a line (`#` starts a comment):
 *   WHAT  PER  LIMIT[/PERIOD]  [WHO]
 * WHAT   concurrency  sessions open at once (PER ip only; no period)
 *        connections  new sessions (PER ip only)
 *        recipients   RCPT commands that reach this plugin
 *        messages     DATA commands (messages begun)
 * PER    ip (the client's address), user (the AUTH user; sessions without AUTH are not counted),
 *        domain (the envelope sender's domain, lower-cased; the null sender is not counted)
 * LIMIT  a count; 0 means no limit. PERIOD: a number of seconds, or with a unit s, m, h or d
 *        (`90s`, `5m`, `1h`, `1d`); default 60 s (as Haraka).
 * WHO    (optional) a line for some clients only: for ip an address or CIDR block, for user a
 *        user name, for domain a domain (its subdomains too). Without WHO the line is the
 *        default. For each WHAT and PER the first line (in file order) whose WHO matches wins,
 *        else the default line; so list the exceptions first, or anywhere: the default applies
 *        only when no WHO line matched.
 * Example:
 *   concurrency  ip      0       127.0.0.0/8     # no limit for local clients
 *   concurrency  ip      5
 *   connections  ip      30/1m
 *   recipients   ip      200/1h
 *   messages     user    100/1h
 *   recipients   domain  500/1d
 * A line that cannot be read is an error naming the file and line: the plugin does not load (at
 * start), or keeps the limits it had (when the file changes while running, logged).
 *
 * Replies (4xx, the client may retry later): over concurrency or connection rate, at connect,
 * `450 4.7.0 ... limit exceeded` and the connection is closed; over the recipient rate, 450 for
 * that RCPT; over the message rate, 451 at DATA. Each is logged (LOGINFO) `fail, ...`.
 *
 * Arguments, in pairs: `store_error temp|pass` (temp: when the store fails, a temporary refusal;
 * pass: no limit while it fails; logged either way), `loglevel N`.
 * Hooks: connect, rcpt, data, disconnect. List limit before the plugins that accept recipients
 * (rcpt_ok, relay ...): a recipient another plugin accepted first is never counted.
 *
 * Concurrency is a counter increased at connect and decreased at the end of the session; it
 * expires an hour after its last change, so the count of a process that died with sessions open
 * heals when the client has been quiet for that hour.
 *
 * Differences from Haraka's limit: one line-based file instead of limit.ini sections; windows
 * slide (Haraka counts fixed periods); per-user and per-sender-domain limits for messages as
 * well as recipients; no tarpit, outbound, errors or unrecognized-command limits (see the
 * count_unrecognized_commands plugin); a WHO entry limits each client on its own, it does not
 * pool the block.
 */
import { Plugin, DECLINED, DENYSOFT, DENYSOFT_DISCONNECT, LOGERROR, LOGINFO, LOGWARN, ConfigCache, IpList, configLocation, normalizeIp, openStore, pairArguments, storeErrorPolicy, storeFailure } from 'qpsmtpd';
import type { Address, HookResult, PluginHost, Store, StoreErrorPolicy, Transaction } from 'qpsmtpd';

type What = 'concurrency' | 'connections' | 'recipients' | 'messages';
type Per = 'ip' | 'user' | 'domain';

interface Rule {
  readonly what: What;
  readonly per: Per;
  readonly limit: number;
  readonly periodMs: number;
  readonly who: ((value: string) => boolean) | undefined;
}

const CONCURRENCY_TTL_MS = 3_600_000;
const UNITS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export default class Limit extends Plugin {
  private storeError: StoreErrorPolicy = 'temp';
  private store: Store | undefined;
  private lastGood: Rule[] = [];
  private readonly rules = new ConfigCache<Rule[]>('limit', (lines, plugin) => {
    try {
      this.lastGood = parseRules(plugin, lines);
    } catch (err) {
      if (this.store === undefined) throw err; // at start: the plugin does not load
      plugin.log(LOGERROR, `${err instanceof Error ? err.message : String(err)}; keeping the previous limits`);
    }
    return this.lastGood;
  });

  async register(_qp: PluginHost, ...args: string[]): Promise<void> {
    const pairs = pairArguments(this, args, ['store_error']);
    this.storeError = storeErrorPolicy(this, pairs.get('store_error'));
    this.rules.get(this);
    this.store = await openStore(this);
  }

  async shutdown(): Promise<void> {
    await this.store?.close();
  }

  async hook_connect(_tx: Transaction): Promise<HookResult> {
    const ip = this.clientIp();
    const concurrency = this.ruleFor('concurrency', 'ip', ip);
    const connections = this.ruleFor('connections', 'ip', ip);
    try {
      if (concurrency !== undefined) {
        const key = `limit:concurrency:ip:${ip}`;
        const open = await this.store!.incr(key, 1, CONCURRENCY_TTL_MS, { signal: this.signal });
        if (open > concurrency.limit) {
          await this.store!.incr(key, -1, CONCURRENCY_TTL_MS, { signal: this.signal });
          return this.refuse(DENYSOFT_DISCONNECT, `concurrency limit exceeded for ${ip} (${concurrency.limit} at once)`);
        }
        // Released at the end of the session (hook_disconnect).
        this.connection.notes['limit_concurrency'] = key;
      }
      if (connections !== undefined) {
        const over = await this.overRate(connections, ip);
        if (over !== undefined) return this.refuse(DENYSOFT_DISCONNECT, `connection rate limit exceeded for ${ip} (${over})`);
      }
    } catch (err) {
      return storeFailure(this, err, this.storeError, 'cannot count the connection');
    }
    return DECLINED;
  }

  async hook_rcpt(tx: Transaction, _rcpt: Address): Promise<HookResult> {
    return this.checkRates('recipients', tx);
  }

  async hook_data(tx: Transaction): Promise<HookResult> {
    return this.checkRates('messages', tx);
  }

  async hook_disconnect(): Promise<HookResult> {
    const key = this.connection.notes['limit_concurrency'];
    if (typeof key !== 'string') return DECLINED;
    delete this.connection.notes['limit_concurrency'];
    try {
      const left = await this.store!.incr(key, -1, CONCURRENCY_TTL_MS, { signal: this.signal });
      if (left < 0) await this.store!.delete(key, { signal: this.signal });
    } catch (err) {
      this.log(LOGWARN, `cannot release the concurrency count ${key}: ${err instanceof Error ? err.message : String(err)}`);
    }
    return DECLINED;
  }

  /** The recipients or messages limits of every PER that applies to this transaction. */
  private async checkRates(what: 'recipients' | 'messages', tx: Transaction): Promise<HookResult> {
    const subjects: [Per, string | undefined][] = [
      ['ip', this.clientIp()],
      ['user', this.connection.authUser?.toLowerCase()],
      ['domain', tx.sender === undefined || tx.sender.isNull ? undefined : tx.sender.host.toLowerCase() || undefined],
    ];
    try {
      for (const [per, value] of subjects) {
        if (value === undefined) continue;
        const rule = this.ruleFor(what, per, value);
        if (rule === undefined) continue;
        const over = await this.overRate(rule, value);
        if (over !== undefined) {
          const noun = what === 'recipients' ? 'recipient' : 'message';
          return this.refuse(DENYSOFT, `${noun} rate limit exceeded for ${per} ${value} (${over}), try again later`);
        }
      }
    } catch (err) {
      return storeFailure(this, err, this.storeError, `cannot count the ${what}`);
    }
    return DECLINED;
  }

  /** Count one event; a description of the limit when it is exceeded, else undefined. */
  private async overRate(rule: Rule, value: string): Promise<string | undefined> {
    const result = await this.store!.hit(`limit:${rule.what}:${rule.per}:${value}`, rule.periodMs, rule.limit, { signal: this.signal });
    return result.allowed ? undefined : `${rule.limit} per ${formatPeriod(rule.periodMs)}`;
  }

  /** The rule for WHAT/PER and this value, or undefined when none applies or its limit is 0. */
  private ruleFor(what: What, per: Per, value: string): Rule | undefined {
    let fallback: Rule | undefined;
    for (const rule of this.rules.get(this)) {
      if (rule.what !== what || rule.per !== per) continue;
      if (rule.who === undefined) {
        fallback ??= rule;
        continue;
      }
      if (rule.who(value)) return rule.limit > 0 ? rule : undefined;
    }
    return fallback !== undefined && fallback.limit > 0 ? fallback : undefined;
  }

  private refuse(code: typeof DENYSOFT | typeof DENYSOFT_DISCONNECT, why: string): HookResult {
    this.log(LOGINFO, `fail, ${why}`);
    return [code, `4.7.0 ${why.replace(/^./, (c) => c.toUpperCase())}`];
  }

  private clientIp(): string {
    const ip = this.connection.remoteIp;
    return normalizeIp(ip) ?? ip;
  }
}

/** The lines of `config/limit` as rules; the first bad line throws, naming its file and line. */
function parseRules(plugin: Plugin, lines: readonly string[]): Rule[] {
  return lines.map((line) => {
    const fail = (why: string): never => {
      throw new Error(`${configLocation(plugin, 'limit', line)}: limit: ${why} in "${line}"`);
    };
    const words = line.replace(/\s+#.*$/, '').trim().split(/\s+/);
    if (words.length < 3 || words.length > 4) fail('expected "WHAT PER LIMIT[/PERIOD] [WHO]"');
    const [what, per, amount, who] = words as [string, string, string, string | undefined];
    if (!['concurrency', 'connections', 'recipients', 'messages'].includes(what)) fail(`unknown WHAT "${what}" (concurrency, connections, recipients or messages)`);
    if (!['ip', 'user', 'domain'].includes(per)) fail(`unknown PER "${per}" (ip, user or domain)`);
    if ((what === 'concurrency' || what === 'connections') && per !== 'ip') fail(`${what} can only be limited per ip`);
    const m = /^(\d+)(?:\/(\d*)([smhd]?))?$/i.exec(amount);
    if (m === null || (what === 'concurrency' && m[2] !== undefined)) fail(`bad LIMIT "${amount}"`);
    const count = Number(m![1]);
    const periodMs = m![2] === undefined ? 60_000 : Number(m![2] === '' ? 1 : m![2]) * (UNITS[(m![3] || 's').toLowerCase()] ?? 1000);
    if (periodMs <= 0) fail(`bad PERIOD in "${amount}"`);
    return { what: what as What, per: per as Per, limit: count, periodMs, who: who === undefined ? undefined : matcher(per as Per, who, fail) };
  });
}

function matcher(per: Per, who: string, fail: (why: string) => never): (value: string) => boolean {
  if (per === 'ip') {
    const list = new IpList([who]);
    if (list.size === 0) fail(`"${who}" is no IP address or CIDR block`);
    return (ip) => list.match(ip) !== undefined;
  }
  const name = who.toLowerCase();
  if (per === 'user') return (user) => user === name;
  return (domain) => domain === name || domain.endsWith(`.${name}`);
}

function formatPeriod(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000]] as const) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms / 1000}s`;
}
