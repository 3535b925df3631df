/**
 * The agent's health as systemd sees it (Type=notify, WatchdogSec=; docs/deploy.md, "Health"):
 *  - READY=1 after the first frame that worked (classified, or found unchanged by the motion gate): the unit turns
 *    "active" only once the model is loaded and a frame went through. When no frame is due within
 *    FIRST_FRAME_WAIT_MS of start (a cron or long interval, outside activeWindow, paused), READY comes at once.
 *    When the first frames fail (a camera unplugged) READY still comes after CAMERA_PROBLEM_AFTER failures in a row,
 *    with the failure in the status line: the agent is up and reporting its problem, and a restart would not fix
 *    a camera. A first frame that hangs gets no READY: TimeoutStartSec= fails the start.
 *  - WATCHDOG=1 every half WATCHDOG_USEC, only while the frame loop is alive: no frame in flight (waiting for the
 *    next tick) or the one in flight younger than frameBoundMs (the source's capture timeout plus FRAME_SLACK_MS).
 *    A frame stuck past that, or a blocked event loop (the timer does not fire), stops the pings: systemd kills
 *    the agent (SIGABRT) once WatchdogSec passes without one and Restart= starts it again.
 *  - STATUS= for `systemctl status` ("running: head demo v1, 1 frame/1 s, last frame 2 s ago"), refreshed with
 *    every ping (every STATUS_REFRESH_MS without a watchdog); STOPPING=1 at shutdown.
 * Timers and ages run on the injected clock: monotonic in production, so an NTP step is not mistaken for a stuck
 * frame. It implements the frame loop's FrameWatch; a failing notifier is logged, never fatal.
 */
import type { Clock, TimerHandle } from '../../base/clock';
import { describeError } from '../../base/errors';
import { createLogger } from '../../base/log';
import type { Config } from '../../config/schema';
import { CAMERA_PROBLEM_AFTER, type FrameOutcome, type FrameWatch } from '../frames/frame-loop';
import type { ServiceNotifier } from './notifier';

const log = createLogger('service');

/** A first frame due within this after start is waited for before READY; a later one is not. */
export const FIRST_FRAME_WAIT_MS = 30_000;
/** A frame may take this much longer than its capture timeout (decode, extract, publish on a slow board). */
export const FRAME_SLACK_MS = 30_000;
/** The capture bound of the directory source, which has no timeout of its own (a local file read). */
export const DIRECTORY_CAPTURE_MS = 10_000;
/** The status line's refresh period when there is no watchdog to ride on. */
export const STATUS_REFRESH_MS = 30_000;
/** stop() waits at most this long for STOPPING=1 to be handed over (the forced exit comes 5 s after SIGTERM). */
export const STOPPING_WAIT_MS = 1000;

export interface ServiceHealthDeps {
  notifier: ServiceNotifier;
  /** Timers and ages; now() should be monotonic (performance.now()). */
  clock: Clock;
  /** The watchdog ping period (half of WATCHDOG_USEC); undefined: no watchdog, the status is still refreshed. */
  watchdogMs?: number;
  /** A frame in flight longer than this stops the pings (frameBoundMs()). */
  frameBoundMs: number;
  /** ms until the next scheduled frame runs; undefined when none will (paused, outside activeWindow, no cron run). */
  nextFrameIn: () => number | undefined;
  /** What the status line says about the agent: "head demo v1, 1 frame/1 s; problems: camera". */
  describe: () => string;
}

export class ServiceHealth implements FrameWatch {
  private readonly inFlight = new Map<number, number>(); // frame token -> start time
  private nextToken = 0;
  private phase: 'created' | 'starting' | 'ready' | 'stopped' = 'created';
  private failedInRow = 0;
  /** When the last frame that worked ended. */
  private lastFrameAt?: number;
  /** The wait for the first frame is over: the next frame to end brings READY, whatever its outcome. */
  private waitedOut = false;
  private timer?: TimerHandle;
  private guard?: TimerHandle;
  private stuckReported = false;
  private notifierFailed = false;

  constructor(private readonly deps: ServiceHealthDeps) {}

  /** True once READY=1 was sent. */
  get ready(): boolean {
    return this.phase === 'ready';
  }

  frameStarted(): (outcome: FrameOutcome) => void {
    const token = this.nextToken++;
    this.inFlight.set(token, this.deps.clock.now());
    return (outcome) => {
      if (this.inFlight.delete(token)) this.frameEnded(outcome);
    };
  }

  /** Called once the agent has started (connected, source and schedule started): READY now, or after a frame. */
  start(): void {
    if (this.phase !== 'created') return;
    this.phase = 'starting';
    this.timer = this.deps.clock.setTimeout(() => this.tick(), this.periodMs);
    if (this.lastFrameAt !== undefined || this.failedInRow >= CAMERA_PROBLEM_AFTER) return this.becomeReady();
    const dueIn = this.deps.nextFrameIn();
    if (dueIn === undefined || dueIn > FIRST_FRAME_WAIT_MS) return this.becomeReady();
    this.notify((n) => n.status(`starting: ${this.describe()}, first frame due in ${duration(dueIn)}`));
    this.guard = this.deps.clock.setTimeout(() => {
      this.guard = undefined;
      this.waitedOut = true;
      if (this.inFlight.size === 0) this.becomeReady(); // the due frame did not run (paused meanwhile, window)
    }, dueIn + FIRST_FRAME_WAIT_MS);
  }

  /** No more pings; STOPPING=1 (waited for at most STOPPING_WAIT_MS). */
  async stop(): Promise<void> {
    if (this.phase === 'stopped') return;
    this.phase = 'stopped';
    this.timer?.cancel();
    this.guard?.cancel();
    let cap: TimerHandle | undefined;
    const capped = new Promise<void>((resolve) => (cap = this.deps.clock.setTimeout(resolve, STOPPING_WAIT_MS)));
    const sent = Promise.resolve()
      .then(() => this.deps.notifier.stopping('stopping'))
      .catch((e: unknown) => this.notifierFailure(e));
    await Promise.race([sent, capped]);
    cap?.cancel();
  }

  private get periodMs(): number {
    return this.deps.watchdogMs ?? STATUS_REFRESH_MS;
  }

  private frameEnded(outcome: FrameOutcome): void {
    if (outcome === 'failed') this.failedInRow++;
    else {
      this.failedInRow = 0;
      this.lastFrameAt = this.deps.clock.now();
    }
    if (this.phase !== 'starting') return;
    if (outcome !== 'failed' || this.failedInRow >= CAMERA_PROBLEM_AFTER || this.waitedOut) this.becomeReady();
  }

  private becomeReady(): void {
    this.phase = 'ready';
    this.guard?.cancel();
    this.guard = undefined;
    const status = this.statusText();
    log.info('ready (READY=1 to systemd)', { status });
    this.notify((n) => n.ready(status));
  }

  private tick(): void {
    this.timer = this.deps.clock.setTimeout(() => this.tick(), this.periodMs);
    const stuck = this.stuckForMs();
    if (stuck !== undefined) {
      if (!this.stuckReported) {
        this.stuckReported = true;
        const what = `a frame has been in flight for ${duration(stuck)} (bound ${duration(this.deps.frameBoundMs)})`;
        log.warn(`${what}: ${this.deps.watchdogMs ? 'watchdog pings stopped; systemd restarts the agent once WatchdogSec passes' : 'the frame loop is stuck'}`);
        this.notify((n) => n.status(`stuck: ${what}`));
      }
      return;
    }
    if (this.stuckReported) log.info('the frame loop is moving again' + (this.deps.watchdogMs ? ': watchdog pings resumed' : ''));
    this.stuckReported = false;
    const status = this.statusText();
    this.notify((n) => (this.deps.watchdogMs !== undefined ? n.watchdog(status) : n.status(status)));
  }

  /** How long the oldest frame in flight has been, when that is past the bound. */
  private stuckForMs(): number | undefined {
    const now = this.deps.clock.now();
    let oldest = now;
    for (const t of this.inFlight.values()) oldest = Math.min(oldest, t);
    return now - oldest > this.deps.frameBoundMs ? now - oldest : undefined;
  }

  private statusText(): string {
    const parts = [this.describe()];
    if (this.lastFrameAt !== undefined) parts.push(`last frame ${ago(this.deps.clock.now() - this.lastFrameAt)}`);
    else if (this.inFlight.size > 0) parts.push('first frame in progress');
    else {
      const next = this.deps.nextFrameIn();
      parts.push(next === undefined ? 'no frame due' : `no frame yet, next in ${duration(next)}`);
    }
    if (this.failedInRow > 0) parts.push(`the last ${this.failedInRow === 1 ? 'frame' : `${this.failedInRow} frames`} failed`);
    return `${this.phase === 'starting' ? 'starting' : 'running'}: ${parts.join(', ')}`;
  }

  /** deps.describe(), which must not turn a timer or a frame's end into an exception. */
  private describe(): string {
    try {
      return this.deps.describe();
    } catch (e) {
      log.debug('status line: describe failed', { error: describeError(e) });
      return 'agent';
    }
  }

  private notify(fn: (n: ServiceNotifier) => void): void {
    try {
      fn(this.deps.notifier);
    } catch (e) {
      this.notifierFailure(e);
    }
  }

  private notifierFailure(e: unknown): void {
    if (this.notifierFailed) return;
    this.notifierFailed = true;
    log.warn('service notifier failed (the agent goes on; further failures are not logged)', { error: describeError(e) });
  }
}

/**
 * The frame bound of the watchdog: the capture timeout of the source in use (its section's frameTimeoutMs or
 * timeoutMs, so a new source with either is covered; DIRECTORY_CAPTURE_MS without) plus FRAME_SLACK_MS.
 */
export function frameBoundMs(source: Config['source']): number {
  const settings = (source as unknown as Record<string, { frameTimeoutMs?: unknown; timeoutMs?: unknown } | undefined>)[source.type];
  const capture = [settings?.frameTimeoutMs, settings?.timeoutMs].find((v): v is number => typeof v === 'number' && v > 0);
  return (capture ?? DIRECTORY_CAPTURE_MS) + FRAME_SLACK_MS;
}

/** The schedule in a few words: "1 frame/3 s", "cron "0 * * * *"", "... within 06:00-20:00". */
export function describeSchedule(s: Config['schedule']): string {
  const base = s.cron !== undefined ? `cron "${s.cron}"` : `1 frame/${duration(s.intervalMs)}`;
  return s.activeWindow ? `${base} within ${s.activeWindow}` : base;
}

/** "just now" (under a second), "2 s ago", "42 min ago". */
function ago(ms: number): string {
  return ms < 1000 ? 'just now' : `${duration(ms)} ago`;
}

/** "250 ms", "3 s", "1.5 s", "42 min", "3 h". */
export function duration(ms: number): string {
  const x = Math.max(0, ms);
  const round = (v: number) => String(Math.round(v * 10) / 10);
  if (x < 1000) return `${Math.round(x)} ms`;
  if (x < 120_000) return `${round(x / 1000)} s`;
  if (x < 2 * 3_600_000) return `${Math.round(x / 60_000)} min`;
  return `${round(x / 3_600_000)} h`;
}
