'use strict';
/**
 * dist/edgehead.cjs (scripts/build.ts writes it from this file): starts the esbuild bundle edgehead.bundle.cjs, next
 * to it, through V8's code cache, so a start does not compile the 2.6 MB bundle again (docs/BENCHMARKS.md, "Cold
 * start"). Plain CommonJS for Node >= 18, no dependencies; the bundle runs exactly as `require` would run it.
 *
 * Where the cache lives: $EDGEHEAD_CODE_CACHE (a folder, or "off"), else $CACHE_DIRECTORY (systemd's CacheDirectory=),
 * else $XDG_CACHE_HOME/edgehead/code, else ~/.cache/edgehead/code. One file per bundle, Node version, CPU architecture
 * and node flags (V8 refuses a cache made under other flags); files of other bundles are removed when a new one is
 * written. Each file is a sha256 of V8's data followed by the data: a short file, a wrong sha256 or data V8 rejects
 * is not used, and the file is written anew after the start. A cache problem only costs time: without a usable folder
 * the bundle is compiled as usual. The cache is code: a folder or file that another user owns or that group or others
 * may write is not used ('unsafe'). What happened is in globalThis.__edgeheadCodeCache ('hit', 'miss', 'corrupt',
 * 'rejected', 'unsafe' or 'off'; the CLI's debug "cold start" line shows it).
 */
const fs = require('fs');
const os = require('os');
const path = require('path');
const vm = require('vm');
const crypto = require('crypto');
const Module = require('module');

const BUNDLE = path.join(__dirname, 'edgehead.bundle.cjs');
/** The bundle's sha256 (hex), filled in by scripts/build.ts. */
const BUNDLE_SHA256 = '@@BUNDLE_SHA256@@';

function cacheFolder(env) {
  if (env.EDGEHEAD_CODE_CACHE === 'off') return undefined;
  if (env.EDGEHEAD_CODE_CACHE) return env.EDGEHEAD_CODE_CACHE;
  if (env.CACHE_DIRECTORY) return env.CACHE_DIRECTORY.split(':')[0];
  if (env.XDG_CACHE_HOME) return path.join(env.XDG_CACHE_HOME, 'edgehead', 'code');
  try {
    return path.join(os.homedir(), '.cache', 'edgehead', 'code');
  } catch {
    return undefined;
  }
}

/** Whether a cache folder or file is ours alone: owned by this user, writable by nobody else (or missing). */
function isPrivate(p) {
  let st;
  try {
    st = fs.statSync(p);
  } catch {
    return true;
  }
  return (st.mode & 0o022) === 0 && (typeof process.getuid !== 'function' || st.uid === process.getuid());
}

const sha256 = (data) => crypto.createHash('sha256').update(data).digest();

function cacheFile(folder) {
  const variant = sha256([process.version, process.arch, process.execArgv.join(' ')].join('\n')).toString('hex').slice(0, 12);
  return path.join(folder, `edgehead-${BUNDLE_SHA256.slice(0, 12)}-${variant}.v8cache`);
}

/** { status, data }: V8's data when the file is whole. */
function readCache(file) {
  let buf;
  try {
    buf = fs.readFileSync(file);
  } catch {
    return { status: 'miss' };
  }
  const data = buf.subarray(32);
  if (data.length === 0 || !sha256(data).equals(buf.subarray(0, 32))) return { status: 'corrupt' };
  return { status: 'hit', data };
}

/** Writes the cache (temp file + rename) and removes other bundles' files; any failure is ignored. */
function writeCache(folder, file, data) {
  try {
    fs.mkdirSync(folder, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, Buffer.concat([sha256(data), data]));
    fs.renameSync(tmp, file);
    const own = `edgehead-${BUNDLE_SHA256.slice(0, 12)}-`;
    for (const f of fs.readdirSync(folder)) {
      if (f.startsWith('edgehead-') && f.endsWith('.v8cache') && !f.startsWith(own)) fs.rmSync(path.join(folder, f), { force: true });
    }
  } catch {
    // read-only or full disk, no permission: the next start compiles again
  }
}

function start() {
  const folder = cacheFolder(process.env);
  const safe = folder !== undefined && isPrivate(folder) && isPrivate(cacheFile(folder));
  const file = safe ? cacheFile(folder) : undefined;
  const cached = file ? readCache(file) : { status: folder === undefined ? 'off' : 'unsafe' };
  const script = new vm.Script(Module.wrap(fs.readFileSync(BUNDLE, 'utf8')), {
    filename: BUNDLE,
    cachedData: cached.data,
    importModuleDynamically: (specifier) => import(specifier),
  });
  const status = cached.data && script.cachedDataRejected ? 'rejected' : cached.status;
  globalThis.__edgeheadCodeCache = status;
  const bundle = new Module(BUNDLE, module);
  bundle.filename = BUNDLE;
  bundle.paths = Module._nodeModulePaths(__dirname);
  // The bundle's top level runs now (its main() goes on asynchronously): the functions it compiled are in the cache.
  script.runInThisContext().call(bundle.exports, bundle.exports, Module.createRequire(BUNDLE), bundle, BUNDLE, __dirname);
  bundle.loaded = true;
  if (file && status !== 'hit') writeCache(folder, file, script.createCachedData());
}

start();
