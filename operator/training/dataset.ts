/** A labelled image folder: DIR/<class>/<image>.{jpg,jpeg,png}; classes sorted by name. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EdgeheadError } from '../../base/errors';

export interface LabelledImage {
  file: string;
  label: number;
}

export interface Dataset {
  classes: string[];
  images: LabelledImage[];
}

const IMAGE_EXT = /\.(jpe?g|png)$/i;

export function scanDataset(dir: string): Dataset {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new EdgeheadError('BAD_ARGS', `--data ${dir}: not a folder`, { hint: 'expected DIR/<class>/<image>.jpg' });
  }
  const classes: string[] = [];
  const images: LabelledImage[] = [];
  for (const name of fs.readdirSync(dir).sort()) {
    const sub = path.join(dir, name);
    if (!fs.statSync(sub).isDirectory()) continue;
    const files = fs.readdirSync(sub).filter((f) => IMAGE_EXT.test(f)).sort();
    if (files.length === 0) continue;
    const label = classes.push(name) - 1;
    for (const f of files) images.push({ file: path.join(sub, f), label });
  }
  if (classes.length < 2) {
    throw new EdgeheadError('BAD_ARGS', `--data ${dir}: found ${classes.length} class folder(s) with images, need at least 2`, {
      hint: 'expected DIR/<class>/<image>.jpg',
    });
  }
  return { classes, images };
}
