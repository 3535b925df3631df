/**
 * Incoming messages, routed by what their topic is (protocol/topics.ts parses it): heads to the head manager,
 * commands to the command service. Anything else (other devices' topics, stray publishes) is ignored.
 */
import type { BrokerClient, RefusedPayload } from '../mqtt/broker';
import { CMD_MAX_BYTES } from '../protocol/patterns';
import { type DeviceTopics, parseTopic } from '../protocol/topics';

export interface InboxHandlers {
  head(topic: string, payload: Uint8Array, retained: boolean): Promise<void>;
  command(payload: Uint8Array): Promise<void>;
  /** A payload the broker client refused unread, over the limit of inboxPayloadLimit. */
  refused(kind: 'head' | 'command', topic: string, refused: RefusedPayload): void;
  /** Further topics subscribed to as they are, each with its handler (e.g. Home Assistant's status). */
  routes?: Readonly<Record<string, (payload: Uint8Array) => void>>;
}

/** Read past head.maxBytes on head/set, so a head slightly too large still gets its rejection on head/state. */
const HEAD_SLACK_BYTES = 1 << 20;

/** Largest payload accepted per subscribed topic: head.maxBytes plus a slack for heads (the largest legitimate
 * payload), the command limit for commands and every other route. The MQTT client skips anything larger unread (mqtt/publish-guard.ts). */
export const inboxPayloadLimit =
  (topics: DeviceTopics, headMaxBytes: number) =>
  (topic: string): number =>
    topics.headSet.includes(topic) ? headMaxBytes + HEAD_SLACK_BYTES : CMD_MAX_BYTES;

/** The topics a device subscribes to. */
export const inboxTopics = (topics: DeviceTopics): string[] => [topics.cmd, ...topics.headSet];

export function attachInbox(broker: BrokerClient, prefix: string, topics: DeviceTopics, handlers: InboxHandlers): Promise<void> {
  broker.onMessage((topic, payload, retained, refused) => {
    const t = parseTopic(prefix, topic);
    if (refused) {
      if (topic === topics.cmd || topics.headSet.includes(topic)) handlers.refused(topic === topics.cmd ? 'command' : 'head', topic, refused);
      return;
    }
    if (t?.kind === 'head/set' && topics.headSet.includes(topic)) {
      // An empty payload on a group/fleet topic is an operator clearing the retained head, not an update.
      if (payload.byteLength === 0 && t.scope.kind !== 'device') return;
      void handlers.head(topic, new Uint8Array(payload), retained);
    } else if (topic === topics.cmd) {
      void handlers.command(new Uint8Array(payload));
    } else if (handlers.routes && Object.hasOwn(handlers.routes, topic)) {
      handlers.routes[topic]!(new Uint8Array(payload));
    }
  });
  return broker.subscribe([...inboxTopics(topics), ...Object.keys(handlers.routes ?? {})]);
}
