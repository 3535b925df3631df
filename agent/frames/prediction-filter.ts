/**
 * Which predictions get published: predictions.minScore, and predictions.onlyOnChange with debounce (a new top-1
 * label must be seen `debounce` frames in a row before it replaces the current one; only a replacement publishes).
 */
import type { Config } from '../../config/schema';

export type FilterDecision = { publish: true } | { publish: false; why: 'low score' | 'unchanged' | 'debouncing' };

export class PredictionFilter {
  private stable: string | undefined;
  private candidate: string | undefined;
  private streak = 0;

  constructor(private readonly cfg: Pick<Config['predictions'], 'minScore' | 'onlyOnChange' | 'debounce'>) {}

  decide(top1: { label: string; score: number }): FilterDecision {
    if (top1.score < this.cfg.minScore) return { publish: false, why: 'low score' };
    if (!this.cfg.onlyOnChange) return { publish: true };
    if (top1.label === this.candidate) this.streak++;
    else {
      this.candidate = top1.label;
      this.streak = 1;
    }
    if (this.streak < this.cfg.debounce) return { publish: false, why: 'debouncing' };
    if (this.candidate === this.stable) return { publish: false, why: 'unchanged' };
    this.stable = this.candidate;
    return { publish: true };
  }

  /** After a head swap the labels may mean something else: start over. */
  reset(): void {
    this.stable = this.candidate = undefined;
    this.streak = 0;
  }
}
