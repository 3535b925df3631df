/**
 * The labelling page's store (dataset.dir): the data folder `edgehead dataset pull` fills, read and changed the way
 * docs/data-loop.md tells a person to do it by hand (operator/dataset/layout.ts has the layout):
 *
 *   DIR/unlabeled/<device>-<run>-<frameId>.json (+ .jpg)   pulled, not labelled yet
 *   DIR/<class>/<device>-<run>-<frameId>.json (+ .jpg)     labelled: both files moved into the class folder
 *
 * It lists the unlabeled samples (and, on request, one class's) from their side-files, counts the classes, reads a
 * sample's JPEG, and moves samples into a class folder (created when new) or back into unlabeled/. A sample is named
 * by its file base name, unique in DIR wherever it was moved to; a name must match the pulled-sample pattern and an
 * existing `<folder>/<name>.json` before anything is touched, and a class name must be an id that is not hidden nor
 * "unlabeled", so no request can reach outside DIR. Moves are serialised (one at a time), the side-file first: a
 * crash between the two renames leaves the features labelled and at worst the picture behind, which training ignores.
 * Side-files are parsed once and remembered by name (a pulled sample never changes), so a refresh only reads new ones.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EdgeheadError } from '../../base/errors';
import { createLogger } from '../../base/log';
import { SampleSchema } from '../../protocol/dataset';
import { ID_RE, ID_RULE } from '../../protocol/patterns';
import { schemaErrors } from '../../protocol/validate';
import { UNLABELED_FOLDER } from '../training/dataset';
import type { DatasetClass, DatasetSample, DatasetView } from './model';

const log = createLogger('fleet:labels');

/** A pulled sample's base name: `<device>-<run>-<frameId>` (operator/dataset/layout.ts sampleFileBase). */
export const SAMPLE_NAME_RE = /^(?!\.)[A-Za-z0-9_.-]{1,64}-[0-9]{1,15}-[0-9]{1,15}$/;
/** Most samples one label request may move. */
export const LABEL_MAX_SAMPLES = 5000;
/** Largest JPEG served (the device caps its own at 160 KiB). */
const IMAGE_MAX_BYTES = 4 * 1024 * 1024;
const IMAGE_EXT = /\.(jpe?g|png)$/i;
const SIDE_EXT = '.json';

/** Why a class name is refused, or undefined when it is a good folder name for DIR/<class>/. */
export function classNameProblem(name: string): string | undefined {
  if (!ID_RE.test(name)) return `class "${name}": ${ID_RULE}`;
  if (name.startsWith('.')) return `class "${name}": must not start with "."`;
  if (name === UNLABELED_FOLDER) return `class "${name}": "${UNLABELED_FOLDER}" is where samples wait to be labelled, not a class`;
  return undefined;
}

export interface DatasetLabelsOptions {
  /** The data folder (dataset.dir); must exist. */
  dir: string;
  /** Most samples listed per folder in one view (the rest are counted): dataset.maxList. */
  maxList: number;
}

export class DatasetLabels {
  readonly dir: string;
  private readonly maxList: number;
  /** Parsed side-files by sample name (a pulled sample's file never changes). */
  private readonly summaries = new Map<string, DatasetSample>();
  /** The moves, one after another. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(opts: DatasetLabelsOptions) {
    this.dir = path.resolve(opts.dir);
    this.maxList = opts.maxList;
    let stat: fs.Stats | undefined;
    try {
      stat = fs.statSync(this.dir);
    } catch {
      stat = undefined;
    }
    if (!stat?.isDirectory()) {
      throw new EdgeheadError('BAD_CONFIG', `dataset.dir: not a folder: ${this.dir}`, { hint: `create it, or fill it with \`edgehead dataset pull --out ${this.dir}\`` });
    }
  }

  /** The classes with their sample counts, the unlabeled samples and, with `className`, that class's samples. */
  async view(className?: string): Promise<DatasetView> {
    if (className !== undefined) this.checkClass(className);
    const classes = await this.classes();
    const unlabeled = await this.samplesIn(UNLABELED_FOLDER);
    const view: DatasetView = { dir: this.dir, classes, unlabeledCount: unlabeled.count, unlabeled: unlabeled.samples };
    if (className !== undefined) {
      if (!classes.some((c) => c.name === className)) throw new EdgeheadError('BAD_ARGS', `no class "${className}" in ${this.dir}`);
      view.class = { name: className, samples: (await this.samplesIn(className)).samples };
    }
    return view;
  }

  /** The JPEG of a sample (wherever it is), or undefined when the name is unknown or it has no picture. */
  async image(name: string): Promise<Buffer | undefined> {
    if (!SAMPLE_NAME_RE.test(name)) return undefined;
    const folder = await this.folderOf(name);
    if (folder === undefined) return undefined;
    const file = path.join(this.dir, folder, `${name}.jpg`);
    try {
      const stat = await fs.promises.stat(file);
      if (!stat.isFile() || stat.size > IMAGE_MAX_BYTES) return undefined;
      return await fs.promises.readFile(file);
    } catch {
      return undefined;
    }
  }

  /** Moves samples (from unlabeled/ or another class) into DIR/<className>/, creating it. Every name is checked first. */
  label(names: readonly string[], className: string): Promise<{ moved: number }> {
    return this.serial(async () => {
      this.checkClass(className);
      return this.move(names, className);
    });
  }

  /** Moves labelled samples back into DIR/unlabeled/. */
  unlabel(names: readonly string[]): Promise<{ moved: number }> {
    return this.serial(() => this.move(names, UNLABELED_FOLDER));
  }

  // -------------------------------------------------------------------------------------------------------------

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private checkClass(name: string): void {
    const problem = classNameProblem(name);
    if (problem) throw new EdgeheadError('BAD_ARGS', problem);
  }

  private async move(names: readonly string[], to: string): Promise<{ moved: number }> {
    if (names.length === 0) throw new EdgeheadError('BAD_ARGS', 'samples: name at least one sample');
    if (names.length > LABEL_MAX_SAMPLES) throw new EdgeheadError('BAD_ARGS', `samples: at most ${LABEL_MAX_SAMPLES} per request (got ${names.length})`);
    const unique = [...new Set(names)];
    const from = new Map<string, string>();
    for (const name of unique) {
      if (typeof name !== 'string' || !SAMPLE_NAME_RE.test(name)) throw new EdgeheadError('BAD_ARGS', `sample ${JSON.stringify(name)}: not a pulled sample's name (<device>-<run>-<frame>)`);
      const folder = await this.folderOf(name);
      if (folder === undefined) throw new EdgeheadError('BAD_ARGS', `sample "${name}": no ${name}${SIDE_EXT} in ${this.dir} (moved or deleted meanwhile? reload)`);
      if (to === UNLABELED_FOLDER && folder === UNLABELED_FOLDER) throw new EdgeheadError('BAD_ARGS', `sample "${name}" is not labelled`);
      from.set(name, folder);
    }
    const target = path.join(this.dir, to);
    await fs.promises.mkdir(target, { recursive: true });
    let moved = 0;
    for (const [name, folder] of from) {
      if (folder === to) continue;
      try {
        await this.moveOne(name, path.join(this.dir, folder), target);
      } catch (e) {
        throw new EdgeheadError('IO', `moved ${moved} of ${from.size} sample(s), then ${name}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
      }
      moved++;
    }
    log.info('samples moved', { to, moved });
    return { moved };
  }

  /** The side-file first (the commit point), then the picture; the side-file goes back if the picture cannot follow. */
  private async moveOne(name: string, fromDir: string, toDir: string): Promise<void> {
    const json = `${name}${SIDE_EXT}`;
    if (fs.existsSync(path.join(toDir, json))) throw new Error(`${path.join(toDir, json)} already exists`);
    await fs.promises.rename(path.join(fromDir, json), path.join(toDir, json));
    const jpg = `${name}.jpg`;
    if (!fs.existsSync(path.join(fromDir, jpg))) return;
    try {
      await fs.promises.rename(path.join(fromDir, jpg), path.join(toDir, jpg));
    } catch (e) {
      await fs.promises.rename(path.join(toDir, json), path.join(fromDir, json)).catch(() => undefined);
      throw e;
    }
  }

  /** The folder (unlabeled or a class) holding `<name>.json`, or undefined. */
  private async folderOf(name: string): Promise<string | undefined> {
    for (const folder of [UNLABELED_FOLDER, ...(await this.classFolders())]) {
      if (fs.existsSync(path.join(this.dir, folder, `${name}${SIDE_EXT}`))) return folder;
    }
    return undefined;
  }

  /** Sub-folders of DIR that are classes (not hidden, not unlabeled/, a valid class name). */
  private async classFolders(): Promise<string[]> {
    const entries = await fs.promises.readdir(this.dir, { withFileTypes: true });
    return entries
      .filter((e) => e.isDirectory() && classNameProblem(e.name) === undefined)
      .map((e) => e.name)
      .sort();
  }

  private async classes(): Promise<DatasetClass[]> {
    const out: DatasetClass[] = [];
    for (const name of await this.classFolders()) {
      const files = await fs.promises.readdir(path.join(this.dir, name));
      const sides = new Set(files.filter((f) => f.endsWith(SIDE_EXT)).map((f) => f.slice(0, -SIDE_EXT.length)));
      // Counted as training counts them: side-files, plus pictures without one.
      const lone = files.filter((f) => IMAGE_EXT.test(f) && !sides.has(f.replace(IMAGE_EXT, ''))).length;
      out.push({ name, count: sides.size + lone });
    }
    return out;
  }

  /** The pulled samples of a folder, oldest first (then by name), at most maxList, and how many there are. */
  private async samplesIn(folder: string): Promise<{ samples: DatasetSample[]; count: number }> {
    const dir = path.join(this.dir, folder);
    let files: string[];
    try {
      files = await fs.promises.readdir(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { samples: [], count: 0 };
      throw e;
    }
    const names = files.filter((f) => f.endsWith(SIDE_EXT)).map((f) => f.slice(0, -SIDE_EXT.length)).filter((n) => SAMPLE_NAME_RE.test(n));
    const images = new Set(files.filter((f) => f.endsWith('.jpg')).map((f) => f.slice(0, -4)));
    const samples: DatasetSample[] = [];
    for (const name of names) {
      const s = await this.summary(dir, name);
      if (s) samples.push({ ...s, image: images.has(name) });
    }
    samples.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { samples: samples.slice(0, this.maxList), count: samples.length };
  }

  /** A side-file's listing fields (parsed once); undefined when it is not a valid sample (logged). */
  private async summary(dir: string, name: string): Promise<DatasetSample | undefined> {
    const known = this.summaries.get(name);
    if (known) return known;
    let parsed: unknown;
    try {
      parsed = JSON.parse(await fs.promises.readFile(path.join(dir, `${name}${SIDE_EXT}`), 'utf8'));
    } catch (e) {
      log.debug('unreadable side-file skipped', { name, error: (e as Error).message });
      return undefined;
    }
    const errors = schemaErrors(SampleSchema, parsed, name, 1);
    if (errors.length > 0) {
      log.debug('invalid side-file skipped', { name, error: errors[0] });
      return undefined;
    }
    const s = parsed as { device: string; id: string; ts: string; reason: string; prediction: { label: string; score: number } };
    const summary: DatasetSample = { name, device: s.device, id: s.id, ts: s.ts, reason: s.reason, prediction: { label: s.prediction.label, score: s.prediction.score }, image: false };
    if (this.summaries.size >= 200_000) this.summaries.clear();
    this.summaries.set(name, summary);
    return summary;
  }
}
