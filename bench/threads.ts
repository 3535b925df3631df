/**
 * `npm run bench -- threads [--frames N] [--reps R] [--threads N] [--model ID] [--json FILE]`: edgehead at 1 thread,
 * N threads and `auto` (adaptive, docs/threads.md), on an idle machine and beside a companion process that keeps one
 * core busy (a camera encoder, a broker, Home Assistant...). Not a test.
 *
 * One process per configuration and condition, alone (bench/run.ts --sequential: a configuration waiting for its turn
 * would count the others' frames as load and confuse `auto`), each warmed until its per-block median is steady, then
 * N timed frames. The order rotates between repetitions, so slow drifts of a shared machine hit every configuration.
 * The companion is `node -e` spinning; it starts before the condition's first process and is killed after its last
 * one (and ends by itself after --companion-max seconds whatever happens).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import { median } from '../base/stats';
import { cpuNoise } from './machine';
import { type Config, type Result, runConfigs } from './run';

type Condition = 'idle' | 'contended';

const round2 = (x: number) => Math.round(x * 100) / 100;

const USAGE = `usage: npm run bench -- threads [--frames N] [--reps R] [--threads N] [--model ID]... [--json FILE]
  --frames N          timed frames per configuration and condition (default 60)
  --reps R            repetitions, in rotated order (default 2)
  --threads N         the fixed multi-thread configuration (default: the CPUs, 2 to 4)
  --model ID          mobilenet_v2_100 and/or mobilenet_v2_140 (default both)
  --companion-max S   the busy companion ends by itself after S seconds (default 900)
  --json FILE         also write the results as JSON
See docs/threads.md.`;

/** A process that keeps one core busy until killed, or for at most `maxSec`. */
function companion(maxSec: number): ChildProcess {
  return spawn(process.execPath, ['-e', `const end = Date.now() + ${maxSec * 1000}; while (Date.now() < end) {}`], { stdio: 'ignore' });
}

export async function main(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        frames: { type: 'string', default: '60' },
        reps: { type: 'string', default: '2' },
        threads: { type: 'string' },
        model: { type: 'string', multiple: true },
        'companion-max': { type: 'string', default: '900' },
        json: { type: 'string' },
      },
    }));
  } catch (e) {
    process.stderr.write(`bench threads: ${(e as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  const int = (name: string, v: string | undefined) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) {
      process.stderr.write(`bench threads: --${name} must be a positive integer (got ${v})\n`);
      process.exit(2);
    }
    return n;
  };
  const frames = int('frames', values.frames);
  const reps = int('reps', values.reps);
  const companionMax = int('companion-max', values['companion-max']);
  const n = values.threads ? int('threads', values.threads) : Math.max(2, Math.min(os.cpus().length, 4));
  const models = values.model ?? ['mobilenet_v2_100', 'mobilenet_v2_140'];
  const configs: Config[] = models.flatMap((extractor) =>
    ([1, n, 'auto'] as const).map((threads) => ({ extractor, path: 'edgehead' as const, threads, warmup: 5, frames })),
  );
  const noiseBefore = await cpuNoise(3);
  const loadBefore = os.loadavg().map(round2);
  const runs: { rep: number; condition: Condition; result: Result; threadsStatus: unknown; otherLoadCores: number | null }[] = [];
  process.stderr.write(`${configs.length} configurations x idle/contended x ${reps} repetitions, ${frames} timed frames each\n`);
  for (let rep = 0; rep < reps; rep++) {
    for (const condition of (rep % 2 ? ['contended', 'idle'] : ['idle', 'contended']) as Condition[]) {
      const order = configs.map((_, i) => configs[(i + rep) % configs.length]!);
      const busy = condition === 'contended' ? companion(companionMax) : undefined;
      try {
        for (const c of order) {
          process.stderr.write(`rep ${rep + 1}/${reps}, ${condition}: ${c.extractor} x${c.threads}\n`);
          const r = await runConfigs([c], frames, true);
          runs.push({ rep, condition, result: r.results[0]!, threadsStatus: r.results[0]!.threadsStatus, otherLoadCores: r.otherLoadCores });
        }
      } finally {
        busy?.kill('SIGKILL');
      }
    }
  }
  const rows = models.flatMap((extractor) =>
    (['idle', 'contended'] as Condition[]).map((condition) => {
      const ms = (threads: number | 'auto') =>
        round2(median(runs.filter((r) => r.condition === condition && r.result.extractor === extractor && r.result.threadsRequested === threads).map((r) => r.result.extractMs.median)));
      const one = ms(1);
      const many = ms(n);
      const auto = ms('auto');
      const best = Math.min(one, many);
      const other = (k: number | 'auto') => round2(median(runs.filter((r) => r.condition === condition && r.result.extractor === extractor && r.result.threadsRequested === k).map((r) => r.otherLoadCores ?? NaN)));
      return { extractor, condition, x1: one, [`x${n}`]: many, auto, autoOverBest: round2(auto / best), withinGoal: auto <= best * 1.1, otherLoadCores: other('auto') };
    }),
  );
  const report = {
    machine: { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, node: process.versions.node, date: new Date().toISOString(), loadAvgBefore: loadBefore, loadAvgAfter: os.loadavg().map(round2), cpuNoiseBefore: noiseBefore },
    frames,
    reps,
    threads: n,
    rows,
    runs,
  };
  if (values.json) fs.writeFileSync(values.json, JSON.stringify(report, null, 2) + '\n');
  const head = `| extractor | condition | 1 thread | ${n} threads | auto | auto / better fixed | other processes (cores) |`;
  const lines = [head, '|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    lines.push(`| ${r.extractor} | ${r.condition} | ${r.x1} | ${r[`x${n}`]} | ${r.auto} | ${r.autoOverBest}${r.withinGoal ? '' : ' (over 1.1)'} | ${r.otherLoadCores} |`);
  }
  process.stdout.write(`${lines.join('\n')}\n\nextract ms, median over ${reps} repetitions of each run's median; ${frames} timed frames per run.\n`);
  for (const r of runs.filter((x) => x.result.threadsRequested === 'auto')) {
    process.stdout.write(`auto, rep ${r.rep + 1}, ${r.condition}, ${r.result.extractor}: ${JSON.stringify(r.threadsStatus)}\n`);
  }
}
