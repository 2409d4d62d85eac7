/**
 * The bounded buffer between a task follow (fed by MQTT messages, which cannot be slowed down)
 * and the one consumer of its async iterable.
 *
 * Policy (so a slow or absent consumer never grows memory without bound):
 * - Items are kept in order until read. While the buffer holds `maxItems` items or `maxBytes`
 *   bytes, a new *droppable* item (task output: `log`, `chunks`, `progress` events) is discarded
 *   and counted; the consumer then reads one `dropped` marker, at the place of the gap, saying how
 *   many items and bytes it missed (the controller's kept events, `task.logs`, still have them
 *   within its per-task limit).
 * - A state update while full replaces the newest unread state update, so intermediate states
 *   may be skipped but the latest is always read.
 * - Lifecycle events (`accepted`, `started`, `result`, `failed`) are never dropped: at most four
 *   per attempt, and attempts are at most 100 (TaskOptions.maxAttempts).
 */

/** The default bounds: 10,000 items or 16 MiB of payload, whichever comes first. */
export const DEFAULT_BUFFER = { maxItems: 10_000, maxBytes: 16 * 1024 * 1024 } as const;

/** How a pushed item may be treated when the buffer is full. */
export type ItemClass = 'droppable' | 'state' | 'keep';

type Slot<T> = { item: T; bytes: number; cls: ItemClass } | null;

export class EventQueue<T> {
  private slots: Slot<T>[] = [];
  private head = 0;
  private items = 0;
  private bytes = 0;
  private lastState = -1;
  private closed = false;
  private waiter: ((r: IteratorResult<T>) => void) | null = null;
  private iterated = false;

  /**
   * @param marker builds the `dropped` item from the count and bytes discarded at one gap.
   * @param limits `maxItems` (count) and `maxBytes` (payload bytes) of unread items.
   */
  constructor(
    private readonly marker: (items: number, bytes: number) => T,
    private readonly limits: { maxItems: number; maxBytes: number } = DEFAULT_BUFFER,
  ) {}

  /** Unread items now (for tests and metrics). */
  get size(): number {
    return this.items;
  }

  /** Adds an item (ignored after close). `bytes` is its payload size, for the byte bound. */
  push(item: T, bytes: number, cls: ItemClass): void {
    if (this.closed) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w({ value: item, done: false });
      return;
    }
    const full = this.items >= this.limits.maxItems || this.bytes >= this.limits.maxBytes;
    if (full && cls === 'droppable') {
      this.drop(bytes);
      return;
    }
    if (full && cls === 'state' && this.lastState >= this.head && this.slots[this.lastState]) {
      const old = this.slots[this.lastState]!;
      this.bytes -= old.bytes;
      this.items--;
      this.slots[this.lastState] = null;
    }
    if (cls === 'state') this.lastState = this.slots.length;
    this.slots.push({ item, bytes, cls });
    this.items++;
    this.bytes += bytes;
  }

  /** Counts a discarded item into the marker at the tail (a new marker when the tail is not one). */
  private drop(bytes: number): void {
    const tail = this.slots.at(-1);
    const m = tail && (tail as { gap?: { items: number; bytes: number } }).gap;
    if (tail && m) {
      m.items++;
      m.bytes += bytes;
      tail.item = this.marker(m.items, m.bytes);
      return;
    }
    const slot = { item: this.marker(1, bytes), bytes: 0, cls: 'keep' as const, gap: { items: 1, bytes } };
    this.slots.push(slot);
    this.items++;
  }

  /** No more items: the iterator ends once the buffered ones are read. */
  close(): void {
    this.closed = true;
    if (this.waiter && this.items === 0) {
      const w = this.waiter;
      this.waiter = null;
      w({ value: undefined, done: true });
    }
  }

  private shift(): T | undefined {
    while (this.head < this.slots.length) {
      const s = this.slots[this.head++];
      if (!s) continue;
      this.items--;
      this.bytes -= s.bytes;
      if (this.head > 1024 && this.head * 2 > this.slots.length) {
        this.slots = this.slots.slice(this.head);
        this.lastState -= this.head;
        this.head = 0;
      }
      return s.item;
    }
    return undefined;
  }

  /** The items in order; one consumer only (a second iterator throws). */
  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.iterated) throw new Error('a task run has one events iterable; it is read once');
    this.iterated = true;
    return {
      next: () => {
        if (this.items > 0) return Promise.resolve({ value: this.shift() as T, done: false });
        if (this.closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => (this.waiter = resolve));
      },
      return: () => {
        // The consumer stopped reading: keep nothing more.
        this.closed = true;
        this.slots = [];
        this.head = 0;
        this.items = 0;
        this.bytes = 0;
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
