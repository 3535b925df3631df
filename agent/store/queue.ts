/**
 * The store seam for the offline buffer: an ordered, bounded, durable FIFO of MQTT messages.
 * Implementation: agent/store/disk-queue.ts (files in the state dir); agent/store/memory-queue.ts for tests.
 */
import { EdgeheadError } from '../../base/errors';

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
  /**
   * Messages dropped since the queue was created (persisted): the oldest, to stay within the size cap or to make room
   * on a full disk, and messages that could not be queued at all on a full disk (NotQueuedError).
   */
  dropped: number;
  /** Damaged records skipped (not delivered) since this process opened the queue; reported in telemetry. */
  skipped: number;
}

export interface MessageQueue {
  /** Opens (or creates) the queue, recovering whatever a previous process left, skipping torn/corrupt records. */
  open(): Promise<void>;
  /**
   * Appends at the tail. Drops the oldest messages if the cap would be exceeded (or, on disk, to make room on a full
   * disk); rejects with NotQueuedError when the message cannot be stored at all (it is counted in `dropped`).
   */
  push(msg: QueuedMessage): Promise<void>;
  /** Up to n messages from the head, oldest first, without removing them. */
  peek(n: number): Promise<QueuedMessage[]>;
  /** Removes n messages from the head (after they were delivered). */
  shift(n: number): Promise<void>;
  stats(): QueueStats;
  close(): Promise<void>;
}

/** push() could not store the message (the disk is full and nothing is left to drop); it is counted as dropped. */
export class NotQueuedError extends EdgeheadError {
  constructor(message: string, cause?: unknown) {
    super('IO', message, { cause });
    this.name = 'NotQueuedError';
  }
}
