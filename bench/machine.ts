/** What the machine is doing besides the benchmark (CPU time from /proc, a busy-thread noise probe), for bench/run.ts. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { Worker } from 'node:worker_threads';

const round2 = (x: number) => Math.round(x * 100) / 100;

/** CPU time (ms) used so far by a process and all its threads, from /proc (Linux; 0 elsewhere). */
export function processCpuMs(pid: number): number {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10; // utime + stime, in USER_HZ (100 on Linux)
  } catch {
    return 0;
  }
}

/** Busy and total CPU time of the whole machine (ms, all cores), from /proc/stat. */
export function machineCpuMs(): { busy: number; total: number } | undefined {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0) * 10;
    const idle = (f[3]! + f[4]!) * 10;
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

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
