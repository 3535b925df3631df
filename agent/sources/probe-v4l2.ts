/**
 * V4L2 cameras for `edgehead doctor`: every /dev/videoN, its name from /sys/class/video4linux/videoN/name and, when
 * v4l2-ctl (Debian: v4l-utils) is installed, the pixel formats `v4l2-ctl -d DEV --list-formats` reports. The folders
 * and the tool are parameters so that tests (and `doctor --root DIR`) read a fake tree.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { runTool } from './run-tool';

export interface V4l2Device {
  path: string;
  /** The driver's name for it (e.g. "UVC Camera (046d:0825)", "unicam-image"); null when sysfs does not say. */
  name: string | null;
  /** FourCCs of its capture formats (e.g. ["YUYV", "MJPG"]); [] for a node without any (metadata, codec, ISP nodes);
   * null when they could not be listed (see formatsError). */
  formats: string[] | null;
  formatsError?: string;
}

export interface V4l2Report {
  devices: V4l2Device[];
  /** "install v4l-utils" when v4l2-ctl is missing (formats are then null). */
  note?: string;
}

export interface V4l2ProbeOptions {
  devDir?: string;
  sysDir?: string;
  /** The v4l2-ctl executable (default: v4l2-ctl on PATH). */
  v4l2ctl?: string;
  timeoutMs?: number;
}

export const INSTALL_V4L_UTILS = 'install v4l-utils';

export async function probeV4l2(opts: V4l2ProbeOptions = {}): Promise<V4l2Report> {
  const devDir = opts.devDir ?? '/dev';
  const sysDir = opts.sysDir ?? '/sys/class/video4linux';
  let entries: string[];
  try {
    entries = await fs.readdir(devDir);
  } catch {
    entries = [];
  }
  const nodes = entries
    .filter((e) => /^video\d+$/.test(e))
    .sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
  let missingTool = false;
  const devices: V4l2Device[] = [];
  for (const node of nodes) {
    const dev: V4l2Device = { path: path.join(devDir, node), name: await readName(path.join(sysDir, node, 'name')), formats: null };
    if (!missingTool) {
      const r = await runTool(opts.v4l2ctl ?? 'v4l2-ctl', ['-d', dev.path, '--list-formats'], { timeoutMs: opts.timeoutMs ?? 5000 });
      if (r.notFound) missingTool = true;
      else if (r.error) dev.formatsError = firstLine(r.stderr) || r.error;
      else dev.formats = parseV4l2Formats(r.stdout);
    }
    devices.push(dev);
  }
  return missingTool ? { devices, note: INSTALL_V4L_UTILS } : { devices };
}

/**
 * The FourCCs in `v4l2-ctl --list-formats` output:
 *
 *   ioctl: VIDIOC_ENUM_FMT
 *   	Type: Video Capture
 *
 *   	[0]: 'YUYV' (YUYV 4:2:2)
 *   	[1]: 'MJPG' (Motion-JPEG, compressed)
 */
export function parseV4l2Formats(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*\[\d+\]:\s*'([^']{1,4})'/gm)) {
    const fourcc = m[1]!.trim();
    if (fourcc && !out.includes(fourcc)) out.push(fourcc);
  }
  return out;
}

async function readName(file: string): Promise<string | null> {
  try {
    const name = (await fs.readFile(file, 'utf8')).trim();
    return name || null;
  } catch {
    return null;
  }
}

function firstLine(s: string): string {
  return s.split('\n').map((l) => l.trim()).find(Boolean) ?? '';
}
