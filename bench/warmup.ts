/** Warm-up until steady, for the bench workers (bench/worker.ts). */

export const WARMUP_BLOCK = 15;
export const WARMUP_STEADY = 0.05;
export const WARMUP_MAX = 150;

/**
 * Runs blocks of frames until three blocks in a row have median extract times within WARMUP_STEADY of each other's
 * neighbour (2 threads speed up over ~45 frames: 16.6 -> 14.4 -> 13.1 -> 11.7 ms per 15-frame block on MobileNetV2
 * 1.0), at most WARMUP_MAX frames.
 */
export async function warmUntilSteady(frameMs: () => number | Promise<number>): Promise<{ frames: number; blockMedians: number[] }> {
  const medians: number[] = [];
  let frames = 0;
  while (frames < WARMUP_MAX) {
    const xs: number[] = [];
    for (let i = 0; i < WARMUP_BLOCK; i++) xs.push(await frameMs());
    frames += WARMUP_BLOCK;
    xs.sort((x, y) => x - y);
    medians.push(Math.round(xs[xs.length >> 1]! * 100) / 100);
    // Steady = the last two changes both within WARMUP_STEADY: two similar blocks alone can sit on a plateau of the
    // ramp (1.4 at 2 threads: 34.3, 35.0, then 23.8, 22.2, 21.9 ms).
    const [a, b, c] = medians.slice(-3);
    const close = (x: number, y: number) => Math.abs(y - x) <= WARMUP_STEADY * x;
    if (c !== undefined && close(a!, b!) && close(b!, c)) break;
  }
  return { frames, blockMedians: medians };
}
