/**
 * `tsx bench/onnx/check.ts [ids...]`: onnxruntime-web's features against ours on the bundled sample frames, the same
 * preprocessed input given to both (our fused executor on the WASM backend, 1 thread; ORT on 1 thread). Prints JSON:
 * per model, the largest absolute difference over all frames and features, and the largest feature for scale.
 * npm run bench runs it after the timed frames; a peer's timing means something only if its features match.
 */
import { initBackend } from '../../agent/backend/wasm';
import type { Extractor } from '../../agent/extractors/extractor';
import { loadExtractor } from '../../agent/extractors/load';
import { preprocessFrame } from '../../agent/inference/features';
import { FEATURE_OPTIONS, sampleFrames } from '../worker-common';
import { loadOrtExtractor, ORT_LABEL, type OrtExtractor } from './ort-extractor';

export interface FeatureDiff {
  frames: number;
  maxAbsDiff: number;
  maxAbsFeature: number;
}

/** Both extractors on the same input tensor per frame. */
export async function compareFeatures(ours: Extractor, peer: OrtExtractor, frames: Uint8Array[]): Promise<FeatureDiff> {
  let maxAbsDiff = 0;
  let maxAbsFeature = 0;
  for (const bytes of frames) {
    const { input } = preprocessFrame(ours.info, bytes, FEATURE_OPTIONS);
    try {
      const out = ours.extract(input);
      const a = out.dataSync() as Float32Array;
      out.dispose();
      const b = await peer.extract(input);
      if (a.length !== b.length) throw new Error(`${ours.info.id}: ${a.length} features from edgehead, ${b.length} from ORT`);
      for (let i = 0; i < a.length; i++) {
        maxAbsDiff = Math.max(maxAbsDiff, Math.abs(a[i]! - b[i]!));
        maxAbsFeature = Math.max(maxAbsFeature, Math.abs(a[i]!));
      }
    } finally {
      input.dispose();
    }
  }
  return { frames: frames.length, maxAbsDiff, maxAbsFeature };
}

/** What main() prints. */
export interface OrtCheck {
  runtime: string;
  models: Record<string, FeatureDiff & { onnxOps: Record<string, number> }>;
}

async function main(ids: string[]): Promise<void> {
  await initBackend({ backend: 'wasm', threads: 1 });
  const frames = sampleFrames();
  const models: OrtCheck['models'] = {};
  for (const id of ids) {
    const ours = await loadExtractor({ ref: id, fused: true });
    const peer = await loadOrtExtractor(id, 1);
    try {
      models[id] = { ...(await compareFeatures(ours, peer, frames)), onnxOps: peer.onnx.opCounts };
    } finally {
      ours.dispose();
      await peer.dispose();
    }
  }
  process.stdout.write(JSON.stringify({ runtime: ORT_LABEL, models } satisfies OrtCheck) + '\n');
}

if (require.main === module) {
  const ids = process.argv.slice(2);
  main(ids.length ? ids : ['mobilenet_v2_100', 'mobilenet_v2_140']).then(
    () => process.exit(0), // ORT's pthread pool would keep the process alive
    (e) => {
      process.stderr.write(`onnx check failed: ${(e as Error).stack ?? e}\n`);
      process.exit(1);
    },
  );
}
