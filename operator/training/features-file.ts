/**
 * Reading a feature side-file (protocol/dataset.ts SampleSchema, as `dataset pull` writes it) for training or
 * evaluation: schema-checked, refused when its extractor fingerprint or feature size is not the one the head is for.
 */
import * as fs from 'node:fs';
import { EdgeheadError } from '../../base/errors';
import { decodeFeatures, type Sample, SampleSchema } from '../../protocol/dataset';
import { schemaErrors } from '../../protocol/validate';

export interface ExpectedExtractor {
  id: string;
  fingerprint: string;
  featureDim: number;
}

/** Side-files are a few KiB; anything far larger is not one. */
export const MAX_SIDE_FILE_BYTES = 4 * 1024 * 1024;

const short = (fp: string) => fp.slice(0, 12);

export function readSampleFile(file: string, expected: ExpectedExtractor): { sample: Sample; features: Float32Array } {
  const bad = (m: string, hint?: string) => new EdgeheadError('BAD_ARGS', `${file}: ${m}`, hint ? { hint } : {});
  let text: string;
  try {
    const size = fs.statSync(file).size;
    if (size > MAX_SIDE_FILE_BYTES) throw bad(`${size} bytes, larger than a sample side-file can be (${MAX_SIDE_FILE_BYTES})`);
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof EdgeheadError) throw e;
    throw new EdgeheadError('IO', `${file}: cannot read (${(e as Error).message})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw bad(`not JSON (${(e as Error).message})`);
  }
  const errors = schemaErrors(SampleSchema, value, 'sample', 3);
  if (errors.length > 0) throw bad(`not a sample side-file: ${errors.join('; ')}`);
  const sample = value as Sample;
  if (sample.extractor.fingerprint !== expected.fingerprint) {
    throw bad(
      `features from extractor ${sample.extractor.id} (fingerprint ${short(sample.extractor.fingerprint)}…), but the head is for ${expected.id} (fingerprint ${short(expected.fingerprint)}…)`,
      `train with --extractor set to the device's extractor, or move samples of other extractors out of the class folders`,
    );
  }
  if (sample.featureDim !== expected.featureDim) throw bad(`${sample.featureDim}-d features, the extractor gives ${expected.featureDim}-d`);
  let features: Float32Array;
  try {
    features = decodeFeatures(sample);
  } catch (e) {
    throw bad((e as Error).message);
  }
  for (let i = 0; i < features.length; i++) if (!Number.isFinite(features[i]!)) throw bad(`feature ${i} is not finite`);
  return { sample, features };
}
