/**
 * FleetIngest: the server's subscriptions, routed to FleetState.
 *
 *   retained kinds (status, head/state, schedule, state)   plain filters <prefix>/+/<kind>: every replica gets every
 *                                                          device's retained state (and rebuilds the table from it)
 *   live streams (telemetry, predictions, cmd/reply,       $share/<group>/<prefix>/+/<kind> when shared: the broker
 *   snapshot)                                              hands each message to ONE replica of the group (MQTT 5)
 *
 * MQTT.js delivers messages of a shared subscription under their real topic (no $share/<group>/ in front), so
 * state.handle parses them like any other (test/integration/fleet-ingest.test.ts checks it on Mosquitto).
 * The BrokerClient must speak MQTT 5 for $share: MqttJsClient with protocolVersion 5.
 */
import { createLogger } from '../../base/log';
import type { BrokerClient } from '../../mqtt/broker';
import { type DeviceTopicKind, everyDeviceTopic } from '../../protocol/topics';
import type { FleetState } from './state';

const log = createLogger('fleet-ingest');

/** Kinds the devices publish retained: each replica subscribes to them plainly. */
export const RETAINED_KINDS: readonly DeviceTopicKind[] = ['status', 'head/state', 'schedule', 'state'];
/** Kinds of the live streams: split between replicas when shared. */
export const STREAM_KINDS: readonly DeviceTopicKind[] = ['telemetry', 'predictions', 'cmd/reply', 'snapshot'];

export interface FleetIngestOptions {
  broker: BrokerClient;
  state: FleetState;
  prefix: string;
  shared: boolean;
  shareGroup: string;
}

/** The subscription filters of a replica (exported for the status command and tests). */
export function ingestFilters(prefix: string, shared: boolean, shareGroup: string): string[] {
  const plain = RETAINED_KINDS.map((k) => everyDeviceTopic(prefix, k));
  const streams = STREAM_KINDS.map((k) => (shared ? `$share/${shareGroup}/${everyDeviceTopic(prefix, k)}` : everyDeviceTopic(prefix, k)));
  return [...plain, ...streams];
}

export class FleetIngest {
  private started = false;

  constructor(private readonly opts: FleetIngestOptions) {}

  filters(): string[] {
    return ingestFilters(this.opts.prefix, this.opts.shared, this.opts.shareGroup);
  }

  /** Routes every message to the state and subscribes (again on every connection: MqttJsClient keeps the list).
   * Resolves once the broker acknowledged the subscriptions (at once when not connected yet). */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const { broker, state } = this.opts;
    broker.onMessage((topic, payload, retained, refused) => {
      if (refused) {
        log.debug('payload refused by the client', { topic, bytes: refused.bytes });
        return;
      }
      state.handle(topic, payload, retained);
    });
    await broker.subscribe(this.filters());
  }
}
