/**
 * AUTH (RFC 4954): the core runs the SASL exchange (PLAIN RFC 4616, LOGIN, CRAM-MD5 RFC 2195) and
 * hands the credentials to the `auth-<mechanism>` hook, then to `auth`; plugins only decide.
 * Mechanisms are offered when a plugin serves them; with `tls_before_auth` (the default) only on
 * an encrypted link. Each failure delays the answer (`auth_failure_delay` seconds times the
 * failures so far, default 1), and repeated failures end the session (`auth_max_failures`, default 3).
 */
import { lazyCrypto } from '../../util/builtin.ts';
import { DECLINED, OK } from '../../hooks/codes.ts';
import type { AuthArgs, AuthParser } from '../../hooks/hook-map.ts';
import { LOGINFO } from '../../log/levels.ts';
import { parseAuthArgument } from '../../protocol/command.ts';
import { CORE } from '../responders.ts';
import type { Session } from '../session.ts';
import { callParser, isParserFault } from './plugin-parser.ts';
import { unrecognizedCommand } from './simple.ts';

const MECHANISM_HOOKS = {
  PLAIN: 'auth-plain',
  LOGIN: 'auth-login',
  'CRAM-MD5': 'auth-cram-md5',
} as const;
type Mechanism = keyof typeof MECHANISM_HOOKS;
const ALL = Object.keys(MECHANISM_HOOKS) as Mechanism[];

/** Mechanisms some plugin can check (a plugin on the generic `auth` hook serves all three). */
function servedMechanisms(s: Session): Mechanism[] {
  if (s.hasHook('auth')) return ALL;
  return ALL.filter((m) => s.hasHook(MECHANISM_HOOKS[m]));
}

function tlsRequired(s: Session): boolean {
  return s.flagSetting('tls_before_auth', true) && s.connection.tls === undefined;
}

/** Mechanisms to advertise in EHLO right now. */
export function authMechanisms(s: Session): string[] {
  return tlsRequired(s) ? [] : servedMechanisms(s);
}

type Credentials = { user: string; passClear?: string; passHash?: string; ticket?: string };
type Exchange = Credentials | 'cancelled' | 'bad-encoding' | 'refused' | 'lost';

export async function auth(s: Session, rest: string): Promise<void> {
  const served = servedMechanisms(s);
  if (served.length === 0) {
    await unrecognizedCommand(s, 'auth', rest);
    return;
  }
  const c = s.connection;
  if (c.hello === undefined) return s.send(CORE.needHello());
  if (c.hello === 'helo') return s.send(CORE.authAfterHelo());
  if (c.authUser !== undefined) return s.send(CORE.authAlready());
  if (s.transaction.sender !== undefined) return s.send(CORE.authInTransaction());
  if (tlsRequired(s)) return s.send(CORE.authNeedsTls());

  const parse = await s.hook('auth_parse', [rest]);
  const parser = parse.code === OK && typeof parse.payload === 'function' ? (parse.payload as AuthParser) : parseAuthArgument;
  const parsed = callParser(s, 'auth_parse', parser, rest);
  if (isParserFault(parsed)) return s.send(CORE.pluginFault());
  if ('error' in parsed) return s.send(CORE.paramSyntax(parsed.error));
  const mechanism = parsed.mechanism.toUpperCase() as Mechanism;
  if (!served.includes(mechanism)) return s.send(CORE.authUnknownMechanism(parsed.mechanism));

  const result = await exchange(s, mechanism, parsed.initialResponse);
  if (result === 'lost') return;
  if (result === 'cancelled') return s.send(CORE.authCancelled());
  if (result === 'bad-encoding') return s.send(CORE.authBadEncoding());

  const user = result === 'refused' ? '' : result.user;
  let accepted = false;
  if (result !== 'refused') {
    const args: AuthArgs = [mechanism, result.user, result.passClear, result.passHash, result.ticket];
    let outcome = await s.hook(MECHANISM_HOOKS[mechanism], args);
    if (outcome.code === DECLINED) outcome = await s.hook('auth', args);
    const decision = await s.answer(MECHANISM_HOOKS[mechanism], outcome, { mechanism, user });
    accepted = decision.accept;
  } else {
    await s.answer(MECHANISM_HOOKS[mechanism], { code: DECLINED }, { mechanism, user });
  }
  if (accepted) {
    c.authUser = user;
    c.authMechanism = mechanism;
    c.relayClient = true;
    delete c.notes['naughty'];
    s.log(LOGINFO, `authenticated ${user} with ${mechanism}`);
    return;
  }
  s.authFailures++;
  s.log(LOGINFO, `authentication failed (${mechanism}, attempt ${s.authFailures})`);
  if (s.authFailures >= s.numberSetting('auth_max_failures', 3)) {
    s.send(CORE.authTooManyFailures());
    s.disconnect();
    return;
  }
  // Each failure makes the next answer slower: guessing passwords gets expensive.
  const delayMs = s.numberSetting('auth_failure_delay', 1) * 1000 * s.authFailures;
  if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
}

async function exchange(s: Session, mechanism: Mechanism, initial: string | undefined): Promise<Exchange> {
  switch (mechanism) {
    case 'PLAIN': {
      const response = initial !== undefined ? initial : await challenge(s, '');
      if (typeof response !== 'string') return response;
      const decoded = decode(response);
      if (decoded === null) return 'bad-encoding';
      const parts = decoded.split('\0');
      if (parts.length !== 3) return 'bad-encoding';
      const [authzid, authcid, password] = parts as [string, string, string];
      // RFC 4616: we authorize only as the authenticated identity itself.
      if (authzid !== '' && authzid !== authcid) return 'refused';
      return { user: authcid, passClear: password };
    }
    case 'LOGIN': {
      const userResponse = initial !== undefined ? initial : await challenge(s, 'Username:');
      if (typeof userResponse !== 'string') return userResponse;
      const user = decode(userResponse);
      if (user === null) return 'bad-encoding';
      const passResponse = await challenge(s, 'Password:');
      if (typeof passResponse !== 'string') return passResponse;
      const password = decode(passResponse);
      if (password === null) return 'bad-encoding';
      return { user, passClear: password };
    }
    case 'CRAM-MD5': {
      if (initial !== undefined) return 'bad-encoding';
      const ticket = `<${lazyCrypto().randomBytes(12).toString('hex')}.${Date.now()}@${s.me}>`;
      const response = await challenge(s, ticket);
      if (typeof response !== 'string') return response;
      const decoded = decode(response);
      if (decoded === null) return 'bad-encoding';
      const space = decoded.lastIndexOf(' ');
      if (space <= 0) return 'bad-encoding';
      return { user: decoded.slice(0, space), passHash: decoded.slice(space + 1), ticket };
    }
  }
}

/** Send a 334 challenge (given in clear, sent in base64) and read the client's line. */
async function challenge(s: Session, text: string): Promise<string | 'cancelled' | 'bad-encoding' | 'lost'> {
  s.send(CORE.authChallenge(Buffer.from(text, 'utf8').toString('base64')));
  const line = await s.readLine();
  if (line === null) return 'lost';
  if (!line.ok) return 'bad-encoding';
  const text2 = line.text.trim();
  if (text2 === '*') return 'cancelled';
  return text2;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict base64 to UTF-8; `=` alone is the empty string (RFC 4954 §4). */
function decode(text: string): string | null {
  if (text === '=') return '';
  if (!BASE64.test(text)) return null;
  return Buffer.from(text, 'base64').toString('utf8');
}
