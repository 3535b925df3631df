/**
 * Progress for long work (feature extraction, downloads, benchmarks). A bar on a TTY, a line every 10% otherwise,
 * always on stderr so stdout stays machine-readable.
 */
import { SingleBar } from 'cli-progress';

export interface Progress {
  update(done: number, info?: string): void;
  stop(): void;
}

export function progressBar(label: string, total: number, enabled = true): Progress {
  if (!enabled || total <= 0) return { update() {}, stop() {} };
  const bar = new SingleBar({
    format: `${label} [{bar}] {value}/{total} {percentage}% | {info}`,
    stream: process.stderr,
    noTTYOutput: true,
    notTTYSchedule: 5000,
    hideCursor: false,
    clearOnComplete: false,
  });
  bar.start(total, 0, { info: '' });
  return {
    update: (done, info = '') => bar.update(done, { info }),
    stop: () => bar.stop(),
  };
}
