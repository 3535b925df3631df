import { createHash } from 'node:crypto';

export function sha256Hex(...chunks: (Uint8Array | string)[]): string {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest('hex');
}
