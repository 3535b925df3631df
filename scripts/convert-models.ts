/**
 * Converts the catalogue extractors from the npm package nsfwjs into models/<id>/ (model.json + weights.bin).
 * Runs automatically from `npm ci` (prepare) and `npm run build`; offline; idempotent (skips up-to-date models).
 *
 * nsfwjs ships each model as UMD .min.js files: model.min.js exports the model.json object and each
 * group1-shardNofM.min.js exports one weight shard as a base64 string.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CATALOGUE, type CatalogueEntry } from '../agent/extractors/catalogue';
import { type ModelFolder, type ModelJson, readModelFolder, writeModelFolder } from '../agent/extractors/model-files';
import { pruneGraph, pruneLayers } from '../agent/extractors/prune';

const root = path.resolve(__dirname, '..');
const outRoot = process.argv[2] ? path.resolve(process.argv[2]) : path.join(root, 'models');

function loadNsfwjs(entry: CatalogueEntry): { folder: ModelFolder; version: string } {
  let pkgDir: string;
  try {
    // nsfwjs' "exports" map hides package.json: resolve the main entry and walk up to the package root.
    pkgDir = path.dirname(require.resolve(entry.source.package));
    while (!fs.existsSync(path.join(pkgDir, 'package.json')) || path.basename(pkgDir) !== entry.source.package) {
      const up = path.dirname(pkgDir);
      if (up === pkgDir) throw new Error('package root not found');
      pkgDir = up;
    }
  } catch {
    throw new Error(`${entry.source.package} is not installed: run npm ci (it is a devDependency)`);
  }
  const pkgJson = path.join(pkgDir, 'package.json');
  const version = (JSON.parse(fs.readFileSync(pkgJson, 'utf8')) as { version: string }).version;
  const dir = path.join(pkgDir, entry.source.dir);
  const json = require(path.join(dir, 'model.min.js')) as ModelJson;
  const shards: Buffer[] = [];
  for (let i = 1; i <= entry.source.shards; i++) {
    const b64 = require(path.join(dir, `group1-shard${i}of${entry.source.shards}.min.js`)) as string;
    shards.push(Buffer.from(b64, 'base64'));
  }
  return { folder: { json, weightData: new Uint8Array(Buffer.concat(shards)) }, version };
}

function convert(entry: CatalogueEntry): void {
  const dir = path.join(outRoot, entry.id);
  const stampFile = path.join(dir, 'SOURCE');
  const { folder, version } = loadNsfwjs(entry);
  const stamp = `${entry.source.package}@${version} ${entry.source.dir} cut at ${entry.source.cutAt}\n`;
  if (fs.existsSync(stampFile) && fs.readFileSync(stampFile, 'utf8') === stamp) {
    try {
      readModelFolder(dir);
      console.log(`models: ${entry.id} up to date`);
      return;
    } catch {
      // fall through and rebuild a damaged folder
    }
  }
  const cut = entry.format === 'graph' ? pruneGraph(folder, entry.source.cutAt) : pruneLayers(folder, entry.source.cutAt);
  cut.json.generatedBy = `edgehead convert-models from ${entry.source.package}@${version}`;
  writeModelFolder(dir, cut.json, cut.weightData);
  fs.writeFileSync(stampFile, stamp);
  const kb = (cut.weightData.byteLength / 1024).toFixed(0);
  console.log(`models: ${entry.id} written to ${path.relative(root, dir)} (${kb} KiB of weights)`);
}

for (const entry of CATALOGUE) convert(entry);
