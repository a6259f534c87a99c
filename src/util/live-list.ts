/**
 * A collection of things in progress (sessions), as a doubly linked list: O(1) add and remove, and
 * a removed item is referenced by nothing the list keeps.
 *
 * Why not a Set: a long-lived Set that gains and loses an entry per connection rebuilds its hash
 * table every few dozen connections, and the table it drops still points at the entries it held.
 * Once that table has reached V8's old generation, every finished session it points at (with its
 * socket, streams and buffers) survives each young-generation collection and is promoted, to be
 * freed only by a full collection. Under `npm run bench`'s 100 KB load that doubled the full
 * collections (17 against 8-9 per 10 000 messages).
 */
export interface Membership {
  /** Take the item out of its list; a second call does nothing. */
  remove(): void;
}

interface Link<T extends object> extends Membership {
  item: T | undefined;
  prev: Link<T> | undefined;
  next: Link<T> | undefined;
}

export class LiveList<T extends object> implements Iterable<T> {
  private head: Link<T> | undefined;
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Add `item`; the returned membership takes it out again. */
  add(item: T): Membership {
    const link: Link<T> = { item, prev: undefined, next: this.head, remove: () => this.unlink(link) };
    if (this.head) this.head.prev = link;
    this.head = link;
    this.count++;
    return link;
  }

  /** The items, newest first. Removing any of them while iterating is safe. */
  *[Symbol.iterator](): Iterator<T> {
    for (let link = this.head; link; link = link.next) {
      if (link.item !== undefined) yield link.item;
    }
  }

  private unlink(link: Link<T>): void {
    if (link.item === undefined) return;
    if (link.prev) link.prev.next = link.next;
    else this.head = link.next;
    if (link.next) link.next.prev = link.prev;
    // The item goes; `next` stays, so that an iterator paused on this link goes on to the rest.
    link.item = undefined;
    link.prev = undefined;
    this.count--;
  }
}
