/**
 * The readable text of a message, for plugins that look into bodies (uribl): every text part of a
 * MIME tree (text/plain, text/html, and parts without a type), with its transfer encoding
 * (base64, quoted-printable) undone and its charset decoded. Nested multiparts and attached
 * messages (message/rfc822) are walked; other parts (images, applications) are left out.
 * Bounded: at most 30 levels deep and 500 parts; a broken structure gives what could be read.
 *
 *   const texts = messageTexts(tx.header, await tx.body.toBuffer());
 */
import { Header } from './header.ts';

const MAX_DEPTH = 30;
const MAX_PARTS = 500;

interface ContentType {
  readonly type: string;
  readonly params: Readonly<Record<string, string>>;
}

/** The text parts of a message whose header and body are given. */
export function messageTexts(header: Header, body: Buffer): string[] {
  const out: string[] = [];
  walk(header.get('Content-Type'), header.get('Content-Transfer-Encoding'), body, 0, out, { parts: 0 });
  return out;
}

function walk(contentTypeField: string | undefined, encoding: string | undefined, body: Buffer, depth: number, out: string[], count: { parts: number }): void {
  if (depth > MAX_DEPTH || ++count.parts > MAX_PARTS) return;
  const contentType = parseContentType(contentTypeField);
  if (contentType.type.startsWith('multipart/')) {
    const boundary = contentType.params['boundary'];
    if (boundary === undefined || boundary === '') {
      out.push(decodeText(body, undefined));
      return;
    }
    for (const part of splitMultipart(body, boundary)) {
      const { header, content } = splitPart(part);
      walk(header.get('Content-Type') ?? (contentType.type === 'multipart/digest' ? 'message/rfc822' : undefined), header.get('Content-Transfer-Encoding'), content, depth + 1, out, count);
    }
    return;
  }
  const decoded = decodeTransfer(body, encoding);
  if (contentType.type === 'message/rfc822' || contentType.type === 'message/global') {
    const { header, content } = splitPart(decoded);
    walk(header.get('Content-Type'), header.get('Content-Transfer-Encoding'), content, depth + 1, out, count);
    return;
  }
  if (contentType.type === '' || contentType.type.startsWith('text/')) out.push(decodeText(decoded, contentType.params['charset']));
}

/** `type/subtype; name=value; name="quoted value"`: the type lower-cased, parameter names too. */
function parseContentType(field: string | undefined): ContentType {
  if (field === undefined) return { type: '', params: {} };
  const semi = field.indexOf(';');
  const type = (semi === -1 ? field : field.slice(0, semi)).trim().toLowerCase();
  const params: Record<string, string> = {};
  const re = /;\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;]*))/g;
  for (const m of field.slice(Math.max(0, semi)).matchAll(re)) params[m[1]!.toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!;
  return { type, params };
}

/** The parts between `--boundary` lines (the preamble and epilogue left out). */
function splitMultipart(body: Buffer, boundary: string): Buffer[] {
  const text = body.toString('latin1');
  const delimiter = `--${boundary}`;
  const parts: Buffer[] = [];
  let start = -1;
  let at = 0;
  for (;;) {
    const found = text.indexOf(delimiter, at);
    if (found === -1) break;
    const lineStart = found === 0 || text[found - 1] === '\n';
    at = found + delimiter.length;
    if (!lineStart) continue;
    if (start !== -1) parts.push(body.subarray(start, found === 0 ? 0 : text[found - 2] === '\r' ? found - 2 : found - 1));
    if (text.startsWith('--', at)) return parts;
    const eol = text.indexOf('\n', at);
    if (eol === -1) return parts;
    start = eol + 1;
  }
  if (start !== -1 && start < body.length) parts.push(body.subarray(start));
  return parts;
}

/** A part's header block and content (an empty line between them; none: no header). */
function splitPart(part: Buffer): { header: Header; content: Buffer } {
  const text = part.toString('latin1');
  const m = /\r?\n\r?\n/.exec(text);
  if (text.startsWith('\r\n') || text.startsWith('\n')) return { header: new Header(), content: part.subarray(text.startsWith('\r\n') ? 2 : 1) };
  if (m === null) return { header: Header.parse(text, 'latin1'), content: Buffer.alloc(0) };
  return { header: Header.parse(text.slice(0, m.index), 'latin1'), content: part.subarray(m.index + m[0].length) };
}

function decodeTransfer(body: Buffer, encoding: string | undefined): Buffer {
  switch (encoding?.trim().toLowerCase()) {
    case 'base64':
      return Buffer.from(body.toString('latin1').replace(/[^A-Za-z0-9+/=]/g, ''), 'base64');
    case 'quoted-printable':
      return decodeQuotedPrintable(body.toString('latin1'));
    default:
      return body;
  }
}

/** RFC 2045 §6.7: `=XX` octets, `=` at a line's end joins it to the next, trailing blanks dropped. */
export function decodeQuotedPrintable(text: string): Buffer {
  const joined = text.replace(/[ \t]+(?=\r?\n|$)/g, '').replace(/=\r?\n/g, '');
  const bytes: number[] = [];
  for (let i = 0; i < joined.length; i++) {
    const ch = joined.charCodeAt(i);
    if (ch === 0x3d && /^[0-9A-Fa-f]{2}$/.test(joined.slice(i + 1, i + 3))) {
      bytes.push(parseInt(joined.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(ch & 0xff);
    }
  }
  return Buffer.from(bytes);
}

function decodeText(bytes: Buffer, charset: string | undefined): string {
  const name = charset?.trim().toLowerCase() || 'utf-8';
  try {
    return new TextDecoder(name === 'us-ascii' ? 'utf-8' : name).decode(bytes);
  } catch {
    // An unknown charset: every byte as a character keeps ASCII (host names, URLs) intact.
    return bytes.toString('latin1');
  }
}
