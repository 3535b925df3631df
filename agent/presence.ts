/**
 * What the device says about itself: the retained birth on status at every connection and whenever the active
 * head changes (so status never names a replaced head), the last will and the shutdown message, the retained
 * head/state, the retained schedule state (running/paused), and telemetry every telemetry.intervalSec.
 */
import type { Clock, TimerHandle } from '../base/clock';
import { describeError } from '../base/errors';
import { createLogger } from '../base/log';
import { type BrokerClient, type PublishOptions, RETAINED } from '../mqtt/broker';
import {
  type BirthMessage,
  encodePayload,
  type HeadStateMessage,
  offlineMessage,
  type OfflineMessage,
  type TelemetryMessage,
} from '../protocol/messages';
import type { DeviceTopics } from '../protocol/topics';

const log = createLogger('presence');

export interface PresenceDeps {
  broker: BrokerClient;
  topics: DeviceTopics;
  deviceId: string;
  clock: Clock;
  telemetryIntervalSec: number;
  birth: () => BirthMessage;
  headState: () => HeadStateMessage;
  telemetry: () => TelemetryMessage;
  /** Whether the schedule is paused (retained on schedule as plain text). */
  schedulePaused: () => boolean;
}

export interface StatusMessage {
  topic: string;
  payload: string;
  opts: PublishOptions;
}

/** The retained offline message for status: the last will ("connection lost") or the shutdown message. */
export function statusOffline(topics: DeviceTopics, deviceId: string, reason: OfflineMessage['reason']): StatusMessage {
  return { topic: topics.status, payload: encodePayload('offline', offlineMessage(deviceId, reason)), opts: RETAINED };
}

export class Presence {
  private timer: TimerHandle | undefined;
  private stopped = false;

  constructor(private readonly deps: PresenceDeps) {}

  /** Publishes birth and head state on every connection; starts the telemetry timer. */
  start(): void {
    this.deps.broker.onConnect(() => {
      void this.publishBirth();
      void this.publishHeadState(this.deps.headState());
      void this.publishSchedule();
    });
    this.scheduleTelemetry();
  }

  /** The active head changed: the retained birth names it. */
  publishBirth(): Promise<void> {
    return this.publish(this.deps.topics.status, encodePayload('birth', this.deps.birth()), RETAINED, 'birth message');
  }

  publishHeadState(state: HeadStateMessage): Promise<void> {
    return this.publish(this.deps.topics.headState, encodePayload('headState', state), RETAINED, 'head state');
  }

  /** "running" or "paused", retained (a switch in Home Assistant reads it). */
  publishSchedule(): Promise<void> {
    return this.publish(this.deps.topics.schedule, this.deps.schedulePaused() ? 'paused' : 'running', RETAINED, 'schedule state');
  }

  /** The message the broker client publishes as it disconnects on stop. */
  shutdownMessage(): StatusMessage {
    return statusOffline(this.deps.topics, this.deps.deviceId, 'shutdown');
  }

  private async publish(topic: string, payload: string, opts: PublishOptions, what: string): Promise<void> {
    if (!this.deps.broker.connected) return; // all of it is published again on the next connection
    await this.deps.broker.publish(topic, payload, opts).catch((e) => log.warn(`${what} not published`, { error: describeError(e) }));
  }

  private scheduleTelemetry(): void {
    if (this.stopped) return;
    this.timer = this.deps.clock.setTimeout(() => {
      void this.publish(this.deps.topics.telemetry, encodePayload('telemetry', this.deps.telemetry()), { qos: 0, retain: false }, 'telemetry');
      this.scheduleTelemetry();
    }, this.deps.telemetryIntervalSec * 1000);
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }
}
