import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EdgeheadError } from '../../base/errors';
import { encodeFeatures, type Sample } from '../../protocol/dataset';
import { scanDataset } from '../../operator/training/dataset';
import { readSampleFile } from '../../operator/training/features-file';
import { commonRegion, loadSamples } from '../../operator/training/sample-features';

const FP = 'a'.repeat(64);
const OTHER_FP = 'b'.repeat(64);
const EXPECTED = { id: 'mobilenet_v2_140', fingerprint: FP, featureDim: 4 };

function sample(over: Partial<Sample> = {}, values = [0.5, 1, 2, 0]): Sample {
  return {
    id: '3-17',
    device: 'cam-1',
    ts: '2026-01-01T00:00:00.000Z',
    reason: 'low-confidence',
    extractor: { id: 'mobilenet_v2_140', fingerprint: FP },
    featureDim: values.length,
    dtype: 'float16',
    features: encodeFeatures(values, 'float16'),
    prediction: { label: 'fish', score: 0.4 },
    head: { id: 'demo', version: 1 },
    region: null,
    image: false,
    ...over,
  };
}

function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'edgehead-sidefiles-'));
  process.once('exit', () => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

function write(file: string, content: string | object): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

const rejects = (f: () => unknown, re: RegExp) => assert.throws(f, (e) => e instanceof EdgeheadError && re.test(e.message) && !e.message.includes('\n'));

describe('readSampleFile', () => {
  test('a good side-file gives its features', () => {
    const f = write(path.join(tmp(), 'x.json'), sample());
    const { features, sample: s } = readSampleFile(f, EXPECTED);
    assert.deepEqual(Array.from(features), [0.5, 1, 2, 0]);
    assert.equal(s.id, '3-17');
  });

  test('another extractor fingerprint is refused naming the file and both fingerprints', () => {
    const f = write(path.join(tmp(), 'x.json'), sample({ extractor: { id: 'mobilenet_v2_100', fingerprint: OTHER_FP } }));
    assert.throws(
      () => readSampleFile(f, EXPECTED),
      (e) =>
        e instanceof EdgeheadError &&
        e.message.startsWith(f) &&
        e.message.includes('bbbbbbbbbbbb') &&
        e.message.includes('aaaaaaaaaaaa') &&
        /mobilenet_v2_100.*mobilenet_v2_140/.test(e.message) &&
        /--extractor/.test(e.hint ?? ''),
    );
  });

  test('features of the wrong length, a wrong featureDim, bad JSON and a non-sample are refused', () => {
    const d = tmp();
    rejects(() => readSampleFile(write(path.join(d, 'a.json'), sample({ featureDim: 4, features: encodeFeatures([1, 2, 3], 'float16') })), EXPECTED), /a\.json: sample 3-17: features are 6 bytes, expected 4 float16/);
    rejects(() => readSampleFile(write(path.join(d, 'b.json'), sample({}, [1, 2, 3])), EXPECTED), /b\.json: 3-d features, the extractor gives 4-d/);
    rejects(() => readSampleFile(write(path.join(d, 'c.json'), '{"id": '), EXPECTED), /c\.json: not JSON/);
    rejects(() => readSampleFile(write(path.join(d, 'd.json'), { hello: 1 }), EXPECTED), /d\.json: not a sample side-file: sample/);
  });
});

describe('scanDataset', () => {
  test('images and side-files; a side-file replaces its image; unlabeled/ and hidden folders ignored', () => {
    const d = tmp();
    write(path.join(d, 'fish', 'a.jpg'), 'x');
    write(path.join(d, 'fish', 'a.json'), sample());
    write(path.join(d, 'fish', 'b.png'), 'x');
    write(path.join(d, 'tool', 'c.json'), sample());
    write(path.join(d, 'tool', 'notes.txt'), 'x');
    write(path.join(d, 'unlabeled', 'u.json'), sample());
    write(path.join(d, '.cache', 'h.jpg'), 'x');
    write(path.join(d, 'empty', 'readme.md'), 'x');
    const ds = scanDataset(d);
    assert.deepEqual(ds.classes, ['fish', 'tool']);
    assert.deepEqual(
      ds.items.map((i) => [i.key, i.label, i.image && path.basename(i.image), i.sideFile && path.basename(i.sideFile)]),
      [
        ['fish/a.json', 0, 'a.jpg', 'a.json'],
        ['fish/b.png', 0, 'b.png', undefined],
        ['tool/c.json', 1, undefined, 'c.json'],
      ],
    );
  });

  test('with a head\'s classes: labels are the head\'s indices; an unknown class folder is named', () => {
    const d = tmp();
    write(path.join(d, 'tool', 'c.json'), sample());
    assert.deepEqual(scanDataset(d, { classes: ['fish', 'tool'] }).items.map((i) => i.label), [1]);
    write(path.join(d, 'cat', 'c.json'), sample());
    rejects(() => scanDataset(d, { classes: ['fish', 'tool'] }), /folder "cat" is not a class of the head/);
  });

  test('fewer than two classes is refused', () => {
    const d = tmp();
    write(path.join(d, 'fish', 'a.json'), sample());
    write(path.join(d, 'unlabeled', 'b.json'), sample());
    rejects(() => scanDataset(d), /found 1 class folder\(s\) with samples, need at least 2/);
  });
});

describe('loadSamples', () => {
  test('side-files without extraction, images through the extractor (with mirrors), the common region', () => {
    const d = tmp();
    write(path.join(d, 'fish', 'a.json'), sample({ region: [0.1, 0.1, 0.5, 0.5] }));
    write(path.join(d, 'fish', 'a.jpg'), 'never read');
    write(path.join(d, 'tool', 'b.json'), sample({ region: [0.1, 0.1, 0.5, 0.5] }, [1, 1, 1, 1]));
    const extracted: string[] = [];
    const loaded = loadSamples(scanDataset(d).items, {
      expected: EXPECTED,
      extractImage: (f) => {
        extracted.push(f);
        return { features: new Float32Array(4) };
      },
    });
    assert.deepEqual(extracted, []);
    assert.deepEqual(loaded.map((s) => Array.from(s.features)), [[0.5, 1, 2, 0], [1, 1, 1, 1]]);
    assert.deepEqual(commonRegion(loaded), [0.1, 0.1, 0.5, 0.5]);

    write(path.join(d, 'tool', 'c.jpg'), 'x');
    write(path.join(d, 'tool', 'd.jpg'), 'x');
    const skipped: string[] = [];
    const mixed = loadSamples(scanDataset(d).items, {
      expected: EXPECTED,
      extractImage: (f) => {
        if (f.endsWith('d.jpg')) throw new EdgeheadError('BAD_IMAGE', 'not an image');
        return { features: new Float32Array(4).fill(3), mirror: new Float32Array(4).fill(4) };
      },
      onSkip: (f) => skipped.push(path.basename(f)),
    });
    assert.deepEqual(skipped, ['d.jpg']);
    assert.equal(mixed.length, 3);
    assert.deepEqual(Array.from(mixed[2]!.mirror!), [4, 4, 4, 4]);
    // the image has no region, the side-files do: one head cannot serve both
    rejects(() => commonRegion(mixed), /different regions: .*a\.json \[0\.1,0\.1,0\.5,0\.5\], .*c\.jpg null/);
  });
});
