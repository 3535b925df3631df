/**
 * MemoryQueue: the MessageQueue contract in memory, for tests of other components. Same ordering, byte cap and
 * drop-oldest semantics as DiskQueue (sizes are the on-disk record sizes), but nothing survives the process and
 * `dropped` starts at 0.
 */
import { checkCount, oversizeError, recordBytes } from './queue-record';
import type { MessageQueue, QueuedMessage, QueueStats } from './queue';

export class MemoryQueue implements MessageQueue {
  private readonly maxBytes: number;
  private items: { msg: QueuedMessage; size: number }[] = [];
  private head = 0;
  private bytes = 0;
  private dropped = 0;

  constructor(opts: { maxBytes: number }) {
    if (!(opts.maxBytes > 0)) throw new RangeError(`MemoryQueue: maxBytes must be positive (got ${opts.maxBytes})`);
    this.maxBytes = opts.maxBytes;
  }

  async open(): Promise<void> {}

  async push(msg: QueuedMessage): Promise<void> {
    const size = recordBytes(msg);
    if (size > this.maxBytes) throw oversizeError(size, this.maxBytes);
    while (this.bytes + size > this.maxBytes) {
      this.bytes -= this.items[this.head++]!.size;
      this.dropped++;
    }
    this.items.push({ msg: { ...msg }, size });
    this.bytes += size;
    this.compact();
  }

  async peek(n: number): Promise<QueuedMessage[]> {
    checkCount('peek', n);
    return this.items.slice(this.head, this.head + n).map((x) => ({ ...x.msg }));
  }

  async shift(n: number): Promise<void> {
    checkCount('shift', n);
    const end = Math.min(this.items.length, this.head + n);
    for (; this.head < end; this.head++) this.bytes -= this.items[this.head]!.size;
    this.compact();
  }

  stats(): QueueStats {
    return { depth: this.items.length - this.head, bytes: this.bytes, dropped: this.dropped, skipped: 0 };
  }

  async close(): Promise<void> {}

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
