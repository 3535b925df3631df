/**
 * FleetState: the device table, rebuilt from the wire. Pure (no I/O, clock injected): handle(topic, payload,
 * retained) is the one entry point; FleetIngest feeds it from the broker, tests feed it directly.
 *
 *   status (retained)      birth -> online, groups, agent version, extractor, head; offline -> online false + reason;
 *                          an empty payload (the retained status cleared) -> the device is forgotten ('removed')
 *   head/state (retained)  head, previous head, last update, shadow ('headState')
 *   telemetry              latency p50/p95 (total), frames/s (frames.ok delta over the ts delta of two telemetry
 *                          messages; null on the first and after an agent restart), CPU temperature, RSS, queue
 *                          depth, problems; a point in the history
 *   predictions            last frame time/label/score; per-head label counts (bounded); a point in the history
 *   snapshot               the last JPEG per device (at most SNAPSHOT_MAX_BYTES)
 *   cmd/reply, state, schedule   counted only
 *
 * Payloads are checked against protocol/messages.ts; a bad one never throws: it is counted in `invalid` by kind and
 * logged at debug level. lastSeen is the server time of the last LIVE message of the device: messages delivered
 * with the retain flag are replays of what the broker kept (possibly from a device dead for days), so they fill the
 * row but do not make the device look recently seen. Beyond maxDevices, messages of new devices are ignored
 * (counted, warned once).
 */
import type { Clock } from '../../base/clock';
import { createLogger } from '../../base/log';
import {
  BirthMessageSchema,
  HeadStateMessageSchema,
  type HeadStateMessage,
  OfflineMessageSchema,
  PredictionMessageSchema,
  TelemetryMessageSchema,
} from '../../protocol/messages';
import { DEVICE_ID_RE, STATE_MAX_BYTES } from '../../protocol/patterns';
import { DEVICE_TOPIC_KINDS, parseTopic } from '../../protocol/topics';
import { parseJsonPayload } from '../../protocol/validate';
import type { FleetHistory } from './history';
import { OTHER_LABEL } from './history';
import type { DeviceRow } from './model';

const log = createLogger('fleet-state');

/** Largest snapshot kept per device (the agent's snapshot.maxBytes default is 256 KiB). */
export const SNAPSHOT_MAX_BYTES = 512 * 1024;
/** Largest JSON payload parsed (status, head/state, telemetry, predictions are a few KiB). */
export const JSON_MAX_BYTES = STATE_MAX_BYTES;
export const DEFAULT_MAX_LABELS_PER_HEAD = 50;

/** What a message counts under: a device topic kind, or "other" (a topic under the prefix that is not one). */
export type MessageKind = (typeof DEVICE_TOPIC_KINDS)[number] | 'other';
export const MESSAGE_KINDS: readonly MessageKind[] = [...DEVICE_TOPIC_KINDS, 'other'];

export interface FleetStateEvents {
  change: (device: string) => void;
  removed: (device: string) => void;
  headState: (device: string, msg: HeadStateMessage, retained: boolean) => void;
  status: (device: string, online: boolean, retained: boolean) => void;
}

/** A tiny typed emitter: listeners run synchronously in the order added; one that throws is logged, not fatal. */
class Emitter<E extends { [K in keyof E]: (...args: never[]) => void }> {
  private readonly listeners: { [K in keyof E]?: E[K][] } = {};
  on<K extends keyof E>(event: K, fn: E[K]): () => void {
    (this.listeners[event] ??= []).push(fn);
    return () => {
      this.listeners[event] = this.listeners[event]?.filter((f) => f !== fn);
    };
  }
  protected emit<K extends keyof E>(event: K, ...args: Parameters<E[K]>): void {
    for (const fn of this.listeners[event] ?? []) {
      try {
        (fn as (...a: Parameters<E[K]>) => void)(...args);
      } catch (e) {
        log.warn('fleet state listener failed', { event: String(event), error: (e as Error).message });
      }
    }
  }
}

export interface FleetStateOptions {
  /** The devices' topic prefix. */
  prefix: string;
  clock: Clock;
  history: FleetHistory;
  /** Devices tracked; new devices beyond it are ignored. */
  maxDevices: number;
  /** Label values counted per device and head (the rest as "(other)"). Default 50. */
  maxLabelsPerHead?: number;
}

interface Device {
  row: DeviceRow;
  /** frames.ok and ts (device clock, ms) of the last telemetry: for frames/s. */
  prevOk: number | null;
  prevTs: number | null;
  /** "<id>@<version>" of the head the label counts belong to. */
  labelHead: string | null;
  labels: Map<string, number>;
  snapshot: Buffer | undefined;
}

function emptyRow(device: string): DeviceRow {
  return {
    device,
    groups: [],
    online: null,
    offlineReason: null,
    statusSince: null,
    agentVersion: null,
    extractor: null,
    head: null,
    previousHead: null,
    lastUpdate: null,
    shadow: null,
    lastSeen: null,
    lastFrameTs: null,
    lastLabel: null,
    lastScore: null,
    latencyMs: null,
    fps: null,
    cpuTempC: null,
    rssMB: null,
    queueDepth: null,
    problems: [],
  };
}

const zeroCounts = (): Record<MessageKind, number> => Object.fromEntries(MESSAGE_KINDS.map((k) => [k, 0])) as Record<MessageKind, number>;

export class FleetState extends Emitter<FleetStateEvents> {
  private readonly devices = new Map<string, Device>();
  private readonly messages = zeroCounts();
  private readonly invalid = zeroCounts();
  private ignored = 0;
  private warnedFull = false;
  private readonly maxLabelsPerHead: number;

  constructor(private readonly opts: FleetStateOptions) {
    super();
    this.maxLabelsPerHead = opts.maxLabelsPerHead ?? DEFAULT_MAX_LABELS_PER_HEAD;
  }

  /** The one entry point: a message as the broker delivered it. Never throws for bad input. */
  handle(topic: string, payload: Buffer, retained: boolean): void {
    const t = parseTopic(this.opts.prefix, topic);
    if (!t || t.kind === 'head/set') {
      this.messages.other++;
      return;
    }
    const { kind, device: id } = t;
    this.messages[kind]++;
    if (!DEVICE_ID_RE.test(id)) return this.bad(kind, id, 'not a valid device id');

    if (kind === 'status' && payload.length === 0) return this.remove(id);
    let d = this.devices.get(id);
    if (!d) {
      if (this.devices.size >= this.opts.maxDevices) {
        this.ignored++;
        if (!this.warnedFull) log.warn('device limit reached: messages of further devices are ignored', { maxDevices: this.opts.maxDevices, device: id });
        this.warnedFull = true;
        return;
      }
      d = { row: emptyRow(id), prevOk: null, prevTs: null, labelHead: null, labels: new Map(), snapshot: undefined };
      this.devices.set(id, d);
    }
    const now = this.opts.clock.now();
    if (!retained) d.row.lastSeen = now;

    switch (kind) {
      case 'status':
        this.onStatus(d, payload, retained, now);
        break;
      case 'head/state':
        this.onHeadState(d, payload, retained);
        break;
      case 'telemetry':
        this.onTelemetry(d, payload, now);
        break;
      case 'predictions':
        this.onPrediction(d, payload, now);
        break;
      case 'snapshot':
        if (payload.length > SNAPSHOT_MAX_BYTES) return this.bad(kind, id, `snapshot too large (${payload.length} bytes > ${SNAPSHOT_MAX_BYTES})`);
        d.snapshot = Buffer.from(payload);
        break;
      default:
        break; // cmd/reply, state, schedule, cmd: counted only
    }
    this.emit('change', id);
  }

  private bad(kind: MessageKind, device: string, error: string): void {
    this.invalid[kind]++;
    log.debug('invalid message', { kind, device, error });
  }

  private remove(id: string): void {
    if (!this.devices.delete(id)) return;
    this.opts.history.forget(id);
    this.emit('removed', id);
  }

  private onStatus(d: Device, payload: Buffer, retained: boolean, now: number): void {
    const row = d.row;
    const text = payload.toString('utf8');
    const birth = parseJsonPayload(BirthMessageSchema, text, 'status', JSON_MAX_BYTES);
    let online: boolean;
    if (birth.ok) {
      const b = birth.value;
      online = true;
      row.groups = [...b.groups];
      row.agentVersion = b.version;
      row.extractor = b.extractor.id;
      row.head = { id: b.head.id, version: b.head.version, sha256: b.head.sha256 };
      row.offlineReason = null;
    } else {
      const off = parseJsonPayload(OfflineMessageSchema, text, 'status', JSON_MAX_BYTES);
      if (!off.ok) return this.bad('status', row.device, birth.error);
      online = false;
      row.offlineReason = off.value.reason;
    }
    if (row.online !== online) row.statusSince = now;
    row.online = online;
    this.emit('status', row.device, online, retained);
  }

  private onHeadState(d: Device, payload: Buffer, retained: boolean): void {
    const r = parseJsonPayload(HeadStateMessageSchema, payload, 'head/state', JSON_MAX_BYTES);
    if (!r.ok) return this.bad('head/state', d.row.device, r.error);
    const m = r.value;
    const row = d.row;
    row.head = { id: m.active.id, version: m.active.version, sha256: m.active.sha256 };
    row.previousHead = m.previous ? { id: m.previous.id, version: m.previous.version, sha256: m.previous.sha256 } : null;
    row.lastUpdate = m.lastUpdate;
    row.shadow = m.shadow;
    this.emit('headState', row.device, m, retained);
  }

  private onTelemetry(d: Device, payload: Buffer, now: number): void {
    const r = parseJsonPayload(TelemetryMessageSchema, payload, 'telemetry', JSON_MAX_BYTES);
    if (!r.ok) return this.bad('telemetry', d.row.device, r.error);
    const m = r.value;
    const row = d.row;
    const ts = Date.parse(m.ts);
    const ok = m.frames.ok;
    row.fps = null;
    if (d.prevOk !== null && d.prevTs !== null && Number.isFinite(ts) && ts > d.prevTs && ok >= d.prevOk) {
      row.fps = (ok - d.prevOk) / ((ts - d.prevTs) / 1000);
    }
    d.prevOk = ok;
    d.prevTs = Number.isFinite(ts) ? ts : null;
    row.latencyMs = m.latencyMs.total ? { p50: m.latencyMs.total.p50, p95: m.latencyMs.total.p95 } : null;
    row.cpuTempC = m.cpuTempC;
    row.rssMB = m.rssMB;
    row.queueDepth = m.offlineQueue.depth;
    row.problems = m.problems;
    this.opts.history.addTelemetry(row.device, now, {
      latencyP50: row.latencyMs?.p50 ?? null,
      latencyP95: row.latencyMs?.p95 ?? null,
      cpuTempC: row.cpuTempC,
      fps: row.fps,
    });
  }

  private onPrediction(d: Device, payload: Buffer, now: number): void {
    const r = parseJsonPayload(PredictionMessageSchema, payload, 'predictions', JSON_MAX_BYTES);
    if (!r.ok) return this.bad('predictions', d.row.device, r.error);
    const m = r.value;
    const row = d.row;
    const top = m.top[0]!;
    const ts = Date.parse(m.ts);
    row.lastFrameTs = Number.isFinite(ts) ? ts : null;
    row.lastLabel = top.label;
    row.lastScore = top.score;
    const head = `${m.head.id}@${m.head.version}`;
    if (d.labelHead !== head) {
      d.labelHead = head;
      d.labels.clear();
    }
    const key = d.labels.has(top.label) || d.labels.size - (d.labels.has(OTHER_LABEL) ? 1 : 0) < this.maxLabelsPerHead ? top.label : OTHER_LABEL;
    d.labels.set(key, (d.labels.get(key) ?? 0) + 1);
    this.opts.history.addPrediction(row.device, now, top.label);
  }

  /** Every device, sorted by id (copies). */
  rows(): DeviceRow[] {
    return [...this.devices.keys()].sort().map((id) => this.row(id)!);
  }

  row(id: string): DeviceRow | undefined {
    const d = this.devices.get(id);
    return d ? { ...d.row, groups: [...d.row.groups], problems: [...d.row.problems] } : undefined;
  }

  snapshot(id: string): Buffer | undefined {
    return this.devices.get(id)?.snapshot;
  }

  /** Devices tracked. */
  get size(): number {
    return this.devices.size;
  }

  /** Messages this replica received by kind (valid or not), the invalid ones, and those of devices over the limit. */
  counts(): { messages: Record<MessageKind, number>; invalid: Record<MessageKind, number>; ignored: number } {
    return { messages: { ...this.messages }, invalid: { ...this.invalid }, ignored: this.ignored };
  }

  /** Predictions per top-1 label for the device's current head (at most maxLabelsPerHead labels + "(other)"). */
  labels(device: string): { head: string | null; counts: Map<string, number> } {
    const d = this.devices.get(device);
    return { head: d?.labelHead ?? null, counts: new Map(d?.labels ?? []) };
  }
}
