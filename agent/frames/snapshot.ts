/**
 * Snapshots: a frame of the camera as JPEG on <prefix>/<device>/snapshot, so users can aim it (Home Assistant's MQTT
 * image entity reads the raw JPEG bytes from that topic). Taken by the `snapshot` command and, with
 * snapshot.intervalSec, periodically.
 *
 * A snapshot takes the scheduler's run slot, like `capture`, so it never overlaps a frame (the camera is grabbed
 * and the image encoded inside the slot; only the publish happens after). The frame is decoded by the frame
 * pipeline's decoder (agent/image: a JPEG is decoded at a reduced DCT scale when the snapshot is much narrower),
 * resized with the pipeline's bilinear convention, made upright (EXIF orientation: the JPEG written carries no EXIF),
 * and encoded with jpeg-js. A JPEG over snapshot.maxBytes is encoded again at lower qualities (down to 40), then at
 * smaller widths (down to 64 pixels); if it still does not fit, the snapshot is refused with an error
 * naming the size reached.
 *
 * QoS 0, not retained by default: a snapshot is a momentary look, not a state. A retained frame would stay on the
 * broker (and on its disk) until someone clears it: a picture of somebody's room handed to every later subscriber
 * of `<prefix>/#`, long after the device is gone. snapshot.retain opts in (a restarted Home Assistant then shows the
 * last picture at once instead of waiting for the next one).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as jpeg from 'jpeg-js';
import type { Clock, TimerHandle } from '../../base/clock';
import { EdgeheadError, describeError } from '../../base/errors';
import { createLogger } from '../../base/log';
import type { Config } from '../../config/schema';
import type { BrokerClient } from '../../mqtt/broker';
import { applyOrientation, decodeImage, type DecodedImage } from '../image';
import type { Scheduler } from '../schedule/scheduler';
import type { Frame } from '../sources/source';

const log = createLogger('snapshot');

/** Qualities tried after snapshot.quality (those below it), before the width is reduced. */
const FALLBACK_QUALITIES = [60, 40];
/** The narrowest snapshot tried before refusing. */
const MIN_WIDTH = 64;
/** How often a snapshot waits for a frame in flight to finish before it gives up (as `capture` does). */
const SLOT_ATTEMPTS = 3;

export type SnapshotSettings = Config['snapshot'];

export interface EncodedSnapshot {
  jpeg: Uint8Array;
  width: number;
  height: number;
  quality: number;
}

/** The reply of the snapshot command: what was published where. */
export interface SnapshotInfo {
  topic: string;
  bytes: number;
  width: number;
  height: number;
  quality: number;
  source: string;
  capturedAt: string;
  retained: boolean;
}

/** Frame bytes (JPEG or PNG) -> an upright JPEG at most `width` wide and `maxBytes` long. Throws BAD_IMAGE,
 * IMAGE_TOO_LARGE (agent/image) or SNAPSHOT (too large even at the
 * smallest width). */
export function encodeSnapshot(bytes: Uint8Array, s: Pick<SnapshotSettings, 'width' | 'quality' | 'maxBytes'>, maxPixels: number): EncodedSnapshot {
  const img = decodeImage(bytes, { maxPixels, targetSize: [1, s.width] });
  const uprightWidth = img.orientation >= 5 ? img.height : img.width;
  const qualities = [s.quality, ...FALLBACK_QUALITIES.filter((q) => q < s.quality)];
  let width = Math.min(s.width, uprightWidth);
  let smallest = Infinity;
  for (;;) {
    const px = uprightPixels(img, width);
    for (const quality of qualities) {
      const out = jpeg.encode({ data: px.data, width: px.width, height: px.height }, quality).data;
      if (out.length <= s.maxBytes) return { jpeg: new Uint8Array(out.buffer, out.byteOffset, out.length), width: px.width, height: px.height, quality };
      smallest = Math.min(smallest, out.length);
    }
    if (width <= MIN_WIDTH) {
      throw new EdgeheadError('SNAPSHOT', `the snapshot does not fit in snapshot.maxBytes = ${s.maxBytes} bytes (${smallest} bytes at ${width} pixels wide, quality ${qualities.at(-1)})`, {
        hint: 'raise snapshot.maxBytes',
      });
    }
    // JPEG size grows roughly with the pixel count: aim just under the cap, at least 20% narrower each round.
    width = Math.max(MIN_WIDTH, Math.floor(width * Math.min(0.8, Math.sqrt(s.maxBytes / smallest) * 0.95)));
  }
}

/** The decoded image resized to `width` (upright, aspect kept; never wider than it is) and made upright, as RGBA. */
function uprightPixels(img: DecodedImage, width: number): { data: Uint8Array; width: number; height: number } {
  const transposed = img.orientation >= 5;
  const [upW, upH] = transposed ? [img.height, img.width] : [img.width, img.height];
  const w = Math.min(width, upW);
  const h = Math.max(1, Math.round((upH * w) / upW));
  const out = tf.tidy(() => {
    let t: tf.Tensor4D = tf.tensor4d(Float32Array.from(img.data), [1, img.height, img.width, 4]);
    if (w !== upW) t = tf.image.resizeBilinear(t, transposed ? [w, h] : [h, w], false, true);
    return tf.round(tf.clipByValue(applyOrientation(t, img.orientation), 0, 255));
  });
  try {
    const [, height, widthOut] = out.shape;
    return { data: Uint8Array.from(out.dataSync()), width: widthOut, height };
  } finally {
    out.dispose();
  }
}

export interface SnapshotDeps {
  cfg: SnapshotSettings;
  /** preprocess.maxPixels: larger frames are refused from their header. */
  maxPixels: number;
  /** One frame from the source (FrameLoop.grabFrame). */
  grab: () => Promise<Frame>;
  scheduler: Pick<Scheduler, 'runNow' | 'idle' | 'paused'>;
  broker: BrokerClient;
  topic: string;
  clock: Clock;
}

export class Snapshots {
  private timer: TimerHandle | undefined;
  private stopped = false;
  private periodicBusy = false;

  constructor(private readonly deps: SnapshotDeps) {}

  /** Takes a frame in the run slot, encodes and publishes it. Throws what went wrong (the command replies with it). */
  async take(): Promise<SnapshotInfo> {
    const { broker, cfg, topic } = this.deps;
    if (!broker.connected) throw new EdgeheadError('SNAPSHOT', 'not connected to the broker: the snapshot could not be published');
    const { frame, snap } = await this.inRunSlot(async () => {
      const frame = await this.deps.grab();
      return { frame, snap: encodeSnapshot(frame.bytes, cfg, this.deps.maxPixels) };
    });
    await broker.publish(topic, snap.jpeg, { qos: 0, retain: cfg.retain });
    return {
      topic,
      bytes: snap.jpeg.byteLength,
      width: snap.width,
      height: snap.height,
      quality: snap.quality,
      source: frame.origin,
      capturedAt: new Date(frame.capturedAt).toISOString(),
      retained: cfg.retain,
    };
  }

  /** Starts the periodic snapshots (snapshot.intervalSec > 0). */
  start(): void {
    if (this.deps.cfg.intervalSec > 0) this.plan();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  private plan(): void {
    if (this.stopped) return;
    this.timer = this.deps.clock.setTimeout(() => {
      this.plan();
      void this.periodic();
    }, this.deps.cfg.intervalSec * 1000);
  }

  /** One periodic snapshot: none while paused (no scheduled frames means no camera use), offline, or still busy. */
  private async periodic(): Promise<void> {
    if (this.periodicBusy || this.deps.scheduler.paused || !this.deps.broker.connected) return;
    this.periodicBusy = true;
    try {
      await this.take();
    } catch (e) {
      log.warn('periodic snapshot failed', { error: describeError(e) });
    } finally {
      this.periodicBusy = false;
    }
  }

  private async inRunSlot<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; attempt < SLOT_ATTEMPTS; attempt++) {
      const ran = await this.deps.scheduler.runNow(fn);
      if (ran) return ran.value;
      await this.deps.scheduler.idle(); // a scheduled frame is in flight: take the next turn
    }
    throw new EdgeheadError('SNAPSHOT', 'frames are still in flight; try again');
  }
}
