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
 * - Runs of ordinary lines are skipped by the vector scan of line-scan.ts where this Node can run
 *   it, and by searching for CR and LF where it cannot; both stop at the same bytes.
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

  /** `scanner`: undefined for the byte search only (tests run both ways). */
  constructor(
    private readonly sink: (part: Buffer) => void,
    private readonly policy: BareLineEndPolicy = 'keep',
    private readonly scanner: LineScanner | undefined = lineScanner,
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
    scanner?.forget();
    let i = 0;
    let seg = 0;
    // Positions of the next CR and LF at or after i; recomputed only when passed, so a chunk
    // full of one and none of the other is still scanned once.
    let nextCr = -2;
    let nextLf = -2;

    while (i < n) {
      switch (this.state) {
        case S.MID: {
          // j: the next CR or LF to act on.
          let j: number;
          if (scanner !== undefined) {
            const stop = scanner.next(chunk, i);
            if (stop > i) {
              // Nothing to do before `stop`: the byte before it says where a line stands there.
              // A CR there was no stop, so its LF follows (or the CR ends what was scanned).
              const before = chunk[stop - 1];
              this.state = before === LF ? S.LINE_START : before === CR ? S.CR : S.MID;
              i = stop;
              break;
            }
            // A dot after a lone LF stops the scan, but no line starts there: it is content.
            if (chunk[i] === DOT) {
              i++;
              break;
            }
            j = i;
          } else {
            if (nextCr !== -1 && nextCr < i) nextCr = chunk.indexOf(CR, i);
            if (nextLf !== -1 && nextLf < i) nextLf = chunk.indexOf(LF, i);
            if (nextCr === -1) j = nextLf;
            else if (nextLf === -1) j = nextCr;
            else j = nextCr < nextLf ? nextCr : nextLf;
            if (j === -1) {
              i = n;
              break;
            }
          }
          if (chunk[j] === CR) {
            i = j + 1;
            this.state = S.CR;
          } else {
            // A LF that no CR preceded.
            this.bareLineEnds++;
            if (normalize) {
              this.emit(chunk, seg, j);
              this.sink(CRLF_BYTES);
              seg = j + 1;
            }
            i = j + 1;
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
