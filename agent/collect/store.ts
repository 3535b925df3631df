/**
 * The sample store: collected samples under <stateDir>/collect/, each as <id>.json (protocol/dataset.ts Sample) and,
 * when collect.images is on, <id>.jpg. Both are written atomically (base/durable-file.ts), the JPEG first: the
 * .json is the commit point, so a crash leaves either a whole sample or pieces that open() removes. At open, a
 * torn or invalid .json, a .json whose promised .jpg is missing, a .jpg without its .json and leftover temporary
 * files are removed and counted (`damaged`). The disk cap (collect.maxMB) is enforced on every add by evicting the
 * oldest samples (counted in `evicted`). Samples leave the store only by eviction or by ack (the server has them).
 *
 * The index (id, bytes, image) is in memory; sample bodies stay on disk until fetched. Ids sort by run, then frame.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Value } from '@sinclair/typebox/value';
import { fsyncDir, writeFileDurable } from '../../base/durable-file';
import { EdgeheadError } from '../../base/errors';
import { createLogger } from '../../base/log';
import { type CollectFetchReply, type CollectStatusReply, compareSampleIds, COLLECT_FETCH_MAX_BYTES } from '../../protocol/commands';
import { type Sample, SampleSchema } from '../../protocol/dataset';

const log = createLogger('collect');

const ID_RE = /^[0-9]+-[0-9]+$/;
/** Bytes a sample adds to a fetch reply beyond its JSON and base64 image (keys, quotes, commas). */
const REPLY_OVERHEAD = 64;

interface Entry {
  id: string;
  /** Bytes on disk: the .json and the .jpg. */
  bytes: number;
  image: boolean;
}

export interface SampleStoreOptions {
  /** <stateDir>/collect */
  dir: string;
  /** collect.maxMB in bytes. */
  maxBytes: number;
}

export class SampleStore {
  private entries: Entry[] = [];
  private total = 0;
  /** Samples evicted to stay within the cap since open. */
  evicted = 0;
  /** Incomplete or damaged samples (and stray pieces) removed at open. */
  damaged = 0;

  private constructor(private readonly opts: SampleStoreOptions) {}

  /** Opens (creating) the folder and removes what a crash left behind. */
  static open(opts: SampleStoreOptions): SampleStore {
    const s = new SampleStore(opts);
    try {
      fs.mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
      s.scan();
    } catch (e) {
      throw new EdgeheadError('IO', `collect: cannot open ${opts.dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
    s.enforceCap();
    return s;
  }

  private file(id: string, ext: 'json' | 'jpg'): string {
    return path.join(this.opts.dir, `${id}.${ext}`);
  }

  private scan(): void {
    const names = fs.readdirSync(this.opts.dir);
    const present = new Set(names);
    const removed = (name: string, why: string) => {
      fs.rmSync(path.join(this.opts.dir, name), { force: true });
      this.damaged++;
      log.warn('collect: removed an incomplete sample file', { file: name, why });
    };
    for (const name of names) {
      if (name.includes('.tmp')) {
        fs.rmSync(path.join(this.opts.dir, name), { force: true }); // an interrupted write (base/durable-file.ts)
        continue;
      }
      const m = /^(.*)\.(json|jpg)$/.exec(name);
      if (!m || !ID_RE.test(m[1]!)) {
        removed(name, 'not a sample file');
        continue;
      }
      const id = m[1]!;
      if (m[2] === 'jpg') {
        if (!present.has(`${id}.json`)) removed(name, 'image without its sample');
        continue;
      }
      const sample = readSample(this.file(id, 'json'));
      if (!sample || sample.id !== id) {
        removed(name, 'torn or invalid sample');
        if (present.has(`${id}.jpg`)) removed(`${id}.jpg`, 'image of a removed sample');
        present.delete(`${id}.jpg`);
        continue;
      }
      const jsonBytes = fs.statSync(this.file(id, 'json')).size;
      let jpgBytes = 0;
      if (sample.image) {
        jpgBytes = present.has(`${id}.jpg`) ? fs.statSync(this.file(id, 'jpg')).size : 0;
        if (jpgBytes === 0) {
          removed(name, 'its image is missing');
          if (present.has(`${id}.jpg`)) removed(`${id}.jpg`, 'empty image');
          present.delete(`${id}.jpg`);
          continue;
        }
      } else if (present.has(`${id}.jpg`)) {
        removed(`${id}.jpg`, 'image of a features-only sample');
        present.delete(`${id}.jpg`);
      }
      this.entries.push({ id, bytes: jsonBytes + jpgBytes, image: sample.image });
      this.total += jsonBytes + jpgBytes;
    }
    this.entries.sort((a, b) => compareSampleIds(a.id, b.id));
    fsyncDir(this.opts.dir);
  }

  /** Stores a sample (and its JPEG when `sample.image`), then evicts the oldest beyond the cap. */
  add(sample: Sample, jpeg?: Uint8Array): void {
    if (sample.image !== (jpeg !== undefined)) throw new Error(`collect: sample ${sample.id}: image ${sample.image} but ${jpeg ? 'a' : 'no'} JPEG given`);
    if (this.entries.some((e) => e.id === sample.id)) return; // already stored (the same frame twice)
    if (jpeg) writeFileDurable(this.file(sample.id, 'jpg'), jpeg, { mode: 0o600 });
    const json = JSON.stringify(sample);
    try {
      writeFileDurable(this.file(sample.id, 'json'), json, { mode: 0o600 });
    } catch (e) {
      if (jpeg) fs.rmSync(this.file(sample.id, 'jpg'), { force: true }); // no image without its sample (e.g. disk full)
      throw e;
    }
    const entry = { id: sample.id, bytes: Buffer.byteLength(json) + (jpeg?.byteLength ?? 0), image: sample.image };
    const last = this.entries.at(-1);
    this.entries.push(entry);
    if (last && compareSampleIds(last.id, entry.id) > 0) this.entries.sort((a, b) => compareSampleIds(a.id, b.id));
    this.total += entry.bytes;
    this.enforceCap();
  }

  private enforceCap(): void {
    while (this.total > this.opts.maxBytes && this.entries.length > 0) {
      this.remove(this.entries[0]!);
      this.evicted++;
    }
  }

  /** Removes a sample: the .json first (a crash then leaves a stray .jpg, which open() removes). */
  private remove(e: Entry): void {
    fs.rmSync(this.file(e.id, 'json'), { force: true });
    if (e.image) fs.rmSync(this.file(e.id, 'jpg'), { force: true });
    const i = this.entries.indexOf(e);
    if (i >= 0) this.entries.splice(i, 1);
    this.total -= e.bytes;
  }

  /** Samples after `after` in id order, as many as fit in maxBytes (at least one), and whether more follow. */
  fetch(after: string | undefined, maxBytes = COLLECT_FETCH_MAX_BYTES): CollectFetchReply {
    const out: CollectFetchReply = { samples: [], images: {}, more: false };
    let size = 0;
    const pending = this.entries.filter((e) => after === undefined || compareSampleIds(e.id, after) > 0);
    for (const e of pending) {
      const sample = readSample(this.file(e.id, 'json'));
      const jpeg = e.image ? readOptional(this.file(e.id, 'jpg')) : undefined;
      if (!sample || (e.image && !jpeg)) {
        log.warn('collect: a stored sample went missing; dropped', { id: e.id });
        this.remove(e);
        continue;
      }
      const image = jpeg?.toString('base64');
      const bytes = JSON.stringify(sample).length + (image ? image.length + e.id.length : 0) + REPLY_OVERHEAD;
      if (out.samples.length > 0 && size + bytes > maxBytes) {
        out.more = true;
        break;
      }
      out.samples.push(sample);
      if (image) out.images[e.id] = image;
      size += bytes;
    }
    return out;
  }

  /** Deletes the given samples (the server stored them); unknown ids are ignored. Returns how many were deleted. */
  ack(ids: readonly string[]): number {
    const wanted = new Set(ids);
    const gone = this.entries.filter((e) => wanted.has(e.id));
    for (const e of gone) this.remove(e);
    if (gone.length > 0) fsyncDir(this.opts.dir);
    return gone.length;
  }

  status(): CollectStatusReply {
    return {
      count: this.entries.length,
      bytes: this.total,
      evicted: this.evicted,
      damaged: this.damaged,
      oldest: this.entries[0]?.id ?? null,
      newest: this.entries.at(-1)?.id ?? null,
    };
  }
}

function readOptional(file: string): Buffer | undefined {
  try {
    return fs.readFileSync(file);
  } catch {
    return undefined;
  }
}

/** A stored sample, or undefined when the file is missing, torn or not a valid sample. */
function readSample(file: string): Sample | undefined {
  const buf = readOptional(file);
  if (!buf) return undefined;
  try {
    const v: unknown = JSON.parse(buf.toString('utf8'));
    return Value.Check(SampleSchema, v) ? v : undefined;
  } catch {
    return undefined;
  }
}
