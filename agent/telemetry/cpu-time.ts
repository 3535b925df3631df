/** CPU time from /proc (Linux; elsewhere the readers answer 0 / undefined): this process's and the machine's. */
import * as fs from 'node:fs';

/** CPU time (ms) used so far by a process and all its threads. */
export function processCpuMs(pid: number = process.pid): number {
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
 * How many cores other processes kept busy lately: machine busy time minus this process's, over wall time, sampled
 * at most once per `minIntervalMs` (USER_HZ ticks make shorter spans noisy). Undefined until two samples exist, or
 * where /proc is missing.
 */
export class OtherCpuLoad {
  private last: { at: number; busy: number; own: number } | undefined;
  private value: number | undefined;

  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly machine: () => { busy: number } | undefined = machineCpuMs,
    private readonly own: () => number = processCpuMs,
    private readonly minIntervalMs = 2000,
  ) {}

  /** The latest estimate, refreshed when enough time has passed. */
  sample(): number | undefined {
    const at = this.now();
    if (this.last && at - this.last.at < this.minIntervalMs) return this.value;
    const m = this.machine();
    if (!m) return undefined;
    const cur = { at, busy: m.busy, own: this.own() };
    if (this.last) this.value = Math.max(0, cur.busy - this.last.busy - (cur.own - this.last.own)) / (at - this.last.at);
    this.last = cur;
    return this.value;
  }
}
