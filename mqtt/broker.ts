/** The broker seam: what the agent needs from an MQTT connection. Implementation: mqtt/mqttjs-client.ts. */
export interface PublishOptions {
  qos: 0 | 1 | 2;
  retain: boolean;
}

/** What the device's state topics use (status, head/state, state, schedule, discovery configs): kept for late subscribers. */
export const RETAINED: PublishOptions = { qos: 1, retain: true };

export interface BrokerStats {
  connected: boolean;
  /** Successful connections after the first one. */
  reconnects: number;
  lastError?: string;
}

/** A payload the client refused unread: its declared size and the topic's limit, in bytes. */
export interface RefusedPayload {
  bytes: number;
  limit: number;
}

export type MessageHandler = (topic: string, payload: Buffer, retained: boolean, refused?: RefusedPayload) => void;

export interface BrokerClient {
  readonly connected: boolean;
  /** Starts connecting in the background; never throws for an unreachable broker (the agent works offline). */
  start(): void;
  /** Resolves when the broker acknowledged (QoS 1/2) or the packet was written (QoS 0); rejects when not connected. */
  publish(topic: string, payload: string | Uint8Array, opts: PublishOptions): Promise<void>;
  /** Topics to (re)subscribe on every connection. Resolves once the broker acknowledged them (at once when not
   * connected: they are subscribed on the next connection). */
  subscribe(topics: string[]): Promise<void>;
  /** Incoming messages. `refused` is set (and `payload` empty) for a payload over the client's size limit for that
   * topic: it was skipped unread, so a reply can say it was too large. */
  onMessage(handler: MessageHandler): void;
  onConnect(handler: () => void): void;
  onDisconnect(handler: (reason: string) => void): void;
  stats(): BrokerStats;
  /** Publishes `final` (if connected), then disconnects cleanly; forced after timeoutMs. */
  stop(final?: { topic: string; payload: string; opts: PublishOptions }, timeoutMs?: number): Promise<void>;
}
