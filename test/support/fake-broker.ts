/**
 * FakeBroker: an in-memory BrokerClient (mqtt/broker.ts) for in-process tests of the components that publish and
 * subscribe (publisher, frame loop, presence, commands). No sockets, no timers: the test drives everything.
 *
 * - Connection: starts disconnected; `connect()` / `disconnect(reason)` flip `connected` and call the onConnect /
 *   onDisconnect handlers synchronously, in registration order. `start()` only records that it was called (and
 *   connects when constructed with `{ connectOnStart: true }`). `stats().reconnects` counts connections after the
 *   first; `lastError` is the last disconnect reason until the next connect, like MqttJsClient.
 * - Publishing: every publish() made while connected is recorded in `sent` (call order) with its status
 *   ('pending' | 'acked' | 'failed'); `payload` is kept as given, `text` is its UTF-8 form. A publish while
 *   disconnected or after stop() rejects with EdgeheadError('MQTT', 'not connected') and is counted in `refused`.
 * - Acknowledgements: with `holdAcks = false` (default) a publish resolves at once (next microtask, in call order).
 *   With `holdAcks = true` it stays pending until `ackNext(n)` (oldest first), `ackAll()` or `failPending(err)`.
 *   `disconnect()` behaves like MQTT.js: pending QoS 0 publishes fail with "Connection closed" (before the
 *   disconnect handlers run), pending QoS 1/2 ones stay pending (MQTT.js re-sends them on the next connection, so
 *   the test may ack them after reconnecting, or fail them to model a clean session).
 * - Incoming: `deliver(topic, payload, retained)` calls the onMessage handlers; `subscribe()` records the topics in
 *   `subscriptions` and resolves at once.
 * - stop(final): records `final` as an acked publish if connected, then disconnects WITHOUT calling the disconnect
 *   handlers (MqttJsClient ignores its own close); `stopped` becomes true and later publishes are refused.
 */
import type { BrokerClient, BrokerStats, PublishOptions } from '../../mqtt/broker';
import { EdgeheadError } from '../../base/errors';

export type SentStatus = 'pending' | 'acked' | 'failed';

export interface SentPublish {
  topic: string;
  payload: string | Uint8Array;
  /** The payload as UTF-8 text. */
  readonly text: string;
  opts: PublishOptions;
  status: SentStatus;
  /** Which connection (1 = first) it was sent on. */
  connection: number;
}

interface Pending {
  record: SentPublish;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class FakeBroker implements BrokerClient {
  /** Every publish made while connected, in call order (the stop() final message included). */
  readonly sent: SentPublish[] = [];
  /** Publishes rejected because the broker was not connected. */
  refused = 0;
  /** When true, publishes stay pending until ackNext/ackAll/failPending. */
  holdAcks = false;
  readonly subscriptions = new Set<string>();
  started = false;
  stopped = false;
  /** How many times connect() was called. */
  connections = 0;

  private isConnected = false;
  private lastError: string | undefined;
  private readonly pending: Pending[] = [];
  private readonly messageHandlers: ((topic: string, payload: Buffer, retained: boolean) => void)[] = [];
  private readonly connectHandlers: (() => void)[] = [];
  private readonly disconnectHandlers: ((reason: string) => void)[] = [];

  constructor(private readonly opts: { connectOnStart?: boolean } = {}) {}

  get connected(): boolean {
    return this.isConnected;
  }

  start(): void {
    this.started = true;
    if (this.opts.connectOnStart) this.connect();
  }

  /** Brings the connection up and calls the onConnect handlers. */
  connect(): void {
    if (this.isConnected) throw new Error('FakeBroker.connect: already connected');
    if (this.stopped) throw new Error('FakeBroker.connect: stopped');
    this.isConnected = true;
    this.connections++;
    this.lastError = undefined;
    for (const h of this.connectHandlers) h();
  }

  /** Drops the connection: fails pending QoS 0 publishes, then calls the onDisconnect handlers with reason. */
  disconnect(reason = 'connection closed'): void {
    if (!this.isConnected) throw new Error('FakeBroker.disconnect: not connected');
    this.isConnected = false;
    this.lastError = reason;
    for (const p of this.pending.filter((x) => x.record.opts.qos === 0)) this.settle(p, new Error('Connection closed'));
    for (const h of this.disconnectHandlers) h(reason);
  }

  publish(topic: string, payload: string | Uint8Array, opts: PublishOptions): Promise<void> {
    if (!this.isConnected) {
      this.refused++;
      return Promise.reject(new EdgeheadError('MQTT', 'not connected'));
    }
    const record = this.record(topic, payload, opts);
    return new Promise<void>((resolve, reject) => {
      const p: Pending = { record, resolve, reject };
      if (this.holdAcks) this.pending.push(p);
      else this.settle(p);
    });
  }

  /** Acknowledges the n oldest pending publishes; returns how many were acked. */
  ackNext(n = 1): number {
    const batch = this.pending.slice(0, n);
    for (const p of batch) this.settle(p);
    return batch.length;
  }

  ackAll(): number {
    return this.ackNext(this.pending.length);
  }

  /** Fails every pending publish with err; returns how many failed. */
  failPending(err: Error = new Error('Connection closed')): number {
    const all = [...this.pending];
    for (const p of all) this.settle(p, err);
    return all.length;
  }

  get pendingCount(): number {
    return this.pending.length;
  }

  /** Sent records, optionally only those on one topic. */
  sentTo(topic?: string): SentPublish[] {
    return topic === undefined ? [...this.sent] : this.sent.filter((s) => s.topic === topic);
  }

  /** Text of acknowledged publishes, in the order they were sent. */
  ackedTexts(topic?: string): string[] {
    return this.sentTo(topic)
      .filter((s) => s.status === 'acked')
      .map((s) => s.text);
  }

  async subscribe(topics: string[]): Promise<void> {
    for (const t of topics) this.subscriptions.add(t);
  }

  /** Hands an incoming message to the onMessage handlers. */
  deliver(topic: string, payload: string | Uint8Array, retained = false): void {
    for (const h of this.messageHandlers) h(topic, Buffer.from(payload), retained);
  }

  onMessage(handler: (topic: string, payload: Buffer, retained: boolean) => void): void {
    this.messageHandlers.push(handler);
  }

  onConnect(handler: () => void): void {
    this.connectHandlers.push(handler);
  }

  onDisconnect(handler: (reason: string) => void): void {
    this.disconnectHandlers.push(handler);
  }

  stats(): BrokerStats {
    return {
      connected: this.isConnected,
      reconnects: Math.max(0, this.connections - 1),
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  async stop(final?: { topic: string; payload: string; opts: PublishOptions }): Promise<void> {
    if (final && this.isConnected) this.record(final.topic, final.payload, final.opts).status = 'acked';
    this.isConnected = false;
    this.stopped = true;
  }

  private record(topic: string, payload: string | Uint8Array, opts: PublishOptions): SentPublish {
    const text = typeof payload === 'string' ? payload : Buffer.from(payload).toString('utf8');
    const record: SentPublish = { topic, payload, text, opts: { ...opts }, status: 'pending', connection: this.connections };
    this.sent.push(record);
    return record;
  }

  private settle(p: Pending, err?: Error): void {
    const i = this.pending.indexOf(p);
    if (i >= 0) this.pending.splice(i, 1);
    p.record.status = err ? 'failed' : 'acked';
    if (err) p.reject(err);
    else p.resolve();
  }
}
