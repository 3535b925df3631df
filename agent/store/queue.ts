/**
 * The store seam for the offline buffer: an ordered, bounded, durable FIFO of MQTT messages.
 * Implementation: agent/store/disk-queue.ts (files in the state dir). A memory implementation for tests may exist.
 */
export interface QueuedMessage {
  topic: string;
  /** UTF-8 payload (predictions are JSON). */
  payload: string;
  qos: 0 | 1 | 2;
  retain: boolean;
}

export interface QueueStats {
  /** Messages currently queued. */
  depth: number;
  /** Bytes on disk used by queued messages. */
  bytes: number;
  /** Messages dropped (oldest first) because the size cap was reached, since the queue was created (persisted). */
  dropped: number;
  /** Damaged records skipped (not delivered) since this process opened the queue; reported in telemetry. */
  skipped: number;
}

export interface MessageQueue {
  /** Opens (or creates) the queue, recovering whatever a previous process left, skipping torn/corrupt records. */
  open(): Promise<void>;
  /** Appends at the tail. Drops the oldest messages if the cap would be exceeded. */
  push(msg: QueuedMessage): Promise<void>;
  /** Up to n messages from the head, oldest first, without removing them. */
  peek(n: number): Promise<QueuedMessage[]>;
  /** Removes n messages from the head (after they were delivered). */
  shift(n: number): Promise<void>;
  stats(): QueueStats;
  close(): Promise<void>;
}
