import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { LiveList, type Membership } from '../../src/util/live-list.ts';

/** Items are objects (sessions); these carry a name to compare by. */
const item = (name: string): { name: string } => ({ name });
const names = (list: Iterable<{ name: string }>): string[] => [...list].map((x) => x.name);

test('add and remove keep the size; iteration gives the items present, newest first', () => {
  const list = new LiveList<{ name: string }>();
  const a = list.add(item('a'));
  const b = list.add(item('b'));
  const c = list.add(item('c'));
  assert.equal(list.size, 3);
  assert.deepEqual(names(list), ['c', 'b', 'a']);
  b.remove();
  assert.deepEqual(names(list), ['c', 'a']);
  c.remove();
  assert.deepEqual(names(list), ['a']);
  a.remove();
  assert.deepEqual(names(list), []);
  assert.equal(list.size, 0);
  list.add(item('d'));
  assert.deepEqual(names(list), ['d']);
});

test('removing twice changes nothing the second time', () => {
  const list = new LiveList<{ name: string }>();
  const one = list.add(item('1'));
  list.add(item('2'));
  one.remove();
  one.remove();
  assert.equal(list.size, 1);
  assert.deepEqual(names(list), ['2']);
});

test('removing items while iterating: the current one, the next one, and all of them', () => {
  const list = new LiveList<{ name: string }>();
  const byName = new Map(['1', '2', '3', '4', '5'].map((n) => [n, list.add(item(n))]));

  const seen: string[] = [];
  for (const { name } of list) {
    seen.push(name);
    byName.get(name)!.remove(); // the current one
    if (name === '4') byName.get('3')!.remove(); // the next one
  }
  assert.deepEqual(seen, ['5', '4', '2', '1']);
  assert.equal(list.size, 0);
});

test('items removed after living through young collections are not promoted with the list', () => {
  // The daemon's load in small: an old list, 50 items in it at any time, each removed a while
  // after it came, young-generation collections in between. Through a Set the same run leaves
  // about 5 MB of removed items in the old generation (its dropped hash tables still point at
  // them); through the list, nothing.
  // Node exposes no collector without --expose-gc; the flag can be set at run time for a new context.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (options?: { type: 'minor' | 'major' }) => void;
  const oldSpaceUsed = (): number => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')!.space_used_size;
  const list = new LiveList<object>();
  gc({ type: 'major' });
  gc({ type: 'major' });
  const before = oldSpaceUsed();

  const window: Membership[] = [];
  for (let i = 0; i < 2000; i++) {
    window.push(list.add({ payload: new Array(500).fill(i) }));
    if (window.length > 50) window.shift()!.remove();
    if (i % 100 === 99) gc({ type: 'minor' });
  }
  while (window.length > 0) window.shift()!.remove();
  gc({ type: 'minor' });
  gc({ type: 'minor' });

  const grownKiB = (oldSpaceUsed() - before) / 1024;
  assert.ok(grownKiB < 1024, `old generation grew by ${grownKiB.toFixed(0)} KiB`);
});
