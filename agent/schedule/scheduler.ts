/**
 * Scheduler: calls onTick on a fixed interval or a cron expression, on the injected Clock.
 *  - Interval ticks sit on a grid (start + k * intervalMs): run duration and jitter never make them drift. With
 *    runAtStart the grid starts at k = 0 (a frame right away: nobody waits an interval for the first prediction).
 *  - Cron: croner only computes the next run time (local time); the Clock does the waiting, so tests use ManualClock.
 *  - Runs never overlap: a tick while onTick is in flight is skipped and counted (stats.skipped).
 *  - activeWindow: ticks outside it are not run (stats.outsideWindow). Manual triggers ignore the window.
 *  - pause()/resume(): while paused, due ticks are not run (stats.paused); manual runs (runNow) still are.
 *  - jitter: each tick fires random() * jitterMs after its scheduled time; the next one is still planned from the grid.
 *  - If the wall clock jumps (NTP step on a Pi without RTC) or the process stalls, missed ticks are not replayed in
 *    a burst: planning resumes from the current time.
 *  - onTick errors are logged; the loop goes on (the agent counts failures itself).
 * stats.ticks counts runs started (scheduled and manual); skipped/outsideWindow count due ticks that were not run.
 * `running` is true while onTick is in flight.
 */
import { Cron } from 'croner';
import type { Clock, TimerHandle } from '../../base/clock';
import { EdgeheadError, describeError } from '../../base/errors';
import { createLogger } from '../../base/log';
import { type ActiveWindow, inWindow, parseWindow } from './window';

const log = createLogger('schedule');

/** A timer firing this much before its time (timer vs wall clock) is not mistaken for the clock going back. */
const EARLY_TOLERANCE_MS = 1000;

export interface SchedulerOptions {
  clock: Clock;
  intervalMs: number;
  cron?: string;
  /** "HH:MM-HH:MM" local time. */
  activeWindow?: string;
  jitterMs: number;
  /** Interval schedules: the first tick is due at start() (jitter and activeWindow still apply). Cron keeps its times. */
  runAtStart?: boolean;
  random?: () => number;
  onTick: (reason: 'schedule' | 'manual') => Promise<void>;
}

export interface SchedulerStats {
  /** Runs started (scheduled and manual). */
  ticks: number;
  /** Ticks dropped because a run was in flight. */
  skipped: number;
  /** Ticks dropped because they fell outside activeWindow. */
  outsideWindow: number;
  /** Ticks dropped because the schedule was paused. */
  paused: number;
}

export class Scheduler {
  private readonly clock: Clock;
  private readonly jitterMs: number;
  private readonly random: () => number;
  private readonly onTick: SchedulerOptions['onTick'];
  private readonly window?: ActiveWindow;
  private readonly runAtStart: boolean;
  /** The first scheduled time strictly after `after`, or null if there is none. */
  private readonly nextAfter: (after: number) => number | null;
  private readonly counts: SchedulerStats = { ticks: 0, skipped: 0, outsideWindow: 0, paused: 0 };
  private state: 'idle' | 'started' | 'stopped' = 'idle';
  private timer?: TimerHandle;
  private inflight?: Promise<void>;
  private anchor = 0;
  private pausedFlag = false;
  /** When the planned timer fires (epoch ms, jitter included); undefined when none is planned. */
  private plannedAt?: number;

  constructor(opts: SchedulerOptions) {
    this.clock = opts.clock;
    this.onTick = opts.onTick;
    this.random = opts.random ?? Math.random;
    if (!Number.isFinite(opts.jitterMs) || opts.jitterMs < 0) {
      throw new EdgeheadError('BAD_CONFIG', `schedule.jitterMs: must be >= 0 (got ${opts.jitterMs})`);
    }
    this.jitterMs = opts.jitterMs;
    if (opts.activeWindow !== undefined) this.window = parseWindow(opts.activeWindow);

    if (opts.cron !== undefined) {
      let cron: Cron;
      try {
        cron = new Cron(opts.cron, { paused: true });
      } catch (e) {
        throw new EdgeheadError('BAD_CONFIG', `schedule.cron: ${describeError(e)} (got "${opts.cron}")`, {
          hint: '5 or 6 fields, e.g. "*/10 * * * * *" for every 10 seconds',
        });
      }
      this.nextAfter = (after) => cron.nextRun(new Date(after))?.getTime() ?? null;
      if (this.nextAfter(this.clock.now()) === null) {
        throw new EdgeheadError('BAD_CONFIG', `schedule.cron: "${opts.cron}" never fires`);
      }
    } else {
      const interval = opts.intervalMs;
      if (!Number.isFinite(interval) || interval <= 0) {
        throw new EdgeheadError('BAD_CONFIG', `schedule.intervalMs: must be > 0 (got ${interval})`);
      }
      this.nextAfter = (after) => this.anchor + (Math.floor((after - this.anchor) / interval) + 1) * interval;
    }
    this.runAtStart = opts.runAtStart === true && opts.cron === undefined;
  }

  get stats(): SchedulerStats {
    return { ...this.counts };
  }

  /** True between pause() and resume(). */
  get paused(): boolean {
    return this.pausedFlag;
  }

  /** Scheduled ticks are not run until resume(); the run in flight finishes. Returns whether it changed anything. */
  pause(): boolean {
    const changed = !this.pausedFlag;
    this.pausedFlag = true;
    return changed;
  }

  resume(): boolean {
    const changed = this.pausedFlag;
    this.pausedFlag = false;
    return changed;
  }

  get running(): boolean {
    return this.inflight !== undefined;
  }

  /**
   * When the next scheduled tick runs (epoch ms, jitter included), or undefined when it will not run: stopped,
   * paused, no further cron run, or the tick falls outside activeWindow (agent/service/health.ts: READY at start).
   */
  get nextRunAt(): number | undefined {
    const at = this.plannedAt;
    if (this.state !== 'started' || this.pausedFlag || at === undefined) return undefined;
    return this.window && !inWindow(this.window, new Date(at)) ? undefined : at;
  }

  start(): void {
    if (this.state === 'started') return;
    if (this.state === 'stopped') throw new Error('Scheduler: start() after stop()');
    this.state = 'started';
    this.anchor = this.clock.now();
    this.plan(this.runAtStart ? this.anchor : this.nextAfter(this.anchor));
  }

  /** Cancels the timer and resolves once the run in flight (if any) has finished. */
  async stop(): Promise<void> {
    this.halt();
    while (this.inflight) await this.inflight;
  }

  /** No run starts any more (the timer is cancelled); the run in flight, if any, goes on. stop() waits for it. */
  halt(): void {
    this.state = 'stopped';
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** Runs onTick now (manual capture) and resolves when it finished; false if a run is in flight or after stop(). */
  async trigger(): Promise<boolean> {
    if (this.state === 'stopped' || this.inflight) return false;
    await this.run('manual');
    return true;
  }

  /**
   * Runs fn now in the run slot, like a tick (a manual capture that must answer for its own frame): resolves to
   * {value} with fn's result, or undefined while a run is in flight or after stop(). fn's error is the caller's.
   */
  async runNow<T>(fn: () => Promise<T>): Promise<{ value: T } | undefined> {
    if (this.state === 'stopped' || this.inflight) return undefined;
    this.counts.ticks++;
    const result = Promise.resolve().then(fn);
    const p = result.then(
      () => undefined,
      () => undefined,
    );
    this.inflight = p;
    void p.finally(() => {
      if (this.inflight === p) this.inflight = undefined;
    });
    return { value: await result };
  }

  /** Resolves once no run is in flight. */
  async idle(): Promise<void> {
    while (this.inflight) await this.inflight;
  }

  private plan(at: number | null): void {
    this.plannedAt = undefined;
    if (at === null) {
      log.warn('schedule: the cron expression has no further runs; no more scheduled frames');
      return;
    }
    const jitter = this.jitterMs > 0 ? Math.min(Math.max(this.random(), 0), 1) * this.jitterMs : 0;
    this.plannedAt = at + jitter;
    const delay = Math.max(0, this.plannedAt - this.clock.now());
    this.timer = this.clock.setTimeout(() => this.fire(at), delay);
  }

  private fire(scheduled: number): void {
    this.timer = undefined;
    if (this.state !== 'started') return;
    const now = this.clock.now();
    // Normally plan from the tick just served. If the next one is already entirely overdue (event-loop stall, clock
    // stepped forward) or the clock went back, plan from now instead of replaying a burst or waiting out the gap.
    let from = scheduled;
    const next = this.nextAfter(scheduled);
    if (now < scheduled - EARLY_TOLERANCE_MS) from = now;
    else if (next !== null && next + this.jitterMs < now) from = now - this.jitterMs;
    if (from !== scheduled) log.debug('schedule: clock jump or stall; planning from now', { scheduled, now });
    this.plan(from === scheduled ? next : this.nextAfter(from));

    if (this.pausedFlag) {
      this.counts.paused++;
      return;
    }
    if (this.window && !inWindow(this.window, new Date(now))) {
      this.counts.outsideWindow++;
      return;
    }
    if (this.inflight) {
      this.counts.skipped++;
      log.debug('tick skipped: the previous run is still in flight');
      return;
    }
    void this.run('schedule');
  }

  private run(reason: 'schedule' | 'manual'): Promise<void> {
    this.counts.ticks++;
    let result: Promise<void>;
    try {
      result = Promise.resolve(this.onTick(reason));
    } catch (e) {
      result = Promise.reject(e);
    }
    // Promise callbacks run asynchronously, so inflight is set before the finally can clear it.
    const p = result
      .catch((e: unknown) => {
        log.warn(`${reason} run failed: ${describeError(e)}`);
        if (e instanceof Error && !(e instanceof EdgeheadError)) log.debug('stack', { stack: e.stack });
      })
      .finally(() => {
        if (this.inflight === p) this.inflight = undefined;
      });
    this.inflight = p;
    return p;
  }
}
