/**
 * `npm run bench [-- --json FILE] [--frames N] [--threads N]`: every configuration in its own process, one after
 * the other in the same invocation, so the numbers are comparable (see docs/BENCHMARKS.md). Not a test.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

const root = path.resolve(__dirname, '..');
const tsx = path.join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs');

interface Result {
  extractor: string;
  path: string;
  threads: number;
  extractMs: { median: number; p95: number };
  decodeMs: { median: number; p95: number };
  resizeMs: { median: number; p95: number };
  headMs: { median: number; p95: number };
  preprocessMs: { median: number };
  preprocess640x480Ms: { median: number; p95: number };
  totalMs: { median: number; p95: number };
  framesPerSec: number;
  coldStartMs: number;
  rssMB: number;
  threadsNote: string | null;
}

function run(script: string, arg?: unknown): string {
  return execFileSync(process.execPath, [tsx, path.join(root, 'bench', script), ...(arg ? [JSON.stringify(arg)] : [])], {
    cwd: root,
    env: { ...process.env, EDGEHEAD_LOG_LEVEL: 'error' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 16 * 1024 * 1024,
  }).trim();
}

function main(): void {
  const { values } = parseArgs({ options: { json: { type: 'string' }, frames: { type: 'string' }, threads: { type: 'string' } } });
  const frames = Number(values.frames ?? 40);
  const n = Number(values.threads ?? Math.min(os.cpus().length, 4));
  const configs = [
    ...['mobilenet_v2_100', 'mobilenet_v2_140'].flatMap((extractor) => [
      { extractor, path: 'stock', threads: 1, frames },
      { extractor, path: 'edgehead', threads: 1, frames },
      { extractor, path: 'edgehead', threads: n, frames },
    ]),
    { extractor: 'mobilenet_v2_140', path: 'cpu', threads: 1, frames: 5 },
  ];
  const machine = {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memGB: Math.round(os.totalmem() / 1024 ** 3),
    arch: process.arch,
    node: process.versions.node,
    os: `${os.type()} ${os.release()}`,
    loadAvgBefore: os.loadavg().map((x) => Math.round(x * 100) / 100),
    date: new Date().toISOString(),
  };
  const results: Result[] = [];
  configs.forEach((c, i) => {
    process.stderr.write(`[${i + 1}/${configs.length + 1}] ${c.extractor} ${c.path} x${c.threads} (${c.frames} frames)...\n`);
    results.push(JSON.parse(run('worker.ts', c)) as Result);
  });
  process.stderr.write(`[${configs.length + 1}/${configs.length + 1}] head-swap latency (5 and 1000 classes)...\n`);
  const headSwap = JSON.parse(run('head-swap.ts')) as { classes: Record<string, { median: number; p95: number; bytes: number }> };
  const report = { machine: { ...machine, loadAvgAfter: os.loadavg().map((x) => Math.round(x * 100) / 100) }, results, headSwapMs: headSwap };

  const rows = results.map((r) => [r.extractor, r.path, String(r.threads), `${r.extractMs.median} / ${r.extractMs.p95}`, `${r.decodeMs.median}`, `${r.resizeMs.median}`, `${r.headMs.median}`, `${r.preprocess640x480Ms.median}`, `${r.framesPerSec}`, `${r.coldStartMs}`, `${r.rssMB}`]);
  const head = ['extractor', 'path', 'thr', 'extract ms med/p95', 'decode', 'resize', 'head', '640x480 pre', 'fps', 'cold ms', 'rss MB'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  const out = [line(head), ...rows.map(line)];
  const ratio = (e: string, a: string, at: number, b: string, bt: number) => {
    const x = results.find((r) => r.extractor === e && r.path === a && r.threads === at);
    const y = results.find((r) => r.extractor === e && r.path === b && r.threads === bt);
    return x && y ? (x.extractMs.median / y.extractMs.median).toFixed(2) : 'n/a';
  };
  const nActual = results.find((r) => r.path === 'edgehead' && r.threads > 1)?.threads ?? n;
  out.push('');
  for (const e of ['mobilenet_v2_100', 'mobilenet_v2_140']) {
    out.push(`${e}: stock x1 / edgehead x1 = ${ratio(e, 'stock', 1, 'edgehead', 1)};  stock x1 / edgehead x${nActual} = ${ratio(e, 'stock', 1, 'edgehead', nActual)}`);
  }
  out.push(`head swap receipt->applied (signed, test vectors, fsync): ${Object.entries(headSwap.classes).map(([c, v]) => `${c} classes ${v.median} ms (p95 ${v.p95}, ${v.bytes} bytes)`).join('; ')}`);
  out.push(`machine: ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}; load ${machine.loadAvgBefore.join(' ')} -> ${report.machine.loadAvgAfter.join(' ')}`);
  process.stdout.write(out.join('\n') + '\n');
  if (values.json) fs.writeFileSync(values.json, JSON.stringify(report, null, 2) + '\n');
}

main();
