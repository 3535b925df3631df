/**
 * The fused executors' weight cache (agent/extractors/weight-cache.ts), through loadExtractor() on model folders
 * written to a temp dir: a tiny Keras model (BatchNorm folded, one BatchNorm not folded, Dense), a tiny graph model
 * with uint8-quantized weights and int32 constants, and a copy of the catalogue's mobilenet_v2_100. Miss -> written;
 * hit -> no warm-up (and for layers models no decode/fold), same info and features; a corrupt, truncated, other-version or other-key file, or an entry
 * that does not fit the plan -> ignored (debug log) and rebuilt; changed model files -> a new key, the old file
 * removed. WASM backend, one thread.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../agent/backend/wasm';
import type { Extractor } from '../../agent/extractors/extractor';
import { loadExtractor } from '../../agent/extractors/load';
import { type ModelFolder, readModelFolder, writeModelFolder } from '../../agent/extractors/model-files';
import { readWeightCache, userWeightCacheDir, WEIGHT_CACHE_VERSION, weightCacheKey, writeWeightCache } from '../../agent/extractors/weight-cache';
import { resourcePath } from '../../base/paths';
import { configureLogging, logLevel } from '../../base/log';
import { prng } from '../../base/prng';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgehead-weight-cache-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const lines: string[] = [];
before(async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
  configureLogging({ level: 'debug', format: 'json', sink: { write: (l) => lines.push(l) } });
});
const level = logLevel();
after(() => configureLogging({ level, format: 'text', sink: { write: (l) => process.stderr.write(l + '\n') } }));

/** The debug records logged while `fn` ran, as parsed JSON. */
async function logged<T>(fn: () => Promise<T>): Promise<{ value: T; records: Record<string, unknown>[] }> {
  const from = lines.length;
  const value = await fn();
  return { value, records: lines.slice(from).map((l) => JSON.parse(l) as Record<string, unknown>) };
}
const msgOf = (r: Record<string, unknown>) => String(r.msg ?? r.message ?? '');
function loadRecord(records: Record<string, unknown>[]): Record<string, unknown> {
  const r = records.find((x) => msgOf(x) === 'extractor loaded');
  assert.ok(r, `no "extractor loaded" record in ${JSON.stringify(records)}`);
  return r;
}

let seed = 7;
function randArray(n: number, lo = -1, hi = 1): Float32Array {
  const r = prng(seed++);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

// ---- model folders ----

/** conv -> BN (folded) -> ReLU6 -> depthwise (bias) -> BN (not folded: its conv also feeds the Add) -> Add -> GAP -> Dense. */
function kerasFolder(): ModelFolder {
  const layer = (name: string, cls: string, config: Record<string, unknown>, inputs: string[]) => ({
    name,
    class_name: cls,
    config: { name, trainable: false, ...config },
    inbound_nodes: [inputs.map((i) => [i, 0, 0, {}])],
  });
  const conv = { kernel_size: [3, 3], strides: [1, 1], padding: 'same', data_format: 'channels_last', dilation_rate: [1, 1], activation: 'linear' };
  const bnCfg = { axis: -1, momentum: 0.99, epsilon: 0.05, center: true, scale: true };
  const layers = [
    { name: 'input', class_name: 'InputLayer', config: { name: 'input', batch_input_shape: [null, 8, 8, 3], dtype: 'float32' }, inbound_nodes: [] },
    layer('c1', 'Conv2D', { ...conv, filters: 4, use_bias: false }, ['input']),
    layer('bn1', 'BatchNormalization', bnCfg, ['c1']),
    layer('r1', 'ReLU', { max_value: 6, negative_slope: 0, threshold: 0 }, ['bn1']),
    layer('d2', 'DepthwiseConv2D', { ...conv, use_bias: true, depth_multiplier: 1 }, ['r1']),
    layer('bn2', 'BatchNormalization', bnCfg, ['d2']),
    layer('add', 'Add', {}, ['bn2', 'd2']),
    layer('gap', 'GlobalAveragePooling2D', { data_format: 'channels_last' }, ['add']),
    layer('fc', 'Dense', { units: 5, activation: 'relu', use_bias: true }, ['gap']),
  ];
  const bn = (name: string): [string, number[], Float32Array][] => [
    [`${name}/gamma`, [4], randArray(4, 0.5, 2)],
    [`${name}/beta`, [4], randArray(4, -0.5, 0.5)],
    [`${name}/moving_mean`, [4], randArray(4, -0.3, 0.3)],
    [`${name}/moving_variance`, [4], randArray(4, 0.01, 0.1)],
  ];
  const weights: [string, number[], Float32Array][] = [
    ['c1/kernel', [3, 3, 3, 4], randArray(108)],
    ...bn('bn1'),
    ['d2/depthwise_kernel', [3, 3, 4, 1], randArray(36)],
    ['d2/bias', [4], randArray(4)],
    ...bn('bn2'),
    ['fc/kernel', [4, 5], randArray(20)],
    ['fc/bias', [5], randArray(5)],
  ];
  const modelTopology = {
    keras_version: '2.2.4',
    backend: 'tensorflow',
    model_config: { class_name: 'Model', config: { name: 'tiny', layers, input_layers: [['input', 0, 0]], output_layers: [['fc', 0, 0]] } },
  };
  const specs = weights.map(([name, shape]) => ({ name, shape, dtype: 'float32' as const }));
  return { json: { format: 'layers-model', modelTopology, weightsManifest: [{ paths: ['weights.bin'], weights: specs }] }, weightData: concat(weights.map(([, , d]) => d)) };
}

/** _FusedConv2D (uint8-quantized filter, BiasAdd + Relu6) -> Mean (int32 axes) -> Reshape (int32 shape). */
function graphFolder(): ModelFolder {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const dim = (shape: number[]) => ({ dim: shape.map((s) => ({ size: String(s) })) });
  const F32 = { type: 'DT_FLOAT' };
  const constant = (name: string, shape: number[], int: boolean) => ({
    name,
    op: 'Const',
    attr: { value: { tensor: { dtype: int ? 'DT_INT32' : 'DT_FLOAT', tensorShape: dim(shape) } }, dtype: { type: int ? 'DT_INT32' : 'DT_FLOAT' } },
  });
  const node = [
    { name: 'input', op: 'Placeholder', attr: { shape: { shape: dim([-1, 8, 8, 3]) }, dtype: F32 } },
    constant('w', [3, 3, 3, 6], false),
    constant('b', [6], false),
    constant('axes', [2], true),
    constant('shape', [2], true),
    {
      name: 'conv',
      op: '_FusedConv2D',
      input: ['input', 'w', 'b'],
      attr: {
        T: F32,
        strides: { list: { i: ['1', '1', '1', '1'] } },
        dilations: { list: { i: ['1', '1', '1', '1'] } },
        padding: { s: b64('SAME') },
        data_format: { s: b64('NHWC') },
        fused_ops: { list: { s: [b64('BiasAdd'), b64('Relu6')] } },
        num_args: { i: '1' },
      },
    },
    { name: 'mean', op: 'Mean', input: ['conv', 'axes'], attr: { T: F32, keep_dims: { b: false } } },
    { name: 'out', op: 'Reshape', input: ['mean', 'shape'], attr: { T: F32 } },
  ];
  const r = prng(seed++);
  const quantized = Uint8Array.from({ length: 162 }, () => Math.floor(r() * 256));
  const specs = [
    { name: 'w', shape: [3, 3, 3, 6], dtype: 'float32' as const, quantization: { dtype: 'uint8' as const, scale: 0.01, min: -1.2 } },
    { name: 'b', shape: [6], dtype: 'float32' as const },
    { name: 'axes', shape: [2], dtype: 'int32' as const },
    { name: 'shape', shape: [2], dtype: 'int32' as const },
  ];
  const weightData = concat([quantized, randArray(6), Int32Array.from([1, 2]), Int32Array.from([-1, 6])]);
  return { json: { format: 'graph-model', modelTopology: { node, library: {}, versions: {} }, weightsManifest: [{ paths: ['weights.bin'], weights: specs }] }, weightData };
}

function concat(parts: ArrayBufferView[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts.map((p) => new Uint8Array(p.buffer, p.byteOffset, p.byteLength))));
}

function writeFolder(name: string, folder: ModelFolder): string {
  const dir = path.join(tmp, 'models', name);
  writeModelFolder(dir, folder.json, folder.weightData);
  return dir;
}

// ---- helpers ----

const INPUT = (() => {
  const r = prng(99);
  return Float32Array.from({ length: 2 * 8 * 8 * 3 }, () => r());
})();

function features(ex: Extractor, size = 8): Float32Array {
  const n = size === 8 ? INPUT : (() => { const r = prng(5); return Float32Array.from({ length: size * size * 3 }, () => r()); })();
  const x = tf.tensor4d(n, [n.length / (size * size * 3), size, size, 3]);
  const y = ex.extract(x);
  const out = y.dataSync() as Float32Array;
  tf.dispose([x, y]);
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
}

/** Loads through the cache; `convs`: conv kernels run during the load (a warm-up frame runs some, a hit none). */
async function load(ref: string, cacheDir: string | false) {
  let value: Awaited<ReturnType<typeof logged<Extractor>>> | undefined;
  const profile = await tf.profile(async () => {
    value = await logged(() => loadExtractor({ ref, weightCacheDir: cacheDir }));
  });
  return { ...value!, convs: profile.kernels.filter((k) => /Conv2D/.test(k.name)).length };
}

const keyOf = (modelDir: string, kind: 'layers' | 'graph') =>
  weightCacheKey(readModelFolder(modelDir), kind === 'layers' ? 'fused-layers' : 'fused-graph', { outputNode: null, inputSize: null });

const cacheFiles = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.weights')).sort() : []);

// ---- tests ----

for (const [kind, make] of [['layers', kerasFolder], ['graph', graphFolder]] as const) {
  describe(`${kind} model`, () => {
    const modelDir = writeFolder(`tiny-${kind}`, make());
    const cacheDir = path.join(tmp, `cache-${kind}`);
    let reference: Float32Array;
    let referenceInfo: Extractor['info'];

    before(async () => {
      const { value: ex, records } = await load(modelDir, false);
      assert.equal(loadRecord(records).weightCache, 'off');
      reference = features(ex);
      referenceInfo = ex.info;
      ex.dispose();
    });

    test('miss: builds from the files, warms up, writes the cache file', async () => {
      const tensorsBefore = tf.memory().numTensors;
      const { value: ex, records, convs } = await load(modelDir, cacheDir);
      assert.equal(loadRecord(records).weightCache, 'miss');
      assert.ok(records.some((r) => msgOf(r) === 'warm-up frame'), 'a miss warms up');
      assert.ok(convs > 0, 'a miss warms up');
      assert.ok(records.some((r) => msgOf(r) === 'weight cache written'));
      assert.equal(cacheFiles(cacheDir).length, 1);
      const entry = readWeightCache(cacheDir, `tiny-${kind}`, keyOf(modelDir, kind))!;
      // layers: the folded conv kernels and biases, the unfolded BatchNorm's 4 parameters, the dense kernel and bias
      assert.deepEqual([...entry.tensors.keys()].sort(), kind === 'layers' ? ['bn2/beta', 'bn2/gamma', 'bn2/moving_mean', 'bn2/moving_variance', 'c1/bias', 'c1/kernel', 'd2/bias', 'd2/kernel', 'fc/bias', 'fc/kernel'] : []);
      assert.equal(entry.info.featureDim, kind === 'layers' ? 5 : 6);
      assert.equal(ex.info.executor?.kind, kind === 'layers' ? 'fused-layers' : 'fused-graph');
      assert.equal(maxAbsDiff(features(ex), reference), 0);
      ex.dispose();
      assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensor leaked');
    });

    test('hit: same info and features (within 1e-6) as uncached, no warm-up frame, nothing leaked', async () => {
      const tensorsBefore = tf.memory().numTensors;
      const { value: ex, records, convs } = await load(modelDir, cacheDir);
      assert.equal(loadRecord(records).weightCache, 'hit');
      assert.ok(!records.some((r) => msgOf(r) === 'warm-up frame'), 'a hit skips the warm-up');
      assert.equal(convs, 0, 'a hit runs no frame before the first real one');
      assert.ok(!records.some((r) => msgOf(r) === 'weight cache written'), 'a hit does not rewrite');
      assert.deepEqual(ex.info, referenceInfo);
      assert.ok(maxAbsDiff(features(ex), reference) <= 1e-6);
      ex.dispose();
      assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensor leaked');
    });

    test('a corrupt byte (in the tensors, in the header): ignored, rebuilt, then a hit again', async () => {
      const file = path.join(cacheDir, cacheFiles(cacheDir)[0]!);
      const good = fs.readFileSync(file);
      const inHeader = good.indexOf('\\"fingerprint\\":\\"') + 20; // a hex digit of the cached fingerprint
      assert.ok(inHeader > 20);
      for (const at of kind === 'layers' ? [good.length - 3, inHeader] : [inHeader]) {
        const bytes = Buffer.from(good);
        bytes[at] = bytes[at] === 0x30 ? 0x31 : 0x30;
        fs.writeFileSync(file, bytes);
        const { value: ex, records } = await load(modelDir, cacheDir);
        const ignored = records.find((r) => msgOf(r) === 'weight cache file ignored; rebuilding it');
        assert.match(String(ignored?.reason), /checksum/, `byte ${at}`);
        assert.equal(loadRecord(records).weightCache, 'miss');
        assert.deepEqual(ex.info, referenceInfo);
        assert.ok(maxAbsDiff(features(ex), reference) <= 1e-6);
        ex.dispose();
        assert.deepEqual(fs.readFileSync(file), good, 'rewritten');
        const again = await load(modelDir, cacheDir);
        assert.equal(loadRecord(again.records).weightCache, 'hit');
        again.value.dispose();
      }
    });

    test('a truncated file, garbage, another version: each ignored and rebuilt', async () => {
      const file = path.join(cacheDir, cacheFiles(cacheDir)[0]!);
      const good = fs.readFileSync(file);
      const versionAt = good.indexOf(`"version":${WEIGHT_CACHE_VERSION}`);
      const otherVersion = Buffer.from(good);
      otherVersion.write(String((WEIGHT_CACHE_VERSION + 1) % 10), versionAt + '"version":'.length, 'latin1');
      for (const [what, bytes, reason] of [
        ['truncated', good.subarray(0, good.length - 5), /checksum|truncated/],
        ['garbage', Buffer.from('not a cache file at all'), /not a weight cache file/],
        ['empty', Buffer.alloc(0), /not a weight cache file/],
        ['other version', otherVersion, /version/],
      ] as const) {
        fs.writeFileSync(file, bytes);
        const { value: ex, records } = await load(modelDir, cacheDir);
        const ignored = records.find((r) => msgOf(r) === 'weight cache file ignored; rebuilding it');
        assert.match(String(ignored?.reason), reason, what);
        assert.ok(maxAbsDiff(features(ex), reference) <= 1e-6, what);
        ex.dispose();
        assert.deepEqual(fs.readFileSync(file), good, `${what}: rewritten as before`);
      }
    });

    test('a file for another key under this name: ignored and rebuilt', async () => {
      const file = path.join(cacheDir, cacheFiles(cacheDir)[0]!);
      const good = fs.readFileSync(file);
      const entry = readWeightCache(cacheDir, `tiny-${kind}`, keyOf(modelDir, kind))!;
      assert.ok(entry, 'the key load.ts uses');
      writeWeightCache(path.join(tmp, 'elsewhere'), 'x', 'f'.repeat(64), entry);
      fs.copyFileSync(path.join(tmp, 'elsewhere', cacheFiles(path.join(tmp, 'elsewhere'))[0]!), file);
      const { value: ex, records } = await load(modelDir, cacheDir);
      assert.match(String(records.find((r) => msgOf(r) === 'weight cache file ignored; rebuilding it')?.reason), /key mismatch/);
      assert.ok(maxAbsDiff(features(ex), reference) <= 1e-6);
      ex.dispose();
      assert.deepEqual(fs.readFileSync(file), good);
    });

    test('an intact entry that does not fit the plan (a tensor missing or of another shape): rebuilt, not run', { skip: kind === 'graph' ? 'graph entries hold no tensors' : false }, async () => {
      const file = path.join(cacheDir, cacheFiles(cacheDir)[0]!);
      const good = fs.readFileSync(file);
      const key = keyOf(modelDir, kind);
      const entry = readWeightCache(cacheDir, `tiny-${kind}`, key)!;
      const [first] = entry.tensors.keys();
      const missing = new Map(entry.tensors);
      missing.delete(first!);
      const reshaped = new Map(entry.tensors);
      const t = reshaped.get(first!)!;
      reshaped.set(first!, { ...t, shape: [t.data.length] });
      for (const [what, tensors, reason] of [['missing', missing, /no tensor/], ['reshaped', reshaped, /planned/]] as const) {
        const tensorsBefore = tf.memory().numTensors;
        writeWeightCache(cacheDir, `tiny-${kind}`, key, { ...entry, tensors });
        const { value: ex, records } = await load(modelDir, cacheDir);
        assert.equal(loadRecord(records).weightCache, 'hit', what);
        assert.match(String(records.find((r) => msgOf(r) === 'weight cache entry does not fit the plan; rebuilding it')?.reason), reason, what);
        assert.ok(!records.some((r) => /failed; running the model on/.test(msgOf(r))), `${what}: not a fallback to the stock library`);
        assert.equal(ex.info.executor?.kind, kind === 'layers' ? 'fused-layers' : 'fused-graph');
        assert.ok(maxAbsDiff(features(ex), reference) <= 1e-6, what);
        ex.dispose();
        assert.equal(tf.memory().numTensors, tensorsBefore, `${what}: no tensor leaked`);
        assert.deepEqual(fs.readFileSync(file), good, `${what}: rewritten`);
      }
    });

    test('changed model files: another key, rebuilt with the new weights, the old file removed', async () => {
      const changedDir = path.join(tmp, `changed-${kind}`, `tiny-${kind}`); // same id (folder name), other files
      const folder = readModelFolder(modelDir);
      const weightData = Uint8Array.from(folder.weightData);
      weightData[kind === 'layers' ? 3 : 5]! ^= kind === 'layers' ? 0x80 : 0x10; // the sign of c1's first kernel value; a quantized filter value
      writeModelFolder(changedDir, folder.json, weightData);
      const before = cacheFiles(cacheDir);
      const { value: ex, records } = await load(changedDir, cacheDir);
      assert.equal(loadRecord(records).weightCache, 'miss');
      const after = cacheFiles(cacheDir);
      assert.equal(after.length, 1);
      assert.notEqual(after[0], before[0]);
      const uncached = (await load(changedDir, false)).value;
      const f = features(ex);
      assert.ok(maxAbsDiff(f, features(uncached)) <= 1e-6, 'the new weights, not the cached old ones');
      assert.ok(maxAbsDiff(f, reference) > 1e-4, 'the change shows in the features');
      assert.notEqual(ex.info.fingerprint, referenceInfo.fingerprint);
      ex.dispose();
      uncached.dispose();
    });
  });
}

test('warmUp(): after a hit, one zero frame, only before the first real frame and the dispose', async () => {
  const modelDir = writeFolder('tiny-warmup', kerasFolder());
  const cacheDir = path.join(tmp, 'cache-warmup');
  (await load(modelDir, cacheDir)).value.dispose(); // miss: writes the entry
  const convsOf = async (fn: () => void) => (await tf.profile(fn)).kernels.filter((k) => /Conv2D/.test(k.name)).length;
  const a = (await load(modelDir, cacheDir)).value;
  assert.ok((await convsOf(() => a.warmUp!())) > 0, 'the skipped warm-up runs');
  assert.equal(await convsOf(() => a.warmUp!()), 0, 'once');
  a.dispose();
  const b = (await load(modelDir, cacheDir)).value;
  features(b);
  assert.equal(await convsOf(() => b.warmUp!()), 0, 'not after a real frame');
  b.dispose();
  const c = (await load(modelDir, cacheDir)).value;
  c.dispose();
  assert.equal(await convsOf(() => c.warmUp!()), 0, 'not after dispose');
  const miss = (await load(modelDir, false)).value;
  assert.equal(await convsOf(() => miss.warmUp!()), 0, 'not when the load warmed up');
  miss.dispose();
});

test('an unwritable cache folder: the model loads as without a cache', async () => {
  const modelDir = writeFolder('tiny-unwritable', kerasFolder());
  const blocker = path.join(tmp, 'a-file');
  fs.writeFileSync(blocker, '');
  const { value: ex, records } = await load(modelDir, path.join(blocker, 'weights'));
  assert.ok(records.some((r) => msgOf(r) === 'weight cache not written'));
  assert.ok(!records.some((r) => r.level === 'warn'), JSON.stringify(records));
  assert.equal(ex.info.executor?.kind, 'fused-layers');
  ex.dispose();
});

test('userWeightCacheDir: XDG_CACHE_HOME, else ~/.cache', () => {
  assert.equal(userWeightCacheDir({ XDG_CACHE_HOME: '/x/cache' }), '/x/cache/edgehead/weights');
  assert.equal(userWeightCacheDir({}), path.join(os.homedir(), '.cache', 'edgehead', 'weights'));
});

test('the catalogue mobilenet_v2_100 (copied): a hit gives the uncached features within 1e-6 on a real photo-sized input', async () => {
  const modelDir = path.join(tmp, 'real', 'mobilenet_v2_100');
  fs.cpSync(resourcePath('models', 'mobilenet_v2_100'), modelDir, { recursive: true });
  const cacheDir = path.join(tmp, 'cache-real');
  const uncached = (await load(modelDir, false)).value;
  const miss = await load(modelDir, cacheDir);
  const hit = await load(modelDir, cacheDir);
  assert.equal(loadRecord(miss.records).weightCache, 'miss');
  assert.equal(loadRecord(hit.records).weightCache, 'hit');
  assert.deepEqual(hit.value.info, uncached.info);
  const ref = features(uncached, 224);
  assert.ok(maxAbsDiff(features(miss.value, 224), ref) <= 1e-6);
  assert.ok(maxAbsDiff(features(hit.value, 224), ref) <= 1e-6);
  for (const ex of [uncached, miss.value, hit.value]) ex.dispose();
});
