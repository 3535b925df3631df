/**
 * type: directory — replays the JPEG/PNG files of a folder (sub-folders included) in sorted order of their relative
 * paths, wrapping around; the folder is listed again at each wrap, so files added or removed are noticed on the next
 * round. Default folder: the bundled sample frames. Hidden files and folders (".name", e.g. macOS "._x.jpg") are
 * skipped; symbolic links are followed, each real folder is listed once (under the first path, in name order, that
 * reaches it), so link cycles end.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { Static } from '@sinclair/typebox';
import type { SourceSchema } from '../../config/schema';
import { type Clock, systemClock } from '../../base/clock';
import { EdgeheadError, describeError } from '../../base/errors';
import { createLogger } from '../../base/log';
import { resourcePath } from '../../base/paths';
import { describeBytes, imageKind } from './common';
import type { Frame, FrameSource } from './source';

export type DirectorySettings = Static<typeof SourceSchema>['directory'];

const IMAGE_EXT = /\.(jpe?g|png)$/i;
const log = createLogger('source:directory');

export class DirectorySource implements FrameSource {
  readonly type = 'directory';
  /** Absolute folder being replayed. */
  readonly folder: string;
  private readonly clock: Clock;
  /** Relative paths ('/'-separated) of the current round, sorted. */
  private files: string[] = [];
  private next = 0;
  private started = false;

  constructor(settings: DirectorySettings, deps: { clock?: Clock } = {}) {
    this.folder = path.resolve(settings.path ?? resourcePath('assets', 'samples'));
    this.clock = deps.clock ?? systemClock;
  }

  async start(): Promise<void> {
    if (this.started) return;
    let files: string[];
    try {
      files = await listImages(this.folder);
    } catch (e) {
      throw new EdgeheadError('BAD_CONFIG', `source.directory.path: cannot read folder ${this.folder}: ${describeError(e)}`, {
        hint: 'point source.directory.path at a folder of JPEG/PNG images',
        cause: e,
      });
    }
    if (files.length === 0) {
      throw new EdgeheadError('BAD_CONFIG', `source.directory.path: no JPEG or PNG files in ${this.folder}`, {
        hint: 'add .jpg/.jpeg/.png images to the folder (sub-folders are searched too)',
      });
    }
    this.files = files;
    this.next = 0;
    this.started = true;
    log.debug('started', { folder: this.folder, files: files.length });
  }

  async capture(): Promise<Frame> {
    if (!this.started) throw new EdgeheadError('CAPTURE', 'directory source is not started');
    const t0 = this.clock.now();
    // Files may vanish between listing and reading: skip those, but never loop for ever.
    for (let attempt = 0; ; attempt++) {
      if (this.next >= this.files.length) await this.rescan();
      const rel = this.files[this.next++]!;
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(await fs.readFile(path.join(this.folder, rel)));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' && attempt < this.files.length) {
          log.debug('file vanished, skipping', { file: rel });
          continue;
        }
        throw new EdgeheadError('CAPTURE', `cannot read ${path.join(this.folder, rel)}: ${describeError(e)}`, { cause: e });
      }
      if (!imageKind(bytes)) {
        throw new EdgeheadError('CAPTURE', `${path.join(this.folder, rel)} is not a JPEG or PNG image (${describeBytes(bytes)})`);
      }
      const capturedAt = this.clock.now();
      return { bytes, capturedAt, origin: `directory:${rel}`, captureMs: capturedAt - t0 };
    }
  }

  async stop(): Promise<void> {
    this.started = false;
    this.files = [];
    this.next = 0;
  }

  /** Lists the folder again for the next round. */
  private async rescan(): Promise<void> {
    let files: string[];
    try {
      files = await listImages(this.folder);
    } catch (e) {
      throw new EdgeheadError('CAPTURE', `cannot list ${this.folder}: ${describeError(e)}`, { cause: e });
    } finally {
      this.next = 0;
    }
    this.files = files;
    if (files.length === 0) throw new EdgeheadError('CAPTURE', `no JPEG or PNG files left in ${this.folder}`);
    log.debug('rescanned', { files: files.length });
  }
}

/** Relative paths ('/'-separated) of the JPEG/PNG files under root, sorted by code unit. Throws if root is unreadable
 * or not a folder. */
export async function listImages(root: string): Promise<string[]> {
  const out: string[] = [];
  const seen = new Set<string>();
  const walk = async (dir: string, rel: string): Promise<void> => {
    const real = await fs.realpath(dir);
    if (seen.has(real)) return;
    seen.add(real);
    // Entries in name order, so that which path reaches a folder linked twice does not depend on the file system.
    const entries = (await fs.readdir(dir, { withFileTypes: true })).sort((a, b) => compare(a.name, b.name));
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const abs = path.join(dir, entry.name);
      const relPath = rel ? `${rel}/${entry.name}` : entry.name;
      let isDir = entry.isDirectory();
      let isFile = entry.isFile();
      if (entry.isSymbolicLink()) {
        const st = await fs.stat(abs).catch(() => undefined); // a dangling link is skipped
        isDir = st?.isDirectory() ?? false;
        isFile = st?.isFile() ?? false;
      }
      if (isDir) await walk(abs, relPath);
      else if (isFile && IMAGE_EXT.test(entry.name)) out.push(relPath);
    }
  };
  const st = await fs.stat(root);
  if (!st.isDirectory()) throw new Error('not a folder');
  await walk(root, '');
  return out.sort(compare);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
