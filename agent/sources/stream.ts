/**
 * type: stream — a long-running command (ffmpeg, rpicam-vid, libcamera-vid...) writes MJPEG to stdout; only the newest
 * complete frame is kept, and capture() returns the newest frame it has not returned yet, waiting up to
 * frameTimeoutMs for one.
 *
 * The command is kept running by ProcessSupervisor (supervisor.ts, shared with the rpicam source): restarted with
 * exponential backoff when it exits or cannot be started (restartMinMs..restartMaxMs; a healthy run that delivered
 * frames resets the delay), each exit logged at warn with the tail of its stderr. stop() sends SIGTERM to the
 * command's process group, SIGKILL 2 s later, and resolves once the process is gone; nothing is restarted after
 * stop() and no timer is left behind.
 */
import type { Static } from '@sinclair/typebox';
import type { SourceSchema } from '../../config/schema';
import { type Clock, type TimerHandle, systemClock } from '../../base/clock';
import { EdgeheadError } from '../../base/errors';
import { createLogger } from '../../base/log';
import { MjpegParser, type MjpegStats } from './mjpeg-parser';
import type { Frame, FrameSource } from './source';
import { ProcessSupervisor, type ProcessEvent } from './supervisor';

export { HEALTHY_RUN_MS, KILL_GRACE_MS } from './supervisor';

export type StreamSettings = Static<typeof SourceSchema>['stream'];

/** What the stream source does, for tests and diagnostics: the command's spawns and exits, and each frame. */
export type StreamEvent = ProcessEvent | { type: 'frame'; bytes: number; run: number };

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
  private readonly proc: ProcessSupervisor;
  private running = false;
  private latest: { bytes: Uint8Array; capturedAt: number; seq: number } | undefined;
  private seq = 0;
  private returnedSeq = 0;
  private waiters = new Set<Waiter>();

  constructor(settings: StreamSettings, deps: StreamDeps = {}) {
    this.settings = settings;
    this.clock = deps.clock ?? systemClock;
    this.onEvent = deps.onEvent ?? (() => {});
    this.parser = new MjpegParser({ maxFrameBytes: settings.maxFrameBytes });
    this.proc = new ProcessSupervisor({
      command: settings.command,
      args: settings.args,
      restartMinMs: settings.restartMinMs,
      restartMaxMs: settings.restartMaxMs,
      clock: this.clock,
      log,
      stdout: 'pipe',
      onEvent: this.onEvent,
      onSpawn: (child, run) => {
        this.parser.reset();
        child.stdout!.on('data', (chunk: Buffer) => {
          if (this.proc.pid !== child.pid || !this.running) return;
          for (const bytes of this.parser.push(chunk)) {
            this.proc.noteFrame();
            this.onFrame(bytes, run);
          }
        });
      },
    });
  }

  /** The running command's pid (undefined between runs and after stop). */
  get pid(): number | undefined {
    return this.proc.pid;
  }

  get parserStats(): Readonly<MjpegStats> {
    return this.parser.stats;
  }

  async start(): Promise<void> {
    if (this.running) return;
    const { restartMinMs, restartMaxMs } = this.settings;
    if (restartMinMs > restartMaxMs) {
      throw new EdgeheadError('BAD_CONFIG', `source.stream.restartMinMs (${restartMinMs}) must not exceed source.stream.restartMaxMs (${restartMaxMs})`);
    }
    this.running = true;
    this.latest = undefined;
    this.returnedSeq = this.seq;
    this.proc.start();
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
          const lastExit = this.proc.lastExitText;
          const why = lastExit ? `; last exit: ${lastExit}` : '';
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
    if (this.running) {
      this.running = false;
      for (const w of this.waiters) {
        w.timer.cancel();
        w.reject(new EdgeheadError('CAPTURE', 'stream source stopped'));
      }
      this.waiters.clear();
    }
    await this.proc.stop();
    this.latest = undefined;
    this.parser.reset();
  }

  private hand(f: { bytes: Uint8Array; capturedAt: number; seq: number }, t0: number): Frame {
    this.returnedSeq = f.seq;
    return { bytes: f.bytes, capturedAt: f.capturedAt, origin: `stream:${this.settings.command}`, captureMs: this.clock.now() - t0 };
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
