/**
 * What `extractor.ref` (and the CLI's --extractor) names, decided from its spelling alone: the config loader resolves
 * relative paths with it and the extractor loader (agent/extractors/load.ts) dispatches on it, so both always agree.
 *   - an http(s) URL: a TF.js model downloaded once and cached with its sha256;
 *   - a path when it is absolute, contains "/" (or "\"), or starts with "." or "~": a local TF.js model folder;
 *   - anything else: a catalogue id (an unknown one is an error naming the catalogue; a folder beside the current
 *     directory is written ./NAME).
 */
import * as path from 'node:path';
import { HTTP_URL_RE } from '../protocol/patterns';

export type ExtractorRefKind = 'url' | 'path' | 'catalogue';

export function extractorRefKind(ref: string): ExtractorRefKind {
  if (HTTP_URL_RE.test(ref)) return 'url';
  if (path.isAbsolute(ref) || /[\\/]/.test(ref) || ref.startsWith('.') || ref.startsWith('~')) return 'path';
  return 'catalogue';
}

/** The rule above in a few words, for the schema's description and error hints. */
export const EXTRACTOR_REF_RULE =
  'a catalogue id (docs/extractors.md), a local TF.js model folder (a path: absolute, or containing "/", or starting with "." or "~"), or an http(s) URL of a TF.js feature-vector model';

/** Pixel range of models outside the catalogue unless extractor.valueRange says otherwise (TF Hub's convention). */
export const DEFAULT_VALUE_RANGE: readonly [number, number] = [0, 1];
