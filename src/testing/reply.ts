/** SMTP replies as the test kit hands them to a test. */
import type { WireReply } from './conn.ts';

export interface SmtpReply {
  /** The three-digit reply code. */
  readonly code: number;
  /** The enhanced status code (RFC 3463) of the reply, `5.7.1`, or null when it has none (220, EHLO, 354). */
  readonly enhanced: string | null;
  /** One entry per reply line: the text, without the code and the enhanced status code. */
  readonly lines: readonly string[];
  /** The lines joined with `\n`. */
  readonly text: string;
  /** The reply as it was on the wire, CRLFs included. */
  readonly raw: string;
}

const ENHANCED = /^([245]\.\d{1,3}\.\d{1,3})(?: |$)/;

/** The reply's enhanced status code, taken off every line that carries it. */
export function toSmtpReply(wire: WireReply): SmtpReply {
  const first = wire.lines[0] ?? '';
  const match = ENHANCED.exec(first);
  const enhanced = match && match[1]![0] === String(wire.code)[0] ? match[1]! : null;
  const lines =
    enhanced === null ? [...wire.lines] : wire.lines.map((l) => (l === enhanced ? '' : l.startsWith(enhanced + ' ') ? l.slice(enhanced.length + 1) : l));
  return { code: wire.code, enhanced, lines, text: lines.join('\n'), raw: wire.raw };
}
