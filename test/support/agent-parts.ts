/**
 * Small stand-ins for the agent's heavy parts, for in-process tests of the composition root and its services:
 * an extractor that averages each colour channel (3-d features, CPU backend, no model files), heads trained for
 * it by hand, and a frame source whose next frames (or failures) the test scripts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { EdgeheadError } from '../../base/errors';
import type { Extractor } from '../../agent/extractors/extractor';
import type { Frame, FrameSource } from '../../agent/sources/source';
import { encodeHead, makeHeadFile } from '../../protocol/head/format';

/** A real JPEG from the bundled samples. */
export const SAMPLE_JPEG = new Uint8Array(fs.readFileSync(path.join(__dirname, '..', '..', 'assets', 'samples', 'fish', 'fish1.jpg')));

export const MEAN_RGB_INFO = {
  id: 'mean-rgb',
  source: 'test',
  format: 'graph' as const,
  inputSize: [8, 8] as [number, number],
  featureDim: 3,
  valueRange: [0, 1] as [number, number],
  fingerprint: 'ab'.repeat(32),
  paramCount: 0,
};

/** Features = the mean of each colour channel of the (8x8) input. */
export function meanRgbExtractor(): Extractor & { disposed: boolean } {
  return {
    info: MEAN_RGB_INFO,
    disposed: false,
    extract: (x) => tf.tidy(() => tf.mean(x, [1, 2]) as tf.Tensor2D),
    dispose() {
      this.disposed = true;
    },
  };
}

/** A head for meanRgbExtractor: class i scores feature i highest ("red", "green", "blue"), or given labels. */
export function rgbHead(id: string, version: number, labels = ['red', 'green', 'blue']): Uint8Array {
  const kernel = new Float32Array(9);
  for (let i = 0; i < 3; i++) kernel[i * 3 + i] = 10;
  return encodeHead(
    makeHeadFile({ id, version, classes: labels, extractor: { id: MEAN_RGB_INFO.id, fingerprint: MEAN_RGB_INFO.fingerprint }, kernel, bias: new Float32Array(3), createdAt: new Date('2026-01-01T00:00:00Z') }),
  );
}

type Script = { bytes: Uint8Array } | { error: string } | { throws: Error } | { wait: Promise<void>; bytes: Uint8Array };

/** A frame source that returns SAMPLE_JPEG unless the test queued something else with next(). */
export class ScriptedSource implements FrameSource {
  readonly type = 'scripted';
  captures = 0;
  started = false;
  stopped = false;
  private readonly script: Script[] = [];

  next(s: Script): void {
    this.script.push(s);
  }

  async start(): Promise<void> {
    this.started = true;
  }

  async capture(): Promise<Frame> {
    this.captures++;
    const s = this.script.shift() ?? { bytes: SAMPLE_JPEG };
    if ('error' in s) throw new EdgeheadError('CAPTURE', s.error);
    if ('throws' in s) throw s.throws;
    if ('wait' in s) await s.wait;
    return { bytes: s.bytes, capturedAt: Date.UTC(2026, 0, 1, 0, 0, this.captures), origin: `scripted:${this.captures}`, captureMs: 1 };
  }

  async stop(): Promise<void> {
    this.stopped = true;
  }
}

/** Resolves once cond() holds, checking after each turn of the event loop (at most `turns` turns). */
export async function until(what: string, cond: () => boolean, turns = 2000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`timed out waiting for: ${what}`);
}
