/** Machine facts for telemetry: memory, CPU temperature (where /sys/class/thermal exists), load, free disk. */
import * as fs from 'node:fs';
import * as os from 'node:os';

export function cpuTemperatureC(thermalRoot = '/sys/class/thermal'): number | null {
  try {
    const zones = fs.readdirSync(thermalRoot).filter((z) => z.startsWith('thermal_zone')).sort();
    for (const z of zones) {
      const raw = fs.readFileSync(`${thermalRoot}/${z}/temp`, 'utf8').trim();
      const milli = Number(raw);
      if (Number.isFinite(milli) && raw !== '') return Math.round(milli / 100) / 10;
    }
  } catch {
    // no thermal zones (VMs, containers)
  }
  return null;
}

export function diskFreeMB(dir: string): number | null {
  try {
    const s = fs.statfsSync(dir);
    return Math.round((s.bavail * s.bsize) / 1024 / 1024);
  } catch {
    return null;
  }
}

export function memoryMB(): { rssMB: number; heapMB: number } {
  const m = process.memoryUsage();
  return { rssMB: Math.round(m.rss / 1024 / 1024), heapMB: Math.round(m.heapUsed / 1024 / 1024) };
}

export function loadAverage(): [number, number, number] {
  const [a, b, c] = os.loadavg();
  return [a!, b!, c!].map((x) => Math.round(x * 100) / 100) as [number, number, number];
}
