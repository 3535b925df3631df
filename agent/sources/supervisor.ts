/**
 * A long-running camera command kept alive: the part the stream source (MJPEG on stdout) and the rpicam source
 * (rpicam-still --signal) share. The command is spawned without a shell, from an argv array, in its own process
 * group. When it exits or cannot be started it is restarted after restartMinMs, doubling per failure up to
 * restartMaxMs; a run that lasted HEALTHY_RUN_MS and delivered frames (noteFrame()) resets the delay. Each exit is
 * logged at warn with the tail of the command's stderr (at most STDERR_KEEP characters are kept). stop() sends SIGTERM
 * to the process group, SIGKILL KILL_GRACE_MS later, and resolves once the process is gone; nothing is restarted
 * after stop() and no timer is left behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { type Clock, type TimerHandle } from '../../base/clock';
import { describeError } from '../../base/errors';
import type { Logger } from '../../base/log';
import { killGroup, stderrTail } from './common';

/** A run at least this long that delivered frames counts as healthy: the next restart starts from restartMinMs. */
export const HEALTHY_RUN_MS = 10_000;
/** Grace between SIGTERM and SIGKILL at stop(). */
export const KILL_GRACE_MS = 2_000;
const STDERR_KEEP = 4096;

/** What the supervised command did, for tests and diagnostics. */
export type ProcessEvent =
  | { type: 'spawn'; pid: number | undefined; run: number }
  | {
      type: 'exit';
      run: number;
      code: number | null;
      signal: NodeJS.Signals | null;
      /** Why it could not be started (e.g. "spawn rpicam-still ENOENT"). */
      error?: string;
      /** The spawn error's code ("ENOENT": the command is not installed). */
      errorCode?: string;
      ranMs: number;
      frames: number;
      stderrTail: string;
      /** Set when a restart is scheduled. */
      restartInMs?: number;
    };

export type ExitEvent = Extract<ProcessEvent, { type: 'exit' }>;

export interface SupervisorOptions {
  command: string;
  args: readonly string[];
  restartMinMs: number;
  restartMaxMs: number;
  clock: Clock;
  log: Logger;
  /** 'pipe' to read the command's stdout (onSpawn gets the child); default 'ignore'. */
  stdout?: 'pipe' | 'ignore';
  /** Called right after each spawn, before any output is read. */
  onSpawn?: (child: ChildProcess, run: number) => void;
  /** Called synchronously for every spawn and exit. */
  onEvent?: (e: ProcessEvent) => void;
  /** stderr lines left out of the exit's stderrTail (e.g. a library's informational log lines). */
  stderrNoise?: RegExp;
}

export class ProcessSupervisor {
  private readonly opts: SupervisorOptions;
  private running = false;
  private child: ChildProcess | undefined;
  /** Resolves when the current child has closed (stdio included). */
  private childClosed: Promise<void> = Promise.resolve();
  private restartTimer: TimerHandle | undefined;
  private killTimer: TimerHandle | undefined;
  /** Delay before the next restart. */
  private backoffMs: number;
  private runs = 0;
  private frames = 0;
  /** Children whose 'close' has been seen: never signalled again (their pid/group id may be reused). */
  private closedChildren = new WeakSet<ChildProcess>();
  private last: ExitEvent | undefined;

  constructor(opts: SupervisorOptions) {
    this.opts = opts;
    this.backoffMs = opts.restartMinMs;
  }

  /** The running command's pid (undefined between runs and after stop). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The current run's number (1 for the first spawn). */
  get run(): number {
    return this.runs;
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** The last exit, undefined when the command has not exited since start(). */
  get lastExit(): ExitEvent | undefined {
    return this.last;
  }

  /** "exit code 1 (ERROR: *** no cameras available ***)", "killed by SIGKILL", "cannot run X: spawn X ENOENT"; "" before any exit. */
  get lastExitText(): string {
    const e = this.last;
    if (!e) return '';
    let t = e.error ? `cannot run ${this.opts.command}: ${e.error}` : e.signal ? `killed by ${e.signal}` : `exit code ${e.code}`;
    if (e.stderrTail) t += ` (${e.stderrTail})`;
    return t;
  }

  /** The command line, for logs. */
  get label(): string {
    return [this.opts.command, ...this.opts.args].join(' ');
  }

  /** Counts a frame for the current run (a run that delivered frames and lasted can reset the backoff). */
  noteFrame(): void {
    this.frames++;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.backoffMs = this.opts.restartMinMs;
    this.last = undefined;
    this.spawnChild();
  }

  /** Kills the current run's process group (it is then restarted with the usual backoff). */
  kill(signal: NodeJS.Signals): void {
    const child = this.child;
    if (child && !this.closedChildren.has(child)) killGroup(child, signal);
  }

  /** Sends a signal to the command itself (not its group); false when there is no running command. */
  signal(signal: NodeJS.Signals): boolean {
    const child = this.child;
    if (!child || child.pid === undefined || this.closedChildren.has(child)) return false;
    try {
      process.kill(child.pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  async stop(): Promise<void> {
    if (!this.running) {
      await this.childClosed;
      return;
    }
    this.running = false;
    this.restartTimer?.cancel();
    this.restartTimer = undefined;
    const child = this.child;
    if (child) {
      killGroup(child, 'SIGTERM');
      this.killTimer = this.opts.clock.setTimeout(() => {
        if (!this.closedChildren.has(child)) {
          this.opts.log.warn('command ignored SIGTERM, sending SIGKILL', { pid: child.pid });
          killGroup(child, 'SIGKILL');
        }
      }, KILL_GRACE_MS);
    }
    await this.childClosed;
    this.killTimer?.cancel();
    this.killTimer = undefined;
  }

  private spawnChild(): void {
    this.restartTimer = undefined;
    const run = ++this.runs;
    const { command, args, clock, log } = this.opts;
    const spawnedAt = clock.now();
    this.frames = 0;
    let stderr = '';
    let error: NodeJS.ErrnoException | undefined;
    const child = spawn(command, args, { stdio: ['ignore', this.opts.stdout ?? 'ignore', 'pipe'], detached: true });
    this.child = child;
    let closed!: () => void;
    this.childClosed = new Promise((r) => (closed = r));
    log.debug('spawned', { command: this.label, pid: child.pid, run });
    this.opts.onEvent?.({ type: 'spawn', pid: child.pid, run });
    this.opts.onSpawn?.(child, run);

    child.on('error', (e) => {
      error = e;
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      stderr = (stderr + d).slice(-STDERR_KEEP);
    });
    child.on('close', (code, signal) => {
      // A child from before a stop()/start() pair must not schedule restarts for the new run.
      this.closedChildren.add(child);
      const current = this.child === child;
      if (current) this.child = undefined;
      const ranMs = clock.now() - spawnedAt;
      const frames = current ? this.frames : 0;
      const noise = this.opts.stderrNoise;
      const kept = noise ? stderr.split('\n').filter((l) => !noise.test(l)).join('\n') : stderr;
      const exit: ExitEvent = { type: 'exit', run, code, signal, ranMs, frames, stderrTail: stderrTail(kept, 5) };
      if (error) {
        exit.error = describeError(error);
        if (error.code) exit.errorCode = error.code;
      }
      if (current) this.last = exit;
      if (this.running && current) {
        if (ranMs >= HEALTHY_RUN_MS && frames > 0) this.backoffMs = this.opts.restartMinMs;
        const delay = this.backoffMs;
        this.backoffMs = Math.min(this.backoffMs * 2, this.opts.restartMaxMs);
        exit.restartInMs = delay;
        log.warn(error ? `cannot start ${command}, retrying` : `${command} exited, restarting`, {
          command: this.label,
          ...(error ? { error: exit.error } : { code, signal }),
          ranMs,
          frames,
          restartInMs: delay,
          ...(exit.stderrTail ? { stderr: exit.stderrTail } : {}),
        });
        this.restartTimer = clock.setTimeout(() => {
          if (this.running) this.spawnChild();
        }, delay);
      } else {
        log.debug('stopped', { command: this.label, code, signal });
      }
      this.opts.onEvent?.(exit);
      closed();
    });
  }
}
