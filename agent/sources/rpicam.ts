/**
 * type: rpicam — a Raspberry Pi camera module (CSI) through libcamera, driven the way rpicam-apps are meant for
 * periodic stills: one long-running
 *
 *   rpicam-still -t 0 --signal -n --camera N --width W --height H -q Q --encoding jpg --thumb none
 *                -o DIR/still.jpg --latest DIR/latest.jpg [--rotation 180] [--hflip] [--vflip] [--awb M]
 *                [--shutter US] [--gain G] [extraArgs...]
 *
 * keeps the camera open and streaming its viewfinder (exposure and white balance settled) and captures one still per
 * SIGUSR1. Spawned without a shell, from an argv array, in its own process group, kept running by ProcessSupervisor
 * (supervisor.ts, shared with the stream source): restarts with backoff, stop() kills the group, no timer left.
 *
 * What this relies on (rpicam-apps 1.4.x and 1.5.x, Raspberry Pi OS bookworm; libcamera-still of the older
 * libcamera-apps behaves the same):
 *  - `-t 0` runs until stopped; `--signal` captures a still on each SIGUSR1 and then returns to the viewfinder.
 *  - rpicam-still installs its SIGUSR1 handler only once the camera has started; until then SIGUSR1 would kill it.
 *    So a capture first waits until /proc/<pid>/status shows SIGUSR1 among the caught signals (SigCgt).
 *  - `-o NAME` is a printf format (frame number as the argument): without a `%d` every still overwrites NAME; a literal
 *    `%` is written `%%` (done here). rpicam-still 1.4 formats it into a 128-byte buffer, so the path must be shorter.
 *  - The still is written in place (not renamed into place). `--latest LINK` makes rpicam-still create the symlink LINK
 *    to the file *after* the file is complete, so the link appearing is the "still written" signal. rpicam-still
 *    removes an existing LINK first, but throws (and dies) on a dangling one; the source removes both files before
 *    every trigger and after reading, so neither a stale nor a dangling link is ever left.
 *  - `--thumb none`: no EXIF thumbnail to encode. `-n`: no preview window.
 *
 * The files live in a private temp folder (mkdtemp, mode 0700) removed at stop(). One capture at a time: a capture
 * waits for the command to be ready, triggers it and waits for the link, all within timeoutMs; a command that misses
 * the deadline is killed (and restarted with backoff). A capture while the command is down fails at once with its last
 * exit (e.g. "rpicam-still exited (exit code 255): ERROR: *** no cameras available ***"); an uninstalled command gives
 * "rpicam-still not found: apt-get install rpicam-apps". A still over maxFrameBytes is refused without being read.
 * Readiness and the link are polled (a few lstat calls per capture) with the injected clock.
 */
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Static } from '@sinclair/typebox';
import { RPICAM_EXTRA_ARG_PATTERN, type SourceSchema } from '../../config/schema';
import { type Clock, type TimerHandle, systemClock } from '../../base/clock';
import { EdgeheadError, describeError } from '../../base/errors';
import { createLogger } from '../../base/log';
import { describeBytes, imageKind, OneAtATime } from './common';
import type { Frame, FrameSource } from './source';
import { type ExitEvent, type ProcessEvent, ProcessSupervisor } from './supervisor';

export type RpicamSettings = Static<typeof SourceSchema>['rpicam'];

/** The command's spawns and exits, plus: ready (its SIGUSR1 handler is installed), trigger (SIGUSR1 sent), still (read). */
export type RpicamEvent =
  | ProcessEvent
  | { type: 'ready'; run: number; pid: number }
  | { type: 'trigger'; run: number; pid: number }
  | { type: 'still'; run: number; bytes: number };

export interface RpicamDeps {
  clock?: Clock;
  /** Called synchronously for every event. */
  onEvent?: (e: RpicamEvent) => void;
  /** Where process status files are read (default /proc). */
  procDir?: string;
  /** Parent of the private temp folder (default os.tmpdir()). */
  tmpDir?: string;
}

/** How often readiness and the still's link are checked while a capture waits. */
export const POLL_MS = 25;
/** rpicam-still 1.4 formats the output name into char[128]. */
const MAX_OUTPUT_PATH = 127;
const STILL_NAME = 'still.jpg';
const LINK_NAME = 'latest.jpg';
const SIGUSR1_MASK = 1n << BigInt(os.constants.signals.SIGUSR1 - 1);

/** libcamera's own log lines below ERROR ("[0:01:02.345678901] [1234]  INFO Camera camera_manager.cpp:325 ..."):
 * left out of the stderr tail that errors quote, which then shows rpicam's "ERROR: *** ... ***". */
const LIBCAMERA_INFO = /^\[\d+:\d+:\d+\.\d+\] \[\d+\] +(DEBUG|INFO|WARN) /;

const log = createLogger('source:rpicam');

/** The argv of the long-running command (without the command itself). */
export function rpicamArgs(s: RpicamSettings, outFile: string, latestLink: string): string[] {
  return [
    '-t', '0',
    '--signal',
    '-n',
    '--camera', String(s.camera),
    '--width', String(s.width),
    '--height', String(s.height),
    '-q', String(s.jpegQuality),
    '--encoding', 'jpg',
    '--thumb', 'none',
    '-o', outFile.replace(/%/g, '%%'),
    '--latest', latestLink,
    ...(s.rotation === 180 ? ['--rotation', '180'] : []),
    ...(s.hflip ? ['--hflip'] : []),
    ...(s.vflip ? ['--vflip'] : []),
    ...(s.awb !== 'auto' ? ['--awb', s.awb] : []),
    ...(s.shutterUs > 0 ? ['--shutter', String(s.shutterUs)] : []),
    ...(s.gain > 0 ? ['--gain', String(s.gain)] : []),
    ...s.extraArgs,
  ];
}

function asCaptureError(e: unknown): EdgeheadError {
  return e instanceof EdgeheadError ? e : new EdgeheadError('CAPTURE', `rpicam still: ${describeError(e)}`, { cause: e });
}

/** True when /proc/<pid>/status lists SIGUSR1 among the signals the process catches. */
export async function catchesSigusr1(pid: number, procDir = '/proc'): Promise<boolean> {
  let status: string;
  try {
    status = await fs.readFile(path.join(procDir, String(pid), 'status'), 'utf8');
  } catch {
    return false;
  }
  const m = /^SigCgt:\s*([0-9a-fA-F]+)\s*$/m.exec(status);
  return m !== null && (BigInt('0x' + m[1]) & SIGUSR1_MASK) !== 0n;
}

interface Pending {
  t0: number;
  run: number;
  state: 'ready' | 'still';
  deadline: TimerHandle;
  poll: TimerHandle | undefined;
  settled: boolean;
  resolve(f: Frame): void;
  reject(e: Error): void;
}

export class RpicamSource implements FrameSource {
  readonly type = 'rpicam';
  private readonly settings: RpicamSettings;
  private readonly clock: Clock;
  private readonly onEvent: (e: RpicamEvent) => void;
  private readonly procDir: string;
  private readonly tmpParent: string;
  private proc: ProcessSupervisor | undefined;
  private dir: string | undefined;
  private started = false;
  private pending: Pending | undefined;
  /** Captures run one at a time (they share the output file). */
  private readonly queue = new OneAtATime();

  constructor(settings: RpicamSettings, deps: RpicamDeps = {}) {
    this.settings = settings;
    this.clock = deps.clock ?? systemClock;
    this.onEvent = deps.onEvent ?? (() => {});
    this.procDir = deps.procDir ?? '/proc';
    this.tmpParent = deps.tmpDir ?? os.tmpdir();
  }

  /** The running command's pid (undefined between runs and after stop). */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** The private folder rpicam-still writes into (undefined when stopped). */
  get tempDir(): string | undefined {
    return this.dir;
  }

  async start(): Promise<void> {
    if (this.started) return;
    const { restartMinMs, restartMaxMs, extraArgs } = this.settings;
    if (restartMinMs > restartMaxMs) {
      throw new EdgeheadError('BAD_CONFIG', `source.rpicam.restartMinMs (${restartMinMs}) must not exceed source.rpicam.restartMaxMs (${restartMaxMs})`);
    }
    const managed = new RegExp(RPICAM_EXTRA_ARG_PATTERN);
    const bad = extraArgs.findIndex((a) => !managed.test(a));
    if (bad >= 0) {
      throw new EdgeheadError('BAD_CONFIG', `source.rpicam.extraArgs[${bad}]: "${extraArgs[bad]}" is set by the rpicam source itself or is not a long option`, {
        hint: 'use the source.rpicam settings (camera, width, height, jpegQuality, rotation, hflip, vflip, awb, shutterUs, gain)',
      });
    }
    const dir = await fs.mkdtemp(path.join(this.tmpParent, 'edgehead-rpicam-'));
    const outFile = path.join(dir, STILL_NAME);
    if (Buffer.byteLength(outFile.replace(/%/g, '%%')) > MAX_OUTPUT_PATH) {
      await fs.rm(dir, { recursive: true, force: true });
      throw new EdgeheadError('BAD_CONFIG', `the rpicam source's temp folder ${dir} is too long for rpicam-still's output name (at most ${MAX_OUTPUT_PATH} bytes)`, {
        hint: 'set TMPDIR to a shorter folder',
      });
    }
    this.dir = dir;
    this.started = true;
    const command = this.settings.command;
    this.proc = new ProcessSupervisor({
      command,
      args: rpicamArgs(this.settings, outFile, path.join(dir, LINK_NAME)),
      restartMinMs,
      restartMaxMs,
      clock: this.clock,
      log,
      stderrNoise: LIBCAMERA_INFO,
      onEvent: (e) => {
        this.onEvent(e);
        if (e.type === 'exit' && this.pending && !this.pending.settled) void this.exited(this.pending, e);
      },
    });
    log.debug('starting', { command: this.proc.label });
    this.proc.start();
  }

  capture(): Promise<Frame> {
    return this.queue.run(() => this.captureOnce());
  }

  async stop(): Promise<void> {
    this.started = false;
    const p = this.pending;
    if (p && !p.settled) this.fail(p, new EdgeheadError('CAPTURE', 'rpicam source stopped'));
    await this.proc?.stop();
    await this.queue.idle();
    if (this.dir) await fs.rm(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }

  private captureOnce(): Promise<Frame> {
    const proc = this.proc;
    if (!this.started || !proc) return Promise.reject(new EdgeheadError('CAPTURE', 'rpicam source is not started'));
    // Down between runs (waiting for a restart): say why at once rather than wait for the timeout.
    const last = proc.lastExit;
    if (proc.pid === undefined && last) return Promise.reject(this.exitError(last));
    return new Promise<Frame>((resolve, reject) => {
      const p: Pending = {
        t0: this.clock.now(),
        run: proc.run,
        state: 'ready',
        settled: false,
        poll: undefined,
        resolve,
        reject,
        deadline: this.clock.setTimeout(() => this.timedOut(p), this.settings.timeoutMs),
      };
      this.pending = p;
      void this.step(p);
    });
  }

  /** One check of the capture's current state; schedules the next one. */
  private async step(p: Pending): Promise<void> {
    p.poll = undefined;
    try {
      const proc = this.proc!;
      const pid = proc.pid;
      if (p.settled) return;
      if (pid === undefined) return this.schedule(p); // spawning, or the exit event is on its way
      if (p.state === 'ready') {
        if (!(await catchesSigusr1(pid, this.procDir)) || p.settled) return this.schedule(p);
        this.onEvent({ type: 'ready', run: proc.run, pid });
        await this.removeOutputs(); // never a stale still, never a dangling link (rpicam-still would throw on it)
        if (p.settled) return;
        if (!proc.signal('SIGUSR1')) return this.schedule(p);
        p.state = 'still';
        p.run = proc.run;
        this.onEvent({ type: 'trigger', run: proc.run, pid });
        return this.schedule(p);
      }
      const bytes = await this.readStill();
      if (p.settled) return;
      if (!bytes) return this.schedule(p);
      await this.deliver(p, bytes);
    } catch (e) {
      this.fail(p, asCaptureError(e));
    }
  }

  /** The command exited while a capture waited: a still it linked before dying is still good, else its exit says why. */
  private async exited(p: Pending, e: ExitEvent): Promise<void> {
    try {
      const bytes = p.state === 'still' ? await this.readStill() : undefined;
      if (p.settled) return;
      if (bytes) return await this.deliver(p, bytes);
      this.fail(p, this.exitError(e));
    } catch (err) {
      this.fail(p, asCaptureError(err));
    }
  }

  /** Settles the capture with a complete still (the command may die any moment after linking it). */
  private async deliver(p: Pending, bytes: Uint8Array): Promise<void> {
    this.settle(p);
    try {
      await this.removeOutputs();
    } catch (e) {
      log.debug('cannot remove the still', { error: describeError(e) });
    }
    if (imageKind(bytes) !== 'jpeg') {
      return p.reject(new EdgeheadError('CAPTURE', `${this.settings.command} did not write a JPEG (${describeBytes(bytes)})`));
    }
    this.proc?.noteFrame();
    this.onEvent({ type: 'still', run: p.run, bytes: bytes.length });
    const capturedAt = this.clock.now();
    p.resolve({ bytes, capturedAt, origin: `rpicam:${this.settings.camera}`, captureMs: capturedAt - p.t0 });
  }

  private schedule(p: Pending): void {
    if (!p.settled) p.poll = this.clock.setTimeout(() => void this.step(p), POLL_MS);
  }

  /** The still once rpicam-still has linked it (complete), else undefined. Refuses one over maxFrameBytes unread. */
  private async readStill(): Promise<Uint8Array | undefined> {
    const link = path.join(this.dir!, LINK_NAME);
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(link, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new EdgeheadError('CAPTURE', `cannot read the still ${link}: ${describeError(e)}`, { cause: e });
    }
    try {
      const { size } = await fh.stat();
      if (size > this.settings.maxFrameBytes) {
        await this.removeOutputs();
        throw new EdgeheadError('CAPTURE', `the still from ${this.settings.command} is ${size} bytes, over source.rpicam.maxFrameBytes (${this.settings.maxFrameBytes})`);
      }
      return new Uint8Array(await fh.readFile());
    } finally {
      await fh.close();
    }
  }

  /** Removes the link and the file it points at (only inside the private folder). */
  private async removeOutputs(): Promise<void> {
    const dir = this.dir;
    if (!dir) return;
    const link = path.join(dir, LINK_NAME);
    const targets = new Set([path.join(dir, STILL_NAME)]);
    try {
      const t = path.resolve(dir, await fs.readlink(link));
      if (path.dirname(t) === dir) targets.add(t);
    } catch {
      // no link
    }
    await fs.rm(link, { force: true });
    for (const t of targets) await fs.rm(t, { force: true });
  }

  private timedOut(p: Pending): void {
    if (p.settled) return;
    const { command, timeoutMs } = this.settings;
    const what = p.state === 'ready' ? `${command} did not get ready (camera start) within ${timeoutMs} ms` : `no still from ${command} within ${timeoutMs} ms`;
    const err = new EdgeheadError('CAPTURE', `${what}; restarting it`, {
      hint: 'check the camera (rpicam-hello --list-cameras, the ribbon cable); raise source.rpicam.timeoutMs if it is just slow',
    });
    this.fail(p, err);
    log.warn(`${what}, killing it`, { pid: this.proc?.pid });
    this.proc?.kill('SIGKILL');
  }

  private exitError(e: ExitEvent): EdgeheadError {
    const { command } = this.settings;
    if (e.errorCode === 'ENOENT') {
      return new EdgeheadError('CAPTURE', `${command} not found: apt-get install rpicam-apps`, {
        hint: command === 'rpicam-still' ? 'older Raspberry Pi OS: source.rpicam.command: libcamera-still' : undefined,
      });
    }
    if (e.error) return new EdgeheadError('CAPTURE', `cannot run ${command}: ${e.error}`);
    const how = e.signal ? `killed by ${e.signal}` : `exit code ${e.code}`;
    return new EdgeheadError('CAPTURE', `${command} exited (${how})${e.stderrTail ? `: ${e.stderrTail}` : ''}`, {
      hint: e.restartInMs !== undefined ? `restarting in ${e.restartInMs} ms` : undefined,
    });
  }

  private settle(p: Pending): void {
    p.settled = true;
    p.deadline.cancel();
    p.poll?.cancel();
    p.poll = undefined;
    if (this.pending === p) this.pending = undefined;
  }

  private fail(p: Pending, e: Error): void {
    if (p.settled) return;
    this.settle(p);
    p.reject(e);
  }
}
