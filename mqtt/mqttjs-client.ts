/**
 * BrokerClient over MQTT.js v5: mqtt://, mqtts://, ws://, wss://; user/password; TLS with CA, client cert and key
 * (rejectUnauthorized by default; the URL is never changed, so there is no plaintext fallback); persistent session;
 * last will; reconnect with exponential backoff and jitter (MQTT.js only offers a fixed period, so its own
 * reconnect is off and this class calls client.reconnect()). The one MQTT adapter of the project: the device runs it
 * with reconnect, operator tools (head push, the fleet server) with `reconnect: false` and open(). With
 * `maxPayloadBytes`, incoming payloads over a topic's limit are skipped on the byte stream, never buffered
 * (./publish-guard.ts), and reported to the message handlers as refused.
 */
import * as fs from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient, type StreamBuilder } from 'mqtt';
import type { Config } from '../config/schema';
import { type Clock, systemClock, type TimerHandle } from '../base/clock';
import { EdgeheadError } from '../base/errors';
import { TLS_URL_RE } from '../protocol/patterns';
import { createLogger } from '../base/log';
import type { BrokerClient, BrokerStats, MessageHandler, PublishOptions } from './broker';
import { PublishGuard, type RefusedPublish } from './publish-guard';

const log = createLogger('mqtt');

/** The connection settings (the mqtt section of the config; operator tools fill it from their flags). */
export type MqttSettings = Pick<
  Config['mqtt'],
  'url' | 'username' | 'password' | 'keepaliveSec' | 'cleanSession' | 'connectTimeoutMs' | 'reconnectMinMs' | 'reconnectMaxMs' | 'tls'
>;

/** MQTT.js's connect(); injectable so tests can connect through in-memory streams. */
export type MqttConnect = (url: string, options: IClientOptions) => MqttClient;

type TlsFile = 'ca' | 'cert' | 'key';

export interface MqttJsClientOptions {
  cfg: MqttSettings;
  clientId: string;
  will?: { topic: string; payload: string; opts: PublishOptions };
  clock?: Clock;
  random?: () => number;
  /** false: one connection and no reconnect (operator tools). Default true. */
  reconnect?: boolean;
  /** How messages name the TLS file settings: default mqtt.tls.<key>; operator tools name their flags. */
  settingName?: (key: TlsFile) => string;
  connect?: MqttConnect;
  /** Largest payload accepted per topic (the device: a few KiB on cmd, head.maxBytes on head/set). A larger PUBLISH
   * is skipped as it arrives instead of being buffered whole, and handed to the message handlers as refused. */
  maxPayloadBytes?: (topic: string) => number;
  /** MQTT 3.1.1 (4, the default: what the device speaks) or MQTT 5 (the fleet server: shared subscriptions
   * `$share/<group>/...`, which MQTT.js delivers under the real topic of the message). */
  protocolVersion?: 4 | 5;
}

export class MqttJsClient implements BrokerClient {
  private client: MqttClient | undefined;
  private readonly clock: Clock;
  private readonly random: () => number;
  private attempts = 0;
  private everConnected = false;
  private reconnects = 0;
  private lastError: string | undefined;
  private reconnectTimer: TimerHandle | undefined;
  private stopping = false;
  private topics: string[] = [];
  private readonly messageHandlers: MessageHandler[] = [];
  /** QoS 2 packet ids of refused publishes: MQTT.js delivers them with an empty payload, which is not a message. */
  private readonly refusedQos2 = new Set<number>();
  private readonly connectHandlers: (() => void)[] = [];
  private readonly disconnectHandlers: ((reason: string) => void)[] = [];
  private opened: { resolve: () => void; reject: (e: Error) => void } | undefined;

  constructor(private readonly opts: MqttJsClientOptions) {
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
  }

  get connected(): boolean {
    return this.client?.connected === true;
  }

  start(): void {
    const { cfg } = this.opts;
    const options = this.clientOptions();
    const guarded = this.opts.maxPayloadBytes !== undefined;
    const client = (this.opts.connect ?? ((url, o) => mqtt.connect(url, o)))(cfg.url, guarded ? { ...options, manualConnect: true } : options);
    this.client = client;
    client.on('connect', (connack) => {
      this.attempts = 0;
      if (this.everConnected) this.reconnects++;
      this.everConnected = true;
      this.lastError = undefined;
      log.info('connected', { url: cfg.url, sessionPresent: connack.sessionPresent });
      this.opened?.resolve();
      if (this.topics.length) {
        client.subscribe(this.topics, { qos: 1 }, (err) => err && log.warn('subscribe failed', { error: err.message }));
      }
      for (const h of this.connectHandlers) h();
    });
    client.on('message', (topic, payload, packet) => {
      if (packet.qos === 2 && packet.messageId !== undefined && this.refusedQos2.delete(packet.messageId)) return;
      for (const h of this.messageHandlers) h(topic, payload, packet.retain === true);
    });
    client.on('error', (err) => this.noteError(err));
    client.on('close', () => {
      if (this.stopping) return;
      if (!this.everConnected && this.opened) {
        this.opened.reject(new EdgeheadError('MQTT', `cannot connect: ${this.lastError ?? `no answer from ${cfg.url} within ${cfg.connectTimeoutMs} ms`}`));
        return;
      }
      for (const h of this.disconnectHandlers) h(this.lastError ?? 'connection closed');
      if (this.opts.reconnect !== false) this.scheduleReconnect();
    });
    if (guarded) {
      this.guardStreams(client, this.opts.maxPayloadBytes!);
      client.connect();
    }
  }

  /**
   * Puts a PublishGuard between each new connection's stream and MQTT.js's parser. MQTT.js reads a stream only
   * through `stream.pipe(parser)` (client.js connect()), so that one call is redirected through the guard; writes,
   * close and errors stay on the stream itself. streamBuilder is private in MQTT.js's types, hence the cast.
   */
  private guardStreams(client: MqttClient, maxPayloadBytes: (topic: string) => number): void {
    const c = client as unknown as { streamBuilder: StreamBuilder };
    const build = c.streamBuilder;
    c.streamBuilder = (mc, o) => {
      const stream = build(mc, o);
      const guard = new PublishGuard({ maxPayloadBytes, reply: (packet) => void stream.write(packet), onRefused: (r) => this.refused(r) });
      guard.on('error', (e) => stream.destroy(e));
      const pipe = stream.pipe.bind(stream) as (dest: NodeJS.WritableStream, opts?: { end?: boolean }) => NodeJS.WritableStream;
      (stream as { pipe: unknown }).pipe = (dest: NodeJS.WritableStream, opts?: { end?: boolean }) => {
        pipe(guard, opts);
        return guard.pipe(dest, opts);
      };
      return stream;
    };
  }

  private refused(r: RefusedPublish): void {
    log.warn('incoming message refused: payload too large', { topic: r.topic, bytes: r.bytes, limit: r.limit });
    if (r.messageId !== undefined) this.refusedQos2.add(r.messageId);
    for (const h of this.messageHandlers) h(r.topic, Buffer.alloc(0), r.retained, { bytes: r.bytes, limit: r.limit });
  }

  /** Connects and resolves on the first connection; with reconnect: false, rejects if that first attempt fails. */
  open(): Promise<void> {
    if (this.client) throw new Error('MqttJsClient: open() after start()');
    const p = new Promise<void>((resolve, reject) => (this.opened = { resolve, reject }));
    this.start();
    return p.catch(async (e: unknown) => {
      await this.stop(undefined, 500);
      throw e;
    });
  }

  private clientOptions(): IClientOptions {
    const { cfg, clientId, will } = this.opts;
    const name = this.opts.settingName ?? ((k: TlsFile) => `mqtt.tls.${k}`);
    const options: IClientOptions = {
      clientId,
      clean: cfg.cleanSession,
      keepalive: cfg.keepaliveSec,
      connectTimeout: cfg.connectTimeoutMs,
      reconnectPeriod: 0,
      protocolVersion: this.opts.protocolVersion ?? 4,
      ...(will ? { will: { topic: will.topic, payload: Buffer.from(will.payload), qos: will.opts.qos, retain: will.opts.retain } } : {}),
      username: cfg.username,
      password: cfg.password,
    };
    if (TLS_URL_RE.test(cfg.url)) {
      const read = (key: TlsFile): Buffer | undefined => {
        const file = cfg.tls[key];
        if (!file) return undefined;
        try {
          return fs.readFileSync(file);
        } catch (e) {
          throw new EdgeheadError('BAD_CONFIG', `${name(key)}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`);
        }
      };
      Object.assign(options, {
        ca: read('ca'),
        cert: read('cert'),
        key: read('key'),
        rejectUnauthorized: cfg.tls.rejectUnauthorized,
        servername: cfg.tls.servername,
      });
    }
    return options;
  }

  private noteError(err: Error & { code?: string | number }): void {
    const msg = describeMqttError(err, this.opts.cfg.url, this.opts.settingName);
    // Without reconnect, open() or the disconnect handlers report it: the log only repeats it at debug level.
    if (msg !== this.lastError) (this.opts.reconnect === false ? log.debug : log.warn)(msg);
    this.lastError = msg;
  }

  /** Delay for the n-th consecutive failed attempt: min * 2^n capped at max, times a jitter factor in [0.5, 1). */
  backoffMs(attempt: number): number {
    const { reconnectMinMs: min, reconnectMaxMs: max } = this.opts.cfg;
    const base = Math.min(max, min * 2 ** Math.min(attempt, 30));
    return Math.round(base * (0.5 + this.random() / 2));
  }

  private scheduleReconnect(): void {
    if (this.stopping || this.reconnectTimer) return;
    const delay = this.backoffMs(this.attempts++);
    log.debug('reconnecting', { inMs: delay, attempt: this.attempts });
    this.reconnectTimer = this.clock.setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.stopping) this.client?.reconnect();
    }, delay);
  }

  publish(topic: string, payload: string | Uint8Array, opts: PublishOptions): Promise<void> {
    const client = this.client;
    if (!client?.connected) return Promise.reject(new EdgeheadError('MQTT', 'not connected'));
    return new Promise((resolve, reject) => {
      client.publish(topic, typeof payload === 'string' ? payload : Buffer.from(payload), opts, (err) =>
        err ? reject(new EdgeheadError('MQTT', `publish to ${topic} failed: ${err.message}`)) : resolve(),
      );
    });
  }

  async subscribe(topics: string[]): Promise<void> {
    this.topics = [...new Set([...this.topics, ...topics])];
    const client = this.client;
    if (!client?.connected) return;
    await client.subscribeAsync(topics, { qos: 1 }).catch((e: Error) => {
      throw new EdgeheadError('MQTT', `subscribe to ${topics.join(', ')} failed: ${e.message}`);
    });
  }

  onMessage(handler: MessageHandler): void {
    this.messageHandlers.push(handler);
  }

  onConnect(handler: () => void): void {
    this.connectHandlers.push(handler);
  }

  onDisconnect(handler: (reason: string) => void): void {
    this.disconnectHandlers.push(handler);
  }

  stats(): BrokerStats {
    return { connected: this.connected, reconnects: this.reconnects, ...(this.lastError ? { lastError: this.lastError } : {}) };
  }

  async stop(final?: { topic: string; payload: string; opts: PublishOptions }, timeoutMs = 2000): Promise<void> {
    this.stopping = true;
    this.reconnectTimer?.cancel();
    this.reconnectTimer = undefined;
    const client = this.client;
    if (!client) return;
    const deadline = new Promise<void>((r) => setTimeout(r, timeoutMs).unref());
    if (final && client.connected) {
      await Promise.race([this.publish(final.topic, final.payload, final.opts).catch(() => undefined), deadline]);
    }
    await Promise.race([new Promise<void>((r) => client.end(false, {}, () => r())), deadline]);
    if (!client.disconnected) await new Promise<void>((r) => client.end(true, {}, () => r()));
  }
}

/** One line a user can act on. */
export function describeMqttError(err: Error & { code?: string | number }, url: string, settingName?: (key: TlsFile) => string): string {
  const code = typeof err.code === 'string' ? err.code : '';
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ALTNAME|EPROTO/i.test(code) || /certificate|ssl|tls/i.test(err.message)) {
    const files = settingName ? (['ca', 'cert', 'key'] as const).map(settingName).join(' / ') : 'mqtt.tls.ca / cert / key';
    return `TLS error talking to ${url}: ${err.message} (check ${files}; never falls back to plaintext)`;
  }
  if (code === 'ECONNREFUSED') return `broker ${url} refused the connection (is it running?)`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `broker host of ${url} not found (${code})`;
  if (/Not authorized|Bad username or password/i.test(err.message)) return `broker ${url} rejected the credentials: ${err.message}`;
  return `MQTT error (${url}): ${err.message}`;
}
