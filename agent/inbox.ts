/**
 * Incoming messages, routed by what their topic is (protocol/topics.ts parses it): heads to the head manager,
 * commands to the command service. Anything else (other devices' topics, stray publishes) is ignored.
 */
import type { BrokerClient } from '../mqtt/broker';
import { type DeviceTopics, parseTopic } from '../protocol/topics';

export interface InboxHandlers {
  head(topic: string, payload: Uint8Array, retained: boolean): Promise<void>;
  command(payload: Uint8Array): Promise<void>;
}

/** The topics a device subscribes to. */
export const inboxTopics = (topics: DeviceTopics): string[] => [topics.cmd, ...topics.headSet];

export function attachInbox(broker: BrokerClient, prefix: string, topics: DeviceTopics, handlers: InboxHandlers): Promise<void> {
  broker.onMessage((topic, payload, retained) => {
    const t = parseTopic(prefix, topic);
    if (t?.kind === 'head/set' && topics.headSet.includes(topic)) {
      // An empty payload on a group/fleet topic is an operator clearing the retained head, not an update.
      if (payload.byteLength === 0 && t.scope.kind !== 'device') return;
      void handlers.head(topic, new Uint8Array(payload), retained);
    } else if (topic === topics.cmd) {
      void handlers.command(new Uint8Array(payload));
    }
  });
  return broker.subscribe(inboxTopics(topics));
}
