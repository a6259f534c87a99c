/**
 * rcpt_map: answer the recipients of one domain from a map file of its addresses (qpsmtpd's
 * plugin of that name). Several domains take several instances, each with its own arguments and
 * map:
 *
 *   rcpt_map:0 domain a.example file /etc/qpsmtpd/map_a_example
 *   rcpt_map:1 domain b.example file config/map_b_example default DENYSOFT=Try_later
 *
 * Arguments, in pairs:
 *   domain NAME          required: the domain this instance answers for (case-insensitive, exact:
 *                        not its subdomains); recipients at other domains are left to the next
 *                        plugin.
 *   file MAP             required: the map file. A relative path is relative to the folder that
 *                        holds the config directory (where qpsmtpd ran).
 *   default CODE[=MSG]   the answer for an address of the domain that is not in the map; MSG
 *                        cannot hold spaces, so each `_` becomes one. Default `DENY=No_such_user.`
 *   loglevel N           the usual log level adjustment.
 * The plugin does not load when domain or file is missing, the default names no return code, or
 * the map cannot be read or has no valid line.
 *
 * The map file: `#` comment lines, blank lines, and lines `ADDRESS CODE [MESSAGE]` separated by
 * white space:
 *   me@a.example     OK
 *   info@a.example   DENY       User not found.
 *   old@a.example    DENYSOFT   Mailbox being moved, try tomorrow
 * CODE is a return code by name, upper case: OK (accept), DENY, DENYSOFT, DENY_DISCONNECT
 * (DENYHARD), DENYSOFT_DISCONNECT, DECLINED (leave it to the next plugin). A refusal without
 * MESSAGE says "No such user."; OK without one gets the daemon's usual text. Addresses are
 * compared case-insensitively; the first line for an address wins. Bad lines are logged with file
 * and line (LOGERROR) and skipped.
 *
 * The map is re-read when the file changes (checked once per connection, at its first recipient
 * for the domain); a changed map that cannot be read or has no valid line is logged and the old
 * one is kept. Hooks: rcpt.
 *
 * Differences from qpsmtpd: each instance has its own map (qpsmtpd kept one map for all of them,
 * so the last one loaded answered for every domain); lines are split on any white space and the
 * line end is not part of the code or message (qpsmtpd split on single spaces and kept the newline,
 * so its own documented examples did not load); map addresses are lower-cased as documented
 * ("Matching is always done case insensitive"; qpsmtpd compared them as written); OK or DECLINED
 * lines without a message carry none (qpsmtpd answered "250 No such user."); DONE is refused as a
 * code (no reply would be sent); the file is checked lazily, not in pre-connection.
 */
import { readFileSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Plugin, DECLINED, DENY, DONE, OK, LOGDEBUG, LOGERROR, LOGINFO, codeName, pairArguments, returnCodeByName } from 'qpsmtpd';
import type { Address, Code, Connection, EsmtpParams, HookResult, PluginHost, Transaction } from 'qpsmtpd';

interface Answer {
  readonly code: Code;
  readonly message: string | undefined;
}

interface MapState {
  map: ReadonlyMap<string, Answer>;
  /** What the file looked like when it was read: changed when any of these differs. */
  version: string;
  /** A check of the file in progress, shared by the sessions that wait for it. */
  checking: Promise<void> | undefined;
}

const NO_SUCH_USER = 'No such user.';

export default class RcptMap extends Plugin {
  private domain = '';
  private file = '';
  private fallback: Answer = { code: DENY, message: NO_SUCH_USER };
  /** Created here, mutated in place: every session of this instance shares it. */
  private readonly state: MapState = { map: new Map(), version: '', checking: undefined };
  private readonly checked = new WeakSet<Connection>();

  register(qp: PluginHost, ...args: string[]): void {
    const pairs = pairArguments(this, args, ['domain', 'file', 'default']);
    const fallback = pairs.get('default');
    if (fallback !== undefined) {
      const eq = fallback.indexOf('=');
      const name = eq === -1 ? fallback : fallback.slice(0, eq);
      const code = returnCodeByName(name);
      if (code === undefined || code === DONE) throw new Error(`${this.name}: default "${fallback}": "${name}" is not a valid return code`);
      const text = eq === -1 ? '' : fallback.slice(eq + 1).replace(/_/g, ' ');
      this.fallback = { code, message: text !== '' ? text : NO_SUCH_USER };
    }
    const file = pairs.get('file');
    if (file === undefined || file === '') throw new Error(`${this.name}: no map file given (file PATH)`);
    const domain = pairs.get('domain');
    if (domain === undefined || domain === '') throw new Error(`${this.name}: no domain name given (domain NAME)`);
    this.domain = domain.toLowerCase();
    this.file = isAbsolute(file) ? file : resolve(dirname(qp.configDir), file);

    let text: string;
    let version: string;
    try {
      text = readFileSync(this.file, 'utf8');
      version = versionOf(statSync(this.file));
    } catch (err) {
      throw new Error(`${this.name}: cannot read the map ${this.file}: ${(err as Error).message}`);
    }
    const map = this.parse(text);
    if (map.size === 0) throw new Error(`${this.name}: empty map file ${this.file}`);
    this.state.map = map;
    this.state.version = version;
    this.log(LOGDEBUG, `using map ${this.file} for domain ${this.domain}`);
  }

  async hook_rcpt(_tx: Transaction, rcpt: Address, _params: EsmtpParams): Promise<HookResult> {
    if (rcpt.user === '' || rcpt.host === '') return DECLINED;
    if (rcpt.host.toLowerCase() !== this.domain) return DECLINED;
    if (!this.checked.has(this.connection)) {
      this.checked.add(this.connection);
      this.state.checking ??= this.refresh().finally(() => {
        this.state.checking = undefined;
      });
      await this.state.checking;
    }
    const address = `${rcpt.user}@${rcpt.host}`.toLowerCase();
    const answer = this.state.map.get(address) ?? this.fallback;
    this.log(LOGINFO, `${address}: ${codeName(answer.code)}${this.state.map.has(address) ? '' : ' (not in the map)'}`);
    return answer.message === undefined ? answer.code : [answer.code, answer.message];
  }

  /** Read the map again if the file changed; keep the old map when the new one is no good. */
  private async refresh(): Promise<void> {
    let version: string;
    try {
      version = versionOf(await stat(this.file));
    } catch (err) {
      this.log(LOGERROR, `cannot stat the map ${this.file}, keeping the loaded one: ${(err as Error).message}`);
      return;
    }
    if (version === this.state.version) return;
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      this.log(LOGERROR, `cannot read the map ${this.file}, keeping the loaded one: ${(err as Error).message}`);
      return;
    }
    const map = this.parse(text);
    this.state.version = version;
    if (map.size === 0) {
      this.log(LOGERROR, `the map ${this.file} has no valid line, keeping the loaded one`);
      return;
    }
    this.state.map = map;
    this.log(LOGINFO, `map ${this.file} reloaded: ${map.size} addresses`);
  }

  private parse(text: string): Map<string, Answer> {
    const map = new Map<string, Answer>();
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (line === '' || line.startsWith('#')) continue;
      const m = /^(\S+)(?:\s+(\S+))?(?:\s+(.*))?$/.exec(line)!;
      const address = m[1]!.toLowerCase();
      const name = m[2];
      const where = `${this.file}:${i + 1}`;
      if (name === undefined) {
        this.log(LOGERROR, `${where}: no return code after ${m[1]}, line skipped`);
        continue;
      }
      const code = returnCodeByName(name);
      if (code === undefined || code === DONE) {
        this.log(LOGERROR, `${where}: "${name}" is not a valid return code${code === DONE ? ' here (DONE sends no reply)' : ''}, line skipped`);
        continue;
      }
      if (map.has(address)) continue;
      const message = m[3] !== undefined && m[3] !== '' ? m[3] : code === OK || code === DECLINED ? undefined : NO_SUCH_USER;
      map.set(address, { code, message });
    }
    return map;
  }
}

function versionOf(s: { mtimeMs: number; size: number; ino: number }): string {
  return `${s.mtimeMs}/${s.size}/${s.ino}`;
}
