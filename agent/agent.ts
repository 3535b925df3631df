/**
 * The composition root: createAgent() builds every service of the device runtime from the config (or from
 * injected seams: clock, source, queue, broker, extractor) and wires them together; it runs nothing itself.
 *
 *   scheduler --tick--> FrameLoop --prediction--> ReliablePublisher --> broker
 *   broker --head/set, cmd--> inbox --> HeadManager / DeviceCommands
 *   HeadManager --events: headState, headChanged--> Presence (retained status, head/state), FrameLoop (re-predict)
 *   FrameLoop --event: frameClassified--> HeadManager (shadow comparisons)
 *
 * start() connects and starts the frames; stop() takes everything down in reverse order of construction.
 */
import * as path from 'node:path';
import { type Clock, systemClock } from '../base/clock';
import { describeError, EdgeheadError } from '../base/errors';
import { createLogger } from '../base/log';
import { agentVersion } from '../base/version';
import type { Config } from '../config/schema';
import type { BrokerClient } from '../mqtt/broker';
import { embeddedBrokerIfWanted } from '../mqtt/embedded-broker';
import { MqttJsClient } from '../mqtt/mqttjs-client';
import { DEMO_HEAD_PATH, readHeadBytes } from '../protocol/head/files';
import { type BackendSummary, type BirthMessage, birthMessage, encodePayload, type TelemetryMessage } from '../protocol/messages';
import { type DeviceTopics, deviceTopics } from '../protocol/topics';
import { type BackendInfo, initBackend, threadsStatus } from './backend/wasm';
import { Collector } from './collect/collector';
import { SampleStore } from './collect/store';
import { deviceCommandHandlers } from './commands/handlers';
import { DeviceCommands } from './commands/device-commands';
import { EventBus } from './events';
import type { Extractor } from './extractors/extractor';
import { loadExtractor } from './extractors/load';
import { FrameLoop } from './frames/frame-loop';
import { PlainState } from './frames/plain-state';
import { PredictionFilter } from './frames/prediction-filter';
import { Snapshots } from './frames/snapshot';
import { HeadManager, startingHeads } from './hot-swap/head-manager';
import { HeadStore } from './hot-swap/head-store';
import { loadPublicKeys } from './hot-swap/public-keys';
import { initImageCodecs } from './image';
import { attachInbox, inboxPayloadLimit } from './inbox';
import { Classifier } from './inference/classifier';
import { MotionGate } from './motion/gate';
import { DenseHead } from './inference/dense-head';
import { Teardown } from './lifecycle';
import { AgentMetrics } from './metrics/metrics';
import { MetricsServer } from './metrics/server';
import { Presence, statusOffline } from './presence';
import { HomeAssistantDiscovery } from './integrations/home-assistant';
import { Problems } from './problems';
import { ReliablePublisher } from './publish/reliable-publisher';
import { Scheduler } from './schedule/scheduler';
import { describeSchedule, frameBoundMs, ServiceHealth } from './service/health';
import { serviceFromEnv, type ServiceSettings } from './service/notifier';
import { createFrameSource } from './sources';
import type { FrameSource } from './sources/source';
import { nextRunNumber, queuedRuns } from './state/run-counter';
import { openStateDir } from './state/state-dir';
import { DiskQueue } from './store/disk-queue';
import type { MessageQueue } from './store/queue';
import { telemetrySnapshot } from './telemetry/snapshot';
import { FrameStats } from './telemetry/stats';

const log = createLogger('agent');

/** The deferred warm-up frame runs only when the first scheduled frame is further away than this (ms). */
const WARM_UP_LEAD_MS = 1000;

export interface AgentDeps {
  /** Fully defaulted and validated (config/load.ts). device.id must be set. */
  config: Config;
  clock?: Clock;
  source?: FrameSource;
  queue?: MessageQueue;
  /** An injected broker client: no embedded broker is started. */
  broker?: BrokerClient;
  /** An injected extractor (tests): none is loaded; disposed on stop. */
  extractor?: Extractor;
  /** Where readable prediction lines go when predictions.console is on. */
  print?: (line: string) => void;
  /** predictions.console "auto" resolves to this. */
  consoleAuto?: boolean;
  problems?: Problems;
  /** What to tell systemd (READY, watchdog, status). Default: serviceFromEnv() (nothing without NOTIFY_SOCKET). */
  service?: ServiceSettings;
  /** The runtime is broken (frames keep trapping in WebAssembly): `run` stops the agent and exits 1. */
  onBroken?: (error: string) => void;
}

export interface Agent {
  readonly deviceId: string;
  readonly run: number;
  readonly topics: DeviceTopics;
  readonly stats: FrameStats;
  readonly problems: Problems;
  /** Prometheus metrics (served on metrics.listen when set). */
  readonly metrics: AgentMetrics;
  birthMessage(): BirthMessage;
  telemetry(): TelemetryMessage;
  /** Connects, starts the frame source and the schedule. */
  start(): Promise<void>;
  /** Finishes the frame in flight, publishes "offline", flushes, releases everything. Idempotent. */
  stop(): Promise<void>;
}

export async function createAgent(deps: AgentDeps): Promise<Agent> {
  const cfg = deps.config;
  const deviceId = cfg.device.id;
  if (!deviceId) throw new EdgeheadError('BAD_CONFIG', 'device.id is not set');
  const clock = deps.clock ?? systemClock;
  const startedAt = clock.now();
  const teardown = new Teardown();
  const problems = deps.problems ?? new Problems(() => clock.now());
  try {
    const stateDir = openStateDir(cfg.stateDir, { problems }); // 0700, locked: a second agent on it stops here
    teardown.add('state dir lock', () => stateDir.release());
    const backend = await initBackend({ backend: cfg.backend.name, threads: cfg.backend.threads });
    log.info('image decoder', { ...initImageCodecs() }); // loads the JPEG decoder now rather than on the first frame
    const publicKeys = loadPublicKeys(cfg.head.publicKeys);
    const extractor =
      deps.extractor ??
      (await loadExtractor({
        ref: cfg.extractor.ref,
        outputNode: cfg.extractor.outputNode,
        valueRange: cfg.extractor.valueRange as [number, number] | undefined,
        cacheDir: cfg.stateDir,
        timeoutMs: cfg.extractor.downloadTimeoutMs,
      }));
    teardown.add('extractor', () => extractor.dispose());

    const store = new HeadStore(cfg.stateDir, cfg.head.maxBytes, cfg.head.rejectedKeep);
    const initial = startingHeads(store, readHeadBytes(cfg.head.file ?? DEMO_HEAD_PATH(), cfg.head.maxBytes));
    const classifier = new Classifier(extractor, DenseHead.fromFile(initial.active.head), {
      resize: cfg.preprocess.resize,
      maxPixels: cfg.preprocess.maxPixels,
      ...(cfg.preprocess.region ? { region: cfg.preprocess.region } : {}),
      topK: cfg.predictions.topK,
    });

    const runs = queuedRuns();
    const queue =
      deps.queue ?? new DiskQueue({ dir: path.join(cfg.stateDir, 'queue'), maxBytes: Math.round(cfg.offline.maxMB * 1024 * 1024), problems, onRecovered: runs.observe });
    await queue.open();
    const run = nextRunNumber({ stateDir: cfg.stateDir, usedBefore: stateDir.usedBefore, queuedRun: runs.highest, now: clock.now(), problems });
    teardown.add('queue', () => queue.close());
    if (!deps.broker) {
      const embedded = await embeddedBrokerIfWanted(cfg.mqtt);
      if (embedded) teardown.add('embedded broker', () => embedded.close());
    }
    const topics = deviceTopics(cfg.mqtt.topicPrefix, deviceId, cfg.device.groups);
    const broker =
      deps.broker ??
      new MqttJsClient({
        cfg: cfg.mqtt,
        clientId: deviceId,
        will: statusOffline(topics, deviceId, 'connection lost'),
        maxPayloadBytes: inboxPayloadLimit(topics, cfg.head.maxBytes),
      });
    const publisher = new ReliablePublisher(broker, queue);
    // Lost broker: predictions wait in the offline queue; a problem while it lasts (HA's problem sensor shows it).
    broker.onDisconnect((reason) => problems.set('broker', `broker unreachable, predictions are queued: ${reason}`));
    broker.onConnect(() => problems.clear('broker'));

    const events = new EventBus();
    const stats = new FrameStats();
    // READY, the watchdog and the status line for systemd (agent/service/), when it listens (NOTIFY_SOCKET).
    const service = 'service' in deps ? deps.service : serviceFromEnv();
    const health: ServiceHealth | undefined =
      service &&
      new ServiceHealth({
        ...service,
        clock: deps.clock ?? { now: () => performance.now(), setTimeout: systemClock.setTimeout }, // monotonic ages
        frameBoundMs: frameBoundMs(cfg.source),
        nextFrameIn: (): number | undefined => {
          const at: number | undefined = scheduler.nextRunAt;
          return at === undefined ? undefined : at - clock.now();
        },
        describe: (): string => {
          const head = classifier.head.manifest;
          const keys = problems.list().map((p) => p.key);
          return `head ${head.id} v${head.version}, ${describeSchedule(cfg.schedule)}${scheduler.paused ? ' (paused)' : ''}${keys.length ? `, problems: ${keys.join(' ')}` : ''}`;
        },
      });
    // The data loop (docs/data-loop.md): samples of classified frames under <stateDir>/collect/, when enabled.
    const collector = cfg.collect.enabled
      ? new Collector({
          cfg: cfg.collect,
          store: SampleStore.open({ dir: path.join(cfg.stateDir, 'collect'), maxBytes: Math.round(cfg.collect.maxMB * 1024 * 1024) }),
          deviceId,
          extractor: extractor.info,
          maxPixels: cfg.preprocess.maxPixels,
        })
      : undefined;
    const frames = new FrameLoop({
      source: deps.source ?? createFrameSource(cfg.source),
      classifier,
      filter: new PredictionFilter(cfg.predictions, () => clock.now()),
      publish: (msg) => publisher.publish({ topic: topics.predictions, payload: encodePayload('prediction', msg), qos: cfg.predictions.qos, retain: false }),
      events,
      stats,
      run,
      extractorId: extractor.info.id,
      problems,
      region: cfg.preprocess.region,
      gate: cfg.motion.gate
        ? new MotionGate({ threshold: cfg.motion.threshold, size: cfg.motion.size, maxPixels: cfg.preprocess.maxPixels, maxAgeMs: cfg.predictions.maxIntervalSec * 1000, now: () => clock.now() })
        : undefined,
      collect: collector && ((f) => collector.offer(f)),
      watch: health,
      onBroken: deps.onBroken,
      print: consoleOn(cfg.predictions.console, deps.consoleAuto) ? (deps.print ?? ((l) => process.stdout.write(l + '\n'))) : undefined,
    });
    teardown.add('heads', () => frames.dispose());
    const heads = new HeadManager({
      store,
      cfg: cfg.head,
      extractor: extractor.info,
      publicKeys,
      deviceId,
      topicPrefix: cfg.mqtt.topicPrefix,
      classifier: frames,
      events,
      initial,
    });
    teardown.add('head manager', () => heads.dispose());
    const scheduler = new Scheduler({
      clock,
      intervalMs: cfg.schedule.intervalMs,
      cron: cfg.schedule.cron,
      activeWindow: cfg.schedule.activeWindow,
      jitterMs: cfg.schedule.jitterMs,
      runAtStart: true, // interval schedules: the first prediction comes right after start, not one interval later
      onTick: () => frames.tick(),
    });

    const summary = () => backendSummary(backend);
    const birth = (): BirthMessage => {
      const head = classifier.head.manifest;
      return birthMessage({
        device: deviceId,
        groups: cfg.device.groups,
        version: agentVersion(),
        startedAt: new Date(startedAt).toISOString(),
        extractor: { id: extractor.info.id, fingerprint: extractor.info.fingerprint },
        head: { id: head.id, version: head.version, sha256: head.sha256 },
        backend: summary(),
      });
    };
    const telemetry = (): TelemetryMessage =>
      telemetrySnapshot({
        now: clock.now(),
        startedAt,
        deviceId,
        stateDir: cfg.stateDir,
        frames: stats,
        scheduler: scheduler.stats,
        queue: queue.stats(),
        broker: broker.stats(),
        backend: summary(),
        problems: problems.list(),
      });
    const presence = new Presence({ broker, topics, deviceId, clock, telemetryIntervalSec: cfg.telemetry.intervalSec, birth, headState: () => heads.stateMessage(), telemetry, schedulePaused: () => scheduler.paused });
    const plainState = new PlainState(broker, topics.state);
    const snapshots = new Snapshots({ cfg: cfg.snapshot, maxPixels: cfg.preprocess.maxPixels, grab: () => frames.grabFrame(), scheduler, broker, topic: topics.snapshot, clock });
    const handlers = deviceCommandHandlers({
      frames,
      snapshots,
      scheduler,
      heads,
      status: () => ({ birth: birth(), telemetry: telemetry(), head: heads.stateMessage() }),
      scheduleChanged: () => presence.publishSchedule(),
      samples: collector?.store,
    });
    const commands = new DeviceCommands(broker, topics, handlers);

    const homeAssistant = new HomeAssistantDiscovery({
      broker,
      enabled: cfg.homeassistant.enabled,
      haPrefix: cfg.homeassistant.prefix,
      deviceId,
      topics,
      version: agentVersion(),
      classes: () => classifier.head.manifest.classes,
      unknownLabel: cfg.predictions.unknownLabel,
    });
    events.on('frameClassified', ({ features, top1 }) => heads.onFrame(features, top1));
    events.on('plainState', ({ label }) => plainState.set(label));
    events.on('headState', (state) => presence.publishHeadState(state));
    events.on('headChanged', async () => {
      await presence.publishBirth(); // the retained status names the new head
      await homeAssistant.headChanged(); // the label sensor's options are the new head's classes
      await frames.repredictLast();
    });

    teardown.add('mqtt', () => broker.stop(presence.shutdownMessage(), 1500));
    teardown.add('publisher', () => publisher.stop(1000));
    teardown.add('telemetry', () => presence.stop());
    // Reverse order: no new frame, then the source (which aborts a capture in flight: a stalled camera download must
    // not hold the shutdown), then wait for the frame in flight to finish.
    teardown.add('frame in flight', () => scheduler.stop());
    teardown.add('source', () => frames.stopSource());
    teardown.add('scheduler', () => scheduler.halt());
    teardown.add('snapshots', () => snapshots.stop()); // runs first: no periodic snapshot starts during shutdown
    const metrics = new AgentMetrics({
      deviceId,
      version: agentVersion(),
      startedAt,
      frames: stats,
      scheduler: () => scheduler.stats,
      queue: () => queue.stats(),
      broker: () => broker.stats(),
      head: () => classifier.head.manifest,
      extractor: extractor.info,
      backend: summary,
      problems: () => problems.list(),
    });
    const metricsServer = cfg.metrics.listen ? new MetricsServer(cfg.metrics.listen, metrics) : undefined;
    teardown.add('metrics server', () => metricsServer?.stop()); // no scrape reads a closed queue
    teardown.add('service health', () => health?.stop()); // first of all: STOPPING=1, no more watchdog pings

    let stopped: Promise<void> | undefined;
    return {
      deviceId,
      run,
      topics,
      stats,
      problems,
      metrics,
      birthMessage: birth,
      telemetry,
      async start() {
        await metricsServer?.start(); // first: a metrics.listen that cannot be bound stops the start before anything connects
        presence.start();
        plainState.start();
        homeAssistant.start();
        const haStatus = homeAssistant.statusTopic;
        void attachInbox(broker, cfg.mqtt.topicPrefix, topics, {
          head: (topic, payload, retained) => heads.handlePayload(topic, payload, retained).catch((e) => log.error('head update failed', { error: describeError(e) })),
          command: (payload) => commands.handle(payload),
          refused: (kind, topic, r) =>
            kind === 'command' ? void commands.refuse(r) : log.warn('head payload refused unread', { topic, bytes: r.bytes, limit: r.limit }),
          routes: haStatus ? { [haStatus]: (payload) => void homeAssistant.onHaStatus(payload) } : {},
        }).catch((e) => log.warn('subscribe failed', { error: describeError(e) }));
        broker.start();
        await frames.startSource();
        scheduler.start();
        // The warm-up frame skipped at load on a weight cache hit: now, while a later first tick is due (cron, window,
        // jitter). A tick due at once does the same one-time work itself, without the extra zero frame.
        const firstTickAt = scheduler.nextRunAt;
        if (firstTickAt === undefined || firstTickAt - clock.now() > WARM_UP_LEAD_MS) setImmediate(() => extractor.warmUp?.());
        snapshots.start();
        health?.start(); // READY now, or after the first frame
        const head = classifier.head.manifest;
        log.info('agent started', {
          device: deviceId,
          run,
          source: cfg.source.type,
          extractor: extractor.info.id,
          head: `${head.id} v${head.version}`,
          backend: `${backend.backend}${backend.simd ? '+simd' : ''} x${backend.threads}${backend.threadsPolicy === 'adaptive' ? ' (auto: 1 or all, as measured)' : ''}`,
        });
      },
      stop() {
        stopped ??= teardown.run().then(() => log.info('agent stopped', { frames: stats.ok, failed: stats.failed }));
        return stopped;
      },
    };
  } catch (e) {
    await teardown.run();
    throw e;
  }
}

/** The backend as messages report it: `threads` is the count frames run with now (threads auto moves it). */
function backendSummary(b: BackendInfo): BackendSummary {
  const now = threadsStatus();
  return {
    name: b.backend,
    simd: b.simd,
    threads: now?.threads ?? b.threads,
    ...(b.threadsNote ? { threadsNote: b.threadsNote } : {}),
    ...(now?.policy === 'adaptive' ? { threadsPolicy: 'adaptive' as const, threadsMax: now.max, ...(now.reason ? { threadsReason: now.reason } : {}) } : {}),
  };
}

function consoleOn(setting: Config['predictions']['console'], auto: boolean | undefined): boolean {
  return setting === 'on' || (setting === 'auto' && (auto ?? process.stdout.isTTY === true));
}
