/**
 * type: webcam — one fswebcam run per frame. node-webcam (its FSWebcam class) turns the settings into the fswebcam
 * command line: `-q -r WxH --jpeg Q -D delay -d device --no-banner --skip N <file>`; device "test" becomes `-d test`,
 * fswebcam's built-in test image. node-webcam builds a shell line and runs it with child_process.exec and no timeout,
 * and gives no handle on the process, so this file runs fswebcam itself, without a shell: node-webcam generates the
 * line with placeholder tokens for the device and the output file, the line is split on whitespace (every other word
 * is node-webcam's own or a number the schema validated) and the tokens are replaced by the real values as whole argv
 * entries, so no config string ever reaches a shell and a device name with spaces or `;`, `$(...)` is one literal
 * argument. fswebcam runs in its own process group (a hung one is killed with its children); the output file, a temp
 * file unique to this instance, is then read, checked and deleted.
 *
 * fswebcam exits 0 even when it cannot open the device (it prints e.g. "stat: No such file or directory" and writes
 * no file), so success is judged by the file: it must exist, be non-empty and start with FF D8.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Static } from '@sinclair/typebox';
import * as NodeWebcam from 'node-webcam';
import type { SourceSchema } from '../../config/schema';
import { type Clock, systemClock } from '../../base/clock';
import { EdgeheadError, describeError } from '../../base/errors';
import { createLogger } from '../../base/log';
import { describeBytes, killGroup, OneAtATime, stderrTail } from './common';
import type { Frame, FrameSource } from './source';

export type WebcamSettings = Static<typeof SourceSchema>['webcam'];

export interface WebcamDeps {
  clock?: Clock;
  /** The fswebcam executable (default: node-webcam's, "fswebcam" on PATH). Tests point it at a fake. */
  bin?: string;
}

const log = createLogger('source:webcam');
const STDERR_KEEP = 2048;

/** The runtime shape of node-webcam's Factory (its typings declare it as a class with instance methods). */
const factory = NodeWebcam.Factory as unknown as {
  create(options: NodeWebcam.WebcamOptions, platform: 'fswebcam'): NodeWebcam.FSWebcam;
};

export class WebcamSource implements FrameSource {
  readonly type = 'webcam';
  /** Where fswebcam writes each capture; deleted after reading. */
  readonly tempFile: string;
  private readonly settings: WebcamSettings;
  private readonly clock: Clock;
  private readonly bin: string | undefined;
  private started = false;
  /** The fswebcam run in flight, if any. */
  private child: ChildProcess | undefined;
  private childClosed: Promise<void> = Promise.resolve();
  /** Captures run one at a time (they share the temp file). */
  private readonly queue = new OneAtATime();

  constructor(settings: WebcamSettings, deps: WebcamDeps = {}) {
    this.settings = settings;
    this.clock = deps.clock ?? systemClock;
    this.bin = deps.bin;
    this.tempFile = path.join(os.tmpdir(), `edgehead-webcam-${process.pid}-${randomBytes(6).toString('hex')}.jpg`);
  }

  /** The executable and arguments of one capture: node-webcam's command line with the device and output file put in
   * as whole arguments (see the file head). Throws if node-webcam's line no longer has each placeholder as one word. */
  argv(): { bin: string; args: string[] } {
    const s = this.settings;
    const options: NodeWebcam.WebcamOptions = {
      width: s.width,
      height: s.height,
      quality: s.jpegQuality,
      delay: s.delaySec,
      device: DEVICE_TOKEN,
      output: 'jpeg',
      topBanner: false, // neither banner -> --no-banner
      bottomBanner: false,
      saveShots: false,
      verbose: false, // -> -q: errors only
    };
    // node-webcam passes `skip` through as `--skip N`; its typings say boolean.
    (options as { skip?: number }).skip = s.skipFrames;
    const cam = factory.create(options, 'fswebcam');
    const [bin, ...words] = cam.generateSh(OUTPUT_TOKEN).trim().split(/\s+/);
    const values = new Map([
      [DEVICE_TOKEN, s.device],
      [OUTPUT_TOKEN, this.tempFile],
    ]);
    const args = words.map((w) => values.get(w) ?? w);
    for (const [token] of values) {
      if (words.filter((w) => w === token).length !== 1 || words.some((w) => w !== token && w.includes(token))) {
        throw new EdgeheadError('CAPTURE', `node-webcam's fswebcam command line changed: ${token} is not one argument`);
      }
    }
    return { bin: this.bin ?? bin!, args };
  }

  /** One capture's command line, for logs and messages (shell-quoted; it is never run by a shell). */
  commandLine(): string {
    const { bin, args } = this.argv();
    return [bin, ...args].map(shellQuote).join(' ');
  }

  async start(): Promise<void> {
    if (this.started) return;
    const { timeoutMs, delaySec } = this.settings;
    if (delaySec * 1000 >= timeoutMs) {
      throw new EdgeheadError(
        'BAD_CONFIG',
        `source.webcam.timeoutMs (${timeoutMs}) must be longer than source.webcam.delaySec (${delaySec} s): every capture would be killed`,
      );
    }
    this.started = true;
    log.debug('started', { command: this.commandLine() });
  }

  capture(): Promise<Frame> {
    return this.queue.run(() => this.captureOnce());
  }

  async stop(): Promise<void> {
    this.started = false;
    if (this.child) killGroup(this.child, 'SIGKILL');
    await this.childClosed;
    await this.queue.idle();
    await removeFile(this.tempFile);
  }

  private async captureOnce(): Promise<Frame> {
    if (!this.started) throw new EdgeheadError('CAPTURE', 'webcam source is not started');
    const t0 = this.clock.now();
    const { device, timeoutMs } = this.settings;
    await removeFile(this.tempFile); // never read a stale image
    if (!this.started) throw new EdgeheadError('CAPTURE', 'webcam source stopped during the capture');
    const result = await this.run(this.argv(), timeoutMs);
    try {
      if (result.spawnError?.code === 'ENOENT') {
        throw new EdgeheadError('CAPTURE', 'fswebcam not found: apt-get install fswebcam', { cause: result.spawnError });
      }
      if (result.spawnError) {
        throw new EdgeheadError('CAPTURE', `cannot run fswebcam: ${describeError(result.spawnError)}`, { cause: result.spawnError });
      }
      if (result.timedOut) {
        throw new EdgeheadError('CAPTURE', `fswebcam on ${device} did not finish within ${timeoutMs} ms and was killed`, {
          hint: 'check the camera; raise source.webcam.timeoutMs if it is just slow',
        });
      }
      if (!this.started) throw new EdgeheadError('CAPTURE', 'webcam source stopped during the capture');
      if (result.code !== 0) {
        throw new EdgeheadError('CAPTURE', `fswebcam on ${device} failed (${exitDescription(result)})${stderrSuffix(result.stderr)}`);
      }
      const noWebcam = NodeWebcam.FSWebcam.Validations.noWebcam.test(result.stderr);
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(await fs.readFile(this.tempFile));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
          throw new EdgeheadError('CAPTURE', `cannot read the fswebcam output ${this.tempFile}: ${describeError(e)}`, { cause: e });
        }
        const what = noWebcam ? `no webcam at ${device}` : `fswebcam wrote no image from ${device}`;
        throw new EdgeheadError('CAPTURE', `${what}${stderrSuffix(result.stderr)}`, {
          hint: 'check source.webcam.device (ls /dev/video*; "test" gives fswebcam\'s test image)',
        });
      }
      if (bytes.length === 0 || bytes[0] !== 0xff || bytes[1] !== 0xd8) {
        throw new EdgeheadError('CAPTURE', `fswebcam on ${device} did not write a JPEG (${describeBytes(bytes)})${stderrSuffix(result.stderr)}`);
      }
      const capturedAt = this.clock.now();
      return { bytes, capturedAt, origin: `webcam:${device}`, captureMs: capturedAt - t0 };
    } finally {
      await removeFile(this.tempFile);
    }
  }

  /** Runs the command (no shell) in its own process group; SIGKILLs the group after timeoutMs. */
  private run(cmd: { bin: string; args: string[] }, timeoutMs: number): Promise<RunResult> {
    log.debug('capture', { command: [cmd.bin, ...cmd.args].map(shellQuote).join(' ') });
    return new Promise((resolve) => {
      const child = spawn(cmd.bin, cmd.args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
      this.child = child;
      let stderr = '';
      let timedOut = false;
      let spawnError: NodeJS.ErrnoException | undefined;
      child.stderr!.setEncoding('utf8');
      child.stderr!.on('data', (d: string) => {
        stderr = (stderr + d).slice(-STDERR_KEEP);
      });
      child.on('error', (e) => {
        spawnError = e;
      });
      const timer = this.clock.setTimeout(() => {
        timedOut = true;
        killGroup(child, 'SIGKILL');
      }, timeoutMs);
      this.childClosed = new Promise((closed) => {
        child.on('close', (code, signal) => {
          timer.cancel();
          if (this.child === child) this.child = undefined;
          closed();
          resolve({ code, signal, stderr: stripAnsi(stderr), timedOut, spawnError });
        });
      });
    });
  }
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  timedOut: boolean;
  spawnError: NodeJS.ErrnoException | undefined;
}

/** Placeholders node-webcam puts into its line where the device and the output file go (replaced as whole argv entries). */
const DEVICE_TOKEN = '@EDGEHEAD_WEBCAM_DEVICE@';
const OUTPUT_TOKEN = '@EDGEHEAD_WEBCAM_OUTPUT@';

/** Quotes a word for display in logs and messages (nothing here is run by a shell). */
function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

async function removeFile(file: string): Promise<void> {
  await fs.rm(file, { force: true });
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

function stripAnsi(s: string): string {
  return s.replace(ANSI, '');
}

function stderrSuffix(stderr: string): string {
  const t = stderrTail(stderr);
  return t ? `: ${t}` : '';
}

/** "exit code 1", or for a command killed by a signal "exit code 139 (SIGSEGV)": the shells' 128+n convention, as this
 * source reported it when it still ran fswebcam through /bin/sh (operators' alerts may match it). */
function exitDescription(r: { code: number | null; signal: NodeJS.Signals | null }): string {
  if (r.signal) {
    const n = os.constants.signals[r.signal];
    return n === undefined ? `killed by ${r.signal}` : `exit code ${128 + n} (${r.signal})`;
  }
  const signal = r.code !== null && r.code > 128 ? Object.entries(os.constants.signals).find(([, v]) => v === r.code! - 128)?.[0] : undefined;
  return signal ? `exit code ${r.code} (${signal})` : `exit code ${r.code}`;
}
