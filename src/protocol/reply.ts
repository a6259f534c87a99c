/**
 * SMTP replies as values, and the one function that turns them into wire text.
 *
 * RFC 5321 §4.2 (reply lines, multi-line replies), RFC 2034 / RFC 3463 (enhanced status codes:
 * on every 2xx/4xx/5xx reply except the greeting and the HELO/EHLO answer).
 */

export interface Reply {
  /** Three-digit reply code, 200..599. */
  readonly code: number;
  /** Enhanced status code `c.s.d`, or null where RFC 2034 leaves it out (greeting, EHLO, 3xx). */
  readonly enhanced: string | null;
  /** One entry per reply line; never contains CR or LF. */
  readonly lines: readonly string[];
}

const ENHANCED_PREFIX = /^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)/;

/**
 * Build a reply. A message may be a string (with `\n` for several lines) or an array of lines.
 * When the first line starts with an enhanced status code (`5.7.1 Go away`), that code wins over
 * `defaultEnhanced`; its class digit is forced to match the reply code so a plugin cannot send
 * `450 5.7.1`.
 */
export function makeReply(code: number, defaultEnhanced: string | null, message: string | readonly string[]): Reply {
  const lines = splitLines(message);
  let enhanced = defaultEnhanced;
  const first = lines[0];
  if (first !== undefined && startsLikeEnhanced(first) && code >= 200 && code < 600 && !(code >= 300 && code < 400)) {
    const m = ENHANCED_PREFIX.exec(first);
    if (m) {
      enhanced = `${m[1]}.${m[2]}.${m[3]}`;
      lines[0] = first.slice(m[0].length);
      for (let i = 1; i < lines.length; i++) {
        const again = ENHANCED_PREFIX.exec(lines[i]!);
        if (again) lines[i] = lines[i]!.slice(again[0].length);
      }
    }
  }
  const cls = code >= 200 && code < 600 ? String(Math.floor(code / 100)) : '';
  if (cls !== '2' && cls !== '4' && cls !== '5') {
    // RFC 3463 has classes 2, 4 and 5 only: a 3xx reply (354, 334) carries no enhanced code, and
    // forcing the class digit would have made `354 3.0.0`.
    enhanced = null;
  } else if (enhanced !== null && enhanced[0] !== cls) {
    enhanced = cls + enhanced.slice(1);
  }
  return { code, enhanced, lines };
}

/** `2.`, `4.` or `5.` first: only then can the line carry an enhanced code (most replies begin with text). */
function startsLikeEnhanced(line: string): boolean {
  const c = line.charCodeAt(0);
  return (c === 50 || c === 52 || c === 53) && line.charCodeAt(1) === 46;
}

/** Split a message into reply lines, dropping CR and other control characters a line may not carry. */
export function splitLines(message: string | readonly string[]): string[] {
  // The common reply: one line of text.
  if (typeof message === 'string' && !message.includes('\n')) return [sanitize(message)];
  const parts = typeof message === 'string' ? [message] : message;
  const out: string[] = [];
  for (const part of parts) {
    for (const line of String(part).split('\n')) out.push(sanitize(line));
  }
  if (out.length === 0) out.push('');
  return out;
}

// Control characters (other than TAB) in a reply line would let a message inject protocol text.
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;
const CONTROLS = /[\x00-\x08\x0a-\x1f\x7f]/g;
function sanitize(line: string): string {
  return CONTROL.test(line) ? line.replace(CONTROLS, '') : line;
}

/** Wire form: `250-first`, ..., `250 last`, each ending in CRLF. */
export function formatReply(reply: Reply): string {
  const { code, enhanced, lines } = reply;
  const prefix = enhanced === null ? '' : enhanced + ' ';
  const last = lines.length - 1;
  let out = '';
  for (let i = 0; i <= last; i++) {
    const text = lines[i] ?? '';
    const body = prefix + text;
    // The separator is always there, even before an empty text: RFC 4954 needs "334 " for an
    // empty AUTH challenge, and every client reads "250 " fine.
    out += i === last ? `${code} ${body}\r\n` : `${code}-${body}\r\n`;
  }
  return out;
}
