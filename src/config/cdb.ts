/**
 * Reader for D. J. Bernstein's constant database format (cdb), which qmail and qpsmtpd use for
 * large maps (morercpthosts.cdb, morerelayclients.cdb built by qmail-newmrh and friends).
 *
 * Layout: 256 table pointers (position, slot count; 8 bytes each, little-endian), then records
 * (key length, data length, key, data), then the hash tables of (hash, record position) slots.
 * hash = 5381, then for each byte: hash = ((hash << 5) + hash) ^ byte, modulo 2^32.
 */

export function cdbHash(key: Buffer): number {
  let h = 5381;
  for (let i = 0; i < key.length; i++) h = (((h << 5) + h) ^ key[i]!) >>> 0;
  return h;
}

export class Cdb {
  constructor(private readonly data: Buffer) {
    if (data.length < 2048) throw new Error('not a cdb file: shorter than its 2048-byte header');
  }

  /** The first value stored under `key`, or undefined. */
  get(key: string | Buffer): Buffer | undefined {
    const k = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
    const h = cdbHash(k);
    const table = (h & 0xff) * 8;
    const tablePos = this.data.readUInt32LE(table);
    const slots = this.data.readUInt32LE(table + 4);
    if (slots === 0) return undefined;
    let slot = (h >>> 8) % slots;
    for (let probe = 0; probe < slots; probe++) {
      const at = tablePos + slot * 8;
      if (at + 8 > this.data.length) return undefined;
      const slotHash = this.data.readUInt32LE(at);
      const recordPos = this.data.readUInt32LE(at + 4);
      if (recordPos === 0) return undefined;
      if (slotHash === h && recordPos + 8 <= this.data.length) {
        const keyLen = this.data.readUInt32LE(recordPos);
        const dataLen = this.data.readUInt32LE(recordPos + 4);
        const keyStart = recordPos + 8;
        if (keyLen === k.length && keyStart + keyLen + dataLen <= this.data.length && this.data.compare(k, 0, keyLen, keyStart, keyStart + keyLen) === 0) {
          return this.data.subarray(keyStart + keyLen, keyStart + keyLen + dataLen);
        }
      }
      slot = (slot + 1) % slots;
    }
    return undefined;
  }

  has(key: string | Buffer): boolean {
    return this.get(key) !== undefined;
  }
}

/** Build a cdb file (used by tests and by operators without qmail's tools). */
export function buildCdb(entries: Iterable<[string | Buffer, string | Buffer]>): Buffer {
  const records: Buffer[] = [];
  const buckets: { hash: number; pos: number }[][] = Array.from({ length: 256 }, () => []);
  let pos = 2048;
  for (const [key, value] of entries) {
    const k = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
    const v = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    const head = Buffer.alloc(8);
    head.writeUInt32LE(k.length, 0);
    head.writeUInt32LE(v.length, 4);
    records.push(head, k, v);
    const hash = cdbHash(k);
    buckets[hash & 0xff]!.push({ hash, pos });
    pos += 8 + k.length + v.length;
  }
  const header = Buffer.alloc(2048);
  const tables: Buffer[] = [];
  for (let i = 0; i < 256; i++) {
    const bucket = buckets[i]!;
    const slots = bucket.length * 2;
    header.writeUInt32LE(pos, i * 8);
    header.writeUInt32LE(slots, i * 8 + 4);
    if (slots === 0) continue;
    const table = Buffer.alloc(slots * 8);
    for (const { hash, pos: recordPos } of bucket) {
      let slot = (hash >>> 8) % slots;
      while (table.readUInt32LE(slot * 8 + 4) !== 0) slot = (slot + 1) % slots;
      table.writeUInt32LE(hash, slot * 8);
      table.writeUInt32LE(recordPos, slot * 8 + 4);
    }
    tables.push(table);
    pos += table.length;
  }
  return Buffer.concat([header, ...records, ...tables]);
}
