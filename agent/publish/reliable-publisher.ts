/**
 * Reliable, ordered publishing through outages. A message goes straight to the broker when it is connected and
 * nothing older is waiting; otherwise it is appended to the offline queue (disk, bounded, survives restarts).
 * On (re)connection the queue is drained oldest first, in batches, and only removed once the broker acknowledged
 * it. While a drain runs, new messages queue behind it, so order is kept.
 * When the connection drops, direct publishes still awaiting their acknowledgement are moved into the queue: it is
 * empty at that moment (direct publishing only happens when it is), so they keep their place at its head.
 * Delivery is at-least-once: such a message may also be re-sent by MQTT.js, and a crash between the broker's
 * acknowledgement and the queue update re-sends a batch ((run, frameId) tells duplicates apart).
 * A message the queue cannot store (a full disk with nothing left to drop: NotQueuedError, counted as dropped by the
 * queue) is sent live when connected, and otherwise lost; the agent keeps running either way.
 */
import { type MessageQueue, NotQueuedError, type QueuedMessage } from '../store/queue';
import { describeError } from '../../base/errors';
import { createLogger } from '../../base/log';
import type { BrokerClient } from '../../mqtt/broker';

const log = createLogger('publisher');
const BATCH = 50;

export class ReliablePublisher {
  private draining: Promise<void> | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  /** Direct publishes not yet acknowledged, oldest first, to spill on stop. */
  private readonly unacked: QueuedMessage[] = [];
  private published = 0;

  constructor(
    private readonly broker: BrokerClient,
    private readonly queue: MessageQueue,
  ) {
    broker.onConnect(() => void this.drain());
    broker.onDisconnect(() => this.spillUnacked());
  }

  get publishedCount(): number {
    return this.published;
  }

  async publish(msg: QueuedMessage): Promise<void> {
    if (this.broker.connected && !this.draining && this.queue.stats().depth === 0) {
      this.unacked.push(msg);
      const p = this.broker
        .publish(msg.topic, msg.payload, { qos: msg.qos, retain: msg.retain })
        .then(
          () => {
            if (this.forget(msg)) this.published++;
          },
          async (e) => {
            // Not delivered and not spilled yet: keep it, behind whatever is queued already.
            log.debug('direct publish failed; queueing', { error: describeError(e) });
            if (this.forget(msg)) await this.enqueue(msg);
          },
        )
        .finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
      return;
    }
    await this.enqueue(msg);
    if (this.broker.connected) void this.drain();
  }

  /** Queues msg; one the queue cannot store on a full disk is sent live if connected (it is counted as dropped). */
  private async enqueue(msg: QueuedMessage): Promise<void> {
    try {
      await this.queue.push(msg);
    } catch (e) {
      if (!(e instanceof NotQueuedError)) throw e;
      if (!this.broker.connected) return;
      await this.broker.publish(msg.topic, msg.payload, { qos: msg.qos, retain: msg.retain }).then(
        () => void this.published++,
        (err) => log.debug('live publish of an unqueueable message failed', { error: describeError(err) }),
      );
    }
  }

  /** Removes msg from the unacknowledged list; false if it was no longer there (already spilled to the queue). */
  private forget(msg: QueuedMessage): boolean {
    const i = this.unacked.indexOf(msg);
    if (i < 0) return false;
    this.unacked.splice(i, 1);
    return true;
  }

  /** Connection lost: unacknowledged direct publishes go to the queue, in order (push calls are serialized). */
  private spillUnacked(): void {
    const spilled = this.unacked.splice(0);
    if (spilled.length) log.debug('connection lost; queueing unacknowledged messages', { count: spilled.length });
    for (const msg of spilled) this.enqueue(msg).catch((e) => log.warn('cannot queue an unacknowledged message', { error: describeError(e) }));
  }

  /** Publishes queued messages in order while connected. One drain at a time. */
  drain(): Promise<void> {
    this.draining ??= this.runDrain().finally(() => (this.draining = undefined));
    return this.draining;
  }

  private async runDrain(): Promise<void> {
    while (this.broker.connected) {
      const droppedBefore = this.queue.stats().dropped;
      const batch = await this.queue.peek(BATCH);
      if (batch.length === 0) return;
      try {
        // Issued in order on one connection, so they arrive in order; awaited together for throughput.
        await Promise.all(batch.map((m) => this.broker.publish(m.topic, m.payload, { qos: m.qos, retain: m.retain })));
      } catch (e) {
        log.debug('drain interrupted', { error: describeError(e) });
        return;
      }
      // If the cap dropped messages meanwhile, they were the oldest, i.e. the head of this batch: already gone.
      const droppedMeanwhile = this.queue.stats().dropped - droppedBefore;
      await this.queue.shift(Math.max(0, batch.length - droppedMeanwhile));
      this.published += batch.length;
      log.debug('drained', { count: batch.length, left: this.queue.stats().depth });
    }
  }

  /** Waits briefly for acknowledgements; anything still unacknowledged is written to the queue (re-sent next start). */
  async stop(timeoutMs: number): Promise<void> {
    const deadline = new Promise<void>((r) => setTimeout(r, timeoutMs).unref());
    await Promise.race([Promise.allSettled([...this.inFlight, this.draining]), deadline]);
    for (const msg of this.unacked.splice(0)) await this.enqueue(msg);
  }
}
