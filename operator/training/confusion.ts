/** An aligned text table of a confusion matrix for the CLI (`head train`, `head eval`). */
export function formatConfusion(confusion: number[][], classes: string[]): string {
  const clip = (s: string) => (s.length > 16 ? s.slice(0, 15) + '…' : s);
  const names = classes.map(clip);
  const corner = 'true \\ predicted';
  const firstWidth = Math.max(corner.length, ...names.map((n) => n.length));
  const cells = confusion.map((row) => row.map(String));
  const recall = confusion.map((row, i) => {
    const total = row.reduce((a, v) => a + v, 0);
    return total === 0 ? '-' : `${((100 * (row[i] ?? 0)) / total).toFixed(1)}%`;
  });
  const colWidth = names.map((n, j) => Math.max(n.length, ...cells.map((r) => (r[j] ?? '').length)));
  const recallWidth = Math.max('recall'.length, ...recall.map((r) => r.length));
  const line = (first: string, cols: string[], last: string) =>
    [first.padEnd(firstWidth), ...cols.map((c, j) => c.padStart(colWidth[j]!)), last.padStart(recallWidth)].join('  ').trimEnd();
  return [line(corner, names, 'recall'), ...cells.map((r, i) => line(names[i] ?? String(i), r, recall[i]!))].join('\n');
}
