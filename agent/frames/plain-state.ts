/**
 * The plain, retained state: <prefix>/<device>/state holds the top-1 label as a UTF-8 string (predictions.unknownLabel
 * below predictions.minScore), what Home Assistant and Node-RED read without a JSON template. Fed by the frame loop's
 * `plainState` event (agent/frames/prediction-filter.ts decides the label); published retained, QoS 1, when the label
 * differs from the one last published, and again on every connection (a broker that lost its retained store, or
 * one the device was away from, gets it back). Latest value only: while disconnected nothing is queued. Before the
 * first frame nothing is published (a retained label from an earlier run stays; availability is on `status`).
 */
import { describeError } from '../../base/errors';
import { createLogger } from '../../base/log';
import { type BrokerClient, RETAINED } from '../../mqtt/broker';

const log = createLogger('state');

export class PlainState {
  private current: string | undefined;
  private published: string | undefined;

  constructor(
    private readonly broker: BrokerClient,
    private readonly topic: string,
  ) {}

  /** Republishes the current label on every connection. */
  start(): void {
    this.broker.onConnect(() => void this.publish());
  }

  /** The label to show now: published if it differs from the last one published. Never waits for the broker (the
   * frame loop calls it; a QoS 1 publish can stay unacknowledged through an outage); MQTT keeps the order of
   * publishes on a connection, so the last label set is the one retained. */
  set(label: string): void {
    this.current = label;
    if (label !== this.published) void this.publish();
  }

  /** The label shown now (undefined before the first frame). */
  get label(): string | undefined {
    return this.current;
  }

  private async publish(): Promise<void> {
    const label = this.current;
    if (label === undefined || !this.broker.connected) return; // published on the next connection
    this.published = label;
    try {
      await this.broker.publish(this.topic, label, RETAINED);
    } catch (e) {
      if (this.published === label) this.published = undefined; // the next frame tries again
      log.warn('state not published', { error: describeError(e) });
    }
  }
}
