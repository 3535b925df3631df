/**
 * type: stream — a long-running command (ffmpeg, rpicam-vid, libcamera-vid...) writes MJPEG to stdout; only the newest
 * complete frame is kept, and capture() returns the newest frame it has not returned yet, waiting up to
 * frameTimeoutMs for one.
 *
 * When the command exits or cannot be started it is restarted after restartMinMs, doubling per failure up to
 * restartMaxMs; a run that lasted HEALTHY_RUN_MS and delivered frames resets the delay. Each exit is logged at warn
 * with the tail of the command's stderr. stop() sends SIGTERM to the command's process group, SIGKILL 2 s later, and
 * resolves once the process is gone; nothing is restarted after stop() and no timer is left behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { Static } from '@sinclair/typebox';
import type { SourceSchema } from '../../config/schema';
import { type Clock, type TimerHandle, systemClock } from '../../base/clock';
import { EdgeheadError, describeError } from '../../base/errors';
import { createLogger } from '../../base/log';
import { killGroup, stderrTail } from './common';
import { MjpegParser, type MjpegStats } from './mjpeg-parser';
import type { Frame, FrameSource } from './source';

export type StreamSettings = Static<typeof SourceSchema>['stream'];

/** A run at least this long that delivered frames counts as healthy: the next restart starts from restartMinMs. */
export const HEALTHY_RUN_MS = 10_000;
/** Grace between SIGTERM and SIGKILL at stop(). */
export const KILL_GRACE_MS = 2_000;
const STDERR_KEEP = 4096;

/** What the stream source does, for tests and diagnostics. */
export type StreamEvent =
  | { type: 'spawn'; pid: number | undefined; run: number }
  | { type: 'exit'; run: number; code: number | null; signal: NodeJS.Signals | null; error?: string; ranMs: number; frames: number; stderrTail: string; restartInMs?: number }
  | { type: 'frame'; bytes: number; run: number };

export interface StreamDeps {
  clock?: Clock;
  /** Called synchronously for every spawn, exit and frame. */
  onEvent?: (e: StreamEvent) => void;
}

const log = createLogger('source:stream');

interface Waiter {
  resolve(f: Frame): void;
  reject(e: Error): void;
  t0: number;
  timer: TimerHandle;
}

export class StreamSource implements FrameSource {
  readonly type = 'stream';
  private readonly settings: StreamSettings;
  private readonly clock: Clock;
  private readonly onEvent: (e: StreamEvent) => void;
  private readonly parser: MjpegParser;
  private running = false;
  private child: ChildProcess | undefined;
  /** Resolves when the current child has closed (stdio included). */
  private childClosed: Promise<void> = Promise.resolve();
  private restartTimer: TimerHandle | undefined;
  private killTimer: TimerHandle | undefined;
  /** Delay before the next restart. */
  private backoffMs: number;
  private runs = 0;
  private latest: { bytes: Uint8Array; capturedAt: number; seq: number } | undefined;
  private seq = 0;
  private returnedSeq = 0;
  private waiters = new Set<Waiter>();
  /** Children whose 'close' has been seen: never signalled again (their pid/group id may be reused). */
  private closedChildren = new WeakSet<ChildProcess>();
  private lastExit = '';

  constructor(settings: StreamSettings, deps: StreamDeps = {}) {
    this.settings = settings;
    this.clock = deps.clock ?? systemClock;
    this.onEvent = deps.onEvent ?? (() => {});
    this.parser = new MjpegParser({ maxFrameBytes: settings.maxFrameBytes });
    this.backoffMs = settings.restartMinMs;
  }

  /** The running command's pid (undefined between runs and after stop). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get parserStats(): Readonly<MjpegStats> {
    return this.parser.stats;
  }

  private get label(): string {
    return [this.settings.command, ...this.settings.args].join(' ');
  }

  async start(): Promise<void> {
    if (this.running) return;
    const { restartMinMs, restartMaxMs } = this.settings;
    if (restartMinMs > restartMaxMs) {
      throw new EdgeheadError('BAD_CONFIG', `source.stream.restartMinMs (${restartMinMs}) must not exceed source.stream.restartMaxMs (${restartMaxMs})`);
    }
    this.running = true;
    this.backoffMs = restartMinMs;
    this.latest = undefined;
    this.returnedSeq = this.seq;
    this.lastExit = '';
    this.spawnChild();
  }

  capture(): Promise<Frame> {
    const t0 = this.clock.now();
    if (!this.running) return Promise.reject(new EdgeheadError('CAPTURE', 'stream source is not started'));
    const latest = this.latest;
    if (latest && latest.seq > this.returnedSeq) return Promise.resolve(this.hand(latest, t0));
    return new Promise<Frame>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        t0,
        timer: this.clock.setTimeout(() => {
          this.waiters.delete(waiter);
          const why = this.lastExit ? `; last exit: ${this.lastExit}` : '';
          reject(
            new EdgeheadError('CAPTURE', `no frame from ${this.settings.command} within ${this.settings.frameTimeoutMs} ms${why}`, {
              hint: 'check that the command writes MJPEG to stdout (source.stream.command/args)',
            }),
          );
        }, this.settings.frameTimeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  async stop(): Promise<void> {
    if (!this.running) {
      await this.childClosed;
      return;
    }
    this.running = false;
    this.restartTimer?.cancel();
    this.restartTimer = undefined;
    for (const w of this.waiters) {
      w.timer.cancel();
      w.reject(new EdgeheadError('CAPTURE', 'stream source stopped'));
    }
    this.waiters.clear();
    const child = this.child;
    if (child) {
      killGroup(child, 'SIGTERM');
      this.killTimer = this.clock.setTimeout(() => {
        if (!this.closedChildren.has(child)) {
          log.warn('command ignored SIGTERM, sending SIGKILL', { pid: child.pid });
          killGroup(child, 'SIGKILL');
        }
      }, KILL_GRACE_MS);
    }
    await this.childClosed;
    this.killTimer?.cancel();
    this.killTimer = undefined;
    this.latest = undefined;
    this.parser.reset();
  }

  private hand(f: { bytes: Uint8Array; capturedAt: number; seq: number }, t0: number): Frame {
    this.returnedSeq = f.seq;
    return { bytes: f.bytes, capturedAt: f.capturedAt, origin: `stream:${this.settings.command}`, captureMs: this.clock.now() - t0 };
  }

  private spawnChild(): void {
    this.restartTimer = undefined;
    const run = ++this.runs;
    const { command, args } = this.settings;
    const spawnedAt = this.clock.now();
    let frames = 0;
    let stderr = '';
    let error: Error | undefined;
    this.parser.reset();
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child = child;
    let closed!: () => void;
    this.childClosed = new Promise((r) => (closed = r));
    log.debug('spawned', { command: this.label, pid: child.pid, run });
    this.onEvent({ type: 'spawn', pid: child.pid, run });

    child.on('error', (e) => {
      error = e;
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      stderr = (stderr + d).slice(-STDERR_KEEP);
    });
    child.stdout!.on('data', (chunk: Buffer) => {
      if (this.child !== child) return;
      for (const bytes of this.parser.push(chunk)) {
        frames++;
        this.onFrame(bytes, run);
      }
    });
    child.on('close', (code, signal) => {
      // A child from before a stop()/start() pair must not schedule restarts for the new run.
      this.closedChildren.add(child);
      const current = this.child === child;
      if (current) this.child = undefined;
      const ranMs = this.clock.now() - spawnedAt;
      const tail = stderrTail(stderr, 5);
      const exit: StreamEvent & { type: 'exit' } = { type: 'exit', run, code, signal, ranMs, frames, stderrTail: tail };
      if (error) exit.error = describeError(error);
      this.lastExit = error ? `cannot run ${command}: ${describeError(error)}` : signal ? `killed by ${signal}` : `exit code ${code}`;
      if (tail) this.lastExit += ` (${tail})`;
      if (this.running && current) {
        if (ranMs >= HEALTHY_RUN_MS && frames > 0) this.backoffMs = this.settings.restartMinMs;
        const delay = this.backoffMs;
        this.backoffMs = Math.min(this.backoffMs * 2, this.settings.restartMaxMs);
        exit.restartInMs = delay;
        log.warn(error ? `cannot start ${command}, retrying` : `${command} exited, restarting`, {
          command: this.label,
          ...(error ? { error: describeError(error) } : { code, signal }),
          ranMs,
          frames,
          restartInMs: delay,
          ...(tail ? { stderr: tail } : {}),
        });
        this.restartTimer = this.clock.setTimeout(() => {
          if (this.running) this.spawnChild();
        }, delay);
      } else {
        log.debug('stopped', { command: this.label, code, signal });
      }
      this.onEvent(exit);
      closed();
    });
  }

  private onFrame(bytes: Uint8Array, run: number): void {
    const f = { bytes, capturedAt: this.clock.now(), seq: ++this.seq };
    this.latest = f;
    this.onEvent({ type: 'frame', bytes: bytes.length, run });
    if (this.waiters.size === 0) return;
    for (const w of this.waiters) {
      w.timer.cancel();
      w.resolve(this.hand(f, w.t0));
    }
    this.waiters.clear();
  }
}
