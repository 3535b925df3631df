/**
 * GET /api/events: server-sent events to the dashboards (model.ts FleetEvents).
 *
 * Device changes are coalesced: the hub remembers which devices changed or were removed and, at most once every
 * `intervalMs`, sends one `devices` event with their current rows and one `removed` event; rollout changes go out in
 * the same flush, the latest view of each changed rollout as one `rollout` event (a view is complete, so a skipped
 * intermediate view loses nothing). A comment line every `heartbeatMs` keeps proxies from closing an idle stream.
 * The number of clients is bounded (the server answers 503 beyond it) and a client that stops reading is dropped
 * once `maxBufferedBytes` are queued for it, so a stuck browser tab cannot grow the server's memory.
 * Events that arrive while no client is connected are not kept: a client loads the full state first, then listens.
 */
import type * as http from 'node:http';
import type { Clock, TimerHandle } from '../../../base/clock';
import { createLogger } from '../../../base/log';
import type { DeviceRow, RolloutView } from '../model';
import type { FleetSource, RolloutControl } from './deps';

const log = createLogger('fleet:sse');

export interface SseHubOptions {
  fleet: FleetSource;
  rollouts: RolloutControl;
  clock: Clock;
  /** Coalescing interval of device and rollout changes (ms). */
  intervalMs: number;
  heartbeatMs?: number;
  maxClients?: number;
  maxBufferedBytes?: number;
}

export const SSE_DEFAULTS = { heartbeatMs: 15_000, maxClients: 100, maxBufferedBytes: 8 * 1024 * 1024 };

/** One SSE frame: `event: name` and the JSON on one `data:` line (JSON.stringify never emits a raw newline). */
export function sseFrame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export class SseHub {
  private readonly clients = new Set<http.ServerResponse>();
  private readonly pending = new Map<string, 'change' | 'removed'>();
  private readonly pendingRollouts = new Map<string, RolloutView>();
  private flushTimer: TimerHandle | undefined;
  private heartbeatTimer: TimerHandle | undefined;
  /** The unsubscribers of start(): what `on` returned when it is a function (FleetState), else `off`. */
  private unsubscribers: (() => void)[] = [];
  private readonly heartbeatMs: number;
  private readonly maxClients: number;
  private readonly maxBufferedBytes: number;

  private readonly onChange = (device: string): void => this.note(device, 'change');
  private readonly onRemoved = (device: string): void => this.note(device, 'removed');
  private readonly onRollout = (view: RolloutView): void => {
    if (this.clients.size === 0) return;
    this.pendingRollouts.set(view.id, view);
    this.scheduleFlush();
  };

  constructor(private readonly opts: SseHubOptions) {
    this.heartbeatMs = opts.heartbeatMs ?? SSE_DEFAULTS.heartbeatMs;
    this.maxClients = opts.maxClients ?? SSE_DEFAULTS.maxClients;
    this.maxBufferedBytes = opts.maxBufferedBytes ?? SSE_DEFAULTS.maxBufferedBytes;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Starts listening to the fleet and the rollouts. */
  start(): void {
    if (this.unsubscribers.length) return;
    const { fleet, rollouts } = this.opts;
    const undo = (returned: unknown, off: () => void): (() => void) => (typeof returned === 'function' ? (returned as () => void) : off);
    this.unsubscribers = [
      undo(fleet.on('change', this.onChange), () => fleet.off?.('change', this.onChange)),
      undo(fleet.on('removed', this.onRemoved), () => fleet.off?.('removed', this.onRemoved)),
      undo(rollouts.on('change', this.onRollout), () => rollouts.off?.('change', this.onRollout)),
    ];
  }

  /** Stops listening, ends every stream and cancels the timers. */
  stop(): void {
    for (const u of this.unsubscribers) u();
    this.unsubscribers = [];
    for (const res of [...this.clients]) res.end();
    this.clients.clear();
    this.pending.clear();
    this.pendingRollouts.clear();
    this.flushTimer?.cancel();
    this.flushTimer = undefined;
    this.heartbeatTimer?.cancel();
    this.heartbeatTimer = undefined;
  }

  /** Takes over a GET /api/events response; false (nothing written) when the hub is full. */
  accept(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    if (this.clients.size >= this.maxClients) return false;
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Accel-Buffering': 'no',
    });
    res.write(': edgehead fleet events\n\n');
    this.clients.add(res);
    const drop = (): void => {
      this.clients.delete(res);
      if (this.clients.size === 0) {
        this.pending.clear();
        this.pendingRollouts.clear();
        this.heartbeatTimer?.cancel();
        this.heartbeatTimer = undefined;
      }
    };
    res.on('close', drop);
    req.on('close', drop);
    if (!this.heartbeatTimer) this.scheduleHeartbeat();
    log.debug('event stream opened', { clients: this.clients.size });
    return true;
  }

  private note(device: string, what: 'change' | 'removed'): void {
    if (this.clients.size === 0) return;
    this.pending.set(device, what);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    this.flushTimer = this.opts.clock.setTimeout(() => {
      this.flushTimer = undefined;
      this.flush();
    }, this.opts.intervalMs);
  }

  private scheduleHeartbeat(): void {
    this.heartbeatTimer = this.opts.clock.setTimeout(() => {
      this.heartbeatTimer = undefined;
      if (this.clients.size === 0) return;
      this.broadcast(': ping\n\n');
      this.scheduleHeartbeat();
    }, this.heartbeatMs);
  }

  /** Sends what changed since the last flush. */
  flush(): void {
    const rows: DeviceRow[] = [];
    const removed: string[] = [];
    for (const [device, what] of this.pending) {
      const row = what === 'change' ? this.opts.fleet.row(device) : undefined;
      if (row) rows.push(row);
      else removed.push(device);
    }
    this.pending.clear();
    let out = '';
    if (rows.length) out += sseFrame('devices', { devices: rows });
    if (removed.length) out += sseFrame('removed', { devices: removed });
    for (const view of this.pendingRollouts.values()) out += sseFrame('rollout', view);
    this.pendingRollouts.clear();
    if (out) this.broadcast(out);
  }

  private broadcast(chunk: string): void {
    for (const res of this.clients) {
      if (res.writableLength > this.maxBufferedBytes) {
        log.warn('dropping an event stream client that stopped reading', { bufferedBytes: res.writableLength });
        this.clients.delete(res);
        res.destroy();
        continue;
      }
      res.write(chunk);
    }
  }
}
