/**
 * Conditions that need attention while they last (a full disk, a failing camera, damaged queue records...). A
 * component sets a problem when it notices one and clears it when it is over; telemetry (and later the `problem`
 * state for Home Assistant) reports the current list. Setting the same problem again changes nothing, so callers may
 * set it on every occurrence; the log says it once when it starts and once when it ends.
 */
import { createLogger } from '../base/log';
import type { Problem } from '../protocol/messages';

const log = createLogger('problems');

export type ProblemKey = 'disk-full' | 'state-dir' | 'queue-damaged' | 'camera' | 'run-counter' | 'broker';

export class Problems {
  private readonly current = new Map<ProblemKey, Problem>();
  private readonly listeners: ((list: Problem[]) => void)[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  set(key: ProblemKey, message: string): void {
    const had = this.current.get(key);
    if (had?.message === message) return;
    this.current.set(key, { key, message, since: had?.since ?? new Date(this.now()).toISOString() });
    if (!had) log.warn(`problem: ${message}`, { key });
    this.changed();
  }

  clear(key: ProblemKey): void {
    const had = this.current.get(key);
    if (!had) return;
    this.current.delete(key);
    log.info(`problem over: ${had.message}`, { key });
    this.changed();
  }

  has(key: ProblemKey): boolean {
    return this.current.has(key);
  }

  list(): Problem[] {
    return [...this.current.values()];
  }

  onChange(fn: (list: Problem[]) => void): void {
    this.listeners.push(fn);
  }

  private changed(): void {
    for (const fn of this.listeners) fn(this.list());
  }
}
