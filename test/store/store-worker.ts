/**
 * Run by store.test.ts as a separate process (`node --import ./test/setup.mjs`): hammers one
 * SQLite store file with increments and window hits, and prints what it got as JSON.
 * Arguments: PATH COUNT LIMIT.
 */
import { SqliteStore } from '../../src/store/sqlite.ts';

const [path, countText, limitText] = process.argv.slice(2);
const store = new SqliteStore(path!);
let allowed = 0;
let last = 0;
for (let i = 0; i < Number(countText); i++) {
  last = await store.incr('counter', 1, 60_000);
  if ((await store.hit('window', 60_000, Number(limitText))).allowed) allowed++;
}
await store.close();
process.stdout.write(JSON.stringify({ allowed, last }) + '\n');
