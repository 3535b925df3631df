/**
 * `edgehead doctor`: what this machine gives the agent: backend, SIMD, threads, Node, CPUs, models; the cameras
 * (V4L2 devices, libcamera cameras through rpicam-apps); Raspberry Pi under-voltage/throttling; whether the configured
 * broker is reachable. The probing lives in small modules (agent/sources/probe-*.ts, agent/telemetry/throttled.ts,
 * mqtt/probe.ts); this file runs them and prints the report.
 */
import * as path from 'node:path';
import { type BackendInfo, initBackend } from '../../agent/backend/wasm';
import { initImageCodecs } from '../../agent/image';
import { CATALOGUE } from '../../agent/extractors/catalogue';
import { readModelFolder } from '../../agent/extractors/model-files';
import { type LibcameraReport, probeLibcamera } from '../../agent/sources/probe-libcamera';
import { type V4l2Report, probeV4l2 } from '../../agent/sources/probe-v4l2';
import { THROTTLED_SYSFS, type ThrottledProbe, probeThrottled } from '../../agent/telemetry/throttled';
import { resourcePath } from '../../base/paths';
import { agentVersion } from '../../base/version';
import { loadConfig } from '../../config/load';
import { probeBroker } from '../../mqtt/probe';
import { choiceArg, type Command, defineCommand } from '../args';
import type { CommandSpec } from '../spec';
import { BACKEND_CHOICES } from '../runtime';

export const DOCTOR_SPEC = {
  path: 'doctor',
  purpose: 'report backend, SIMD, threads, Node, CPUs, models, cameras, Pi throttling and the broker',
  options: {
    json: { type: 'boolean', description: 'the report as one JSON object on stdout' },
    config: { type: 'string', short: 'c', arg: 'FILE', description: 'the agent\'s config (also EDGEHEAD_CONFIG): its broker is checked (a TCP connect), its backend used' },
    backend: { type: 'string', arg: BACKEND_CHOICES.join('|'), description: 'the backend to check', default: 'the config\'s backend.name' },
    root: { type: 'string', arg: 'DIR', description: 'read /dev and /sys under DIR (an SD-card image, tests); commands still come from PATH', default: '/' },
  },
  details: `Checks what this machine gives the agent: the TensorFlow.js backend, WASM SIMD and threads, the Node version,
CPUs, the installed extractor models, cameras (V4L2 devices; libcamera cameras through rpicam-apps), Raspberry Pi
under-voltage and throttling, and whether the configured broker is reachable. Exit 0 when the models are installed
and the broker check did not fail; 1 otherwise.`,
  examples: ['edgehead doctor', 'edgehead doctor --json --config /etc/edgehead/config.yaml'],
} as const satisfies CommandSpec;

export const doctorCommand: Command = defineCommand(DOCTOR_SPEC, async ({ values }) => {
  const config = loadConfig({ file: values.config ?? process.env.EDGEHEAD_CONFIG });
  const backend = choiceArg(values.backend, 'backend', BACKEND_CHOICES, config.backend.name);
  const root = path.resolve(values.root ?? '/');
  const [info, v4l2, libcamera, throttled, broker] = await Promise.all([
    initBackend({ backend, threads: config.backend.threads }),
    probeV4l2({ devDir: path.join(root, 'dev'), sysDir: path.join(root, 'sys/class/video4linux') }),
    probeLibcamera(),
    probeThrottled({ sysfsFile: path.join(root, THROTTLED_SYSFS) }),
    probeBroker(config.mqtt),
  ]);
  const models = CATALOGUE.map((e) => {
    try {
      readModelFolder(resourcePath('models', e.id));
      return { id: e.id, installed: true };
    } catch {
      return { id: e.id, installed: false };
    }
  });
  const codecs = initImageCodecs();
  const report = { version: agentVersion(), ...info, jpegDecoder: codecs.jpeg, models, cameras: { v4l2, libcamera }, throttled, broker };
  const exitCode = models.every((m) => m.installed) && broker.status !== 'failed' ? 0 : 1;
  if (values.json) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    return exitCode;
  }
  const rows: [string, string | string[]][] = [
    ['edgehead', report.version],
    ['node', `${info.node} (${process.platform}/${info.arch})`],
    ['cpus', String(info.cpus)],
    ['backend', `${info.backend} (tfjs ${info.tfjsVersion})`],
    ['simd', info.simd ? 'yes' : 'no'],
    ['threads', threadsLine(info)],
    ...(info.wasmBinary ? [['wasm binary', `${info.wasmBinary} in ${info.wasmDir}`] as [string, string]] : []),
    ['jpeg', `${codecs.jpeg}${'note' in codecs && codecs.note ? ` (${codecs.note})` : ''}`],
    ['models', models.map((m) => `${m.id}${m.installed ? '' : ' (missing)'}`).join(', ')],
    ['v4l2', v4l2Lines(v4l2)],
    ['libcamera', libcameraLines(libcamera)],
    ['throttled', throttledLine(throttled)],
    ['broker', `${broker.url}: ${broker.status}: ${broker.detail}`],
  ];
  for (const [k, v] of rows) {
    const [first, ...more] = Array.isArray(v) ? v : [v];
    process.stdout.write(`${k.padEnd(12)} ${first}\n`);
    for (const line of more) process.stdout.write(`${''.padEnd(12)} ${line}\n`);
  }
  return exitCode;
});

/** One line per /dev/videoN: `/dev/video0 "UVC Camera (046d:0825)": YUYV, MJPG`. */
export function v4l2Lines(r: V4l2Report): string[] {
  if (r.devices.length === 0) return ['none (no /dev/video*)'];
  return r.devices.map((d) => {
    const name = d.name === null ? '' : ` "${d.name}"`;
    const formats = d.formats === null ? `formats: ${d.formatsError ?? r.note ?? 'unknown'}` : d.formats.length ? d.formats.join(', ') : 'no capture formats';
    return `${d.path}${name}: ${formats}`;
  });
}

/** One line per camera: `0: imx708 4608x2592 10-bit RGGB, modes 1536x864@120.13, ... (rpicam-hello --list-cameras)`. */
export function libcameraLines(r: LibcameraReport): string[] {
  if (r.tool === null) return ['rpicam-apps not installed (apt-get install rpicam-apps to list camera modules)'];
  if (r.error) return [`listing failed (${r.tool}): ${r.error}`];
  if (r.cameras.length === 0) return [`none (${r.tool})`];
  return r.cameras.map((c) => `${c.index}: ${c.sensor} ${c.summary}${c.modes.length ? `, modes ${c.modes.join(' ')}` : ''} (${r.tool})`);
}

/** `now: under-voltage, throttled; since boot: under-voltage, throttled (0x50005)`, `none (0x0)`, `not reported (...)`. */
export function throttledLine(p: ThrottledProbe): string {
  if (!p.state) return p.error ? `unknown: ${p.error}` : 'not reported (not a Raspberry Pi: no get_throttled in sysfs, no vcgencmd)';
  const { now, occurred, raw } = p.state;
  if (now.length === 0 && occurred.length === 0) return `none (${raw})`;
  return `now: ${now.join(', ') || 'none'}; since boot: ${occurred.join(', ') || 'none'} (${raw})`;
}

/** "2 (auto: ...)": the pool, and how frames use it. */
function threadsLine(info: BackendInfo): string {
  const notes = [
    ...(info.threadsPolicy === 'adaptive' ? [`auto: each frame runs on 1 or ${info.threads} threads, whichever measures faster; see docs/threads.md`] : []),
    ...(info.threadsNote ? [info.threadsNote] : []),
  ];
  return `${info.threads}${notes.length ? ` (${notes.join('; ')})` : ''}`;
}
