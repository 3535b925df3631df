/** What the machine is doing besides the benchmark (CPU time from /proc, a busy-thread noise probe), for bench/run.ts. */
import * as os from 'node:os';
import { Worker } from 'node:worker_threads';

export { machineCpuMs, processCpuMs } from '../agent/telemetry/cpu-time';

const round2 = (x: number) => Math.round(x * 100) / 100;

/**
 * How much CPU time a busy thread loses on this machine right now: one thread per CPU spins for `seconds` reading the
 * clock; every jump over 50 us is time it did not run (preempted by other work, interrupts, or the hypervisor
 * running another guest). Returns the share lost, averaged over the threads, and the longest single gap.
 */
export async function cpuNoise(seconds: number): Promise<{ lostPercent: number; maxGapMs: number }> {
  const src = `
    const { parentPort, workerData } = require('node:worker_threads');
    const end = process.hrtime.bigint() + BigInt(workerData * 1e9);
    let last = process.hrtime.bigint(), lost = 0n, max = 0n;
    for (;;) { const t = process.hrtime.bigint(); const g = t - last; if (g > 50000n) { lost += g; if (g > max) max = g; } last = t; if (t > end) break; }
    parentPort.postMessage([Number(lost) / (workerData * 1e9), Number(max) / 1e6]);`;
  const runs = await Promise.all(
    os.cpus().map(
      () =>
        new Promise<[number, number]>((resolve, reject) => {
          const w = new Worker(src, { eval: true, workerData: seconds });
          w.once('message', resolve).once('error', reject);
        }),
    ),
  );
  return { lostPercent: round2((100 * runs.reduce((a, r) => a + r[0], 0)) / runs.length), maxGapMs: round2(Math.max(...runs.map((r) => r[1]))) };
}
