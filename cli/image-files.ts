/** The images a command line names: files as given, folders walked recursively for images, sorted. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EdgeheadError } from '../base/errors';

/** The file name endings taken from a folder (a file named on the command line is always tried). */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png'] as const;

const isImageName = (name: string) => (IMAGE_EXTENSIONS as readonly string[]).includes(path.extname(name).toLowerCase());

/**
 * Each argument that is a folder becomes the images under it (recursively, sorted by path; hidden entries and
 * symlinked folders skipped); anything else stays as given. A folder that cannot be read, or holds no image, is
 * reported through `fail` and the rest continue.
 */
export function* imageFiles(args: string[], fail: (what: string, e: unknown) => void): Generator<string> {
  for (const arg of args) {
    let stat: fs.Stats | undefined;
    try {
      stat = fs.statSync(arg);
    } catch {
      // not there: reading it reports the error, per file
    }
    if (!stat?.isDirectory()) {
      yield arg;
      continue;
    }
    const found: string[] = [];
    walk(arg, found, fail);
    if (found.length === 0) fail(arg, new EdgeheadError('IO', `no images (${IMAGE_EXTENSIONS.join(', ')}) in this folder`));
    yield* found.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }
}

function walk(dir: string, found: string[], fail: (what: string, e: unknown) => void): void {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    fail(dir, new EdgeheadError('IO', `cannot read folder: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`));
    return;
  }
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(full, found, fail);
    else if (isImageName(entry.name) && (entry.isFile() || (entry.isSymbolicLink() && isFile(full)))) found.push(full);
  }
}

function isFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return true; // a dangling link: reading it reports the error
  }
}
