/**
 * `npm run build` -> dist/: one minified esbuild bundle (edgehead.bundle.cjs: node18, CommonJS) started by
 * edgehead.cjs (cli/loader.cjs: the shebang, V8's code cache for the bundle), plus the tfjs .wasm binaries,
 * the catalogue extractors (models/), the demo head, the sample frames and the fleet dashboard (fleet-web/: HTML,
 * one JS and one CSS bundle with uPlot). Runs with no node_modules.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { build, type Plugin } from 'esbuild';
import { GLUE_MAIN, GLUE_WORKER } from '../agent/backend/node-pthreads';
import { buildWebAssets, WEB_ASSETS_DIR, writeWebAssets } from '../operator/fleet/web/build';

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');
/** The esbuild bundle; dist/edgehead.cjs (cli/loader.cjs) runs it. */
const BUNDLE = 'edgehead.bundle.cjs';
const SHA_PLACEHOLDER = '@@BUNDLE_SHA256@@';
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };

async function main(): Promise<void> {
  execFileSync(process.execPath, [path.join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs'), path.join(root, 'scripts', 'convert-models.ts')], { stdio: 'inherit' });
  fs.rmSync(dist, { recursive: true, force: true });
  fs.mkdirSync(dist, { recursive: true });
  const result = await build({
    entryPoints: [path.join(root, 'cli', 'entry.ts')],
    outfile: path.join(dist, BUNDLE),
    bundle: true,
    platform: 'node',
    target: 'node18',
    format: 'cjs',
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    define: { EDGEHEAD_VERSION: JSON.stringify(pkg.version) },
    // The fleet dashboard's dev-tree fallback imports esbuild lazily; the bundle reads dist/fleet-web/ instead.
    external: ['esbuild'],
    // node-fetch (tfjs-core) never uses whatwg-url on Node >= 10: a shim saves its 0.3 MB of Unicode tables.
    alias: { 'whatwg-url': path.join(root, 'scripts', 'shims', 'whatwg-url.cjs') },
    plugins: [keepSideEffects(['@tensorflow/tfjs-backend-cpu'])],
    metafile: true,
    logLevel: 'warning',
  });
  // A warning here has meant a broken bundle (a dropped import: `--backend cpu` failed with "Backend name 'cpu' not
  // found in registry" from dist/ only), so the build fails rather than ship one.
  if (result.warnings.length > 0) throw new Error(`esbuild: ${result.warnings.length} warning(s), see above`);
  writeLoader();
  const wasmSrc = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
  fs.mkdirSync(path.join(dist, 'wasm'));
  for (const f of fs.readdirSync(wasmSrc).filter((f) => f.endsWith('.wasm'))) fs.copyFileSync(path.join(wasmSrc, f), path.join(dist, 'wasm', f));
  // The stand-alone Emscripten glue that WASM pthread workers load (agent/backend/node-pthreads.ts, docs/threads.md).
  for (const f of [GLUE_MAIN, GLUE_WORKER]) fs.copyFileSync(path.join(wasmSrc, '..', 'wasm-out', f), path.join(dist, 'wasm', f));
  fs.cpSync(path.join(root, 'models'), path.join(dist, 'models'), { recursive: true });
  fs.cpSync(path.join(root, 'assets'), path.join(dist, 'assets'), { recursive: true });
  // libjpeg-turbo (WASM) for the JPEG fast path: agent/image/jpeg-turbo.ts loads dist/wasm/jpeg-turbo.wasm
  fs.copyFileSync(require.resolve('@cwasm/jpeg-turbo/jpeg-turbo.wasm'), path.join(dist, 'wasm', 'jpeg-turbo.wasm'));
  // The fleet dashboard, bundled once here (operator/fleet/web/build.ts); `fleet serve` reads it from dist/fleet-web/.
  writeWebAssets(path.join(dist, WEB_ASSETS_DIR), await buildWebAssets());

  const size = (p: string): number =>
    fs.statSync(p).isDirectory() ? fs.readdirSync(p).reduce((a, f) => a + size(path.join(p, f)), 0) : fs.statSync(p).size;
  const mb = (n: number) => `${(n / 1024 / 1024).toFixed(2)} MB`;
  console.log(`dist/${BUNDLE} ${mb(size(path.join(dist, BUNDLE)))} (started by dist/edgehead.cjs, ${size(path.join(dist, 'edgehead.cjs'))} bytes)`);
  const byPackage = new Map<string, number>();
  for (const [file, info] of Object.entries(result.metafile.outputs[Object.keys(result.metafile.outputs)[0]!]!.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file);
    const key = m ? m[1]! : 'edgehead (own code)';
    byPackage.set(key, (byPackage.get(key) ?? 0) + info.bytesInOutput);
  }
  for (const [k, v] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 8)) console.log(`  ${k.padEnd(34)} ${mb(v)}`);
  for (const part of ['wasm', 'models', 'assets', WEB_ASSETS_DIR]) console.log(`dist/${part}/`.padEnd(19) + mb(size(path.join(dist, part))));
  writeManifest();
}

/** dist/edgehead.cjs: cli/loader.cjs behind a shebang, with the bundle's sha256 (its code cache files are named by it). */
function writeLoader(): void {
  const sha = createHash('sha256').update(fs.readFileSync(path.join(dist, BUNDLE))).digest('hex');
  const loader = fs.readFileSync(path.join(root, 'cli', 'loader.cjs'), 'utf8');
  if (!loader.includes(SHA_PLACEHOLDER)) throw new Error(`cli/loader.cjs has no ${SHA_PLACEHOLDER}`);
  fs.writeFileSync(path.join(dist, 'edgehead.cjs'), '#!/usr/bin/env node\n' + loader.replace(SHA_PLACEHOLDER, sha), { mode: 0o755 });
}

/**
 * Bare `import 'pkg'` of these packages is kept for its side effects. tfjs-backend-cpu registers the 'cpu' backend
 * and its kernels when loaded, and its package.json "sideEffects" lists only its ESM files (dist/index.js, ...), not
 * the CommonJS "main" (dist/tf-backend-cpu.node.js) that esbuild picks for platform 'node', so esbuild would drop the
 * import. The package resolves as usual (the same file as from source); only the side-effects flag is overridden.
 */
function keepSideEffects(packages: string[]): Plugin {
  const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const filter = new RegExp(`^(${packages.map(escape).join('|')})$`);
  return {
    name: 'keep-side-effects',
    setup(b) {
      b.onResolve({ filter }, async ({ path: spec, pluginData, ...args }) => {
        if (pluginData === 'keep-side-effects') return undefined;
        const r = await b.resolve(spec, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: 'keep-side-effects' });
        return r.errors.length > 0 ? { errors: r.errors } : { path: r.path, external: r.external, namespace: r.namespace, sideEffects: true };
      });
    },
  };
}

/** dist/manifest.json: version, git commit, and every file's size and sha256 (update.sh and the tests verify it). */
function writeManifest(): void {
  const files: Record<string, { bytes: number; sha256: string }> = {};
  const walk = (rel: string): void => {
    for (const f of fs.readdirSync(path.join(dist, rel)).sort()) {
      const r = rel ? `${rel}/${f}` : f;
      if (fs.statSync(path.join(dist, r)).isDirectory()) walk(r);
      else if (r !== 'manifest.json') {
        const bytes = fs.readFileSync(path.join(dist, r));
        files[r] = { bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
      }
    }
  };
  walk('');
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (execFileSync('git', ['status', '--porcelain'], { cwd: root, encoding: 'utf8' }).trim()) commit += '-dirty';
  } catch {
    // not a git checkout (e.g. a source tarball)
  }
  const manifest = { name: 'edgehead', version: pkg.version, commit, builtAt: new Date().toISOString(), node: '>=18', files };
  fs.writeFileSync(path.join(dist, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  console.log(`dist/manifest.json ${Object.keys(files).length} files, commit ${commit}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
