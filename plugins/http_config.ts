/**
 * http_config: config values from web servers (qpsmtpd's `http_config`), cached, so that a slow
 * or broken server can never stall a session.
 *
 *   http_config http://localhost/~smtpd/config/ http://www.example.com/cgi-bin/qp?config=
 * Looking up `me`, it asks for http://localhost/~smtpd/config/me and, when that has no value,
 * http://www.example.com/cgi-bin/qp?config=me (the name is appended to each base URL as it is).
 * The first answer with values wins. A response body is read like a config file: one value per
 * line, white space at both ends trimmed, empty lines and `#` lines skipped.
 *
 * How it never waits: the `config` hook is synchronous and is asked on every config lookup, so the
 * plugin answers from its cache only. The first lookup of a name finds nothing cached: the plugin
 * declines (the config files and defaults are used, as if it were not loaded) and fetches the name
 * in the background; from then on the cached answer is used, and refreshed in the background when
 * it is older than `refresh` seconds. Every request has a time limit (`timeout`, for the whole
 * request, redirects included); at most 4 requests run at once.
 *   - values: `[OK, values]` (the files are not read);
 *   - no value at any URL (404 or 410, or an empty body; the `http_config` answer "not set"): the
 *     plugin declines, and the files are used;
 *   - trouble (a connection error, another status, the time limit, a body over 1 MiB) at a URL
 *     and no values at the others: the last good answer is kept; while there was none the plugin
 *     declines. The next try is after min(refresh, 30) seconds. Trouble is logged at LOGWARN once
 *     per name and outage (then LOGDEBUG), with every URL's reason.
 * Only plain names are fetched (`[\w.-]` words separated by `/`, no `..`); at most 1000 names are
 * cached (the least recently used go first). Redirects are followed, at most 3.
 *
 * Arguments (config/plugins): one or more base URLs (http or https), and in any order
 *   refresh SECONDS   how old a cached answer may get before it is fetched again (default 300).
 *   timeout SECONDS   the time limit of one request (default 5).
 *   loglevel N        the usual log level adjustment.
 * Fractions of seconds are allowed. No URL, or another word, is a load error.
 *
 * As in qpsmtpd, the settings read before any plugin loads (plugins, logging, loglevel,
 * plugin_dirs) always come from the files.
 *
 * Config files: none. Hooks: config. On shutdown (stop, or a reload retiring it) the requests in
 * flight are aborted.
 *
 * Deliberate differences from qpsmtpd: qpsmtpd fetched every lookup from the network, synchronously
 * and without a time limit (its POD: "http_config doesn't do any caching"), so one slow server
 * stalled every session; here answers come from the cache and the first lookups of a name use the
 * files. A trouble answer from the first URL does not let a later URL's "not set" replace good
 * cached values. A line `0` is a value (Perl's truth test dropped it).
 */
import { request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Plugin, DECLINED, OK, LOGDEBUG, LOGWARN } from 'qpsmtpd';
import type { HookResult, LogLevel, PluginHost, Transaction } from 'qpsmtpd';

const DEFAULT_REFRESH_S = 300;
const DEFAULT_TIMEOUT_S = 5;
const MAX_RETRY_MS = 30_000;
const MAX_PARALLEL = 4;
const MAX_NAMES = 1000;
const MAX_BODY_BYTES = 1024 * 1024;
const MAX_REDIRECTS = 3;
const NAME = /^[\w.-]+(\/[\w.-]+)*$/;

export default class HttpConfig extends Plugin {
  /** The cache and its fetcher: shared by every session (fields written in hooks would not be). */
  private cache!: HttpConfigCache;

  register(_qp: PluginHost, ...args: string[]): void {
    const urls: string[] = [];
    let refresh = DEFAULT_REFRESH_S;
    let timeout = DEFAULT_TIMEOUT_S;
    for (let i = 0; i < args.length; i++) {
      const word = args[i]!;
      const key = word.toLowerCase();
      if (key === 'refresh' || key === 'timeout' || key === 'loglevel') {
        const value = args[++i];
        if (value === undefined) throw new Error(`http_config: "${word}" needs a value`);
        if (key === 'loglevel') continue;
        const seconds = Number(value);
        if (value.trim() === '' || !Number.isFinite(seconds) || seconds <= 0) throw new Error(`http_config: ${key} "${value}" is no number of seconds`);
        if (key === 'refresh') refresh = seconds;
        else timeout = seconds;
      } else if (/^https?:\/\/[^/\s]/i.test(word)) {
        try {
          new URL(word + 'x');
        } catch {
          throw new Error(`http_config: "${word}" is no valid URL`);
        }
        urls.push(word);
      } else {
        throw new Error(`http_config: unknown argument "${word}" (expected base URLs, refresh SECONDS, timeout SECONDS)`);
      }
    }
    if (urls.length === 0) throw new Error('usage: http_config [refresh SECONDS] [timeout SECONDS] URL [URL ...]');
    const refreshMs = refresh * 1000;
    this.cache = new HttpConfigCache(urls, refreshMs, timeout * 1000, Math.min(refreshMs, MAX_RETRY_MS), (level, message) => this.log(level, message));
  }

  shutdown(): void {
    this.cache.close();
  }

  hook_config(_tx: Transaction, name: string): HookResult<string | readonly string[]> {
    if (!NAME.test(name) || name.split('/').includes('..')) return DECLINED;
    const values = this.cache.lookup(name);
    return values === undefined ? DECLINED : [OK, values];
  }
}

type Fetched = { kind: 'values'; values: string[] } | { kind: 'absent' } | { kind: 'trouble'; reason: string };

interface Entry {
  /** The last good answer: values, or null for "not set". Undefined while there was none. */
  answer: string[] | null | undefined;
  fetchedAt: number;
  failedAt: number;
  /** Trouble already logged at LOGWARN since the last good answer. */
  warned: boolean;
  queued: boolean;
  busy: boolean;
}

/** The cached answers and the background fetches. Holds no reference to the plugin. */
class HttpConfigCache {
  private readonly entries = new Map<string, Entry>();
  private readonly waiting: string[] = [];
  private readonly requests = new Set<ClientRequest>();
  private active = 0;
  private closed = false;

  constructor(
    private readonly urls: readonly string[],
    private readonly refreshMs: number,
    private readonly timeoutMs: number,
    private readonly retryMs: number,
    private readonly log: (level: LogLevel, message: string) => void,
  ) {}

  /** The cached values of `name` (undefined: none, decline); starts a fetch when one is due. */
  lookup(name: string): readonly string[] | undefined {
    const now = Date.now();
    let entry = this.entries.get(name);
    if (entry === undefined) {
      if (this.entries.size >= MAX_NAMES) this.evict();
      entry = { answer: undefined, fetchedAt: 0, failedAt: 0, warned: false, queued: false, busy: false };
      this.entries.set(name, entry);
    } else {
      // Most recently used last, so the first entries are the ones to evict.
      this.entries.delete(name);
      this.entries.set(name, entry);
    }
    if (this.due(entry, now)) {
      entry.queued = true;
      this.waiting.push(name);
      this.pump();
    }
    return entry.answer ?? undefined;
  }

  close(): void {
    this.closed = true;
    this.waiting.length = 0;
    for (const request of this.requests) request.destroy();
    this.requests.clear();
  }

  private due(entry: Entry, now: number): boolean {
    if (this.closed || entry.busy || entry.queued) return false;
    if (entry.failedAt !== 0 && now - entry.failedAt < this.retryMs) return false;
    return entry.answer === undefined || now - entry.fetchedAt >= this.refreshMs;
  }

  private evict(): void {
    for (const [name, entry] of this.entries) {
      if (entry.busy || entry.queued) continue;
      this.entries.delete(name);
      return;
    }
  }

  private pump(): void {
    while (!this.closed && this.active < MAX_PARALLEL && this.waiting.length > 0) {
      const name = this.waiting.shift()!;
      const entry = this.entries.get(name);
      if (entry === undefined) continue;
      entry.queued = false;
      entry.busy = true;
      this.active++;
      void this.refresh(name, entry).finally(() => {
        entry.busy = false;
        this.active--;
        this.pump();
      });
    }
  }

  /** Ask each URL in turn; store the answer, or note the trouble. */
  private async refresh(name: string, entry: Entry): Promise<void> {
    const troubles: string[] = [];
    for (const base of this.urls) {
      const url = base + name;
      const result = await this.fetch(url);
      if (this.closed) return;
      if (result.kind === 'values') {
        this.store(entry, result.values);
        this.log(LOGDEBUG, `${name}: ${result.values.length} value(s) from ${url}`);
        return;
      }
      if (result.kind === 'trouble') troubles.push(`${url}: ${result.reason}`);
    }
    if (troubles.length === 0) {
      this.store(entry, null);
      this.log(LOGDEBUG, `${name}: not set at any URL; the config files are used`);
      return;
    }
    entry.failedAt = Date.now();
    const keeping = entry.answer === undefined ? 'the config files are used' : 'keeping the last good answer';
    this.log(entry.warned ? LOGDEBUG : LOGWARN, `cannot fetch ${name} (${troubles.join('; ')}); ${keeping}`);
    entry.warned = true;
  }

  private store(entry: Entry, answer: string[] | null): void {
    entry.answer = answer;
    entry.fetchedAt = Date.now();
    entry.failedAt = 0;
    entry.warned = false;
  }

  /** GET a URL, following redirects, within the time limit. Never rejects. */
  private async fetch(url: string): Promise<Fetched> {
    const deadline = Date.now() + this.timeoutMs;
    let current = url;
    for (let redirects = 0; ; redirects++) {
      const result = await this.fetchOnce(current, deadline);
      if (result.kind !== 'redirect') return result;
      if (redirects >= MAX_REDIRECTS) return { kind: 'trouble', reason: 'too many redirects' };
      current = result.location;
    }
  }

  private fetchOnce(url: string, deadline: number): Promise<Fetched | { kind: 'redirect'; location: string }> {
    return new Promise((resolve) => {
      let target: URL;
      try {
        target = new URL(url);
      } catch {
        resolve({ kind: 'trouble', reason: 'invalid URL' });
        return;
      }
      if (target.protocol !== 'http:' && target.protocol !== 'https:') {
        resolve({ kind: 'trouble', reason: `unsupported protocol ${target.protocol}` });
        return;
      }
      let request: ClientRequest | undefined;
      let settled = false;
      const finish = (result: Fetched | { kind: 'redirect'; location: string }): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (request) {
          this.requests.delete(request);
          request.destroy();
        }
        resolve(result);
      };
      const timer = setTimeout(() => finish({ kind: 'trouble', reason: `no answer within ${this.timeoutMs / 1000} s` }), Math.max(0, deadline - Date.now()));
      timer.unref();

      const options: RequestOptions = { method: 'GET', agent: false, headers: { accept: 'text/plain, */*', 'user-agent': 'qpsmtpd http_config' } };
      const onResponse = (response: IncomingMessage): void => {
        const status = response.statusCode ?? 0;
        const location = response.headers.location;
        if (status >= 300 && status < 400 && location !== undefined) {
          response.resume();
          let next: string;
          try {
            next = new URL(location, target).href;
          } catch {
            finish({ kind: 'trouble', reason: `bad redirect to ${location}` });
            return;
          }
          finish({ kind: 'redirect', location: next });
          return;
        }
        if (status === 404 || status === 410) {
          response.resume();
          finish({ kind: 'absent' });
          return;
        }
        if (status < 200 || status >= 300) {
          response.resume();
          finish({ kind: 'trouble', reason: `HTTP ${status}` });
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) finish({ kind: 'trouble', reason: 'answer over 1 MiB' });
          else chunks.push(chunk);
        });
        response.on('end', () => {
          const values = parseValues(Buffer.concat(chunks).toString('utf8'));
          finish(values.length > 0 ? { kind: 'values', values } : { kind: 'absent' });
        });
        response.on('error', (err) => finish({ kind: 'trouble', reason: err.message }));
        response.on('aborted', () => finish({ kind: 'trouble', reason: 'connection lost' }));
      };
      try {
        request = (target.protocol === 'https:' ? httpsRequest : httpRequest)(target, options, onResponse);
      } catch (err) {
        finish({ kind: 'trouble', reason: err instanceof Error ? err.message : String(err) });
        return;
      }
      this.requests.add(request);
      request.on('error', (err) => finish({ kind: 'trouble', reason: err.message }));
      request.end();
    });
  }
}

/** A response body read like a config file. */
function parseValues(text: string): string[] {
  return text
    .split(/\r?\n|\r/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}
