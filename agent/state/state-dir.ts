/**
 * Opening the state dir, the first thing an agent does: create it (0700; an existing one readable by others is
 * narrowed to 0700), take its lock (state-lock.ts) and remove temporary files left by a crash. Everything the agent
 * keeps there is private to its user: folders 0700, files 0600 (queue, run counter, heads, rejected payloads, lock).
 *
 * Failures are one line that names stateDir and the real cause, e.g.
 *   stateDir /var/lib/edgehead/state is not writable: EROFS: read-only file system
 *   stateDir /data/state cannot be created: EACCES: permission denied
 * A full disk does not stop the start: the lock then takes its no-space form and 'disk-full' is reported.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeError, EdgeheadError } from '../../base/errors';
import { createLogger } from '../../base/log';
import type { Problems } from '../problems';
import { acquireLock } from './state-lock';

const log = createLogger('state');

export const STATE_DIR_MODE = 0o700;
export const STATE_FILE_MODE = 0o600;
/** Entries whose presence means the state dir was used before (a missing run file is then damage). */
const STATE_ENTRIES = ['run', 'queue', 'heads'];

export interface StateDir {
  /** As configured (messages name it like this). */
  readonly dir: string;
  /** The state dir held state from an earlier start (run counter, queue or heads). */
  readonly usedBefore: boolean;
  /** Releases the lock. Idempotent. */
  release(): void;
}

export function openStateDir(dir: string, opts: { problems?: Problems } = {}): StateDir {
  const abs = path.resolve(dir);
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw stateDirError(dir, 'cannot be opened', e);
  }
  if (st && !st.isDirectory()) throw new EdgeheadError('IO', `stateDir ${dir} is not a folder`, { hint: 'point stateDir at a writable folder' });
  if (!st) {
    try {
      mkdirs(abs);
    } catch (e) {
      throw stateDirError(dir, 'cannot be created', e);
    }
  }
  const usedBefore = st !== undefined && STATE_ENTRIES.some((e) => fs.existsSync(path.join(abs, e)));
  narrowMode(abs);
  let lock;
  try {
    lock = acquireLock(abs, {
      onNoSpace: (e) => {
        log.warn('disk full: the state dir lock takes its no-space form (a symbolic link)', { dir, error: describeError(e) });
        opts.problems?.set('disk-full', `disk full: cannot write in stateDir ${dir}`);
      },
    });
  } catch (e) {
    if (e instanceof EdgeheadError) throw e;
    throw stateDirError(dir, 'is not writable', e);
  }
  for (const f of fs.readdirSync(abs)) {
    if (/^run\.tmp-\d+$/.test(f)) fs.rmSync(path.join(abs, f), { force: true }); // base/durable-file.ts leftovers
  }
  return { dir, usedBefore, release: () => lock.release() };
}

/**
 * mkdir -p, one level at a time: a recursive mkdirSync reports ENOENT when a parent cannot be created (e.g. on a
 * read-only file system), where this reports the real cause (EROFS, EACCES, ENOTDIR).
 */
function mkdirs(abs: string): void {
  const missing: string[] = [];
  for (let p = abs; !fs.existsSync(p) && path.dirname(p) !== p; p = path.dirname(p)) missing.unshift(p);
  for (const p of missing) {
    try {
      fs.mkdirSync(p, { mode: STATE_DIR_MODE });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

/** 0700, if this user owns the folder (a failure, e.g. on a read-only file system, shows at the lock). */
function narrowMode(abs: string): void {
  try {
    const st = fs.statSync(abs);
    if ((st.mode & 0o777) === STATE_DIR_MODE || (process.getuid && st.uid !== process.getuid())) return;
    fs.chmodSync(abs, STATE_DIR_MODE);
    if (st.mode & 0o077) log.info('stateDir was readable by others: narrowed to 0700', { dir: abs, was: (st.mode & 0o777).toString(8) });
  } catch {
    // see above
  }
}

/** "stateDir X cannot be created: EACCES: permission denied" (the errno text without the path Node appends). */
function stateDirError(dir: string, what: string, e: unknown): EdgeheadError {
  const err = e as NodeJS.ErrnoException;
  const cause = err.code ? `${err.code}: ${err.message.replace(/^[A-Z]+: /, '').split(', ')[0]}` : describeError(e);
  return new EdgeheadError('IO', `stateDir ${dir} ${what}: ${cause}`, { hint: 'stateDir must be a folder this user can write', cause: e });
}
