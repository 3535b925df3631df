/**
 * The frame loop: capture -> classify -> filter -> publish, one frame at a time (the scheduler never overlaps runs).
 * A frame finishes on the head it started with: a head installed meanwhile (hot-swap) takes the next frame, and
 * the replaced head is disposed once no frame in flight uses it. It is the head manager's port to the classifier.
 */
import { describeError } from '../../base/errors';
import { createLogger } from '../../base/log';
import { type PredictionMessage, predictionMessage } from '../../protocol/messages';
import type { EventBus } from '../events';
import type { HeadPort } from '../hot-swap/head-manager';
import type { GateVerdict, MotionGate } from '../motion/gate';
import type { Region } from '../../protocol/dataset';
import type { Classifier } from '../inference/classifier';
import type { CollectedFrame } from '../collect/collector';
import type { Problems } from '../problems';
import type { DenseHead } from '../inference/dense-head';
import type { Frame, FrameSource } from '../sources/source';
import type { FrameStats } from '../telemetry/stats';
import type { PredictionFilter } from './prediction-filter';

const log = createLogger('frames');

/** Scheduled frames failing in a row before the 'camera' problem is set (one glitch is not a failing camera). */
export const CAMERA_PROBLEM_AFTER = 3;

/** How a frame ended: classified (a prediction), unchanged (the motion gate skipped it) or failed. */
export type FrameOutcome = 'classified' | 'unchanged' | 'failed';

/** Sees every frame start and end (agent/service/health.ts: READY and the watchdog). Never throws. */
export interface FrameWatch {
  /** A frame starts; the returned function is called once when it ends. */
  frameStarted(): (outcome: FrameOutcome) => void;
}

export interface FrameLoopDeps {
  source: FrameSource;
  classifier: Classifier;
  filter: PredictionFilter;
  /** Sends a prediction on its way (the reliable publisher); resolves once it is sent or safely queued. */
  publish: (msg: PredictionMessage) => Promise<void>;
  events: EventBus;
  stats: FrameStats;
  /** This start's run number (state/run-counter.ts). */
  run: number;
  extractorId: string;
  /** Readable prediction lines (predictions.console); undefined = off. */
  print?: (line: string) => void;
  /** The 'camera' problem: set while scheduled frames keep failing, cleared by the next good frame. */
  problems?: Pick<Problems, 'set' | 'clear'>;
  /** preprocess.region: the crop when the active head carries no region of its own. */
  region?: Region;
  /** The motion gate (motion.gate): scheduled frames that did not change are not classified (frames.unchanged). */
  gate?: MotionGate;
  /** Each classified frame with its features, for the collector (agent/collect/; collect.enabled). Never throws. */
  collect?: (frame: CollectedFrame) => unknown;
  /** Sees frames start and end (the service health: READY, watchdog). */
  watch?: FrameWatch;
  /**
   * Called once when WASM_TRAPS_FATAL scheduled frames in a row failed with a WebAssembly trap (RuntimeError: memory
   * access out of bounds, unreachable...): the runtime's state is suspect and only a new process clears it. The agent
   * stops and exits non-zero so that the service manager starts it afresh (cli/commands/run.ts).
   */
  onBroken?: (error: string) => void;
}

/** Scheduled frames in a row that failed with a WebAssembly trap before onBroken is called. */
export const WASM_TRAPS_FATAL = 3;

export class FrameLoop implements HeadPort {
  private frameId = 0;
  private last: PredictionMessage | undefined;
  private inFlight = 0;
  private retired: DenseHead[] = [];
  private failedInRow = 0;
  private trapsInRow = 0;

  constructor(private readonly deps: FrameLoopDeps) {}

  startSource(): Promise<void> {
    return this.deps.source.start();
  }

  stopSource(): Promise<void> {
    return this.deps.source.stop();
  }

  /** One frame from the source, not classified (snapshots); the caller takes the run slot. */
  grabFrame(): Promise<Frame> {
    return this.deps.source.capture();
  }

  /** The prediction of the last classified frame, if any. */
  get lastPrediction(): PredictionMessage | undefined {
    return this.last;
  }

  /** A scheduled frame: a failure is logged and counted, and the loop goes on; failures in a row are a problem. */
  async tick(): Promise<void> {
    try {
      await this.classifyFrame();
    } catch (e) {
      const error = describeError(e);
      log.warn('frame failed', { error }); // identical repeats collapse into a summary line (base/log-repeats.ts)
      if (++this.failedInRow >= CAMERA_PROBLEM_AFTER) this.deps.problems?.set('camera', `frames keep failing: ${error}`);
      this.trapsInRow = isWasmTrap(e) ? this.trapsInRow + 1 : 0;
      if (this.trapsInRow === WASM_TRAPS_FATAL) {
        log.error('the WebAssembly runtime trapped on every frame: exiting so that a new process starts', { error, frames: this.trapsInRow });
        this.deps.onBroken?.(error);
      }
      return;
    }
    this.trapsInRow = 0;
  }

  /** A frame on request (the capture command): its own prediction, or its own error. Never filtered, never gated. */
  async capture(): Promise<PredictionMessage> {
    return (await this.classifyFrame('capture'))!; // only the gate returns no prediction, and it skips no capture
  }

  /** The region a frame is cropped to: its head's (a head trained for a region carries it), else preprocess.region. */
  regionFor(head: DenseHead): Region | undefined {
    return head.manifest.region ?? this.deps.region;
  }

  /** undefined: the motion gate found the frame unchanged (counted, nothing classified or published). */
  private async classifyFrame(reason?: 'capture'): Promise<PredictionMessage | undefined> {
    const { classifier, stats } = this.deps;
    const t0 = performance.now();
    const pinned = classifier.head;
    const ended = this.deps.watch?.frameStarted();
    let outcome: FrameOutcome = 'failed';
    this.inFlight++;
    try {
      let msg: PredictionMessage;
      let verdict: GateVerdict | undefined;
      try {
        const frame = await this.deps.source.capture();
        verdict = reason ? undefined : this.deps.gate?.look(frame.bytes, this.regionFor(pinned));
        if (verdict && !verdict.classify) {
          stats.unchanged++;
          outcome = 'unchanged';
          this.failedInRow = 0;
          this.deps.problems?.clear('camera');
          return undefined;
        }
        const result = classifier.classify(frame.bytes, pinned);
        msg = predictionMessage({
          capturedAt: frame.capturedAt,
          run: this.deps.run,
          frameId: ++this.frameId,
          source: frame.origin,
          top: result.predictions,
          head: pinned.manifest,
          extractor: this.deps.extractorId,
          ms: { capture: frame.captureMs, ...result.timings },
          reason,
        });
        stats.ok++;
        outcome = 'classified';
        this.failedInRow = 0;
        this.deps.problems?.clear('camera');
        stats.record({ ...msg.ms, total: performance.now() - t0 });
        this.deps.collect?.({ bytes: frame.bytes, capturedAt: frame.capturedAt, run: msg.run, frameId: msg.frameId, features: classifier.lastFeatures!, top1: msg.top[0]!, head: pinned.manifest, region: this.regionFor(pinned) ?? null });
      } catch (e) {
        stats.failed++;
        throw e;
      }
      if (pinned === classifier.head) await this.deps.events.emit('frameClassified', { features: classifier.lastFeatures!, top1: msg.top[0]!.label });
      this.last = msg;
      await this.emit(msg);
      // The gate's reference: a frame of the active head (after a swap the next frame is classified), taken after
      // the filter saw it, so the gate's maxAgeMs never runs out before the filter's heartbeat is due.
      if (verdict && pinned === classifier.head) this.deps.gate!.classified(verdict);
      return msg;
    } finally {
      if (--this.inFlight === 0) this.disposeRetired();
      ended?.(outcome);
    }
  }

  /** The last frame predicted again by the (new) active head, published at once (reason "head-swap"). */
  async repredictLast(): Promise<void> {
    const { classifier } = this.deps;
    const last = this.last;
    const features = classifier.lastFeatures;
    if (!last || !features) return;
    const t0 = performance.now();
    const top = classifier.predictFeatures(features);
    const msg = predictionMessage({
      capturedAt: Date.parse(last.ts),
      run: last.run,
      frameId: ++this.frameId,
      source: last.source,
      top,
      head: classifier.head.manifest,
      extractor: last.extractor,
      ms: { capture: 0, decode: 0, resize: 0, extract: 0, head: performance.now() - t0 },
      reason: 'head-swap',
    });
    this.last = msg;
    await this.emit(msg);
  }

  /** Publishes (or suppresses) a prediction and announces the plain state. A capture's prediction leaves the state
   * alone (it bypasses the filter's debounce); a head-swap re-prediction sets it (the labels changed). */
  private async emit(msg: PredictionMessage): Promise<void> {
    const { filter, stats } = this.deps;
    const decision = msg.reason ? { publish: true as const, state: msg.reason === 'head-swap' ? filter.plainLabel(msg.top[0]!) : undefined } : filter.decide(msg.top[0]!);
    if (decision.state !== undefined) await this.deps.events.emit('plainState', { label: decision.state });
    if (decision.publish && 'heartbeat' in decision) msg = this.last = { ...msg, reason: 'heartbeat' };
    if (!decision.publish) {
      stats.suppressed++;
      this.deps.print?.(formatPrediction(msg, false));
      return;
    }
    await this.deps.publish(msg);
    stats.published++;
    // Printed once the publisher has it (sent, or safely in the offline queue): a printed prediction is delivered.
    this.deps.print?.(formatPrediction(msg, true));
  }

  // HeadPort ---------------------------------------------------------------------------------------------------

  lastFeatures(): Float32Array | undefined {
    return this.deps.classifier.lastFeatures;
  }

  top1(head: DenseHead, features: Float32Array): string {
    return this.deps.classifier.predictFeatures(features, head)[0]!.label;
  }

  install(head: DenseHead): void {
    this.deps.filter.reset(); // the labels may mean something else now
    this.deps.gate?.reset(); // ... and the region too: the next frame is classified
    const old = this.deps.classifier.swapHead(head);
    if (this.inFlight > 0) this.retired.push(old);
    else old.dispose();
  }

  private disposeRetired(): void {
    for (const h of this.retired.splice(0)) h.dispose();
  }

  /** Disposes the heads it holds (after the scheduler stopped). */
  dispose(): void {
    this.disposeRetired();
    this.deps.classifier.head.dispose();
  }
}

export function formatPrediction(msg: PredictionMessage, published: boolean): string {
  const [top, ...rest] = msg.top;
  const others = rest.map((p) => `${p.label} ${p.score.toFixed(2)}`).join(', ');
  const total = Object.values(msg.ms).reduce((a, b) => a + b, 0);
  return `#${msg.frameId} ${msg.source}: ${top!.label} ${top!.score.toFixed(2)}${others ? ` (${others})` : ''}  ${total.toFixed(0)} ms${published ? '' : '  [not published]'}${msg.reason ? `  [${msg.reason}]` : ''}`;
}

/** A trap of WebAssembly code (the tfjs backend's or a decoder's; or wrapped as a cause), not a JavaScript error. */
function isWasmTrap(e: unknown): boolean {
  const RuntimeError = (globalThis as unknown as { WebAssembly?: { RuntimeError?: new () => Error } }).WebAssembly?.RuntimeError;
  for (let c: unknown = e, depth = 0; c !== undefined && c !== null && depth < 5; c = (c as { cause?: unknown }).cause, depth++) {
    if (RuntimeError !== undefined && c instanceof RuntimeError) return true;
  }
  return false;
}
