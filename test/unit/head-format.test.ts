import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { EdgeheadError } from '../../base/errors';
import {
  HEAD_MAGIC,
  HEAD_FORMAT_VERSION,
  canonicalJson,
  decodeHead,
  encodeHead,
  encodeWeights,
  headSha256,
  makeHeadFile,
  type HeadFile,
  type HeadManifest,
} from '../../protocol/head/format';
import { HeadManifestSchema } from '../../protocol/head/manifest';

const FP = createHash('sha256').update('mobilenet_v2_1.0_224').digest('hex');

function tinyHead(): HeadFile {
  // 2 classes, 3-d features: kernel row-major [3, 2]
  return makeHeadFile({
    id: 'demo',
    version: 1,
    classes: ['cat', 'dog'],
    extractor: { id: 'mobilenet_v2_1.0_224', fingerprint: FP },
    kernel: new Float32Array([0.5, -0.5, 1, 2, -1, 0.25]),
    bias: new Float32Array([0.1, -0.1]),
    createdAt: new Date('2024-05-01T12:00:00Z'),
  });
}

/** Builds a payload by hand, bypassing encodeHead's validation, like a foreign (or hostile) publisher would. */
function raw(opts: {
  magic?: string;
  version?: number;
  flags?: number;
  manifest?: unknown;
  manifestBytes?: Uint8Array;
  manifestLength?: number;
  weights?: Uint8Array;
}): Uint8Array {
  const head = tinyHead();
  const manifestBytes = opts.manifestBytes ?? new TextEncoder().encode(JSON.stringify('manifest' in opts ? opts.manifest : head.manifest));
  const weights = opts.weights ?? encodeWeights(head.kernel, head.bias);
  const out = new Uint8Array(12 + manifestBytes.length + weights.length);
  const view = new DataView(out.buffer);
  const magic = opts.magic ?? 'EHED';
  for (let i = 0; i < 4; i++) out[i] = magic.charCodeAt(i);
  view.setUint16(4, opts.version ?? 1, true);
  view.setUint16(6, opts.flags ?? 0, true);
  view.setUint32(8, opts.manifestLength ?? manifestBytes.length, true);
  out.set(manifestBytes, 12);
  out.set(weights, 12 + manifestBytes.length);
  return out;
}

/** The tiny head's manifest with `patch` applied at a dotted path (value undefined deletes). */
function manifestWith(path: string, value: unknown): Record<string, unknown> {
  const m = structuredClone(tinyHead().manifest) as unknown as Record<string, unknown>;
  const keys = path.split('.');
  let obj = m as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) obj = obj[k] as Record<string, unknown>;
  const last = keys[keys.length - 1]!;
  if (value === undefined) delete obj[last];
  else obj[last] = value;
  return m;
}

function rejects(bytes: Uint8Array, pattern: RegExp | string, limits?: { maxBytes: number }): EdgeheadError {
  let caught: unknown;
  try {
    decodeHead(bytes, limits);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof EdgeheadError, `expected an EdgeheadError, got ${String(caught)}`);
  assert.equal(caught.code, 'BAD_HEAD');
  if (typeof pattern === 'string') assert.ok(caught.message.includes(pattern), `message "${caught.message}" lacks "${pattern}"`);
  else assert.match(caught.message, pattern);
  assert.ok(!caught.message.includes('\n'), 'message must be one line');
  return caught;
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

describe('head format: round trip', () => {
  test('constants', () => {
    assert.equal(HEAD_MAGIC, 'EHED');
    assert.equal(HEAD_FORMAT_VERSION, 1);
  });

  test('encode -> decode is bit-exact for weights and equal for the manifest', () => {
    const kernel = new Float32Array([0, -0, 1e-45, -3.4028234663852886e38, 3.4028234663852886e38, Math.PI]);
    const t = tinyHead().manifest;
    const head = makeHeadFile({ ...t, createdAt: new Date(t.createdAt), kernel, bias: new Float32Array([1.5e-40, -7]) });
    const decoded = decodeHead(encodeHead(head));
    assert.deepEqual(bytesOf(decoded.kernel), bytesOf(head.kernel));
    assert.deepEqual(bytesOf(decoded.bias), bytesOf(head.bias));
    assert.deepEqual(decoded.manifest, head.manifest);
    assert.equal(decoded.kernel.byteOffset % 4, 0);
  });

  test('header layout: magic, version, flags, manifest length, then manifest and weights', () => {
    const head = tinyHead();
    const bytes = encodeHead(head);
    const view = new DataView(bytes.buffer);
    assert.equal(new TextDecoder().decode(bytes.subarray(0, 4)), 'EHED');
    assert.equal(view.getUint16(4, true), 1);
    assert.equal(view.getUint16(6, true), 0);
    const m = view.getUint32(8, true);
    assert.equal(bytes.length, 12 + m + 8 * 4);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + m))), head.manifest);
    assert.equal(view.getFloat32(12 + m, true), 0.5);
    assert.equal(view.getFloat32(12 + m + 6 * 4, true), Math.fround(0.1));
  });

  test('encodeHead fills manifest.sha256 from the weight bytes', () => {
    const head = tinyHead();
    head.manifest.sha256 = '';
    const decoded = decodeHead(encodeHead(head));
    const expected = createHash('sha256').update(encodeWeights(head.kernel, head.bias)).digest('hex');
    assert.equal(decoded.manifest.sha256, expected);
    assert.equal(headSha256(head), expected);
  });

  test('encoding is deterministic and canonical (sorted keys, no whitespace)', () => {
    const a = tinyHead();
    const reordered: HeadManifest = JSON.parse(JSON.stringify(a.manifest, Object.keys(a.manifest).reverse().concat('id', 'fingerprint', 'kernel', 'bias', 'shape')));
    const b: HeadFile = { ...a, manifest: reordered };
    assert.deepEqual(encodeHead(a), encodeHead(b));
    const text = new TextDecoder().decode(encodeHead(a).subarray(12, 12 + new DataView(encodeHead(a).buffer).getUint32(8, true)));
    assert.ok(text.startsWith('{"classes":["cat","dog"],"createdAt":'), text);
    assert.ok(!/\s/.test(text.replace(/"[^"]*"/g, '')), 'no whitespace outside strings');
  });

  test('canonicalJson sorts keys by UTF-16 code unit at every level', () => {
    const s = canonicalJson({ b: 1, a: { z: [3, { y: 1, x: 2 }], B: null }, '\u{1F600}': 1, '\uFFFF': 2, é: 0.1, u: undefined });
    // U+1F600 is the surrogate pair D83D DE00, which sorts before U+FFFF in UTF-16 order (not in code point order).
    assert.equal(s, '{"a":{"B":null,"z":[3,{"x":2,"y":1}]},"b":1,"é":0.1,"\u{1F600}":1,"\uFFFF":2}');
    assert.equal(canonicalJson([1e21, 1e-7, 0.1, -0, 5e-324]), '[1e+21,1e-7,0.1,0,5e-324]');
    assert.throws(() => canonicalJson({ a: NaN }), EdgeheadError);
    assert.throws(() => canonicalJson([undefined]), EdgeheadError);
  });

  test('unknown manifest keys are preserved (top level and nested)', () => {
    const head = tinyHead();
    const m = head.manifest as unknown as Record<string, unknown>;
    m.futureField = { nested: [1, 'two', null, true] };
    (head.manifest.extractor as unknown as Record<string, unknown>).inputSize = 224;
    const once = encodeHead(head);
    const decoded = decodeHead(once);
    assert.deepEqual((decoded.manifest as unknown as Record<string, unknown>).futureField, { nested: [1, 'two', null, true] });
    assert.equal((decoded.manifest.extractor as unknown as Record<string, unknown>).inputSize, 224);
    assert.deepEqual(encodeHead(decoded), once);
  });

  test('the manifest schema describes every field (docs are generated from it)', () => {
    const undescribed: string[] = [];
    const walk = (s: Record<string, unknown>, path: string): void => {
      if (typeof s.description !== 'string' || s.description.length === 0) undescribed.push(path);
      for (const [k, v] of Object.entries((s.properties ?? {}) as Record<string, Record<string, unknown>>)) walk(v, `${path}.${k}`);
      const items = s.items;
      (Array.isArray(items) ? items : items ? [items] : []).forEach((v, i) => walk(v as Record<string, unknown>, `${path}[${i}]`));
    };
    walk(HeadManifestSchema as unknown as Record<string, unknown>, 'manifest');
    assert.deepEqual(undescribed, []);
  });

  test('optional fields round-trip: metrics, testVectors, shadow', () => {
    const head = tinyHead();
    head.manifest.metrics = { valAccuracy: 0.97, confusion: [[1, 0], [0, 1]] };
    head.manifest.testVectors = [{ features: [1, 2, 3], logits: [-0.4, 4.1] }];
    head.manifest.shadow = { frames: 100, autoPromoteAgreement: 0.9 };
    assert.deepEqual(decodeHead(encodeHead(head)).manifest, { ...head.manifest });
  });

  test('decodes from an unaligned view into a Buffer (weights copied into aligned arrays)', () => {
    const bytes = encodeHead(tinyHead());
    for (const shift of [1, 2, 3]) {
      const big = Buffer.alloc(bytes.length + shift + 5, 0xee);
      big.set(bytes, shift);
      const view = big.subarray(shift, shift + bytes.length);
      const decoded = decodeHead(view);
      assert.deepEqual(Array.from(decoded.kernel), Array.from(tinyHead().kernel));
      assert.equal(decoded.kernel.byteOffset % 4, 0);
    }
  });

  test('a payload of exactly maxBytes is accepted, one more byte is not', () => {
    const bytes = encodeHead(tinyHead());
    decodeHead(bytes, { maxBytes: bytes.length });
    rejects(bytes, `too large: ${bytes.length} bytes > limit ${bytes.length - 1}`, { maxBytes: bytes.length - 1 });
  });

  test('manifest timestamps with offsets and microseconds (Python isoformat) are accepted', () => {
    for (const createdAt of ['2024-05-01T12:00:00+00:00', '2024-05-01T12:00:00.123456+02:00', '2024-02-29T23:59:59Z']) {
      decodeHead(raw({ manifest: manifestWith('createdAt', createdAt) }));
    }
  });
});

describe('head format: encodeHead refuses bad heads', () => {
  test('non-finite weights', () => {
    const head = tinyHead();
    head.kernel[3] = NaN;
    assert.throws(() => encodeHead(head), /non-finite weight: kernel\[3\] \(row 1, column 1\) is NaN/);
  });
  test('weight count does not match the shapes', () => {
    const head = tinyHead();
    assert.throws(() => encodeHead({ ...head, kernel: new Float32Array(5) }), /kernel has 5 values, shape \[3, 2\] needs 6/);
    assert.throws(() => encodeHead({ ...head, bias: new Float32Array(3) }), /bias has 3 values/);
  });
  test('invalid manifest', () => {
    const head = tinyHead();
    assert.throws(() => encodeHead({ ...head, manifest: { ...head.manifest, classes: ['a', 'a'] } }), /manifest.classes\[1\]: duplicate/);
    assert.throws(() => encodeHead({ ...head, manifest: { ...head.manifest, metrics: { x: NaN } } }), /manifest.metrics.x: must be a finite number/);
  });
});

describe('head format: decodeHead rejects, each with its own message', () => {
  test('not a byte array', () => {
    rejects('EHED' as unknown as Uint8Array, 'must be a byte array');
  });
  test('empty payload', () => { rejects(new Uint8Array(0), 'empty head payload'); });
  test('too large', () => { rejects(new Uint8Array(101), 'too large: 101 bytes > limit 100', { maxBytes: 100 }); });
  test('shorter than the header', () => { rejects(encodeHead(tinyHead()).subarray(0, 11), 'too short for the 12-byte header: 11 bytes'); });
  test('wrong magic', () => {
    const e = rejects(raw({ magic: 'GIF8' }), 'bad magic: expected "EHED", got 0x47494638');
    assert.ok(e.hint);
  });
  test('unsupported format version', () => { rejects(raw({ version: 2 }), 'unsupported head format version 2 (this agent reads version 1)'); });
  test('non-zero flags', () => { rejects(raw({ flags: 1 }), 'unsupported flags 0x0001'); });
  test('manifest length above 1 MiB', () => { rejects(raw({ manifestLength: 0xffffffff }), 'manifest length 4294967295 exceeds the 1048576-byte limit'); });
  test('manifest length beyond the payload', () => {
    const bytes = raw({});
    const len = new DataView(bytes.buffer).getUint32(8, true);
    rejects(raw({ manifestLength: len + 1000 }), `truncated manifest: header says ${len + 1000} bytes, only ${bytes.length - 12} follow`);
  });
  test('manifest not UTF-8', () => { rejects(raw({ manifestBytes: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) }), 'manifest is not valid UTF-8'); });
  test('manifest with a byte order mark', () => {
    const json = new TextEncoder().encode(JSON.stringify(tinyHead().manifest));
    rejects(raw({ manifestBytes: new Uint8Array([0xef, 0xbb, 0xbf, ...json]) }), 'byte order mark');
  });
  test('manifest not JSON', () => {
    rejects(raw({ manifestBytes: new TextEncoder().encode('{"id": "demo",') }), 'manifest is not valid JSON');
    rejects(raw({ manifestBytes: new Uint8Array(0) }), 'manifest is not valid JSON');
  });
  test('manifest not an object', () => {
    rejects(raw({ manifest: [1, 2] }), 'manifest must be a JSON object, got an array');
    rejects(raw({ manifest: null }), 'manifest must be a JSON object, got null');
    rejects(raw({ manifestBytes: new TextEncoder().encode('"EHED"') }), 'manifest must be a JSON object, got string');
  });

  const schemaCases: Array<[string, unknown, string]> = [
    ['id', undefined, 'manifest.id: required'],
    ['id', 'has space', 'manifest.id: must be 1 to 64 letters, digits, "_", "." or "-" (got "has space")'],
    ['id', 'x'.repeat(65), 'manifest.id: must be 1 to 64 letters'],
    ['id', 7, 'manifest.id: must be 1 to 64 letters, digits, "_", "." or "-" (got 7)'],
    ['version', 0, 'manifest.version: must be an integer >= 1 (got 0)'],
    ['version', 1.5, 'manifest.version: must be an integer >= 1 (got 1.5)'],
    ['version', 2 ** 53 + 2, 'manifest.version: must be an integer >= 1 (got 9007199254740994)'],
    ['version', '2', 'manifest.version: must be an integer >= 1 (got "2")'],
    ['classes', ['cat'], 'manifest.classes: must be an array of at least 2 labels (got ["cat"])'],
    ['classes', 'cat,dog', 'manifest.classes: must be an array of at least 2 labels (got "cat,dog")'],
    ['classes', ['cat', 'dog', ''], 'manifest.classes[2]: must not be empty'],
    ['classes', ['cat', 5], 'manifest.classes[1]: must be a string (got 5)'],
    ['classes', ['cat', 'dog', 'cat'], 'manifest.classes[2]: duplicate of classes[0] "cat"'],
    ['classes', ['cat', 'd'.repeat(129)], 'manifest.classes[1]: must be at most 128 characters long (got 129)'],
    ['featureDim', 0, 'manifest.featureDim: must be an integer >= 1 (got 0)'],
    ['featureDim', 3.5, 'manifest.featureDim: must be an integer >= 1'],
    ['extractor', 'mobilenet', 'manifest.extractor: must be an object (got "mobilenet")'],
    ['extractor.id', undefined, 'manifest.extractor.id: required'],
    ['extractor.id', '', 'manifest.extractor.id: must be a non-empty string'],
    ['extractor.fingerprint', 'abc', 'manifest.extractor.fingerprint: must be 64 lowercase hex digits'],
    ['extractor.fingerprint', FP.toUpperCase(), 'manifest.extractor.fingerprint: must be 64 lowercase hex digits'],
    ['dtype', undefined, 'manifest.dtype: required'],
    ['dtype', 32, 'manifest.dtype: must be "float32", the only dtype this agent supports (got 32)'],
    ['tensors', undefined, 'manifest.tensors: required'],
    ['tensors.kernel', undefined, 'manifest.tensors.kernel: required'],
    ['tensors.kernel', [3, 2], 'manifest.tensors.kernel: must be an object (got [3,2])'],
    ['tensors.kernel.shape', [6], 'manifest.tensors.kernel.shape: must be an array of 2 non-negative integers (got [6])'],
    ['tensors.bias.shape', [-2], 'manifest.tensors.bias.shape[0]: must be a non-negative integer (got -2)'],
    ['sha256', 'deadbeef', 'manifest.sha256: must be 64 lowercase hex digits (got "deadbeef")'],
    ['createdAt', 'yesterday', 'manifest.createdAt: must be an ISO 8601 date-time with time zone'],
    ['createdAt', '2024-05-01T12:00:00', 'manifest.createdAt: must be an ISO 8601'],
    ['createdAt', '2023-02-29T12:00:00Z', 'manifest.createdAt: must be an ISO 8601 date-time with time zone (e.g. 2024-05-01T12:00:00Z) (got "2023-02-29T12:00:00Z")'],
    ['createdAt', '2024-05-01T24:00:00Z', 'manifest.createdAt: must be an ISO 8601'],
    ['createdAt', '2024-05-01T12:00:00+24:00', 'manifest.createdAt: must be an ISO 8601'],
    ['createdAt', 1714564800000, 'manifest.createdAt: must be an ISO 8601'],
    ['metrics', [1], 'manifest.metrics: must be an object (got [1])'],
    ['testVectors', {}, 'manifest.testVectors: must be an array (got {})'],
    ['testVectors', [{ features: [1, 2, 3] }], 'manifest.testVectors[0].logits: required'],
    ['testVectors', [{ features: [1, 2, 3], logits: 'x' }], 'manifest.testVectors[0].logits: must be an array of numbers (got "x")'],
    ['shadow', { frames: 0 }, 'manifest.shadow.frames: must be an integer >= 1 (got 0)'],
    ['shadow', { frames: 10, autoPromoteAgreement: 1.5 }, 'manifest.shadow.autoPromoteAgreement: must be a number in [0, 1]'],
    ['signature', { alg: 'rsa', keyId: '0123456789abcdef', value: 'A'.repeat(86) + '==' }, 'manifest.signature.alg: must be "ed25519"'],
    ['signature', { alg: 'ed25519', keyId: 'xyz', value: 'A'.repeat(86) + '==' }, 'manifest.signature.keyId: must be 16 lowercase hex digits'],
    ['signature', { alg: 'ed25519', keyId: '0123456789abcdef', value: 'AAAA' }, 'manifest.signature.value: must be the base64 of a 64-byte signature'],
  ];
  for (const [path, value, message] of schemaCases) {
    test(`schema: ${path} = ${JSON.stringify(value)?.slice(0, 30) ?? 'missing'}`, () => {
      const e = rejects(raw({ manifest: manifestWith(path, value) }), message);
      assert.ok(e.message.startsWith('invalid head manifest: '), e.message);
    });
  }

  test('schema: all errors of a stage are reported at once', () => {
    const m = manifestWith('id', '');
    m.version = -1;
    m.featureDim = 'x';
    m.sha256 = 1;
    const e = rejects(raw({ manifest: m }), 'manifest.id: must be');
    assert.match(e.message, /manifest.version: .*manifest.featureDim: .*\(\+1 more\)/);
  });

  test('schema: "__proto__" keys and excessive nesting are refused', () => {
    const json = JSON.stringify(tinyHead().manifest).replace(/^\{/, '{"extra":{"__proto__":{"polluted":true}},');
    rejects(raw({ manifestBytes: new TextEncoder().encode(json) }), 'manifest.extra: key "__proto__" is not allowed');
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    const deep = JSON.stringify(tinyHead().manifest).replace(/^\{/, `{"deep":${'['.repeat(100_000)}${']'.repeat(100_000)},`);
    rejects(raw({ manifestBytes: new TextEncoder().encode(deep) }), 'nested deeper than 32 levels');
  });

  test('schema: a missing key is reported once, as required', () => {
    const e = rejects(raw({ manifest: manifestWith('tensors', undefined) }), 'manifest.tensors: required');
    assert.equal(e.message, 'invalid head manifest: manifest.tensors: required');
  });

  test('unsupported dtype', () => {
    rejects(raw({ manifest: manifestWith('dtype', 'float16') }), 'invalid head manifest: manifest.dtype: must be "float32", the only dtype this agent supports (got "float16")');
  });

  test('shapes inconsistent with featureDim / classes', () => {
    rejects(raw({ manifest: manifestWith('tensors.kernel.shape', [3, 3]) }), 'shape mismatch: tensors.kernel.shape [3, 3]');
    rejects(raw({ manifest: manifestWith('tensors.bias.shape', [3]) }), 'shape mismatch');
    rejects(raw({ manifest: manifestWith('featureDim', 4) }), 'shape mismatch');
  });

  test('test vectors of the wrong size', () => {
    rejects(raw({ manifest: manifestWith('testVectors', [{ features: [1, 2], logits: [0, 0] }]) }), 'manifest.testVectors[0].features: expected 3 numbers, got 2');
    rejects(raw({ manifest: manifestWith('testVectors', [{ features: [1, 2, 3], logits: [0, 'x'] }]) }), 'manifest.testVectors[0].logits[1]: must be a finite number');
  });

  test('truncated weights', () => {
    const head = tinyHead();
    const w = encodeWeights(head.kernel, head.bias);
    rejects(raw({ weights: w.subarray(0, 28) }), 'truncated weights: expected 32 bytes, got 28');
    rejects(raw({ weights: new Uint8Array(0) }), 'truncated weights: expected 32 bytes, got 0');
  });

  test('trailing bytes', () => {
    const head = tinyHead();
    const w = encodeWeights(head.kernel, head.bias);
    rejects(raw({ weights: new Uint8Array([...w, 0]) }), 'trailing bytes after the weights: expected 32 weight bytes, got 33 (1 extra)');
  });

  test('sha256 mismatch', () => {
    const bytes = encodeHead(tinyHead());
    bytes[bytes.length - 1]! ^= 0x01;
    rejects(bytes, 'weight sha256 mismatch: manifest says');
  });

  test('non-finite weights name the tensor and index', () => {
    const head = tinyHead();
    const cases: Array<[Float32Array, Float32Array, string]> = [
      [new Float32Array([0, 0, 0, 0, NaN, 0]), head.bias, 'non-finite weight: kernel[4] (row 2, column 0) is NaN'],
      [head.kernel, new Float32Array([0, Infinity]), 'non-finite weight: bias[1] is Infinity'],
      [new Float32Array([-Infinity, 0, 0, 0, 0, 0]), head.bias, 'kernel[0] (row 0, column 0) is -Infinity'],
    ];
    for (const [kernel, bias, message] of cases) {
      const weights = encodeWeights(kernel, bias);
      const sha256 = createHash('sha256').update(weights).digest('hex');
      rejects(raw({ manifest: { ...head.manifest, sha256 }, weights }), message);
    }
  });
});
