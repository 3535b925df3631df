/** Teardown in reverse order of construction: every step runs, a failing one is logged and does not stop the rest. */
import { describeError } from '../base/errors';
import { createLogger } from '../base/log';

const log = createLogger('agent');

export class Teardown {
  private readonly steps: { name: string; fn: () => unknown }[] = [];

  add(name: string, fn: () => unknown): void {
    this.steps.push({ name, fn });
  }

  async run(): Promise<void> {
    for (const { name, fn } of this.steps.splice(0).reverse()) {
      try {
        await fn();
      } catch (e) {
        log.warn(`stopping ${name} failed`, { error: describeError(e) });
      }
    }
  }
}
