/**
 * The long-running agent: frames on a schedule -> classification -> MQTT predictions, plus birth/last-will,
 * telemetry and commands. Components are passed in (or built from config) and started in order, stopped in reverse.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { Config } from '../config/schema';
import { type BackendInfo, initBackend } from './backend/wasm';
import type { Extractor } from './extractors/extractor';
import { loadExtractor } from './extractors/load';
import { DenseHead } from './inference/dense-head';
import { DEMO_HEAD_PATH, readHeadBytes } from '../protocol/head/files';
import { HeadManager } from './hot-swap/head-manager';
import { HeadStore } from './hot-swap/head-store';
import { loadPublicKeys } from './hot-swap/public-keys';
import { initImageCodecs } from './image';
import { Classifier } from './inference/classifier';
import type { BrokerClient, PublishOptions } from '../mqtt/broker';
import { CommandRouter } from './commands/command-router';
import { type EmbeddedBroker, isListening, loopbackTarget, startEmbeddedBroker } from '../mqtt/embedded-broker';
import { MqttJsClient } from '../mqtt/mqttjs-client';
import { PredictionFilter } from './frames/prediction-filter';
import { ReliablePublisher } from './publish/reliable-publisher';
import {
  type BackendSummary,
  type BirthMessage,
  deviceTopics,
  type HeadStateMessage,
  type OfflineMessage,
  type PredictionMessage,
  type TelemetryMessage,
  type Topics,
} from '../protocol/topics';
import { Scheduler } from './schedule/scheduler';
import { createFrameSource } from './sources';
import type { FrameSource } from './sources/source';
import { nextRunNumber } from './state/run-counter';
import { DiskQueue } from './store/disk-queue';
import type { MessageQueue } from './store/queue';
import { FrameStats } from './telemetry/stats';
import { cpuTemperatureC, diskFreeMB, loadAverage, memoryMB } from './telemetry/system';
import { type Clock, systemClock, type TimerHandle } from '../base/clock';
import { describeError, EdgeheadError } from '../base/errors';
import { createLogger } from '../base/log';
import { agentVersion } from '../base/version';

const log = createLogger('agent');

export interface AgentDeps {
  /** Fully defaulted and validated (config/load.ts). device.id must be set. */
  config: Config;
  clock?: Clock;
  source?: FrameSource;
  queue?: MessageQueue;
  broker?: BrokerClient;
  /** Where readable prediction lines go when predictions.console is on. */
  print?: (line: string) => void;
  /** predictions.console "auto" resolves to this. */
  consoleAuto?: boolean;
}

export class Agent {
  readonly config: Config;
  readonly topics: Topics;
  readonly stats = new FrameStats();
  private readonly clock: Clock;
  private readonly startedAt: number;
  private run = 0;
  private frameId = 0;
  private backend!: BackendInfo;
  private extractor!: Extractor;
  private classifier!: Classifier;
  private source!: FrameSource;
  private queue!: MessageQueue;
  private broker!: BrokerClient;
  private publisher!: ReliablePublisher;
  private scheduler!: Scheduler;
  private embedded: EmbeddedBroker | undefined;
  private telemetryTimer: TimerHandle | undefined;
  private readonly filter: PredictionFilter;
  private readonly commands = new CommandRouter();
  private lastPrediction: PredictionMessage | undefined;
  private heads!: HeadManager;
  /** Frames started and not finished; heads replaced meanwhile are disposed when this drops to 0. */
  private framesInFlight = 0;
  private retiredHeads: DenseHead[] = [];
  private stopped: Promise<void> | undefined;

  constructor(private readonly deps: AgentDeps) {
    this.config = deps.config;
    if (!this.config.device.id) throw new EdgeheadError('BAD_CONFIG', 'device.id is not set');
    this.clock = deps.clock ?? systemClock;
    this.startedAt = this.clock.now();
    this.topics = deviceTopics(this.config.mqtt.topicPrefix, this.config.device.id, this.config.device.groups);
    this.filter = new PredictionFilter(this.config.predictions);
  }

  get deviceId(): string {
    return this.config.device.id!;
  }

  async start(): Promise<void> {
    const cfg = this.config;
    fs.mkdirSync(cfg.stateDir, { recursive: true });
    this.run = nextRunNumber(cfg.stateDir);
    this.backend = await initBackend({ backend: cfg.backend.name, threads: cfg.backend.threads });
    const codecs = initImageCodecs(); // loads the JPEG decoder now rather than on the first frame
    log.info('image decoder', { ...codecs });
    const publicKeys = loadPublicKeys(cfg.head.publicKeys);
    this.extractor = await loadExtractor({
      ref: cfg.extractor.ref,
      outputNode: cfg.extractor.outputNode,
      valueRange: cfg.extractor.valueRange as [number, number] | undefined,
      cacheDir: cfg.stateDir,
      timeoutMs: cfg.extractor.downloadTimeoutMs,
    });
    this.heads = new HeadManager(new HeadStore(cfg.stateDir, cfg.head.maxBytes, cfg.head.rejectedKeep), cfg.head, this.extractor.info, publicKeys, this.deviceId);
    const head = DenseHead.fromFile(this.heads.initial(readHeadBytes(cfg.head.file ?? DEMO_HEAD_PATH(), cfg.head.maxBytes)));
    this.classifier = new Classifier(this.extractor, head, { resize: cfg.preprocess.resize, maxPixels: cfg.preprocess.maxPixels, topK: cfg.predictions.topK });

    this.queue = this.deps.queue ?? new DiskQueue({ dir: path.join(cfg.stateDir, 'queue'), maxBytes: Math.round(cfg.offline.maxMB * 1024 * 1024) });
    await this.queue.open();
    await this.maybeStartEmbeddedBroker();
    this.broker = this.deps.broker ?? new MqttJsClient({ cfg: cfg.mqtt, clientId: this.deviceId, will: this.statusMessage('connection lost') });
    this.publisher = new ReliablePublisher(this.broker, this.queue);
    this.heads.attach({
      lastFeatures: () => this.classifier.lastFeatures,
      swap: (h) => {
        this.filter.reset();
        const old = this.classifier.swapHead(h);
        if (this.framesInFlight > 0) this.retiredHeads.push(old);
        else old.dispose();
      },
      top1: (h, features) => this.classifier.predictFeatures(features, h)[0]!.label,
      publishState: (state) => this.publishHeadState(state),
      repredictLastFrame: () => this.repredictLastFrame(),
    });
    this.registerCommands();
    this.broker.onConnect(() => {
      void this.publishBirth();
      void this.heads.publishCurrent();
    });
    this.broker.onMessage((topic, payload, retained) => void this.onMessage(topic, payload, retained));
    void this.broker.subscribe([this.topics.cmd, this.topics.headSet, ...this.topics.groupHeadSet, this.topics.allHeadSet]);
    this.broker.start();

    this.source = this.deps.source ?? createFrameSource(cfg.source);
    await this.source.start();
    this.scheduler = new Scheduler({
      clock: this.clock,
      intervalMs: cfg.schedule.intervalMs,
      cron: cfg.schedule.cron,
      activeWindow: cfg.schedule.activeWindow,
      jitterMs: cfg.schedule.jitterMs,
      onTick: (reason) => this.frame(reason === 'manual' ? 'capture' : undefined).then(() => undefined),
    });
    this.scheduler.start();
    this.scheduleTelemetry();
    log.info('agent started', {
      device: this.deviceId,
      run: this.run,
      source: cfg.source.type,
      extractor: this.extractor.info.id,
      head: `${head.manifest.id} v${head.manifest.version}`,
      backend: `${this.backend.backend}${this.backend.simd ? '+simd' : ''} x${this.backend.threads}`,
    });
  }

  private async maybeStartEmbeddedBroker(): Promise<void> {
    const { mqtt } = this.config;
    const target = loopbackTarget(mqtt.url);
    if (mqtt.embeddedBroker !== 'auto' || !target) return;
    if (await isListening(target.host, target.port)) {
      log.info('using the MQTT broker already listening', { url: mqtt.url });
      return;
    }
    try {
      this.embedded = await startEmbeddedBroker(target.host, target.port);
    } catch (e) {
      log.warn('could not start the embedded broker; will keep trying to connect', { error: describeError(e) });
    }
  }

  /** Takes, classifies and publishes one frame. Errors are logged and counted; the loop goes on. */
  async frame(reason?: PredictionMessage['reason']): Promise<PredictionMessage | undefined> {
    const t0 = performance.now();
    // A frame finishes on the head it started with, even if a new head is swapped in while it is being captured.
    const pinned = this.classifier.head;
    this.framesInFlight++;
    try {
      const frame = await this.source.capture();
      const result = this.classifier.classify(frame.bytes, pinned);
      const head = pinned.manifest;
      const msg: PredictionMessage = {
        ts: new Date(frame.capturedAt).toISOString(),
        run: this.run,
        frameId: ++this.frameId,
        source: frame.origin,
        top: result.predictions.map((p) => ({ label: p.label, score: Math.round(p.score * 10000) / 10000 })),
        head: { id: head.id, version: head.version },
        extractor: this.extractor.info.id,
        ms: roundAll({ capture: frame.captureMs, ...result.timings }),
        ...(reason ? { reason } : {}),
      };
      this.stats.ok++;
      this.stats.record({ ...msg.ms, total: performance.now() - t0 });
      if (pinned === this.classifier.head) this.heads.onFrame(this.classifier.lastFeatures!, msg.top[0]!.label);
      this.lastPrediction = msg;
      await this.emitPrediction(msg);
      return msg;
    } catch (e) {
      this.stats.failed++;
      log.warn('frame failed', { error: describeError(e) });
      if (reason === 'capture') throw e;
      return undefined;
    } finally {
      if (--this.framesInFlight === 0) for (const h of this.retiredHeads.splice(0)) h.dispose();
    }
  }

  private async emitPrediction(msg: PredictionMessage): Promise<void> {
    const decision = msg.reason ? ({ publish: true } as const) : this.filter.decide(msg.top[0]!);
    if (this.consoleOn()) this.print(formatPrediction(msg, decision.publish));
    if (!decision.publish) {
      this.stats.suppressed++;
      return;
    }
    await this.publisher.publish({ topic: this.topics.predictions, payload: JSON.stringify(msg), qos: this.config.predictions.qos, retain: false });
    this.stats.published++;
  }

  /** The last frame predicted again by the (new) active head: published at once after a head change. */
  private async repredictLastFrame(): Promise<void> {
    const last = this.lastPrediction;
    const features = this.classifier.lastFeatures;
    if (!last || !features) return;
    const t0 = performance.now();
    const top = this.classifier.predictFeatures(features).map((p) => ({ label: p.label, score: Math.round(p.score * 10000) / 10000 }));
    const head = this.classifier.head.manifest;
    const msg: PredictionMessage = {
      ...last,
      frameId: ++this.frameId,
      top,
      head: { id: head.id, version: head.version },
      ms: { capture: 0, decode: 0, resize: 0, extract: 0, head: Math.round((performance.now() - t0) * 10) / 10 },
      reason: 'head-swap',
    };
    this.lastPrediction = msg;
    await this.emitPrediction(msg);
  }

  private async publishHeadState(state: HeadStateMessage): Promise<void> {
    if (!this.broker.connected) return; // republished on every connection
    await this.broker.publish(this.topics.headState, JSON.stringify(state), { qos: 1, retain: true }).catch((e) => {
      log.warn('head state not published', { error: describeError(e) });
    });
  }

  private consoleOn(): boolean {
    const c = this.config.predictions.console;
    return c === 'on' || (c === 'auto' && (this.deps.consoleAuto ?? process.stdout.isTTY === true));
  }

  private print(line: string): void {
    (this.deps.print ?? ((l: string) => process.stdout.write(l + '\n')))(line);
  }

  private statusMessage(reason: OfflineMessage['reason']): { topic: string; payload: string; opts: PublishOptions } {
    const msg: OfflineMessage = { status: 'offline', device: this.deviceId, reason, ...(reason === 'shutdown' ? { at: new Date().toISOString() } : {}) };
    return { topic: this.topics.status, payload: JSON.stringify(msg), opts: { qos: 1, retain: true } };
  }

  backendSummary(): BackendSummary {
    const b = this.backend;
    return { name: b.backend, simd: b.simd, threads: b.threads, ...(b.threadsNote ? { threadsNote: b.threadsNote } : {}) };
  }

  birthMessage(): BirthMessage {
    const head = this.classifier.head.manifest;
    return {
      status: 'online',
      device: this.deviceId,
      groups: this.config.device.groups,
      version: agentVersion(),
      startedAt: new Date(this.startedAt).toISOString(),
      extractor: { id: this.extractor.info.id, fingerprint: this.extractor.info.fingerprint },
      head: { id: head.id, version: head.version, sha256: head.sha256 },
      backend: this.backendSummary(),
    };
  }

  private async publishBirth(): Promise<void> {
    try {
      await this.broker.publish(this.topics.status, JSON.stringify(this.birthMessage()), { qos: 1, retain: true });
    } catch (e) {
      log.warn('birth message not published', { error: describeError(e) });
    }
  }

  telemetry(): TelemetryMessage {
    const q = this.queue.stats();
    const b = this.broker.stats();
    return {
      ts: new Date(this.clock.now()).toISOString(),
      device: this.deviceId,
      uptimeSec: Math.round((this.clock.now() - this.startedAt) / 1000),
      frames: { ok: this.stats.ok, skipped: this.scheduler.stats.skipped, failed: this.stats.failed, published: this.stats.published, suppressed: this.stats.suppressed },
      latencyMs: this.stats.percentiles(),
      ...memoryMB(),
      tensors: tf.memory().numTensors,
      cpuTempC: cpuTemperatureC(),
      loadAvg: loadAverage(),
      diskFreeMB: diskFreeMB(this.config.stateDir),
      mqtt: { connected: b.connected, reconnects: b.reconnects },
      offlineQueue: { depth: q.depth, bytes: q.bytes, dropped: q.dropped },
      backend: this.backendSummary(),
    };
  }

  private scheduleTelemetry(): void {
    this.telemetryTimer = this.clock.setTimeout(() => {
      if (this.broker.connected) {
        this.broker.publish(this.topics.telemetry, JSON.stringify(this.telemetry()), { qos: 0, retain: false }).catch(() => undefined);
      }
      this.scheduleTelemetry();
    }, this.config.telemetry.intervalSec * 1000);
  }

  private registerCommands(): void {
    this.commands.register('capture', async () => {
      for (let i = 0; i < 50; i++) {
        if (await this.scheduler.trigger()) return this.lastPrediction;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new EdgeheadError('CAPTURE', 'a frame is still in flight; try again');
    });
    this.commands.register('status', async () => ({ birth: this.birthMessage(), telemetry: this.telemetry(), head: this.heads.stateMessage() }));
    this.commands.register('rollback', () => this.heads.rollback());
    this.commands.register('promote', () => this.heads.promote());
    this.commands.register('discard', () => this.heads.discard());
    this.commands.register('shadow', async (args) => {
      this.heads.armShadow(args.frames as number, args.autoPromoteAgreement as number | undefined);
      return { armed: true, frames: args.frames, note: 'the next head received runs in shadow mode' };
    });
  }

  private isHeadTopic(topic: string): boolean {
    return topic === this.topics.headSet || topic === this.topics.allHeadSet || this.topics.groupHeadSet.includes(topic);
  }

  private async onMessage(topic: string, payload: Buffer, retained: boolean): Promise<void> {
    if (this.isHeadTopic(topic)) {
      // An empty payload on a group/fleet topic is an operator clearing the retained head, not an update.
      if (payload.byteLength === 0 && topic !== this.topics.headSet) return;
      await this.heads.handlePayload(topic, new Uint8Array(payload), retained).catch((e) => log.error('head update failed', { error: describeError(e) }));
      return;
    }
    if (topic !== this.topics.cmd) return;
    const reply = await this.commands.handle(payload);
    if (!reply.ok) log.info('command rejected', { id: reply.id, error: reply.error });
    await this.broker.publish(this.topics.cmdReply, JSON.stringify(reply), { qos: 1, retain: false }).catch((e) => {
      log.warn('command reply not published', { error: describeError(e) });
    });
  }

  /** Finishes the in-flight frame, publishes "offline", flushes, releases everything. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= this.doStop();
    return this.stopped;
  }

  private async doStop(): Promise<void> {
    const step = async (name: string, fn: () => Promise<unknown> | unknown) => {
      try {
        await fn();
      } catch (e) {
        log.warn(`stopping ${name} failed`, { error: describeError(e) });
      }
    };
    await step('scheduler', () => this.scheduler?.stop());
    this.telemetryTimer?.cancel();
    await step('source', () => this.source?.stop());
    await step('publisher', () => this.publisher?.stop(1000));
    await step('mqtt', () => this.broker?.stop(this.statusMessage('shutdown'), 1500));
    await step('queue', () => this.queue?.close());
    await step('embedded broker', () => this.embedded?.close());
    this.heads?.dispose();
    for (const h of this.retiredHeads.splice(0)) h.dispose();
    this.classifier?.head.dispose();
    this.extractor?.dispose();
    log.info('agent stopped', { frames: this.stats.ok, failed: this.stats.failed });
  }
}

function roundAll<T extends Record<string, number>>(o: T): T {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v * 10) / 10])) as T;
}

export function formatPrediction(msg: PredictionMessage, published: boolean): string {
  const [top, ...rest] = msg.top;
  const others = rest.map((p) => `${p.label} ${p.score.toFixed(2)}`).join(', ');
  const total = Object.values(msg.ms).reduce((a, b) => a + b, 0);
  return `#${msg.frameId} ${msg.source}: ${top!.label} ${top!.score.toFixed(2)}${others ? ` (${others})` : ''}  ${total.toFixed(0)} ms${published ? '' : '  [not published]'}${msg.reason ? `  [${msg.reason}]` : ''}`;
}
