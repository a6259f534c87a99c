/**
 * The kit's TestConn (qpsmtpd/testing) with the reply shape the project's older tests use: the
 * text of each line as sent, enhanced status code included (`5.7.1 Mail to ... not accepted here`).
 */
import { TestConn } from '../../src/testing/conn.ts';

export interface ParsedReply {
  readonly code: number;
  /** Reply lines without the code and separator. */
  readonly lines: string[];
  /** The text of all lines, joined with \n. */
  readonly text: string;
  /** The reply as it was on the wire. */
  readonly raw: string;
}

export class FakeConn extends TestConn {
  /** The next complete reply; rejects after `timeoutMs` or if the session closed without one. */
  async reply(timeoutMs = 3000): Promise<ParsedReply> {
    const { code, lines, raw } = await this.readReply(timeoutMs);
    return { code, lines, text: lines.join('\n'), raw };
  }

  /** Send a line and return the reply to it. */
  async command(text: string, timeoutMs?: number): Promise<ParsedReply> {
    this.line(text);
    return this.reply(timeoutMs);
  }
}
