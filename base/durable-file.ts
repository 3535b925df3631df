/**
 * The one way a file is replaced on disk: write a temporary file in the same folder, fsync it, rename it over the
 * target, fsync the folder. A crash or power cut at any point leaves either the old or the new content under the
 * name, never a mix; after the call returns the new content survives a power cut. A leftover temporary file
 * (`<name>.tmp-<pid>`) may remain after a crash; owners of a folder remove them at start (they contain ".tmp").
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

export interface DurableWriteOptions {
  /** File mode of the new file, applied to the temporary file before any byte is written (umask ignored). */
  mode?: number;
}

/** A written and fsync'ed temporary file, not yet in place: commit() renames it over the target. */
export interface StagedFile {
  readonly tmp: string;
  /** Renames the temporary file over the target and fsyncs the folder. */
  commit(): void;
  /** Removes the temporary file (after a failure between staging and commit). */
  abort(): void;
}

/** Replaces `file` with `data` atomically and durably. */
export function writeFileDurable(file: string, data: Uint8Array | string, opts: DurableWriteOptions = {}): void {
  const staged = stageFile(file, data, opts);
  try {
    staged.commit();
  } catch (e) {
    staged.abort();
    throw e;
  }
}

/**
 * The first half of writeFileDurable: the data is in a temporary file beside `file`, fsync'ed. For callers that
 * must do something between writing the new content and putting it in place (e.g. move the old file aside).
 */
export function stageFile(file: string, data: Uint8Array | string, opts: DurableWriteOptions = {}): StagedFile {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.rmSync(tmp, { force: true });
  try {
    const fd = fs.openSync(tmp, 'wx', opts.mode ?? 0o666);
    try {
      if (opts.mode !== undefined) fs.fchmodSync(fd, opts.mode); // the umask may have removed bits
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      let off = 0;
      while (off < bytes.byteLength) off += fs.writeSync(fd, bytes, off, bytes.byteLength - off);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  return {
    tmp,
    commit() {
      fs.renameSync(tmp, file);
      fsyncDir(path.dirname(file));
    },
    abort() {
      fs.rmSync(tmp, { force: true });
    },
  };
}

/**
 * Makes the folder's entries (created, renamed or deleted files) durable. Some file systems refuse fsync on a
 * folder (EINVAL, EISDIR, EPERM); there a rename is still atomic, only its durability is up to the file system, so
 * the error is ignored.
 */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // see above
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** fsyncDir without blocking the event loop. */
export async function fsyncDirAsync(dir: string): Promise<void> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(dir, 'r');
    await fh.sync();
  } catch {
    // see fsyncDir
  } finally {
    await fh?.close();
  }
}

/** The file system is out of space (ENOSPC) or quota (EDQUOT), for `e` or the error it wraps. */
export function isNoSpaceError(e: unknown): boolean {
  for (let x = e, depth = 0; x && typeof x === 'object' && depth < 5; x = (x as { cause?: unknown }).cause, depth++) {
    const code = (x as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
  }
  return false;
}
