/**
 * libcamera cameras (Raspberry Pi camera modules) for `edgehead doctor`, as rpicam-apps list them:
 * `rpicam-hello --list-cameras` (else rpicam-still, or libcamera-hello / libcamera-still on older systems). The output
 * parsed (rpicam-apps 1.4/1.5):
 *
 *   Available cameras
 *   -----------------
 *   0 : imx708 [4608x2592 10-bit RGGB] (/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a)
 *       Modes: 'SRGGB10_CSI2P' : 1536x864 [120.13 fps - (768, 432)/3072x1728 crop]
 *                                2304x1296 [56.03 fps - (0, 0)/4608x2592 crop]
 *
 * or "No cameras available!". libcamera's own log lines go to stderr and are ignored.
 */
import * as path from 'node:path';
import { findExecutable, runTool } from './run-tool';

export interface LibcameraCamera {
  index: number;
  /** Sensor name, e.g. "imx708", "imx219". */
  sensor: string;
  /** The bracketed summary, e.g. "4608x2592 10-bit RGGB". */
  summary: string;
  /** Device-tree path of the sensor. */
  path: string;
  /** Sensor modes "WxH@fps", e.g. "1536x864@120.13", in the listed order without repeats. */
  modes: string[];
}

export interface LibcameraReport {
  /** The command that listed them (e.g. "rpicam-hello --list-cameras"); null when no rpicam-apps command is installed. */
  tool: string | null;
  cameras: LibcameraCamera[];
  /** Why listing failed (timeout, exit code with its stderr's last line). */
  error?: string;
}

export const LIST_CAMERA_TOOLS = ['rpicam-hello', 'rpicam-still', 'libcamera-hello', 'libcamera-still'] as const;

export interface LibcameraProbeOptions {
  /** Commands tried in order (names on PATH, or paths). */
  tools?: readonly string[];
  pathEnv?: string;
  timeoutMs?: number;
}

export async function probeLibcamera(opts: LibcameraProbeOptions = {}): Promise<LibcameraReport> {
  const bin = findExecutable(opts.tools ?? LIST_CAMERA_TOOLS, opts.pathEnv);
  if (!bin) return { tool: null, cameras: [] };
  const tool = `${path.basename(bin)} --list-cameras`;
  // Opening the camera manager takes a second or two on a Pi; a busy camera does not stop it listing.
  const r = await runTool(bin, ['--list-cameras'], { timeoutMs: opts.timeoutMs ?? 15_000 });
  const cameras = parseListCameras(r.stdout);
  if (r.error && cameras.length === 0 && !/No cameras available/i.test(r.stdout + r.stderr)) {
    const why = r.stderr.split('\n').map((l) => l.trim()).filter(Boolean).pop();
    return { tool, cameras, error: why ? `${r.error}: ${why}` : r.error };
  }
  return { tool, cameras };
}

export function parseListCameras(text: string): LibcameraCamera[] {
  const cameras: LibcameraCamera[] = [];
  let current: LibcameraCamera | undefined;
  for (const line of text.split('\n')) {
    const cam = /^\s*(\d+)\s*:\s*(\S+)\s*\[([^\]]*)\]\s*(?:\(([^)]*)\))?/.exec(line);
    if (cam) {
      current = { index: Number(cam[1]), sensor: cam[2]!, summary: cam[3]!.trim(), path: cam[4] ?? '', modes: [] };
      cameras.push(current);
      continue;
    }
    if (!current) continue;
    for (const m of line.matchAll(/(\d+x\d+)\s*\[\s*([\d.]+)\s*fps/g)) {
      const mode = `${m[1]}@${m[2]}`;
      if (!current.modes.includes(mode)) current.modes.push(mode);
    }
  }
  return cameras;
}
