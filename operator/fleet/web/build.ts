/**
 * The dashboard's assets: index.html, assets/app.js (app.ts and uPlot, one IIFE bundle) and assets/app.css (uPlot's
 * CSS and style.css), as a map URL path -> {contentType, body} that the HTTP server serves from memory.
 *
 * `npm run build` bundles them once (buildWebAssets) and writes them to dist/fleet-web/ (writeWebAssets); the
 * installed server reads that folder (loadWebAssets), since dist/edgehead.cjs carries no esbuild. In the dev tree,
 * where there is no such folder, loadWebAssets bundles in memory with esbuild (a devDependency, imported lazily so
 * the server bundle never includes it). Nothing is fetched from the internet, at build or at run time.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EdgeheadError } from '../../../base/errors';
import { resourcePath } from '../../../base/paths';
import type { WebAssets } from '../http/deps';

/** The folder of dist/ that holds the prebuilt dashboard. */
export const WEB_ASSETS_DIR = 'fleet-web';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

const contentType = (file: string): string => CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream';

/** Bundles the dashboard from its sources (needs esbuild: the dev tree or the build). */
export async function buildWebAssets(): Promise<WebAssets> {
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch (e) {
    throw new EdgeheadError('IO', `cannot build the fleet dashboard: esbuild is not installed (${(e as Error).message.split('\n')[0]})`, { hint: 'run `npm run build`, which writes dist/fleet-web/' });
  }
  const result = await esbuild.build({
    entryPoints: { app: path.join(__dirname, 'app.ts') },
    outdir: '/fleet-web/assets',
    bundle: true,
    write: false,
    platform: 'browser',
    format: 'iife',
    target: ['chrome109', 'firefox115', 'safari15'],
    minify: true,
    sourcemap: false,
    legalComments: 'eof',
    logLevel: 'silent',
  });
  const assets: WebAssets = new Map();
  assets.set('/index.html', { contentType: contentType('index.html'), body: fs.readFileSync(path.join(__dirname, 'index.html')) });
  for (const out of result.outputFiles) {
    const rel = path.relative('/fleet-web', out.path).split(path.sep).join('/');
    assets.set(`/${rel}`, { contentType: contentType(out.path), body: Buffer.from(out.contents) });
  }
  for (const needed of ['/assets/app.js', '/assets/app.css']) if (!assets.has(needed)) throw new EdgeheadError('IO', `building the fleet dashboard produced no ${needed}`);
  return assets;
}

/** Writes the assets under `dir` (dir/index.html, dir/assets/app.js, ...). */
export function writeWebAssets(dir: string, assets: WebAssets): void {
  for (const [urlPath, asset] of assets) {
    const file = path.join(dir, ...urlPath.split('/').filter(Boolean));
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, asset.body);
  }
}

/** Reads the assets written by writeWebAssets. */
export function readWebAssets(dir: string): WebAssets {
  const assets: WebAssets = new Map();
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (fs.statSync(path.join(dir, r)).isDirectory()) walk(r);
      else assets.set(`/${r}`, { contentType: contentType(name), body: fs.readFileSync(path.join(dir, r)) });
    }
  };
  walk('');
  return assets;
}

/** The prebuilt dashboard of dist/fleet-web/ when there is one, else a fresh in-memory build (dev tree). */
export async function loadWebAssets(): Promise<WebAssets> {
  const dir = resourcePath(WEB_ASSETS_DIR);
  if (fs.existsSync(path.join(dir, 'index.html'))) return readWebAssets(dir);
  return buildWebAssets();
}
