/**
 * The fleet server's Prometheus metrics (GET /metrics): one prom-client registry whose collect() callbacks read
 * FleetState and the rollouts at scrape time, so nothing is counted twice and a forgotten device's series are gone at
 * the next scrape. The metric names are a contract (contrib/grafana, contrib/prometheus/alerts.yml), listed by
 * fleetMetricNames(); they pass `promtool check metrics` (base units, no "quantile" label outside a summary).
 *
 * Cardinality, bounded by construction:
 *   - per device (at most history.maxDevices): ~10 series, plus one per (device, label) of the predictions counter,
 *     at most metrics.maxLabelsPerHead + 1 ("(other)") per device, counted for the device's current head only;
 *   - fleet: 3 state series, 2 x (topic kinds) message counters;
 *   - rollouts: the last ROLLOUTS_SHOWN rollouts only, 8 device states + 2 each.
 * A device with no value for a gauge (no CPU temperature, no telemetry yet) has no sample for it.
 */
import type * as Prom from 'prom-client';
import type { Clock } from '../../base/clock';
import { OTHER_LABEL } from './history';
import type { RolloutDeviceState, RolloutView } from './model';
import { type FleetState, MESSAGE_KINDS } from './state';

// As agent/metrics/metrics.ts: prom-client's classes from their own modules (its index also loads what we never use).
const Counter: typeof Prom.Counter = require('prom-client/lib/counter');
const Gauge: typeof Prom.Gauge = require('prom-client/lib/gauge');
const Registry: typeof Prom.Registry = require('prom-client/lib/registry');

/** Rollouts exported (newest first by createdAt). */
export const ROLLOUTS_SHOWN = 5;

export const ROLLOUT_DEVICE_STATES: readonly RolloutDeviceState[] = ['waiting', 'pending', 'applied', 'shadow', 'rejected', 'offline', 'rolled-back', 'rollback-failed'];

export interface FleetMetricsOptions {
  state: FleetState;
  rollouts: () => RolloutView[];
  clock: Clock;
  /** Label values of edgehead_device_predictions_total per device (the state bounds them too; this is the last guard). */
  maxLabelsPerHead: number;
}

export interface FleetMetrics {
  registry: Prom.Registry;
  contentType: string;
  metrics(): Promise<string>;
}

export function createFleetMetrics(opts: FleetMetricsOptions): FleetMetrics {
  const { state, clock } = opts;
  const registry = new Registry();
  const registers = [registry];

  /** A gauge over one numeric field of each device row; rows without a value get no sample. */
  const deviceGauge = (name: string, help: string, value: (row: ReturnType<FleetState['rows']>[number]) => number | null) =>
    new Gauge({
      name,
      help,
      labelNames: ['device'],
      registers,
      collect() {
        this.reset();
        for (const row of state.rows()) {
          const v = value(row);
          if (v !== null && Number.isFinite(v)) this.set({ device: row.device }, v);
        }
      },
    });

  new Gauge({
    name: 'edgehead_device_up',
    help: 'Whether the device is connected: 1 after its birth message, 0 after its last will or shutdown (retained status topic). group: its groups joined by ",".',
    labelNames: ['device', 'group'],
    registers,
    collect() {
      this.reset();
      for (const row of state.rows()) if (row.online !== null) this.set({ device: row.device, group: row.groups.join(',') }, row.online ? 1 : 0);
    },
  });
  deviceGauge('edgehead_device_last_seen_seconds', 'Seconds since this server received the last live message of the device.', (r) =>
    r.lastSeen === null ? null : Math.max(0, (clock.now() - r.lastSeen) / 1000),
  );
  // Two gauges in base units, not one with a "quantile" label (that label is for summaries, and "ms" is an abbreviated
  // unit; promtool check metrics flags both): the device computes the quantiles, the server only relays them.
  deviceGauge('edgehead_device_latency_p50_seconds', 'Median total frame latency (capture to prediction) of the device, from its last telemetry.', (r) =>
    r.latencyMs === null ? null : r.latencyMs.p50 / 1000,
  );
  deviceGauge('edgehead_device_latency_p95_seconds', '95th percentile of the total frame latency (capture to prediction) of the device, from its last telemetry.', (r) =>
    r.latencyMs === null ? null : r.latencyMs.p95 / 1000,
  );
  deviceGauge('edgehead_device_frames_per_second', 'Frames classified per second between the last two telemetry messages.', (r) => r.fps);
  deviceGauge('edgehead_device_cpu_temperature_celsius', 'CPU temperature of the device, from its last telemetry.', (r) => r.cpuTempC);
  deviceGauge('edgehead_device_rss_bytes', 'Resident memory of the agent, from its last telemetry.', (r) => (r.rssMB === null ? null : Math.round(r.rssMB * 1024 * 1024)));
  deviceGauge('edgehead_device_queue_depth', 'Predictions waiting in the offline queue of the device, from its last telemetry.', (r) => r.queueDepth);
  deviceGauge('edgehead_device_problems', 'Open problems the device reports (disk full, camera failing...), from its last telemetry.', (r) => (r.rssMB === null ? null : r.problems.length)); // rssMB: set by every telemetry
  new Gauge({
    name: 'edgehead_device_head_info',
    help: 'The active head of the device (always 1).',
    labelNames: ['device', 'head_id', 'head_version'],
    registers,
    collect() {
      this.reset();
      for (const row of state.rows()) if (row.head) this.set({ device: row.device, head_id: row.head.id, head_version: String(row.head.version) }, 1);
    },
  });
  new Counter({
    name: 'edgehead_device_predictions_total',
    help: `Predictions this replica received by top-1 label, for the device's current head (restarts at a head change); at most metrics.maxLabelsPerHead labels per device, the rest as "${OTHER_LABEL}".`,
    labelNames: ['device', 'label'],
    registers,
    collect() {
      this.reset();
      for (const row of state.rows()) {
        let other = 0;
        let n = 0;
        for (const [label, count] of state.labels(row.device).counts) {
          if (label !== OTHER_LABEL && n < opts.maxLabelsPerHead) {
            n++;
            this.inc({ device: row.device, label }, count);
          } else other += count;
        }
        if (other > 0) this.inc({ device: row.device, label: OTHER_LABEL }, other);
      }
    },
  });
  new Gauge({
    name: 'edgehead_fleet_devices',
    help: 'Devices known to this server by state: online, offline, unknown (no status seen yet).',
    labelNames: ['state'],
    registers,
    collect() {
      const n = { online: 0, offline: 0, unknown: 0 };
      for (const row of state.rows()) n[row.online === null ? 'unknown' : row.online ? 'online' : 'offline']++;
      this.reset();
      for (const [k, v] of Object.entries(n)) this.set({ state: k }, v);
    },
  });
  new Counter({
    name: 'edgehead_fleet_messages_total',
    help: 'MQTT messages this replica ingested, by topic kind (with shared subscriptions, replicas split the live streams).',
    labelNames: ['kind'],
    registers,
    collect() {
      const c = state.counts().messages;
      this.reset();
      for (const kind of MESSAGE_KINDS) this.inc({ kind }, c[kind]);
    },
  });
  new Counter({
    name: 'edgehead_fleet_invalid_messages_total',
    help: 'Messages this replica dropped because their payload did not match the protocol, by topic kind.',
    labelNames: ['kind'],
    registers,
    collect() {
      const c = state.counts().invalid;
      this.reset();
      for (const kind of MESSAGE_KINDS) this.inc({ kind }, c[kind]);
    },
  });

  const shown = () => [...opts.rollouts()].sort((a, b) => b.createdAt - a.createdAt).slice(0, ROLLOUTS_SHOWN);
  new Gauge({
    name: 'edgehead_rollout_devices',
    help: `Devices of a rollout by state (the last ${ROLLOUTS_SHOWN} rollouts).`,
    labelNames: ['rollout', 'state'],
    registers,
    collect() {
      this.reset();
      for (const r of shown()) {
        const n = Object.fromEntries(ROLLOUT_DEVICE_STATES.map((s) => [s, 0])) as Record<RolloutDeviceState, number>;
        for (const d of r.devices) n[d.state]++;
        for (const s of ROLLOUT_DEVICE_STATES) this.set({ rollout: r.id, state: s }, n[s]);
      }
    },
  });
  new Gauge({
    name: 'edgehead_rollout_halted',
    help: `1 when the rollout halted (a rejection, an agreement drop, a device offline mid-update, a timeout or an operator), else 0 (the last ${ROLLOUTS_SHOWN} rollouts).`,
    labelNames: ['rollout'],
    registers,
    collect() {
      this.reset();
      for (const r of shown()) this.set({ rollout: r.id }, r.phase === 'halted' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'edgehead_rollout_phase_info',
    help: `The phase of the rollout (always 1): canary, rest, done, halted, rolling-back, rolled-back (the last ${ROLLOUTS_SHOWN} rollouts).`,
    labelNames: ['rollout', 'phase'],
    registers,
    collect() {
      this.reset();
      for (const r of shown()) this.set({ rollout: r.id, phase: r.phase }, 1);
    },
  });

  return { registry, contentType: registry.contentType, metrics: () => registry.metrics() };
}

/**
 * Every metric name createFleetMetrics registers (the contract of contrib/ and docs/scaling.md), read off a registry
 * built without a data source: collect() runs at scrape time only, and this registry is never scraped. A function,
 * not a constant: every `edgehead` command loads this module, and only the tests need the names.
 */
export function fleetMetricNames(): readonly string[] {
  return Object.freeze(
    createFleetMetrics({ state: undefined as never, rollouts: () => [], clock: undefined as never, maxLabelsPerHead: 1 })
      .registry.getMetricsAsArray()
      .map((m) => m.name),
  );
}