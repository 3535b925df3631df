/**
 * Where the project's own resources live. From source (agent/<dir>/file.ts) they are at the repository root; from
 * the esbuild bundle (dist/edgehead.cjs) they sit next to the bundle. EDGEHEAD_HOME overrides both.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

function roots(): string[] {
  const r: string[] = [];
  if (process.env.EDGEHEAD_HOME) r.push(process.env.EDGEHEAD_HOME);
  r.push(__dirname, path.resolve(__dirname, '..'));
  return r;
}

/** Absolute path of a bundled resource, e.g. resourcePath('models', 'mobilenet_v2_140'). */
export function resourcePath(...parts: string[]): string {
  const candidates = roots().map((r) => path.join(r, ...parts));
  return candidates.find((c) => fs.existsSync(c)) ?? candidates[candidates.length - 1]!;
}
