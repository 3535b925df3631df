/**
 * The device page's time-series charts, drawn by uPlot (a small, well-kept canvas chart library; bundled, never
 * fetched). One chart per quantity; a chart is updated in place with setData while its series stay the same and
 * rebuilt when they change (a new label appears in the label mix).
 */
import type uPlot from 'uplot';
import type { DeviceHistory } from '../model';
import { h } from './dom';

/**
 * uPlot, evaluated the first time a chart is drawn. Its code is in the bundle (esbuild turns this import() into a
 * lazily initialised module of the same file; nothing is fetched), but evaluating it costs more than the rest of the
 * dashboard together (60-100 ms on the 2-core benchmark machine), and the fleet table's first render, which needs
 * no chart, should not wait for it.
 */
let uplotModule: Promise<typeof uPlot> | undefined;
function loadUplot(): Promise<typeof uPlot> {
  return (uplotModule ??= import('uplot').then((m) => m.default));
}

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777', '#4b5563', '#65a30d'];

interface ChartSpec {
  key: string;
  title: string;
  unit: string;
  series(hist: DeviceHistory): { label: string; values: (number | null)[] }[];
}

export const CHARTS: ChartSpec[] = [
  {
    key: 'latency',
    title: 'Frame latency',
    unit: 'ms',
    series: (x) => [
      { label: 'p50', values: x.latencyP50 },
      { label: 'p95', values: x.latencyP95 },
    ],
  },
  { key: 'temp', title: 'CPU temperature', unit: '°C', series: (x) => [{ label: 'CPU', values: x.cpuTempC }] },
  { key: 'fps', title: 'Frames per second', unit: 'frames/s', series: (x) => [{ label: 'frames/s', values: x.fps }] },
  {
    key: 'labels',
    title: 'Label mix',
    unit: 'predictions',
    series: (x) =>
      Object.keys(x.labels)
        .sort()
        .map((label) => ({ label, values: x.labels[label]! })),
  },
];

class Chart {
  private plot: uPlot | undefined;
  private signature = '';
  readonly el: HTMLElement;
  private readonly body: HTMLElement;

  constructor(private readonly spec: ChartSpec) {
    this.body = h('div', { class: 'chart-body' });
    this.el = h('section', { class: 'chart', 'data-chart': spec.key }, h('h3', {}, `${spec.title} (${spec.unit})`), this.body);
  }

  update(UPlot: typeof uPlot, hist: DeviceHistory): void {
    const series = this.spec.series(hist);
    const data: uPlot.AlignedData = [hist.t.map((t) => t / 1000), ...series.map((s) => s.values)];
    const signature = series.map((s) => s.label).join('\u0000');
    const empty = series.length === 0 || series.every((s) => s.values.every((v) => v === null));
    this.el.classList.toggle('empty', empty);
    if (this.plot && signature === this.signature) {
      this.plot.setData(data);
      return;
    }
    this.plot?.destroy();
    this.signature = signature;
    const width = Math.max(280, Math.min(this.body.clientWidth || 560, 900));
    this.plot = new UPlot(
      {
        width,
        height: 200,
        scales: { x: { time: true } },
        axes: [{}, { label: this.spec.unit, size: 56 }],
        series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false }))],
      },
      data,
      this.body,
    );
  }

  destroy(): void {
    this.plot?.destroy();
    this.plot = undefined;
  }
}

export class DeviceCharts {
  readonly el: HTMLElement;
  private readonly charts = CHARTS.map((spec) => new Chart(spec));
  private destroyed = false;

  constructor() {
    this.el = h('div', { class: 'charts' }, ...this.charts.map((c) => c.el));
  }

  /** Draws the history once uPlot is loaded (at once after the first time; updates keep their order). */
  update(hist: DeviceHistory): void {
    void loadUplot().then((UPlot) => {
      if (!this.destroyed) for (const c of this.charts) c.update(UPlot, hist);
    });
  }

  destroy(): void {
    this.destroyed = true;
    for (const c of this.charts) c.destroy();
  }
}
