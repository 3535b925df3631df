/**
 * The exclusive lock on the state dir: `<stateDir>/lock`, one line `pid=<pid> start=<ticks> boot=<id>` naming the
 * agent process that holds it (start: the process's start time in /proc, so a reused pid is told apart; boot: the
 * first 8 hex digits of the kernel's boot id, so a lock left by the previous boot is stale at once).
 *
 * Taking it is race-free: the line is written to a temporary file (0600) that is hard-linked to `lock`; link() fails
 * if `lock` exists, so of two agents starting together exactly one wins. On a full disk (the line cannot be written)
 * the lock is a symbolic link whose target is the line instead: creating it needs no data block (on ext4 and tmpfs),
 * and symlink() is just as exclusive. An existing lock whose holder is alive stops the start with a one-line
 * EdgeheadError (code IO: the CLI exits 1) naming the other pid and the dir. A stale one (holder dead, previous boot,
 * pid reused, this very pid: a restarted container, or unreadable) is taken over by renaming it aside first: only one
 * of several agents can rename it, and one that finds it moved a fresh lock by mistake (another agent took over in
 * between: the inode differs) puts that one back. Released on stop, and at process exit if stop never ran.
 *
 * Limits: the holder is checked in this pid namespace; two containers sharing one state dir see each other's pid as
 * unknown (dead), so give each its own state dir.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EdgeheadError } from '../../base/errors';
import { isNoSpaceError } from '../../base/durable-file';
import { createLogger } from '../../base/log';

const log = createLogger('state');

export const LOCK_FILE = 'lock';
const LOCK_MODE = 0o600;
const ATTEMPTS = 5;

/** Locks held by this process: a second agent in the same process is refused too. */
const heldHere = new Set<string>();

export interface StateLock {
  readonly file: string;
  /** Removes the lock file if it is still this process's. Idempotent. */
  release(): void;
}

interface Holder {
  pid: number;
  start?: number;
  boot?: string;
}

export interface LockOptions {
  /** Called when the lock line could not be written for lack of space (the symlink form was used). */
  onNoSpace?: (e: unknown) => void;
}

/** Takes the lock on `dir` (an existing folder) or throws; errors other than "in use" are raw fs errors. */
export function acquireLock(dir: string, opts: LockOptions = {}): StateLock {
  const file = path.join(dir, LOCK_FILE);
  const me = selfLine();
  if (heldHere.has(file)) throw inUse(dir, process.pid, file);
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    if (tryCreate(file, me, opts)) return held(file, me);
    const cur = readLock(file);
    if (!cur) continue; // released meanwhile
    const holder = parseHolder(cur.text);
    if (holder && isAlive(holder)) throw inUse(dir, holder.pid, file);
    const aside = `${file}.stale-${process.pid}`;
    try {
      fs.renameSync(file, aside);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // another agent took it over first
      throw e;
    }
    if (fs.lstatSync(aside).ino !== cur.ino) {
      // Not the stale lock any more: another agent's fresh one. Put it back (unless yet another exists) and look again.
      try {
        fs.linkSync(aside, file);
      } catch {
        // a newer lock is in place: that one is checked next
      }
      fs.rmSync(aside, { force: true });
      continue;
    }
    fs.rmSync(aside, { force: true });
    log.warn('took over a stale state dir lock', { dir, was: cur.text.trim() || '(empty)' });
  }
  throw new EdgeheadError('IO', `stateDir ${dir}: could not take the lock ${file} (it kept changing; is another agent starting?)`);
}

function held(file: string, me: string): StateLock {
  heldHere.add(file);
  const onExit = () => release();
  process.once('exit', onExit);
  let released = false;
  function release(): void {
    if (released) return;
    released = true;
    heldHere.delete(file);
    process.removeListener('exit', onExit);
    try {
      if (readLock(file)?.text === me) fs.rmSync(file, { force: true });
    } catch {
      // best effort: a lock left behind is stale once this process is gone
    }
  }
  return { file, release };
}

/** Creates the lock with content `me`; false if it exists. */
function tryCreate(file: string, me: string, opts: LockOptions): boolean {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.rmSync(tmp, { force: true });
  try {
    try {
      const fd = fs.openSync(tmp, 'wx', LOCK_MODE);
      try {
        fs.fchmodSync(fd, LOCK_MODE);
        fs.writeSync(fd, me);
      } finally {
        fs.closeSync(fd);
      }
    } catch (e) {
      if (!isNoSpaceError(e)) throw e;
      opts.onNoSpace?.(e);
      return exclusive(() => fs.symlinkSync(me, file));
    }
    return exclusive(() => fs.linkSync(tmp, file));
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function exclusive(create: () => void): boolean {
  try {
    create();
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

/** The lock's line (a file's content or a symlink's target) and inode; undefined if there is none. */
function readLock(file: string): { text: string; ino: number } | undefined {
  try {
    const st = fs.lstatSync(file);
    return { text: st.isSymbolicLink() ? fs.readlinkSync(file) : fs.readFileSync(file, 'utf8'), ino: st.ino };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

function parseHolder(text: string): Holder | undefined {
  const pid = Number(/(?:^|\s)pid=(\d+)/.exec(text)?.[1]);
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  const start = /(?:^|\s)start=(\d+)/.exec(text)?.[1];
  const boot = /(?:^|\s)boot=([0-9a-f]+)/.exec(text)?.[1];
  return { pid, ...(start ? { start: Number(start) } : {}), ...(boot ? { boot } : {}) };
}

function isAlive(h: Holder): boolean {
  if (h.pid === process.pid) return false; // not held here (checked first), so left by an earlier process with this pid
  const boot = bootId();
  if (h.boot && boot && h.boot !== boot) return false;
  try {
    process.kill(h.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false; // ESRCH: no such process
  }
  const start = startTicks(h.pid);
  return h.start === undefined || start === undefined || start === h.start;
}

function selfLine(): string {
  const start = startTicks(process.pid);
  const boot = bootId();
  return `pid=${process.pid}${start !== undefined ? ` start=${start}` : ''}${boot ? ` boot=${boot}` : ''}\n`;
}

/** Start time of a process in clock ticks since boot (/proc/<pid>/stat field 22); undefined where there is no /proc. */
function startTicks(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const v = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    return Number.isSafeInteger(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

let cachedBoot: string | null | undefined;
function bootId(): string | undefined {
  if (cachedBoot === undefined) {
    try {
      cachedBoot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').replace(/[^0-9a-f]/g, '').slice(0, 8) || null;
    } catch {
      cachedBoot = null;
    }
  }
  return cachedBoot ?? undefined;
}

function inUse(dir: string, pid: number, file: string): EdgeheadError {
  const who = pid === process.pid ? 'this process (another agent in it)' : `another edgehead agent (pid ${pid})`;
  return new EdgeheadError('IO', `stateDir ${dir} is in use by ${who}; lock file ${file}`, {
    hint: 'stop that agent, or give each agent its own stateDir',
  });
}
