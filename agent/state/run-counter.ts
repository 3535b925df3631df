/**
 * The run number: one per agent start, persisted in `<stateDir>/run` (0600, written atomically and durably by
 * base/durable-file.ts). Predictions carry it, and `(run, frameId)` identifies a prediction, so a run number must
 * never repeat on a device. The rule:
 *
 *   run = 1 + the highest of: the number in the run file, and the `run` of every prediction still queued.
 *
 * When the counter cannot be trusted (the run file is unreadable, or missing although the state dir was used
 * before) or cannot be saved, the run is also at least the clock's seconds since 1970 (e.g. 1767225600): larger
 * than any number counted up since the last such jump unless the agent started more than once a second on average
 * since then. With a clock that is not set (before 2025) it is a random number between 2^40 and 2^41 instead, far
 * above anything counted or taken from the clock (a repeat needs the same draw among 2^40). A warning and the
 * 'run-counter' problem say so. On a full disk the file is overwritten in place (no new block needed) and
 * 'disk-full' is reported.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeError } from '../../base/errors';
import { isNoSpaceError, writeFileDurable } from '../../base/durable-file';
import { createLogger } from '../../base/log';
import type { Problems } from '../problems';
import type { QueuedMessage } from '../store/queue';
import { STATE_FILE_MODE } from './state-dir';

const log = createLogger('state');

export const RUN_FILE = 'run';
/** Before this the clock is taken as not set. */
const CLOCK_SET_AFTER = Date.UTC(2025, 0, 1);

export interface RunCounterOptions {
  stateDir: string;
  /** The state dir held state from an earlier start (state-dir.ts): a missing run file is then damage. */
  usedBefore: boolean;
  /** The highest `run` among the queued predictions (queuedRuns()), 0 if none. */
  queuedRun: number;
  /** Now, in ms since 1970. */
  now: number;
  problems?: Problems;
  /** In [0, 1); default Math.random. */
  random?: () => number;
}

export function nextRunNumber(o: RunCounterOptions): number {
  const file = path.join(o.stateDir, RUN_FILE);
  const read = readRun(file);
  let run = Math.max(typeof read === 'number' ? read : 0, o.queuedRun) + 1;
  const jump = (): number => (o.now >= CLOCK_SET_AFTER ? Math.floor(o.now / 1000) : 2 ** 40 + Math.floor((o.random ?? Math.random)() * 2 ** 40));
  let distrust: string | undefined;
  if (typeof read === 'string') distrust = `the run file ${file} is unreadable (${read})`;
  else if (read === undefined && o.usedBefore) distrust = `the run file ${file} is missing although the state dir was used before`;
  if (distrust) run = Math.max(run, jump());
  const saved = saveRun(file, run, o.problems);
  if (saved !== true) {
    const before = run;
    run = Math.max(run, jump());
    if (run !== before) saveRun(file, run, o.problems); // same failure, most likely; tried anyway
    distrust = `${distrust ? `${distrust}; ` : ''}the run counter cannot be saved (${saved})`;
  }
  if (distrust) {
    log.warn(`run counter: ${distrust}; this run is ${run}, so that no (run, frameId) repeats`, { run, queuedRun: o.queuedRun });
    o.problems?.set('run-counter', `run counter: ${distrust}; run numbers jumped to ${run}`);
  }
  return run;
}

/** Tracks the highest `run` in queued prediction payloads (DiskQueueOptions.onRecovered). */
export function queuedRuns(): { observe: (msg: QueuedMessage) => void; readonly highest: number } {
  let highest = 0;
  return {
    observe(msg) {
      if (!msg.payload.includes('"run"')) return;
      try {
        const run = (JSON.parse(msg.payload) as { run?: unknown }).run;
        if (typeof run === 'number' && Number.isSafeInteger(run) && run > highest) highest = run;
      } catch {
        // not a prediction
      }
    },
    get highest() {
      return highest;
    },
  };
}

/** The number in the run file; undefined if there is none; a string says why it is unreadable. */
function readRun(file: string): number | undefined | string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return describeError(e);
  }
  const m = /^\s*(\d{1,16})\s*$/.exec(text);
  const n = m ? Number(m[1]) : NaN;
  return Number.isSafeInteger(n) && n >= 1 ? n : `content ${JSON.stringify(text.slice(0, 40))}`;
}

/** Saves run: atomically, or on a full disk in place; true, or why it could not. */
function saveRun(file: string, run: number, problems: Problems | undefined): true | string {
  const text = `${run}\n`;
  try {
    writeFileDurable(file, text, { mode: STATE_FILE_MODE });
    return true;
  } catch (e) {
    if (!isNoSpaceError(e)) return describeError(e);
    problems?.set('disk-full', `disk full: cannot write in stateDir ${path.dirname(file)}`);
    try {
      overwriteInPlace(file, text);
      log.warn('disk full: the run counter was overwritten in place', { file });
      return true;
    } catch (e2) {
      return describeError(e2);
    }
  }
}

/** Rewrites a (small) existing file in place: its block is already allocated, so this works on a full disk. */
function overwriteInPlace(file: string, text: string): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.fchmodSync(fd, STATE_FILE_MODE);
    fs.writeSync(fd, text, 0);
    fs.ftruncateSync(fd, Buffer.byteLength(text));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
