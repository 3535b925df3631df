/** Warm-up until steady, for the bench workers (bench/worker.ts). */

export const WARMUP_BLOCK = 15;
export const WARMUP_STEADY = 0.05;
export const WARMUP_MAX = 150;

/**
 * Runs blocks of frames until one block's median extract time is within WARMUP_STEADY of the block before
 * (2 threads speed up over ~45 frames: 16.6 -> 14.4 -> 13.1 -> 11.7 ms per 15-frame block on MobileNetV2 1.0).
 */
export function warmUntilSteady(frameMs: () => number): { frames: number; blockMedians: number[] } {
  const medians: number[] = [];
  let frames = 0;
  while (frames < WARMUP_MAX) {
    const xs: number[] = [];
    for (let i = 0; i < WARMUP_BLOCK; i++) xs.push(frameMs());
    frames += WARMUP_BLOCK;
    xs.sort((x, y) => x - y);
    medians.push(Math.round(xs[xs.length >> 1]! * 100) / 100);
    const [prev, last] = medians.slice(-2);
    if (prev !== undefined && Math.abs(last! - prev) <= WARMUP_STEADY * prev) break;
  }
  return { frames, blockMedians: medians };
}
