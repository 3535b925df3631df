/** A number that grows by one at every agent start, persisted in the state dir (one small write per start). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileDurable } from '../../base/durable-file';

export function nextRunNumber(stateDir: string): number {
  const file = path.join(stateDir, 'run');
  let last = 0;
  try {
    last = Number.parseInt(fs.readFileSync(file, 'utf8'), 10) || 0;
  } catch {
    // first start
  }
  const run = last + 1;
  writeFileDurable(file, `${run}\n`);
  return run;
}
