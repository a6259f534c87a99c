/**
 * The header block of a message, in the manner of Perl's Mail::Header (which qpsmtpd plugins use):
 * fields in their original order and bytes, looked up case-insensitively, edited in place.
 *
 * A field keeps its text exactly as received (folding and all) until a plugin changes it, so
 * signatures over headers (DKIM) still verify after the message passed through.
 */

interface Field {
  /** The name as written. */
  readonly name: string;
  readonly key: string;
  /** The whole field as it will be written: `Name: value`, folded lines joined by CRLF, no final CRLF. */
  readonly raw: string;
  /** How the field's text maps back to bytes: as received (latin1 for 8-bit non-UTF-8 headers) or UTF-8. */
  readonly encoding: 'utf8' | 'latin1';
}

const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

export class Header {
  private fields: Field[] = [];

  /**
   * Parse a header block (fields separated by CRLF or LF, without the empty line that ends it).
   * `encoding` says how the text was decoded, so `toBuffer()` gives back the received bytes.
   */
  static parse(block: string, encoding: 'utf8' | 'latin1' = 'utf8'): Header {
    const header = new Header();
    const lines = block.split(/\r?\n/);
    if (lines[lines.length - 1] === '') lines.pop();
    let current: string | undefined;
    const flush = (): void => {
      if (current === undefined) return;
      const colon = current.indexOf(':');
      const name = current.slice(0, colon).trimEnd();
      header.fields.push({ name, key: name.toLowerCase(), raw: current, encoding });
      current = undefined;
    };
    for (const line of lines) {
      if ((line.startsWith(' ') || line.startsWith('\t')) && current !== undefined) {
        current += '\r\n' + line;
      } else {
        flush();
        if (line.indexOf(':') > 0) current = line;
      }
    }
    flush();
    return header;
  }

  /** First value of the field (unfolded, without the name, trimmed), or undefined. */
  get(name: string): string | undefined {
    const key = name.toLowerCase();
    const field = this.fields.find((f) => f.key === key);
    return field === undefined ? undefined : valueOf(field);
  }

  /** Every value of the field, in order. */
  getAll(name: string): string[] {
    const key = name.toLowerCase();
    return this.fields.filter((f) => f.key === key).map(valueOf);
  }

  /** How many fields of this name there are. */
  count(name: string): number {
    const key = name.toLowerCase();
    return this.fields.reduce((n, f) => (f.key === key ? n + 1 : n), 0);
  }

  /** The field names in order, as written. */
  names(): string[] {
    return this.fields.map((f) => f.name);
  }

  /**
   * Add a field. Without `index` it goes at the end; `add(name, value, 0)` puts it on top, which is
   * where trace fields (Received, Return-Path) belong.
   */
  add(name: string, value: string, index?: number): void {
    const field = makeField(name, value);
    if (index === undefined || index >= this.fields.length) this.fields.push(field);
    else this.fields.splice(Math.max(0, index), 0, field);
  }

  /** Remove every field of this name, or only its `index`-th occurrence. Returns how many went. */
  delete(name: string, index?: number): number {
    const key = name.toLowerCase();
    if (index === undefined) {
      const before = this.fields.length;
      this.fields = this.fields.filter((f) => f.key !== key);
      return before - this.fields.length;
    }
    const position = this.positionOf(key, index);
    if (position === -1) return 0;
    this.fields.splice(position, 1);
    return 1;
  }

  /** Replace the `index`-th (default: first) field of this name, or add it when there is none. */
  replace(name: string, value: string, index = 0): void {
    const position = this.positionOf(name.toLowerCase(), index);
    const field = makeField(name, value);
    if (position === -1) this.fields.push(field);
    else this.fields[position] = field;
  }

  /** Rename fields (all of them, or those whose value passes `keep`), keeping position and value. */
  rename(from: string, to: string, which: (value: string) => boolean = () => true): void {
    const key = from.toLowerCase();
    this.fields = this.fields.map((f) => {
      if (f.key !== key || !which(valueOf(f))) return f;
      const rest = f.raw.slice(f.raw.indexOf(':'));
      return { name: to, key: to.toLowerCase(), raw: to + rest, encoding: f.encoding };
    });
  }

  /** The header block as it will be written: every field followed by CRLF (no empty line after). */
  toString(): string {
    let out = '';
    for (const f of this.fields) out += f.raw + '\r\n';
    return out;
  }

  /** The header block as bytes: received fields exactly as they came, added ones in UTF-8. */
  toBuffer(): Buffer {
    return Buffer.concat(this.fields.map((f) => Buffer.from(f.raw + '\r\n', f.encoding)));
  }

  /** Each field's name and unfolded value, in order. */
  entries(): { name: string; value: string }[] {
    return this.fields.map((f) => ({ name: f.name, value: valueOf(f) }));
  }

  /**
   * Each field's name and its value exactly as written: everything after the colon, leading white
   * space and folds (CRLF) included, with the encoding that gives back its bytes. For code that
   * hands header fields on one by one (a milter).
   */
  rawEntries(): { name: string; value: string; encoding: 'utf8' | 'latin1' }[] {
    return this.fields.map((f) => ({ name: f.name, value: f.raw.slice(f.raw.indexOf(':') + 1), encoding: f.encoding }));
  }

  private positionOf(key: string, index: number): number {
    let seen = 0;
    for (let i = 0; i < this.fields.length; i++) {
      if (this.fields[i]!.key !== key) continue;
      if (seen === index) return i;
      seen++;
    }
    return -1;
  }
}

function valueOf(field: Field): string {
  return field.raw
    .slice(field.raw.indexOf(':') + 1)
    .replace(/\r?\n(?=[ \t])/g, '')
    .trim();
}

function makeField(name: string, value: string): Field {
  if (!FIELD_NAME.test(name)) throw new Error(`invalid header field name ${JSON.stringify(name)}`);
  // Continuation lines must start with white space, or they would become fields of their own.
  const folded = String(value)
    .replace(/\r\n|\r|\n/g, '\n')
    .split('\n')
    .map((line, i) => (i === 0 || /^[ \t]/.test(line) ? line : '\t' + line))
    .join('\r\n');
  return { name, key: name.toLowerCase(), raw: `${name}: ${folded.replace(/^[ \t]+/, '')}`, encoding: 'utf8' };
}
