/**
 * The agent's Prometheus metrics (prom-client, one registry per agent; docs/metrics.md lists every metric).
 *
 * Almost everything is read from state the agent keeps anyway (FrameStats, the scheduler, queue and broker stats,
 * the active head, the problems board) by collect() callbacks at scrape time, so no counter is kept twice. The one
 * exception is the stage latency histograms: a histogram needs every observation, so FrameStats.onRecord feeds them
 * per frame. Info-style metrics (head, extractor, backend, agent) are 1 for the current value; the head's series is
 * rebuilt at each scrape, so after a swap the old head's series is gone.
 */
import type * as Prom from 'prom-client';
import type { BrokerStats } from '../../mqtt/broker';
import type { BackendSummary, Problem } from '../../protocol/messages';
import type { SchedulerStats } from '../schedule/scheduler';
import type { QueueStats } from '../store/queue';
import type { FrameStats } from '../telemetry/stats';
import { cpuTemperatureC } from '../telemetry/system';

// The four classes we use, from prom-client's own modules: its index also loads Summary (tdigest), Pushgateway and the
// default process metrics (@opentelemetry/api), ~50 KB of the board bundle's 2.5 MB budget that the agent never uses.
const Counter: typeof Prom.Counter = require('prom-client/lib/counter');
const Gauge: typeof Prom.Gauge = require('prom-client/lib/gauge');
const Histogram: typeof Prom.Histogram = require('prom-client/lib/histogram');
const Registry: typeof Prom.Registry = require('prom-client/lib/registry');

export interface MetricsSources {
  deviceId: string;
  version: string;
  /** Epoch ms the agent started. */
  startedAt: number;
  frames: FrameStats;
  scheduler: () => SchedulerStats;
  queue: () => QueueStats;
  broker: () => BrokerStats;
  /** The active head. */
  head: () => { id: string; version: number };
  extractor: { id: string; fingerprint: string };
  /** The backend now (`auto` threads change at run time). */
  backend: () => BackendSummary;
  problems: () => Problem[];
  /** Seams for tests: default the machine's thermal zone and process.memoryUsage().rss. */
  cpuTemperatureC?: () => number | null;
  rssBytes?: () => number;
}

/** Seconds; from a 1 ms resize to a 10 s camera download (Pi-class boards: extract ~0.1-0.5 s). */
export const STAGE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export const FRAME_OUTCOMES = ['ok', 'failed', 'published', 'suppressed', 'skipped'] as const;

export class AgentMetrics {
  readonly registry = new Registry();

  constructor(s: MetricsSources) {
    const registers = [this.registry];
    const temperature = s.cpuTemperatureC ?? (() => cpuTemperatureC());
    const rss = s.rssBytes ?? (() => process.memoryUsage().rss);

    new Counter({
      name: 'edgehead_frames_total',
      help: 'Frames by outcome: ok (classified), failed, published, suppressed (by the prediction filter), skipped (a tick while a frame was in flight).',
      labelNames: ['outcome'],
      registers,
      collect() {
        const sch = s.scheduler();
        const n: Record<(typeof FRAME_OUTCOMES)[number], number> = {
          ok: s.frames.ok,
          failed: s.frames.failed,
          published: s.frames.published,
          suppressed: s.frames.suppressed,
          skipped: sch.skipped,
        };
        this.reset();
        for (const outcome of FRAME_OUTCOMES) this.inc({ outcome }, n[outcome]);
      },
    });

    const stages = new Histogram({
      name: 'edgehead_stage_duration_seconds',
      help: 'Time of each stage of a classified frame: capture, decode, resize, extract, head, and total (the whole frame).',
      labelNames: ['stage'],
      buckets: STAGE_BUCKETS,
      registers,
    });
    s.frames.onRecord((stage, ms) => stages.observe({ stage }, ms / 1000));

    gauge(registers, 'edgehead_offline_queue_messages', 'Predictions waiting in the offline queue.', () => s.queue().depth);
    gauge(registers, 'edgehead_offline_queue_bytes', 'Bytes the offline queue uses on disk.', () => s.queue().bytes);
    counter(registers, 'edgehead_offline_queue_dropped_total', 'Queued predictions dropped (oldest first, to stay within offline.maxMB or on a full disk); persisted across restarts.', () => s.queue().dropped);
    counter(registers, 'edgehead_offline_queue_skipped_total', 'Damaged offline queue records skipped since the agent started.', () => s.queue().skipped);

    new Gauge({
      name: 'edgehead_head_info',
      help: 'The active classification head (always 1; labels id and version).',
      labelNames: ['id', 'version'],
      registers,
      collect() {
        const h = s.head();
        this.reset();
        this.set({ id: h.id, version: String(h.version) }, 1);
      },
    });
    info(registers, 'edgehead_extractor_info', 'The frozen feature extractor (always 1; labels id and fingerprint).', { id: s.extractor.id, fingerprint: s.extractor.fingerprint });
    info(registers, 'edgehead_backend_info', 'The inference backend (always 1; labels backend and simd).', { backend: s.backend().name, simd: String(s.backend().simd) });
    gauge(registers, 'edgehead_backend_threads', 'Threads frames run with now (1 = single-threaded; with threads auto it moves between 1 and the pool).', () => s.backend().threads);
    info(registers, 'edgehead_agent_info', 'This agent (always 1; labels device and version).', { device: s.deviceId, version: s.version });

    gauge(registers, 'edgehead_mqtt_connected', '1 while connected to the MQTT broker, else 0.', () => (s.broker().connected ? 1 : 0));
    counter(registers, 'edgehead_mqtt_reconnects_total', 'Successful MQTT connections after the first one.', () => s.broker().reconnects);

    gauge(registers, 'edgehead_problems', 'Conditions that need attention now (telemetry "problems"; 0 when all is well).', () => s.problems().length);
    new Gauge({
      name: 'edgehead_problem',
      help: 'One series (value 1) per current problem, labelled with its key (disk-full, camera, ...).',
      labelNames: ['key'],
      registers,
      collect() {
        this.reset();
        for (const p of s.problems()) this.set({ key: p.key }, 1);
      },
    });

    // Only where the machine has a thermal zone (a Pi does; VMs and containers do not): no series beats a fake 0.
    if (temperature() !== null) {
      gauge(registers, 'edgehead_cpu_temperature_celsius', 'CPU temperature (the first thermal zone).', () => temperature() ?? Number.NaN);
    }
    gauge(registers, 'process_resident_memory_bytes', 'Resident memory size in bytes.', rss);
    gauge(registers, 'process_start_time_seconds', 'Start time of the agent since unix epoch in seconds.', () => s.startedAt / 1000);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text (what GET /metrics answers). */
  exposition(): Promise<string> {
    return this.registry.metrics();
  }
}

function gauge(registers: Prom.Registry[], name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers,
    collect() {
      this.set(read());
    },
  });
}

/** A counter whose value is a monotonic count kept elsewhere: set to that count at each scrape. */
function counter(registers: Prom.Registry[], name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers,
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

function info(registers: Prom.Registry[], name: string, help: string, labels: Record<string, string>): void {
  new Gauge({ name, help, labelNames: Object.keys(labels), registers }).set(labels, 1);
}
