/**
 * Raspberry Pi under-voltage and throttling, as the firmware reports it: a bit field where bits 0-3 are conditions
 * present now and bits 16-19 the same conditions since boot ("has occurred"):
 *
 *   bit 0 / 16  under-voltage            (the supply dropped below ~4.63 V)
 *   bit 1 / 17  arm-frequency-capped     (the ARM clock is capped, e.g. at the temperature limit)
 *   bit 2 / 18  throttled                (the firmware lowered the clocks)
 *   bit 3 / 19  soft-temperature-limit   (the soft temperature limit is active)
 *
 * Read from /sys/devices/platform/soc/soc:firmware/get_throttled (Raspberry Pi kernels, e.g. bookworm's, expose the
 * value there as hex: "50005") or from `vcgencmd get_throttled` ("throttled=0x50005"). Telemetry reads only the sysfs
 * file (synchronous, no process per message); `edgehead doctor` falls back to vcgencmd. Elsewhere: null.
 */
import * as fs from 'node:fs';
import { THROTTLE_CONDITIONS, type Throttled } from '../../protocol/messages';
import { runTool } from '../sources/run-tool';

export { THROTTLE_CONDITIONS, type ThrottleCondition } from '../../protocol/messages';

export const THROTTLED_SYSFS = '/sys/devices/platform/soc/soc:firmware/get_throttled';

/** Conditions present now (bits 0-3), those that occurred since boot (bits 16-19), the raw value ("0x50005"). */
export type ThrottledState = Throttled;

export function decodeThrottled(value: number): ThrottledState {
  const bits = (offset: number) => THROTTLE_CONDITIONS.filter((_, i) => (value >>> (offset + i)) & 1);
  return { now: bits(0), occurred: bits(16), raw: `0x${value.toString(16)}` };
}

/** The value in "throttled=0x50005", "0x50005" or "50005" (always hex); null for anything else. */
export function parseThrottled(text: string): number | null {
  const m = /^\s*(?:throttled=)?(?:0x)?([0-9a-fA-F]{1,8})\s*$/.exec(text);
  return m ? parseInt(m[1]!, 16) : null;
}

/** From the sysfs file; null when it is absent or unreadable (not a Pi, or an older kernel) or says something else. */
export function readThrottledSync(file = THROTTLED_SYSFS): ThrottledState | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const v = parseThrottled(text);
  return v === null ? null : decodeThrottled(v);
}

export interface ThrottledProbe {
  state: ThrottledState | null;
  /** Where it came from: the sysfs file's path or "vcgencmd get_throttled"; null when neither answered. */
  source: string | null;
  /** Why vcgencmd gave nothing, when it is installed but failed. */
  error?: string;
}

/** For doctor: the sysfs file, else `vcgencmd get_throttled`. */
export async function probeThrottled(opts: { sysfsFile?: string; vcgencmd?: string; timeoutMs?: number } = {}): Promise<ThrottledProbe> {
  const file = opts.sysfsFile ?? THROTTLED_SYSFS;
  const fromSysfs = readThrottledSync(file);
  if (fromSysfs) return { state: fromSysfs, source: file };
  const r = await runTool(opts.vcgencmd ?? 'vcgencmd', ['get_throttled'], { timeoutMs: opts.timeoutMs ?? 5000 });
  if (r.notFound) return { state: null, source: null };
  const v = r.error ? null : parseThrottled(r.stdout.trim());
  if (v === null) {
    const why = r.error || `unexpected output "${r.stdout.trim().slice(0, 80)}"`;
    const detail = r.stderr.trim().split('\n').pop();
    return { state: null, source: null, error: detail ? `${why}: ${detail}` : why };
  }
  return { state: decodeThrottled(v), source: 'vcgencmd get_throttled' };
}
