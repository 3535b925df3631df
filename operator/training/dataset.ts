/**
 * A labelled data folder: DIR/<class>/ holds images (*.jpg, *.jpeg, *.png) and/or feature side-files (<name>.json,
 * protocol/dataset.ts SampleSchema, as `dataset pull` writes them). An image and a side-file with the same base name
 * are one sample (the side-file's features are used; the image is not extracted again). Classes are the folder
 * names, sorted; DIR/unlabeled/ (where `dataset pull` puts samples before labelling) and hidden folders are ignored.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EdgeheadError } from '../../base/errors';

export interface DatasetItem {
  /** `<class>/<file name>`: the stable name folds are assigned by. */
  key: string;
  label: number;
  /** The image, when there is one. */
  image?: string;
  /** The feature side-file, when there is one (then it, not the image, gives the features). */
  sideFile?: string;
}

export interface Dataset {
  classes: string[];
  items: DatasetItem[];
}

export const UNLABELED_FOLDER = 'unlabeled';
const IMAGE_EXT = /\.(jpe?g|png)$/i;
const SIDE_EXT = /\.json$/i;
const LAYOUT_HINT = 'expected DIR/<class>/<name>.jpg and/or DIR/<class>/<name>.json (feature side-files)';

/** The samples of one class folder, sorted by file name. */
function scanClass(sub: string, className: string, label: number): DatasetItem[] {
  const files = fs.readdirSync(sub).sort();
  const sides = new Map<string, string>();
  for (const f of files) if (SIDE_EXT.test(f)) sides.set(f.replace(SIDE_EXT, ''), f);
  const items: DatasetItem[] = [];
  const paired = new Set<string>();
  for (const f of files) {
    if (SIDE_EXT.test(f)) {
      const base = f.replace(SIDE_EXT, '');
      const image = files.find((g) => IMAGE_EXT.test(g) && g.replace(IMAGE_EXT, '') === base);
      items.push({ key: `${className}/${f}`, label, sideFile: path.join(sub, f), ...(image ? { image: path.join(sub, image) } : {}) });
      paired.add(base);
    } else if (IMAGE_EXT.test(f) && !paired.has(f.replace(IMAGE_EXT, '')) && !sides.has(f.replace(IMAGE_EXT, ''))) {
      items.push({ key: `${className}/${f}`, label, image: path.join(sub, f) });
    }
  }
  return items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * Scans DIR. With `classes` (a head's), folder names must be among them and labels are their indices in it;
 * otherwise the non-empty folders are the classes and at least `minClasses` (default 2) are required.
 */
export function scanDataset(dir: string, opts: { classes?: readonly string[]; minClasses?: number } = {}): Dataset {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new EdgeheadError('BAD_ARGS', `--data ${dir}: not a folder`, { hint: LAYOUT_HINT });
  }
  const folders = fs
    .readdirSync(dir)
    .sort()
    .filter((name) => name !== UNLABELED_FOLDER && !name.startsWith('.') && fs.statSync(path.join(dir, name)).isDirectory());
  const classes: string[] = opts.classes ? [...opts.classes] : [];
  const items: DatasetItem[] = [];
  for (const name of folders) {
    let label = classes.indexOf(name);
    if (opts.classes && label < 0) {
      const found = scanClass(path.join(dir, name), name, -1);
      if (found.length === 0) continue;
      throw new EdgeheadError('BAD_ARGS', `--data ${dir}: folder "${name}" is not a class of the head (${opts.classes.join(', ')})`, {
        hint: `move its files into a class folder or into ${UNLABELED_FOLDER}/`,
      });
    }
    if (label < 0) label = classes.length;
    const found = scanClass(path.join(dir, name), name, label);
    if (found.length === 0) continue;
    if (!opts.classes) classes.push(name);
    items.push(...found);
  }
  const min = opts.minClasses ?? (opts.classes ? 1 : 2);
  const used = new Set(items.map((i) => i.label)).size;
  if (used < min) {
    throw new EdgeheadError('BAD_ARGS', `--data ${dir}: found ${used} class folder(s) with samples, need at least ${min}`, { hint: LAYOUT_HINT });
  }
  return { classes, items };
}
