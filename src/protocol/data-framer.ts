/**
 * The DATA phase as a byte state machine (RFC 5321 §4.1.1.4, §4.5.2).
 *
 * - The message ends at `<CRLF>.<CRLF>` and at nothing else: `\n.\n`, `\n.\r\n`, `\r\n.\n`,
 *   `\r.\r` and the rest are content. A line start exists only after a real CRLF, so a bare LF can
 *   neither end the message nor start a dot-stuffed line (SMTP smuggling, CVE-2023-51764 class).
 * - A line that starts with a dot loses that dot (dot-unstuffing), unless it is the terminator.
 * - A lone CR or LF is reported (`bareLineEnds`). With `normalize` it is written out as CRLF;
 *   with `keep` the bytes pass unchanged and the caller decides (the default policy rejects).
 * - Output is handed to the sink as slices of the input chunks: no copy, no per-line strings.
 * - The state carries over chunk boundaries, so the result is the same however the bytes are split.
 * - Runs of ordinary lines are skipped in one call to a LineScanner (line-scan.ts): the vector scan
 *   where this Node can run it, a search for CR and LF where it cannot.
 */
import { lineScanner, type LineScanner } from './line-scan.ts';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF_BYTES = Buffer.from('\r\n');
const LF_BYTE = Buffer.from('\n');
const CR_BYTE = Buffer.from('\r');

export type BareLineEndPolicy = 'keep' | 'normalize';

const S = {
  LINE_START: 0,
  DOT: 1,
  DOT_CR: 2,
  MID: 3,
  CR: 4,
  DONE: 5,
} as const;
type State = (typeof S)[keyof typeof S];

export class DataFramer {
  private state: State = S.LINE_START;
  /** Number of lone CR or LF bytes seen in the content. */
  bareLineEnds = 0;

  /** `scanner`: the process's by default; tests run every kind. */
  constructor(
    private readonly sink: (part: Buffer) => void,
    private readonly policy: BareLineEndPolicy = 'keep',
    private readonly scanner: LineScanner = lineScanner,
  ) {}

  get done(): boolean {
    return this.state === S.DONE;
  }

  /**
   * Feed received bytes. Returns undefined while the message goes on; once the terminator is
   * seen, returns the bytes that followed it (pipelined commands), possibly empty.
   */
  feed(chunk: Buffer): Buffer | undefined {
    if (this.state === S.DONE) return chunk;
    const n = chunk.length;
    const normalize = this.policy === 'normalize';
    const scanner = this.scanner;
    scanner.forget();
    let i = 0;
    let seg = 0;

    while (i < n) {
      switch (this.state) {
        case S.MID: {
          const stop = scanner.next(chunk, i);
          if (stop > i) {
            // Nothing to do before `stop`: the byte before it says where a line stands there.
            // A CR there was no stop, so its LF follows (or the CR ends what was scanned).
            const before = chunk[stop - 1];
            this.state = before === LF ? S.LINE_START : before === CR ? S.CR : S.MID;
            i = stop;
          } else if (chunk[i] === CR) {
            i++;
            this.state = S.CR;
          } else if (chunk[i] === LF) {
            // A LF that no CR preceded.
            this.bareLineEnds++;
            if (normalize) {
              this.emit(chunk, seg, i);
              this.sink(CRLF_BYTES);
              seg = i + 1;
            }
            i++;
          } else {
            // A dot after a lone LF stops a scan that saw the LF, but no line starts there: content.
            i++;
          }
          break;
        }
        case S.CR: {
          if (chunk[i] === LF) {
            i++;
            this.state = S.LINE_START;
          } else {
            // A CR that no LF followed; the CR itself is already in the current segment.
            this.bareLineEnds++;
            if (normalize) {
              this.emit(chunk, seg, i);
              this.sink(LF_BYTE);
              seg = i;
            }
            this.state = S.MID;
          }
          break;
        }
        case S.LINE_START: {
          if (chunk[i] === DOT) {
            // Hold the dot back until we know whether this line is the terminator.
            this.emit(chunk, seg, i);
            i++;
            seg = i;
            this.state = S.DOT;
          } else {
            this.state = S.MID;
          }
          break;
        }
        case S.DOT: {
          if (chunk[i] === CR) {
            i++;
            seg = i;
            this.state = S.DOT_CR;
          } else {
            // A stuffed dot: it stays dropped, the rest of the line is content.
            this.state = S.MID;
          }
          break;
        }
        case S.DOT_CR: {
          if (chunk[i] === LF) {
            this.state = S.DONE;
            return chunk.subarray(i + 1);
          }
          // ".\r" and something other than LF: the dot was stuffing, the CR is a lone CR.
          this.bareLineEnds++;
          this.sink(normalize ? CRLF_BYTES : CR_BYTE);
          seg = i;
          this.state = S.MID;
          break;
        }
        default:
          return chunk.subarray(i);
      }
    }
    this.emit(chunk, seg, n);
    return undefined;
  }

  private emit(chunk: Buffer, from: number, to: number): void {
    if (to > from) this.sink(from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to));
  }
}
