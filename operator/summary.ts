/**
 * A Keras-style model summary (the format of tf.keras Model.summary() in TF 2.x): a layer table and the
 * Total / Trainable / Non-trainable parameter counts.
 */
export interface SummaryRow {
  name: string;
  type: string;
  outputShape: (number | null)[];
  params: number;
  trainable: boolean;
}

const COLS = [29, 26, 10];
const WIDTH = 65;

const shapeText = (s: (number | null)[]): string => `(${s.map((d) => (d === null ? 'None' : String(d))).join(', ')})`;
const thousands = (n: number): string => n.toLocaleString('en-US');

/** Keras wraps over-long cells onto continuation lines; so do we. */
function row(cells: string[]): string[] {
  const lines: string[] = [];
  const chunks = cells.map((c, i) => {
    const w = COLS[i]! - 2;
    const parts: string[] = [];
    for (let k = 0; k < Math.max(1, c.length); k += w) parts.push(c.slice(k, k + w));
    return parts;
  });
  const height = Math.max(...chunks.map((c) => c.length));
  for (let l = 0; l < height; l++) {
    lines.push((' ' + chunks.map((c, i) => (c[l] ?? '').padEnd(COLS[i]! - 1)).join('')).trimEnd());
  }
  return lines;
}

export function formatSummary(modelName: string, rows: SummaryRow[]): string {
  const total = rows.reduce((a, r) => a + r.params, 0);
  const trainable = rows.filter((r) => r.trainable).reduce((a, r) => a + r.params, 0);
  const out: string[] = [`Model: "${modelName}"`, '_'.repeat(WIDTH), ...row(['Layer (type)', 'Output Shape', 'Param #']), '='.repeat(WIDTH)];
  rows.forEach((r, i) => {
    if (i > 0) out.push('');
    out.push(...row([`${r.name} (${r.type})`, shapeText(r.outputShape), String(r.params)]));
  });
  out.push('='.repeat(WIDTH));
  out.push(`Total params: ${thousands(total)}`);
  out.push(`Trainable params: ${thousands(trainable)}`);
  out.push(`Non-trainable params: ${thousands(total - trainable)}`);
  out.push('_'.repeat(WIDTH));
  return out.join('\n');
}
