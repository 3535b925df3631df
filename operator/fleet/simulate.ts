/**
 * Simulated devices for the tests and the fleet benchmark (`edgehead fleet simulate`): N devices speaking the real
 * protocol (topics, payload constructors and schemas from protocol/), each on its own connection of the one MQTT
 * adapter (mqtt/mqttjs-client.ts) with a clean session and a retained last will. Each publishes its retained birth
 * and head/state on every connection, telemetry and predictions on timers (a random phase per device, so they do not
 * all publish in the same millisecond), and answers head pushes and commands like a device.
 *
 * A head payload is checked like a device checks it (agent/hot-swap/validate.ts and head-manager.ts; docs/fleet.md
 * sections 6-8), first failure wins: a retained re-delivery of the payload last processed on that topic is ignored;
 * size and format (decodeHead, HEAD_MAX_BYTES); signature when public keys are set; duplicate (same id, version and
 * sha256 as the active head); expiry (notAfter); version above the highest applied of that id ("downgrade: ...",
 * unless the `allow` command let it through); topic precedence; then `shadow` (manifest.shadow or the `shadow`
 * command) or `applied`. NOT checked: the feature dimension, the extractor fingerprint and the test vectors -- a
 * simulated device has no extractor and no classifier. Predictions use the active head's classes. A shadow candidate's
 * agreement is counted over the next predictions at a configured rate (default 0.95), deterministically.
 * Decoding and signature checks are memoised by payload sha256 across the fleet: a thousand devices receiving the
 * same group head would all reach the same verdict.
 *
 * Bounded: 1 to 5,000 devices, loopback brokers only, connections opened in batches, `durationMs` stops it.
 *
 *   SimDeviceModel   one device's heads, counters and answers; no I/O, no timers (unit-tested)
 *   SimulatedDevice  a model on a connection and the clock: subscriptions, timers, publishing
 *   SimulatedFleet   N devices: batched connects, stats, stop, kill
 */
import { performance } from 'node:perf_hooks';
import mqtt from 'mqtt';
import { type CommandHandlers, CommandRouter } from '../../agent/commands/command-router';
import { COLLECT_DISABLED, type CommandReply } from '../../protocol/commands';
import { type Clock, systemClock, type TimerHandle } from '../../base/clock';
import { describeError, EdgeheadError } from '../../base/errors';
import { sha256Hex } from '../../base/hash';
import { createLogger } from '../../base/log';
import { prng } from '../../base/prng';
import { agentVersion } from '../../base/version';
import { defaultConfig } from '../../config/defaults';
import { type BrokerClient, type PublishOptions, RETAINED } from '../../mqtt/broker';
import { type MqttConnect, MqttJsClient } from '../../mqtt/mqttjs-client';
import { decodeHead, type HeadFile } from '../../protocol/head/format';
import { keyIdFromPublicKey, verifyHead } from '../../protocol/head/signature';
import {
  birthMessage,
  type BirthMessage,
  correlationIdOf,
  encodePayload,
  type HeadRef,
  type HeadStateMessage,
  type HeadUpdate,
  type HeadUpdateStatus,
  HEAD_UPDATE_STATUSES,
  offlineMessage,
  predictionMessage,
  type PredictionMessage,
  STAGES,
  type Stage,
  type TelemetryMessage,
} from '../../protocol/messages';
import { DEVICE_ID_RE, DEVICE_ID_RULE, HEAD_MAX_BYTES, ID_RE, ID_RULE, TOPIC_PREFIX_RE, TOPIC_PREFIX_RULE } from '../../protocol/patterns';
import { type DeviceTopics, deviceTopics, headScopeOf, scopeRank } from '../../protocol/topics';
import { pushSettings } from '../push';

const log = createLogger('simulate');

export const MAX_SIMULATED_DEVICES = 5000;
/** Connections opened at once. */
export const CONNECT_BATCH = 50;
/** The extractor simulated devices claim (they have none): a fixed id and a fingerprint no real extractor has. */
export const SIM_EXTRACTOR = { id: 'simulated', fingerprint: sha256Hex('edgehead simulated extractor') };
/** The head every simulated device starts with. */
export const SIM_INITIAL_HEAD = { id: 'sim', version: 1, sha256: sha256Hex('edgehead simulated initial head') };
const LOOPBACK_HOSTS = ['127.0.0.1', '::1', '[::1]', 'localhost'];

// ---------------------------------------------------------------------------------------------------------------
// Head checks shared by the fleet (memoised by payload sha256)

export type HeadCheck = { ok: true; file: HeadFile } | { ok: false; reason: string; file?: HeadFile };

/** decodeHead + signature, memoised by payload sha256 (the verdict depends on the bytes and the keys alone). */
export class HeadChecker {
  private readonly memo = new Map<string, HeadCheck>();

  constructor(
    private readonly publicKeys: readonly string[] = [],
    private readonly maxBytes = HEAD_MAX_BYTES,
  ) {
    publicKeys.forEach((pem, i) => {
      try {
        keyIdFromPublicKey(pem);
      } catch (e) {
        throw new EdgeheadError('BAD_ARGS', `public key #${i + 1}: ${describeError(e)}`);
      }
    });
  }

  check(bytes: Uint8Array, sha: string): HeadCheck {
    const hit = this.memo.get(sha);
    if (hit) return hit;
    const verdict = this.verdict(bytes);
    if (this.memo.size >= 16) this.memo.delete(this.memo.keys().next().value!);
    this.memo.set(sha, verdict);
    return verdict;
  }

  private verdict(bytes: Uint8Array): HeadCheck {
    let file: HeadFile;
    try {
      file = decodeHead(bytes, { maxBytes: this.maxBytes });
    } catch (e) {
      return { ok: false, reason: describeError(e) };
    }
    if (this.publicKeys.length > 0) {
      const v = verifyHead(file, [...this.publicKeys]);
      if (!v.ok) return { ok: false, reason: `signature: ${v.reason}`, file };
    }
    return { ok: true, file };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// One device, no I/O

/** Where a model's output goes (the connection, or a recorder in unit tests). */
export interface SimSink {
  headState(state: HeadStateMessage): void;
  birth(birth: BirthMessage): void;
  prediction(p: PredictionMessage): void;
  /** Every head event: an answer to a payload (or `ignored`), a command-driven change, a shadow run's end. */
  answered(status: HeadUpdateStatus | 'ignored'): void;
}

export interface SimDeviceSettings {
  device: string;
  groups: string[];
  prefix: string;
  labels: string[];
  checker: HeadChecker;
  /** Answer `rejected` to every head. */
  rejectAll?: boolean;
  /** Share of shadow frames on which the candidate agrees with the active head (default 0.95). */
  shadowAgreement?: number;
  clock: Clock;
  /** Personality and label draws (default Math.random). */
  random?: () => number;
}

interface Held {
  id: string;
  version: number;
  sha256: string;
  appliedAt: string;
  classes: string[];
  /** The topic it came on ("startup" for the initial head). */
  via: string;
}

interface ShadowRun {
  candidate: Held;
  correlationId: string;
  frames: number;
  seen: number;
  agree: number;
  autoPromoteAgreement?: number;
}

/** A device's heads, counters and answers. Everything it publishes goes to the sink; it never throws on input. */
export class SimDeviceModel {
  readonly device: string;
  readonly groups: string[];
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly agreementRate: number;
  private readonly startedAt: number;
  private readonly router: CommandRouter;
  /** Fixed per device: base latency, temperature and memory, and a phase for their slow drift. */
  private readonly personality: { extractMs: number; tempC: number; rssMB: number; phase: number };

  private active: Held;
  private previous: Held | undefined;
  private shadow: ShadowRun | undefined;
  private armedShadow: { frames: number; autoPromoteAgreement?: number } | undefined;
  private allowance: { id: string; version: number; sha256?: string; until: number } | undefined;
  private readonly processed = new Map<string, string>();
  private readonly highest = new Map<string, { version: number; at: string }>();
  private lastUpdate: HeadUpdate;
  private paused = false;
  private frameId = 0;
  private readonly frames = { ok: 0, skipped: 0, failed: 0, published: 0, suppressed: 0 };
  /** Connections after the first (for telemetry). */
  reconnects = 0;
  connected = false;

  constructor(
    private readonly s: SimDeviceSettings,
    private readonly sink: SimSink,
  ) {
    this.device = s.device;
    this.groups = [...s.groups];
    this.clock = s.clock;
    this.random = s.random ?? Math.random;
    this.agreementRate = s.shadowAgreement ?? 0.95;
    this.startedAt = s.clock.now();
    const r = this.random;
    this.personality = { extractMs: 30 + 60 * r(), tempC: 42 + 18 * r(), rssMB: 110 + 60 * r(), phase: 2 * Math.PI * r() };
    const at = this.iso();
    this.active = { ...SIM_INITIAL_HEAD, appliedAt: at, classes: [...s.labels], via: 'startup' };
    this.highest.set(this.active.id, { version: this.active.version, at });
    this.lastUpdate = { status: 'applied', reason: 'initial head', correlationId: null, via: 'startup', head: { id: this.active.id, version: this.active.version }, receivedAt: at };
    this.router = new CommandRouter(this.handlers());
  }

  private iso(ms = this.clock.now()): string {
    return new Date(ms).toISOString();
  }

  get activeHead(): { id: string; version: number; sha256: string } {
    return { id: this.active.id, version: this.active.version, sha256: this.active.sha256 };
  }

  get labels(): readonly string[] {
    return this.active.classes;
  }

  birth(): BirthMessage {
    return birthMessage({
      device: this.device,
      groups: this.groups,
      version: agentVersion(),
      startedAt: this.iso(this.startedAt),
      extractor: { ...SIM_EXTRACTOR },
      head: this.activeHead,
      backend: { name: 'simulated', simd: false, threads: 1 },
    });
  }

  private ref(h: Held): HeadRef {
    return { id: h.id, version: h.version, sha256: h.sha256, appliedAt: h.appliedAt };
  }

  headState(): HeadStateMessage {
    const s = this.shadow;
    return {
      device: this.device,
      active: this.ref(this.active),
      previous: this.previous ? this.ref(this.previous) : null,
      lastUpdate: this.lastUpdate,
      shadow: s
        ? {
            candidate: { id: s.candidate.id, version: s.candidate.version, sha256: s.candidate.sha256 },
            frames: s.frames,
            seen: s.seen,
            agreement: s.seen ? s.agree / s.seen : null,
            ...(s.autoPromoteAgreement !== undefined ? { autoPromoteAgreement: s.autoPromoteAgreement } : {}),
          }
        : null,
    };
  }

  /** Records a head event and publishes the new head/state (and the birth when the active head changed). */
  private event(update: HeadUpdate, headChanged: boolean): void {
    this.lastUpdate = update;
    this.sink.headState(this.headState());
    if (headChanged) this.sink.birth(this.birth());
    this.sink.answered(update.status);
  }

  /** A payload on one of the head/set topics. Returns the answer, or `ignored` (nothing published). */
  onHead(topic: string, bytes: Uint8Array, retained: boolean): HeadUpdateStatus | 'ignored' {
    const t0 = performance.now();
    const scope = headScopeOf(this.s.prefix, topic);
    if (bytes.byteLength === 0 && scope?.kind !== 'device') {
      this.sink.answered('ignored'); // a cleared retained group/fleet head: not a head
      return 'ignored';
    }
    const sha = sha256Hex(bytes);
    if (retained && this.processed.get(topic) === sha) {
      this.sink.answered('ignored');
      return 'ignored';
    }
    this.processed.set(topic, sha);
    const correlationId = correlationIdOf(sha);
    const receivedAt = this.iso();
    const answer = (status: HeadUpdateStatus, file: HeadFile | undefined, reason?: string, changed = false): HeadUpdateStatus => {
      this.event(
        {
          status,
          ...(reason ? { reason } : {}),
          correlationId,
          via: topic,
          head: file ? { id: file.manifest.id, version: file.manifest.version } : null,
          receivedAt,
          latencyMs: Math.round((performance.now() - t0) * 10) / 10,
        },
        changed,
      );
      return status;
    };
    const check = this.s.checker.check(bytes, sha);
    if (this.s.rejectAll) return answer('rejected', check.file, 'simulated rejection: this device rejects every head');
    if (!check.ok) return answer('rejected', check.file, check.reason);
    const m = check.file.manifest;
    const a = this.active;
    if (a.id === m.id && a.version === m.version && a.sha256 === m.sha256) return answer('duplicate', check.file, `head ${m.id} v${m.version} is already active`);
    const now = this.clock.now();
    if (m.notAfter !== undefined && Date.parse(m.notAfter) < now) {
      return answer('rejected', check.file, `expired: head ${m.id} v${m.version} was valid until ${m.notAfter} (notAfter); this device's clock says ${this.iso(now)}`);
    }
    const al = this.allowance;
    const allowed = al !== undefined && al.until >= now && al.id === m.id && al.version === m.version && (al.sha256 === undefined || al.sha256 === m.sha256);
    if (!allowed) {
      if (a.id === m.id && a.version === m.version) return answer('rejected', check.file, `version ${m.version} of head ${m.id} is already active with other weights: publish it as a new version`);
      const mark = this.highest.get(m.id);
      if (mark && m.version <= mark.version) {
        return answer('rejected', check.file, `downgrade: head ${m.id} v${m.version} <= v${mark.version}, the highest version of ${m.id} applied on this device (${mark.at})`);
      }
    }
    const rank = (via: string) => scopeRank(headScopeOf(this.s.prefix, via));
    if (m.id !== a.id && rank(topic) < rank(a.via)) {
      return answer('rejected', check.file, `lower precedence: the active head ${a.id} came on ${a.via}; a head on ${topic} does not replace it (push to the device topic, or roll back first)`);
    }
    if (allowed) this.allowance = undefined;
    const held: Held = { id: m.id, version: m.version, sha256: m.sha256, appliedAt: receivedAt, classes: [...m.classes], via: topic };
    const shadowCfg = this.armedShadow ?? m.shadow;
    if (shadowCfg && shadowCfg.frames > 0) {
      this.armedShadow = undefined;
      this.shadow = { candidate: held, correlationId, frames: shadowCfg.frames, seen: 0, agree: 0, ...(shadowCfg.autoPromoteAgreement !== undefined ? { autoPromoteAgreement: shadowCfg.autoPromoteAgreement } : {}) };
      return answer('shadow', check.file, `running beside the active head for ${shadowCfg.frames} frames`);
    }
    this.activate(held);
    return answer('applied', check.file, undefined, true);
  }

  private activate(h: Held): void {
    const at = this.iso();
    this.previous = this.active;
    this.active = { ...h, appliedAt: at };
    const mark = this.highest.get(h.id);
    if (!mark || h.version > mark.version) this.highest.set(h.id, { version: h.version, at });
  }

  /** One frame: a prediction on the active head (none while paused); a shadow candidate sees it too. */
  frame(reason?: PredictionMessage['reason']): PredictionMessage | undefined {
    if (this.paused && reason !== 'capture') return undefined;
    const p = this.predict(reason);
    this.frames.ok++;
    this.frames.published++;
    this.sink.prediction(p);
    this.shadowFrame();
    return p;
  }

  private predict(reason?: PredictionMessage['reason']): PredictionMessage {
    const r = this.random;
    const classes = this.active.classes;
    const best = Math.floor(r() * classes.length);
    const topScore = 0.55 + 0.44 * r();
    const rest = classes.map((_, i) => (i === best ? 0 : r())).map((w, _, ws) => w / (ws.reduce((x, y) => x + y, 0) || 1));
    const top = classes
      .map((label, i) => ({ label, score: i === best ? topScore : (1 - topScore) * rest[i]! }))
      .sort((x, y) => y.score - x.score)
      .slice(0, 3);
    const ms = this.stageMs();
    return predictionMessage({
      capturedAt: this.clock.now(),
      run: 1,
      frameId: ++this.frameId,
      source: 'simulated',
      top,
      head: { id: this.active.id, version: this.active.version },
      extractor: SIM_EXTRACTOR.id,
      ms,
      ...(reason ? { reason } : {}),
    });
  }

  /** Stage times around the device's base latency, drifting slowly (minutes) with a little noise per frame. */
  private stageMs(): Record<Stage, number> {
    const p = this.personality;
    const drift = 1 + 0.15 * Math.sin(p.phase + (this.clock.now() - this.startedAt) / 120_000);
    const noise = () => 0.85 + 0.3 * this.random();
    const base: Record<Stage, number> = { capture: 4, decode: 6, resize: 3, extract: p.extractMs, head: 0.3 };
    return Object.fromEntries(STAGES.map((s) => [s, base[s] * drift * noise()])) as Record<Stage, number>;
  }

  private shadowFrame(): void {
    const s = this.shadow;
    if (!s || s.seen >= s.frames) return;
    s.seen++;
    s.agree = Math.round(s.seen * this.agreementRate);
    if (s.seen < s.frames) return;
    const agreement = s.agree / s.seen;
    if (s.autoPromoteAgreement !== undefined && agreement >= s.autoPromoteAgreement) {
      this.promote(`agreement ${agreement.toFixed(3)} >= ${s.autoPromoteAgreement}`);
      return;
    }
    this.event({ status: 'shadow', reason: `shadow run complete: agreement ${agreement.toFixed(3)}; promote or discard`, correlationId: s.correlationId, via: 'shadow', head: { id: s.candidate.id, version: s.candidate.version }, receivedAt: this.iso() }, false);
  }

  private promote(reason: string): HeadRef {
    const s = this.shadow;
    if (!s) throw new EdgeheadError('BAD_ARGS', 'no head in shadow mode');
    this.shadow = undefined;
    this.activate(s.candidate);
    this.event({ status: 'promoted', reason, correlationId: s.correlationId, via: 'cmd', head: { id: s.candidate.id, version: s.candidate.version }, receivedAt: this.iso() }, true);
    return this.ref(this.active);
  }

  telemetry(): TelemetryMessage {
    const now = this.clock.now();
    const p = this.personality;
    const minutes = (now - this.startedAt) / 60_000;
    const r = this.random;
    const pct = (base: number) => {
      const p50 = base * (1 + 0.1 * Math.sin(p.phase + minutes / 2)) * (0.95 + 0.1 * r());
      return { p50: round1(p50), p95: round1(p50 * (1.2 + 0.3 * r())) };
    };
    const busy = this.frames.ok > 0;
    const stage = { capture: 4, decode: 6, resize: 3, extract: p.extractMs, head: 0.3 };
    const latency = Object.fromEntries(Object.entries(stage).map(([k, v]) => [k, busy ? pct(v) : null])) as TelemetryMessage['latencyMs'];
    latency.total = busy ? pct(Object.values(stage).reduce((x, y) => x + y, 0)) : null;
    return {
      ts: this.iso(now),
      device: this.device,
      uptimeSec: Math.floor((now - this.startedAt) / 1000),
      frames: { ...this.frames },
      latencyMs: latency,
      rssMB: round1(p.rssMB + 5 * Math.sin(p.phase + minutes) + 2 * r()),
      heapMB: round1(p.rssMB / 4 + r()),
      tensors: 120,
      cpuTempC: round1(p.tempC + 4 * Math.sin(p.phase + minutes / 3) + r()),
      loadAvg: [round2(0.5 + r()), round2(0.6 + 0.5 * r()), round2(0.7 + 0.3 * r())],
      diskFreeMB: 10_000,
      mqtt: { connected: this.connected, reconnects: this.reconnects },
      offlineQueue: { depth: 0, bytes: 0, dropped: 0, skipped: 0 },
      backend: { name: 'simulated', simd: false, threads: 1 },
      problems: [],
    };
  }

  /** A cmd payload; resolves to the reply to publish on cmd/reply. Never rejects. */
  command(payload: Uint8Array | string): Promise<CommandReply> {
    return this.router.handle(payload);
  }

  private handlers(): CommandHandlers {
    const noShadow = () => new EdgeheadError('BAD_ARGS', 'no head in shadow mode');
    const noCollect = async (): Promise<never> => {
      throw new EdgeheadError('BAD_CONFIG', COLLECT_DISABLED); // simulated devices have no frames to keep
    };
    return {
      'collect-fetch': noCollect,
      'collect-ack': noCollect,
      'collect-status': noCollect,
      capture: async () => this.frame('capture'),
      status: async () => ({ birth: this.birth(), telemetry: this.telemetry(), head: this.headState() }),
      rollback: async () => {
        const prev = this.previous;
        if (!prev) throw new EdgeheadError('BAD_ARGS', 'no previous head to roll back to');
        const at = this.iso();
        this.previous = this.active;
        this.active = { ...prev, appliedAt: at };
        this.event({ status: 'rolled-back', correlationId: null, via: 'cmd', head: { id: prev.id, version: prev.version }, receivedAt: at }, true);
        return this.ref(this.active);
      },
      allow: async (args) => {
        const mark = this.highest.get(args.id);
        if (!mark) throw new EdgeheadError('BAD_ARGS', `allow: head ${args.id} was never applied on this device`);
        if (args.version > mark.version) throw new EdgeheadError('BAD_ARGS', `allow: v${args.version} is above v${mark.version}, the highest of ${args.id} applied here: it needs no allowance`);
        const until = this.clock.now() + (args.minutes ?? 60) * 60_000;
        this.allowance = { id: args.id, version: args.version, ...(args.sha256 ? { sha256: args.sha256 } : {}), until };
        return { allowed: { ...this.allowance, until: this.iso(until) } };
      },
      promote: async () => this.promote('promote command'),
      discard: async () => {
        const s = this.shadow;
        if (!s) throw noShadow();
        this.shadow = undefined;
        this.event({ status: 'discarded', correlationId: s.correlationId, via: 'cmd', head: { id: s.candidate.id, version: s.candidate.version }, receivedAt: this.iso() }, false);
        return { discarded: { id: s.candidate.id, version: s.candidate.version } };
      },
      pause: async () => {
        this.paused = true;
        return { schedule: 'paused' };
      },
      resume: async () => {
        this.paused = false;
        return { schedule: 'running' };
      },
      snapshot: async () => {
        throw new EdgeheadError('SNAPSHOT', 'simulated device: no camera, no snapshot');
      },
      shadow: async (args) => {
        this.armedShadow = { frames: args.frames, ...(args.autoPromoteAgreement !== undefined ? { autoPromoteAgreement: args.autoPromoteAgreement } : {}) };
        return { armed: this.armedShadow };
      },
    };
  }
}

const round1 = (x: number) => Math.round(x * 10) / 10;
const round2 = (x: number) => Math.round(x * 100) / 100;

// ---------------------------------------------------------------------------------------------------------------
// One device on a connection

/** What a simulated device needs from its connection: a BrokerClient it can open and kill. */
export interface SimClient extends BrokerClient {
  /** Connects; rejects when the first attempt fails. */
  open(): Promise<void>;
  /** Drops the connection without DISCONNECT, so the broker publishes the last will; no reconnect. */
  kill(): void;
}

export type SimClientFactory = (device: string, will: { topic: string; payload: string; opts: PublishOptions }) => SimClient;

export const PUBLISHED_KINDS = ['birth', 'headState', 'telemetry', 'predictions', 'cmdReply', 'offline'] as const;
export type PublishedKind = (typeof PUBLISHED_KINDS)[number];

export interface SimStats {
  devices: number;
  connected: number;
  /** Messages the broker acknowledged (QoS 1) or that were written (QoS 0), by kind; total = their sum. */
  published: Record<PublishedKind, number> & { total: number };
  /** Publishes skipped (not connected) or failed. */
  publishFailed: number;
  /** Head events by status (answers to payloads, command-driven changes, shadow ends); `ignored`: retained re-deliveries. */
  headAnswers: Record<HeadUpdateStatus | 'ignored', number>;
  commands: number;
}

/** Counters shared by the devices of a fleet (stats() is O(1) in messages). */
class Counters {
  readonly published = Object.fromEntries(PUBLISHED_KINDS.map((k) => [k, 0])) as Record<PublishedKind, number>;
  publishFailed = 0;
  readonly headAnswers = Object.fromEntries([...HEAD_UPDATE_STATUSES, 'ignored'].map((k) => [k, 0])) as Record<HeadUpdateStatus | 'ignored', number>;
  commands = 0;
}

export class SimulatedDevice {
  readonly model: SimDeviceModel;
  readonly topics: DeviceTopics;
  private readonly client: SimClient;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly timers: TimerHandle[] = [];
  private loopsStarted = false;
  private stopped = false;

  constructor(
    settings: SimDeviceSettings,
    clientFactory: SimClientFactory,
    private readonly counters: Counters,
    private readonly intervals: { telemetryMs: number; predictionMs: number },
  ) {
    this.topics = deviceTopics(settings.prefix, settings.device, settings.groups);
    this.clock = settings.clock;
    this.random = settings.random ?? Math.random;
    const t = this.topics;
    this.model = new SimDeviceModel(settings, {
      headState: (s) => this.publish('headState', t.headState, encodePayload('headState', s), RETAINED),
      birth: (b) => this.publish('birth', t.status, encodePayload('birth', b), RETAINED),
      prediction: (p) => this.publish('predictions', t.predictions, encodePayload('prediction', p), { qos: 1, retain: false }),
      answered: (status) => counters.headAnswers[status]++,
    });
    this.client = clientFactory(settings.device, { topic: t.status, payload: encodePayload('offline', offlineMessage(settings.device, 'connection lost')), opts: RETAINED });
    this.client.onConnect(() => this.onConnect());
    this.client.onDisconnect((reason) => {
      this.model.connected = false;
      log.debug('disconnected', { device: settings.device, reason });
    });
    this.client.onMessage((topic, payload, retained) => this.onMessage(topic, payload, retained));
  }

  get device(): string {
    return this.model.device;
  }

  get connected(): boolean {
    return this.client.connected;
  }

  async start(): Promise<void> {
    await this.client.subscribe([...this.topics.headSet, this.topics.cmd]);
    await this.client.open();
  }

  private onConnect(): void {
    if (this.stopped) return;
    if (this.loopsStarted) this.model.reconnects++;
    this.model.connected = true;
    this.publish('birth', this.topics.status, encodePayload('birth', this.model.birth()), RETAINED);
    this.publish('headState', this.topics.headState, encodePayload('headState', this.model.headState()), RETAINED);
    if (!this.loopsStarted) {
      this.loopsStarted = true;
      this.every(this.intervals.predictionMs, () => void this.model.frame());
      this.every(this.intervals.telemetryMs, () => this.publish('telemetry', this.topics.telemetry, encodePayload('telemetry', this.model.telemetry()), { qos: 0, retain: false }));
    }
  }

  /** Runs fn every intervalMs from a random phase in [0, intervalMs), without drift. */
  private every(intervalMs: number, fn: () => void): void {
    const clock = this.clock;
    let next = clock.now() + Math.floor(this.random() * intervalMs);
    const slot = this.timers.length;
    const arm = () => {
      this.timers[slot] = clock.setTimeout(() => {
        if (this.stopped) return;
        next += intervalMs;
        arm();
        fn();
      }, Math.max(0, next - clock.now()));
    };
    arm();
  }

  private onMessage(topic: string, payload: Buffer, retained: boolean): void {
    if (this.stopped) return;
    if (topic === this.topics.cmd) {
      this.counters.commands++;
      void this.model.command(payload).then((reply) => this.publish('cmdReply', this.topics.cmdReply, encodePayload('commandReply', reply), { qos: 1, retain: false }));
      return;
    }
    if (this.topics.headSet.includes(topic)) this.model.onHead(topic, new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength), retained);
  }

  private publish(kind: PublishedKind, topic: string, payload: string, opts: PublishOptions): void {
    if (!this.client.connected) {
      this.counters.publishFailed++;
      return;
    }
    this.client.publish(topic, payload, opts).then(
      () => this.counters.published[kind]++,
      () => this.counters.publishFailed++,
    );
  }

  private cancelTimers(): void {
    this.stopped = true;
    for (const t of this.timers) t?.cancel();
  }

  /** Graceful: the retained offline "shutdown" message, then DISCONNECT (the broker does not publish the will). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    const wasConnected = this.client.connected;
    this.cancelTimers();
    const final = { topic: this.topics.status, payload: encodePayload('offline', offlineMessage(this.device, 'shutdown', new Date(this.clock.now()))), opts: RETAINED };
    await this.client.stop(final, 2000);
    if (wasConnected) this.counters.published.offline++;
    this.model.connected = false;
  }

  /** Drops the connection without DISCONNECT: the broker publishes the last will ("connection lost"). */
  kill(): void {
    if (this.stopped) return;
    this.cancelTimers();
    this.client.kill();
    this.model.connected = false;
  }
}

/** The default connection: MqttJsClient with the operator tools' settings; kill() ends the socket without DISCONNECT. */
export function mqttSimClient(opts: Pick<SimulatedFleetOptions, 'broker' | 'username' | 'password' | 'tls' | 'connect'>): SimClientFactory {
  const cfg = pushSettings({ broker: opts.broker, username: opts.username, password: opts.password, tls: opts.tls });
  return (device, will) => {
    let raw: ReturnType<MqttConnect> | undefined;
    const client = new MqttJsClient({
      cfg,
      clientId: `edgehead-sim-${device}-${Math.random().toString(16).slice(2, 8)}`,
      will,
      reconnect: true,
      settingName: (k) => `--${k}`,
      connect: (url, o) => (raw = (opts.connect ?? defaultConnect)(url, o)),
    });
    return Object.assign(client, {
      kill(): void {
        // end(true) destroys the socket without a DISCONNECT packet; stop() afterwards only stops the reconnects
        // (the client is already disconnecting, so it sends nothing).
        raw?.end(true);
        void client.stop(undefined, 100);
      },
    });
  };
}

const defaultConnect: MqttConnect = (url, o) => mqtt.connect(url, o);

// ---------------------------------------------------------------------------------------------------------------
// The fleet

export interface SimulatedFleetOptions {
  /** Broker URL; loopback only (127.0.0.1, ::1, localhost). */
  broker: string;
  /** Topic prefix (default: the devices' default, mqtt.topicPrefix). */
  prefix?: string;
  /** 1 to 5,000. */
  devices: number;
  /** Device ids are idPrefix + a zero-padded number from 1 (default "sim-"). */
  idPrefix?: string;
  /** The groups of the device with this index (0-based). Default: every device in group "sim". */
  groups?: (index: number) => string[];
  telemetryIntervalMs?: number;
  predictionIntervalMs?: number;
  /** Labels of the initial head (default ["cat", "dog"]); an applied head brings its own classes. */
  labels?: string[];
  /** Trusted public keys (PEM): when set, devices reject unsigned heads and heads signed by other keys. */
  publicKeys?: string[];
  /** These devices answer `rejected` to every head (tests). */
  rejectDevices?: string[];
  /** Share of shadow frames on which a candidate agrees with the active head (default 0.95). */
  shadowAgreement?: number;
  /** Stops the fleet (gracefully) this long after start(). */
  durationMs?: number;
  clock?: Clock;
  /** Personality and label draws: deterministic for a seed (default 1). */
  seed?: number;
  connect?: MqttConnect;
  username?: string;
  password?: string;
  tls?: { ca?: string; cert?: string; key?: string };
  /** Connections instead of MQTT (unit tests). */
  clientFactory?: SimClientFactory;
}

/** Throws BAD_ARGS unless `url` names a loopback host: simulated devices are for tests and benchmarks only. */
export function checkLoopbackBroker(url: string): void {
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    throw new EdgeheadError('BAD_ARGS', `--broker is not a URL (got ${JSON.stringify(url.slice(0, 80))})`);
  }
  if (!LOOPBACK_HOSTS.includes(host.toLowerCase())) {
    throw new EdgeheadError('BAD_ARGS', `simulated devices only connect to a loopback broker (127.0.0.1, ::1 or localhost), not ${JSON.stringify(host)}`);
  }
}

export class SimulatedFleet {
  readonly ids: string[];
  private readonly devices: SimulatedDevice[];
  private readonly counters = new Counters();
  private readonly clock: Clock;
  private durationTimer: TimerHandle | undefined;
  private stopping: Promise<void> | undefined;
  private resolveDone!: () => void;
  /** Resolves once the fleet stopped (stop(), or durationMs elapsed). */
  readonly done: Promise<void>;

  constructor(private readonly opts: SimulatedFleetOptions) {
    const n = opts.devices;
    if (!Number.isInteger(n) || n < 1 || n > MAX_SIMULATED_DEVICES) {
      throw new EdgeheadError('BAD_ARGS', `the number of simulated devices must be an integer from 1 to ${MAX_SIMULATED_DEVICES} (got ${n})`);
    }
    checkLoopbackBroker(opts.broker);
    const prefix = opts.prefix ?? defaultConfig().mqtt.topicPrefix;
    if (!TOPIC_PREFIX_RE.test(prefix)) throw new EdgeheadError('BAD_ARGS', `the topic prefix ${TOPIC_PREFIX_RULE} (got ${JSON.stringify(prefix)})`);
    const positive = (v: number | undefined, name: string, fallback: number) => {
      if (v === undefined) return fallback;
      if (!(Number.isFinite(v) && v >= 10)) throw new EdgeheadError('BAD_ARGS', `${name} must be at least 10 ms (got ${v})`);
      return v;
    };
    const intervals = { telemetryMs: positive(opts.telemetryIntervalMs, 'the telemetry interval', 5000), predictionMs: positive(opts.predictionIntervalMs, 'the prediction interval', 1000) };
    if (opts.durationMs !== undefined && !(opts.durationMs > 0)) throw new EdgeheadError('BAD_ARGS', `the duration must be > 0 (got ${opts.durationMs} ms)`);
    const agreement = opts.shadowAgreement ?? 0.95;
    if (!(agreement >= 0 && agreement <= 1)) throw new EdgeheadError('BAD_ARGS', `the shadow agreement must be in [0, 1] (got ${agreement})`);
    const labels = opts.labels ?? ['cat', 'dog'];
    if (labels.length < 2 || new Set(labels).size !== labels.length) throw new EdgeheadError('BAD_ARGS', `the labels must be at least 2 distinct strings (got ${JSON.stringify(labels)})`);
    const idPrefix = opts.idPrefix ?? 'sim-';
    const width = String(n).length;
    this.ids = Array.from({ length: n }, (_, i) => `${idPrefix}${String(i + 1).padStart(width, '0')}`);
    for (const id of [this.ids[0]!, this.ids[n - 1]!]) {
      if (!DEVICE_ID_RE.test(id)) throw new EdgeheadError('BAD_ARGS', `device id ${JSON.stringify(id)}: ${DEVICE_ID_RULE}`);
    }
    const reject = new Set(opts.rejectDevices ?? []);
    const unknown = [...reject].filter((d) => !this.ids.includes(d));
    if (unknown.length) throw new EdgeheadError('BAD_ARGS', `rejecting devices that are not simulated: ${unknown.slice(0, 5).join(', ')} (ids are ${this.ids[0]} ... ${this.ids[n - 1]})`);
    this.clock = opts.clock ?? systemClock;
    const checker = new HeadChecker(opts.publicKeys ?? []);
    const factory = opts.clientFactory ?? mqttSimClient(opts);
    const seed = opts.seed ?? 1;
    this.devices = this.ids.map((device, i) => {
      const groups = opts.groups ? opts.groups(i) : ['sim'];
      for (const g of groups) if (!ID_RE.test(g)) throw new EdgeheadError('BAD_ARGS', `group ${JSON.stringify(g)}: ${ID_RULE}`);
      const settings: SimDeviceSettings = { device, groups, prefix, labels, checker, rejectAll: reject.has(device), shadowAgreement: agreement, clock: this.clock, random: prng(seed * 7919 + i) };
      return new SimulatedDevice(settings, factory, this.counters, intervals);
    });
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  /** Connects every device (CONNECT_BATCH at a time); rejects (after closing those connected) if one cannot connect. */
  async start(): Promise<void> {
    if (this.opts.durationMs !== undefined) this.durationTimer = this.clock.setTimeout(() => void this.stop(), this.opts.durationMs);
    try {
      for (let i = 0; i < this.devices.length && !this.stopping; i += CONNECT_BATCH) {
        await Promise.all(this.devices.slice(i, i + CONNECT_BATCH).map((d) => d.start()));
      }
    } catch (e) {
      await this.stop();
      throw e;
    }
    log.info('simulated devices connected', { devices: this.devices.length });
  }

  /** Graceful: each device publishes its retained offline "shutdown" and disconnects. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.durationTimer?.cancel();
      for (let i = 0; i < this.devices.length; i += CONNECT_BATCH) {
        await Promise.all(this.devices.slice(i, i + CONNECT_BATCH).map((d) => d.stop().catch((e: unknown) => log.warn('stop failed', { device: d.device, error: describeError(e) }))));
      }
      this.resolveDone();
    })();
    return this.stopping;
  }

  /** Drops these devices' connections without DISCONNECT, so the broker publishes their last will (tests). */
  kill(ids: readonly string[]): void {
    for (const id of ids) {
      const d = this.devices.find((x) => x.device === id);
      if (!d) throw new EdgeheadError('BAD_ARGS', `no simulated device ${JSON.stringify(id)}`);
      d.kill();
    }
  }

  /** One device's model (its heads and answers), for tests. */
  device(id: string): SimDeviceModel {
    const d = this.devices.find((x) => x.device === id);
    if (!d) throw new EdgeheadError('BAD_ARGS', `no simulated device ${JSON.stringify(id)}`);
    return d.model;
  }

  stats(): SimStats {
    const c = this.counters;
    const published = { ...c.published, total: PUBLISHED_KINDS.reduce((a, k) => a + c.published[k], 0) };
    return {
      devices: this.devices.length,
      connected: this.devices.reduce((a, d) => a + (d.connected ? 1 : 0), 0),
      published,
      publishFailed: c.publishFailed,
      headAnswers: { ...c.headAnswers },
      commands: c.commands,
    };
  }
}
