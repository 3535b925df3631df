/**
 * `npm run bench -- train [--sizes 150x4,1000x4,3000x20] [--dim 1792] [--seed 1] [--grad-tol F]`. Not a test.
 *
 * Times `trainHead` (operator/training/train.ts) with its default options on synthetic but feature-like problems:
 * Gaussian class clusters in `dim` dimensions (1792: mobilenet_v2_140's features) sharing a strong low-rank
 * component (real CNN features are correlated, which is what makes the fit ill-conditioned), one sample per group,
 * no mirrors. Prints, per problem, the wall time and its breakdown: the cross-validation fits (iterations per fit),
 * the scoring + calibration (temperature fits, timed apart on logits of the same shape) and the refit; plus the chosen l2 and the out-of-fold
 * accuracy, so a faster trainer can be checked to choose and score the same. Progress on stderr.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { prng } from '../base/prng';
import { progressBar } from '../base/progress';
import { fitTemperature } from '../operator/training/calibrate';
import { DEFAULT_TRAIN_OPTIONS, type FitInfo, trainHead, type TrainSample } from '../operator/training/train';

const round2 = (x: number) => Math.round(x * 100) / 100;

/** n samples of `classes` Gaussian clusters in dim dimensions: x = centre(class) + A z + noise, A: dim x 16. */
export function syntheticSamples(n: number, classes: number, dim: number, seed: number): TrainSample[] {
  const rand = prng(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const rank = 16;
  const base = Float64Array.from({ length: dim }, () => Math.abs(gauss()));
  const centres = Array.from({ length: classes }, () => Float64Array.from(base, (b) => b + 0.1 * gauss()));
  const mix = Float64Array.from({ length: dim * rank }, () => 0.5 * gauss());
  const z = new Float64Array(rank);
  return Array.from({ length: n }, (_, i) => {
    const label = i % classes;
    for (let r = 0; r < rank; r++) z[r] = gauss();
    const f = new Float32Array(dim);
    const c = centres[label]!;
    for (let d = 0; d < dim; d++) {
      let v = c[d]! + 0.5 * gauss();
      for (let r = 0; r < rank; r++) v += mix[d * rank + r]! * z[r]!;
      f[d] = v;
    }
    return { features: f, label, group: `s${i}` };
  });
}

interface Row {
  problem: string;
  totalS: number;
  cvFitsS: number;
  betweenS: number;
  refitS: number;
  fits: number;
  itersMedian: number;
  itersMax: number;
  itersTotal: number;
  refitIters: number;
  unconverged: number;
  l2: number;
  cvAccuracy: number | null;
  /** Out-of-fold NLL (before temperature) of every grid value. */
  nll: string;
}

function run(n: number, classes: number, dim: number, seed: number, gradTol: number): Row {
  const problem = `${n} x ${dim} x ${classes} classes`;
  process.stderr.write(`${problem}: generating...\n`);
  const samples = syntheticSamples(n, classes, dim, seed);
  const fits: (FitInfo & { ms: number })[] = [];
  // A bar on a TTY; otherwise a line per fit (the fits are synchronous: a timer-driven bar would not redraw).
  const tty = process.stderr.isTTY === true;
  let bar: ReturnType<typeof progressBar> | undefined;
  const t0 = performance.now();
  let last = t0;
  const r = trainHead(samples, classes, {
    ...DEFAULT_TRAIN_OPTIONS,
    gradTol,
    onStep: (done, total, info) => {
      if (!tty) return void process.stderr.write(`${problem} ${done}/${total} ${info} (${round2((performance.now() - t0) / 1000)} s, ${fits[fits.length - 1]?.iterations} iterations)\n`);
      bar ??= progressBar(problem, total);
      bar.update(done, info);
    },
    onFit: (info) => {
      const now = performance.now();
      fits.push({ ...info, ms: now - last });
      last = now;
    },
  });
  const total = performance.now() - t0;
  bar?.stop();
  const cv = fits.filter((f) => f.fold !== null);
  const refit = fits.find((f) => f.fold === null)!;
  const iters = cv.map((f) => f.iterations).sort((a, b) => a - b);
  const cvMs = cv.reduce((a, f) => a + f.ms, 0);
  // The refit's interval also holds the scoring of the grid (a temperature per grid value) and the final temperature
  // fit: those are timed here on logits of the same shape.
  const rows = samples.length;
  const logits = Float64Array.from({ length: rows * classes }, (_, i) => Math.sin(i) * 4);
  const labels = Array.from({ length: rows }, (_, i) => i % classes);
  const t1 = performance.now();
  for (let g = 0; g <= r.metrics.grid.length; g++) fitTemperature(logits, labels, classes);
  const calibMs = performance.now() - t1;
  return {
    problem,
    totalS: round2(total / 1000),
    cvFitsS: round2(cvMs / 1000),
    betweenS: round2(Math.min(refit.ms, calibMs) / 1000),
    refitS: round2(Math.max(0, refit.ms - calibMs) / 1000),
    fits: cv.length,
    itersMedian: iters[Math.floor((iters.length - 1) / 2)] ?? 0,
    itersMax: iters[iters.length - 1] ?? 0,
    itersTotal: iters.reduce((a, b) => a + b, 0),
    refitIters: refit.iterations,
    unconverged: fits.filter((f) => !f.converged).length,
    l2: r.metrics.l2,
    cvAccuracy: r.metrics.cvAccuracy === null ? null : round2(r.metrics.cvAccuracy),
    nll: r.metrics.grid.map((g) => `${g.l2}:${g.rawNll.toFixed(4)}`).join(' '),
  };
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { sizes: { type: 'string', default: '150x4,1000x4,3000x20' }, dim: { type: 'string', default: '1792' }, seed: { type: 'string', default: '1' }, 'grad-tol': { type: 'string' } },
  });
  const dim = Number(values.dim);
  const seed = Number(values.seed);
  const sizes = values.sizes.split(',').map((s) => s.split('x').map(Number) as [number, number]);
  if (!(dim >= 1) || sizes.some(([n, c]) => !(n >= 2 && c >= 2))) throw new Error('usage: npm run bench -- train [--sizes NxC,...] [--dim D] [--seed S]');
  const rows: Row[] = [];
  const gradTol = Number(values['grad-tol'] ?? DEFAULT_TRAIN_OPTIONS.gradTol);
  for (const [n, c] of sizes) rows.push(run(n, c, dim, seed, gradTol));
  const head = ['problem', 'total s', 'CV fits s', 'score+calib s', 'refit s', 'fits', 'iters med/max/sum', 'refit iters', 'unconverged', 'l2', 'CV acc'];
  const cells = rows.map((r) => [r.problem, `${r.totalS}`, `${r.cvFitsS}`, `${r.betweenS}`, `${r.refitS}`, `${r.fits}`, `${r.itersMedian}/${r.itersMax}/${r.itersTotal}`, `${r.refitIters}`, `${r.unconverged}`, `${r.l2}`, `${r.cvAccuracy}`]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((v, i) => v.padEnd(widths[i]!)).join('  ');
  process.stdout.write([line(head), ...cells.map(line)].join('\n') + '\n');
  process.stdout.write('out-of-fold NLL per l2:\n' + rows.map((r) => `  ${r.problem}: ${r.nll}`).join('\n') + '\n');
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`bench train failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
