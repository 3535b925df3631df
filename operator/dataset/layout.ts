/**
 * The data folder `edgehead dataset pull` fills and `edgehead head train --data` reads:
 *
 *   DIR/unlabeled/<device>-<sample id>.json   the sample (protocol/dataset.ts SampleSchema): features, prediction...
 *   DIR/unlabeled/<device>-<sample id>.jpg    its downscaled frame, when the device collects images
 *   DIR/<class>/<device>-<sample id>.{json,jpg}   after labelling: both files moved into the class folder
 *
 * A pulled sample is known by its file name wherever it was moved to, so pulling again never duplicates it.
 * Each file is written atomically (base/durable-file.ts), the JPEG first: the .json is the commit point.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileDurable } from '../../base/durable-file';
import { EdgeheadError } from '../../base/errors';
import type { Sample } from '../../protocol/dataset';
import { UNLABELED_FOLDER } from '../training/dataset';

export { UNLABELED_FOLDER };

/** A pulled sample's file name without extension: `<device>-<sample id>` (both are safe in a file name). */
export const sampleFileBase = (device: string, id: string): string => `${device}-${id}`;

export class DataFolder {
  /** Base names of the samples already in DIR (unlabeled or in any class folder). */
  private readonly known = new Set<string>();
  readonly unlabeled: string;

  /** Opens DIR (creating it and DIR/unlabeled/) and notes the samples already there. */
  constructor(readonly dir: string) {
    this.unlabeled = path.join(dir, UNLABELED_FOLDER);
    try {
      fs.mkdirSync(this.unlabeled, { recursive: true });
      for (const sub of fs.readdirSync(dir, { withFileTypes: true })) {
        if (!sub.isDirectory() || sub.name.startsWith('.')) continue;
        for (const f of fs.readdirSync(path.join(dir, sub.name))) {
          if (f.endsWith('.json') && !f.includes('.tmp')) this.known.add(f.slice(0, -'.json'.length));
        }
      }
    } catch (e) {
      throw new EdgeheadError('IO', `--out ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
  }

  has(device: string, id: string): boolean {
    return this.known.has(sampleFileBase(device, id));
  }

  /** Writes a sample (and its JPEG) into DIR/unlabeled/, unless it is already somewhere in DIR. Returns whether it wrote. */
  write(sample: Sample, jpeg: Uint8Array | undefined): boolean {
    const base = sampleFileBase(sample.device, sample.id);
    if (this.known.has(base)) return false;
    try {
      if (jpeg) writeFileDurable(path.join(this.unlabeled, `${base}.jpg`), jpeg);
      writeFileDurable(path.join(this.unlabeled, `${base}.json`), JSON.stringify(sample) + '\n');
    } catch (e) {
      throw new EdgeheadError('IO', `cannot write ${path.join(this.unlabeled, base)}.json: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
    this.known.add(base);
    return true;
  }
}
