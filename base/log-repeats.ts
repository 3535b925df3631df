/**
 * Collapsing of identical repeated warnings (base/log.ts). A failing camera used to log one identical WARN per frame
 * (86,400 a day at 1 s); now the first line is printed and the repeats are counted: at the end of each window a
 * single "repeated N times in the last M s" summary replaces them, and while the condition goes on every window does
 * the same. A window with no repeat forgets the line, so its next occurrence prints in full again.
 *
 * Identical = same level, namespace, message and fields, except the volatile fields (counters and durations that
 * change on every repeat of the same condition: see VOLATILE_FIELDS). The summary carries the last occurrence's
 * fields. Timers come from a Clock (tests drive a ManualClock); the default one is unref'd, so a pending summary
 * never keeps the process alive (flush() prints pending summaries at shutdown).
 */
import type { Clock, TimerHandle } from './clock';

/** Fields left out of the comparison: they change on every repeat. So are fields whose name ends in "Ms" (durations). */
export const VOLATILE_FIELDS: ReadonlySet<string> = new Set(['ms', 'dropped', 'droppedTotal', 'depth', 'offset', 'freeMB', 'frames', 'pid', 'bytes']);

/** Past this many distinct lines in one window, new ones are printed without being tracked (bounded memory). */
const MAX_TRACKED = 256;

/** Writes the summary of `count` repeats over the last `elapsedMs`. */
export type SummaryWriter = (count: number, elapsedMs: number) => void;

interface Entry {
  count: number;
  since: number;
  summary: SummaryWriter;
  timer: TimerHandle;
}

/** The identity of a line for collapsing, or undefined when it cannot be compared (unserialisable fields). */
export function repeatKey(level: string, ns: string, msg: string, fields?: Record<string, unknown>): string | undefined {
  const stable = fields ? Object.entries(fields).filter(([k]) => !VOLATILE_FIELDS.has(k) && !k.endsWith('Ms')).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) : [];
  try {
    return JSON.stringify([level, ns, msg, stable]);
  } catch {
    return undefined;
  }
}

export class RepeatCollapser {
  private readonly seen = new Map<string, Entry>();

  constructor(
    private readonly clock: Clock,
    private readonly windowMs: number,
  ) {}

  /** True: print this line (first in its window). False: counted, its summary comes at the end of the window. */
  admit(key: string, summary: SummaryWriter): boolean {
    const e = this.seen.get(key);
    if (e) {
      e.count++;
      e.summary = summary;
      return false;
    }
    if (this.seen.size < MAX_TRACKED) this.open(key, summary);
    return true;
  }

  /** Writes the pending summaries now and forgets every line (shutdown, reconfiguration). */
  flush(): void {
    const now = this.clock.now();
    const entries = [...this.seen.values()];
    this.seen.clear();
    for (const e of entries) {
      e.timer.cancel();
      if (e.count > 0) e.summary(e.count, now - e.since);
    }
  }

  /** Lines tracked in a window now (tests). */
  get tracked(): number {
    return this.seen.size;
  }

  private open(key: string, summary: SummaryWriter): void {
    const entry: Entry = { count: 0, since: this.clock.now(), summary, timer: { cancel: () => undefined } };
    this.seen.set(key, entry);
    entry.timer = this.clock.setTimeout(() => this.windowEnd(key, entry), this.windowMs);
  }

  private windowEnd(key: string, entry: Entry): void {
    if (this.seen.get(key) !== entry) return;
    this.seen.delete(key);
    if (entry.count === 0) return; // quiet window: the next occurrence prints in full
    entry.summary(entry.count, this.clock.now() - entry.since);
    this.open(key, entry.summary); // still repeating: keep counting in a new window
  }
}
