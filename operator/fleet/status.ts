/**
 * `edgehead fleet status`: the fleet table from the broker's retained messages alone (status, head/state), without a
 * running server. Connects, subscribes to the retained topics, waits until the retained burst is over (quietMs of
 * silence after the SUBACK, bounded by timeoutMs), and returns FleetState's rows. formatFleetTable prints them.
 */
import { type Clock, systemClock } from '../../base/clock';
import { type MqttConnect, MqttJsClient, type MqttSettings } from '../../mqtt/mqttjs-client';
import { everyDeviceTopic } from '../../protocol/topics';
import { FleetHistory } from './history';
import { RETAINED_KINDS } from './ingest';
import type { DeviceRow } from './model';
import { FleetState } from './state';

export const DEFAULT_STATUS_TIMEOUT_MS = 3000;
/** Silence after which the retained burst is taken to be over. */
export const DEFAULT_QUIET_MS = 300;

export interface FleetStatusOptions {
  settings: MqttSettings;
  prefix: string;
  /** Upper bound from the SUBACK (default 3 s). */
  timeoutMs?: number;
  quietMs?: number;
  clock?: Clock;
  connect?: MqttConnect;
  /** Devices read at most (default 100,000). */
  maxDevices?: number;
}

export async function fetchFleetStatus(opts: FleetStatusOptions): Promise<DeviceRow[]> {
  const clock = opts.clock ?? systemClock;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_STATUS_TIMEOUT_MS;
  const quietMs = Math.min(opts.quietMs ?? DEFAULT_QUIET_MS, timeoutMs);
  // The history is unused here (no live streams): the smallest one.
  const history = new FleetHistory({ resolutionSec: 3600, retentionHours: 1, maxLabels: 1, clock });
  const state = new FleetState({ prefix: opts.prefix, clock, history, maxDevices: opts.maxDevices ?? 100_000 });
  const client = new MqttJsClient({
    cfg: opts.settings,
    clientId: `edgehead-status-${Math.random().toString(16).slice(2, 10)}`,
    reconnect: false,
    settingName: (k) => `--${k}`,
    connect: opts.connect,
  });
  let poke: () => void = () => undefined;
  client.onMessage((topic, payload, retained) => {
    state.handle(topic, payload, retained);
    poke();
  });
  await client.open();
  try {
    await client.subscribe(RETAINED_KINDS.map((k) => everyDeviceTopic(opts.prefix, k)));
    await new Promise<void>((resolve) => {
      const deadline = clock.setTimeout(done, timeoutMs);
      let quiet = clock.setTimeout(done, quietMs);
      poke = () => {
        quiet.cancel();
        quiet = clock.setTimeout(done, quietMs);
      };
      function done() {
        deadline.cancel();
        quiet.cancel();
        poke = () => undefined;
        resolve();
      }
    });
  } finally {
    await client.stop(undefined, 1000);
  }
  return state.rows();
}

const online = (r: DeviceRow) => (r.online === null ? '?' : r.online ? 'yes' : r.offlineReason ? `no (${r.offlineReason})` : 'no');
const head = (h: DeviceRow['head']) => (h ? `${h.id} v${h.version}` : '-');
function update(r: DeviceRow): string {
  const u = r.lastUpdate;
  if (!u) return '-';
  const reason = u.reason ? `: ${u.reason.length > 40 ? `${u.reason.slice(0, 37)}...` : u.reason}` : '';
  return `${u.status}${reason}`;
}
const problems = (r: DeviceRow) => (r.problems.length === 0 ? '-' : r.problems.map((p) => p.key).join(','));

/** The fleet table as text: one row per device, columns padded; a line of totals at the end. */
export function formatFleetTable(rows: readonly DeviceRow[]): string {
  if (rows.length === 0) return 'no devices (no retained status or head/state under the prefix)';
  const header = ['DEVICE', 'GROUP', 'ONLINE', 'AGENT', 'HEAD', 'LAST UPDATE', 'PROBLEMS'];
  const cells = rows.map((r) => [r.device, r.groups.join(',') || '-', online(r), r.agentVersion ?? '-', head(r.head), update(r), problems(r)]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]!))).join('  ');
  const up = rows.filter((r) => r.online === true).length;
  const down = rows.filter((r) => r.online === false).length;
  const total = `${rows.length} device${rows.length === 1 ? '' : 's'}: ${up} online, ${down} offline, ${rows.length - up - down} unknown`;
  return [line(header), ...cells.map(line), total].join('\n');
}
