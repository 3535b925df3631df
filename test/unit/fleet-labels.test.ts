/**
 * The labelling page's store (operator/fleet/labels.ts) over a temp data folder laid out as `dataset pull` writes it:
 * listing, class counts, pictures, moves into a class folder and back, and the refusals that keep requests inside DIR.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { EdgeheadError } from '../../base/errors';
import { checkFleetConfig } from '../../operator/fleet/config';
import { classNameProblem, DatasetLabels } from '../../operator/fleet/labels';
import { encodeFeatures, type Sample } from '../../protocol/dataset';

function sample(device: string, id: string, ts: string, label: string, image: boolean): Sample {
  return {
    id,
    device,
    ts,
    reason: 'low-confidence',
    extractor: { id: 'mobilenet_v2_140', fingerprint: 'f'.repeat(64) },
    featureDim: 4,
    dtype: 'float16',
    features: encodeFeatures([0.1, 0.2, 0.3, 0.4], 'float16'),
    prediction: { label, score: 0.42 },
    head: { id: 'demo', version: 1 },
    region: null,
    image,
  };
}

const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0xff, 0xd9]);

/** Writes DIR/<folder>/<device>-<id>.json (+ .jpg); returns the sample's name. */
function put(dir: string, folder: string, s: Sample, jpeg?: Buffer): string {
  const name = `${s.device}-${s.id}`;
  fs.mkdirSync(path.join(dir, folder), { recursive: true });
  if (jpeg) fs.writeFileSync(path.join(dir, folder, `${name}.jpg`), jpeg);
  fs.writeFileSync(path.join(dir, folder, `${name}.json`), JSON.stringify(s) + '\n');
  return name;
}

const ls = (dir: string, folder: string) => (fs.existsSync(path.join(dir, folder)) ? fs.readdirSync(path.join(dir, folder)).sort() : []);

async function rejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof EdgeheadError && re.test(e.message));
}

describe('DatasetLabels', () => {
  let dir: string;
  let labels: DatasetLabels;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgehead-labels-'));
    put(dir, 'unlabeled', sample('pi-1', '3-20', '2026-05-01T10:00:02Z', 'fish', true), JPEG);
    put(dir, 'unlabeled', sample('pi-1', '3-10', '2026-05-01T10:00:01Z', 'empty', false));
    put(dir, 'unlabeled', sample('pi-2', '1-5', '2026-05-01T10:00:03Z', 'fish', true), JPEG);
    put(dir, 'empty', sample('pi-2', '1-1', '2026-04-30T09:00:00Z', 'empty', false));
    fs.writeFileSync(path.join(dir, 'empty', 'photo.jpg'), JPEG); // a photo without side-file counts too
    fs.mkdirSync(path.join(dir, '.hidden'));
    fs.writeFileSync(path.join(dir, 'unlabeled', 'notes.json'), '{}'); // not a pulled sample's name: ignored
    fs.writeFileSync(path.join(dir, 'unlabeled', 'pi-3-1-1.json'), '{"id": "broken"}'); // invalid: skipped
    labels = new DatasetLabels({ dir, maxList: 1000 });
  });

  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('lists the unlabeled samples oldest first, with their prediction and whether they have a picture', async () => {
    const view = await labels.view();
    assert.equal(view.dir, dir);
    assert.deepEqual(view.classes, [{ name: 'empty', count: 2 }]);
    assert.equal(view.unlabeledCount, 3);
    assert.deepEqual(
      view.unlabeled.map((s) => [s.name, s.device, s.id, s.prediction.label, s.image]),
      [
        ['pi-1-3-10', 'pi-1', '3-10', 'empty', false],
        ['pi-1-3-20', 'pi-1', '3-20', 'fish', true],
        ['pi-2-1-5', 'pi-2', '1-5', 'fish', true],
      ],
    );
    assert.equal(view.class, undefined);
  });

  it('lists at most maxList samples and counts the rest', async () => {
    const view = await new DatasetLabels({ dir, maxList: 2 }).view();
    assert.equal(view.unlabeledCount, 3);
    assert.deepEqual(view.unlabeled.map((s) => s.name), ['pi-1-3-10', 'pi-1-3-20']);
  });

  it('labels samples: both files move into a new class folder, and the view follows', async () => {
    assert.deepEqual(await labels.label(['pi-1-3-20', 'pi-1-3-10'], 'fish'), { moved: 2 });
    assert.deepEqual(ls(dir, 'fish'), ['pi-1-3-10.json', 'pi-1-3-20.jpg', 'pi-1-3-20.json']);
    assert.deepEqual(ls(dir, 'unlabeled'), ['notes.json', 'pi-2-1-5.jpg', 'pi-2-1-5.json', 'pi-3-1-1.json']);
    const view = await labels.view('fish');
    assert.deepEqual(view.classes, [{ name: 'empty', count: 2 }, { name: 'fish', count: 2 }]);
    assert.deepEqual(view.unlabeled.map((s) => s.name), ['pi-2-1-5']);
    assert.deepEqual(view.class?.samples.map((s) => [s.name, s.image]), [['pi-1-3-10', false], ['pi-1-3-20', true]]);
    assert.deepEqual(await labels.image('pi-1-3-20'), JPEG); // found in its new folder
  });

  it('relabels from one class to another, and unlabels back into unlabeled/', async () => {
    await labels.label(['pi-2-1-1'], 'fish');
    assert.deepEqual(ls(dir, 'empty'), ['photo.jpg']);
    assert.deepEqual(ls(dir, 'fish'), ['pi-2-1-1.json']);
    assert.deepEqual(await labels.unlabel(['pi-2-1-1']), { moved: 1 });
    assert.ok(ls(dir, 'unlabeled').includes('pi-2-1-1.json'));
    assert.deepEqual(ls(dir, 'fish'), []);
    await rejects(labels.unlabel(['pi-2-1-1']), /is not labelled/);
  });

  it('serves pictures of known samples only', async () => {
    assert.deepEqual(await labels.image('pi-1-3-20'), JPEG);
    assert.equal(await labels.image('pi-1-3-10'), undefined); // features only
    assert.equal(await labels.image('pi-9-1-1'), undefined); // unknown
    assert.equal(await labels.image('../unlabeled/pi-1-3-20'), undefined);
  });

  it('refuses bad class names and unknown or malformed sample names before moving anything', async () => {
    for (const bad of ['..', '.fish', 'unlabeled', 'a/b', '', 'x'.repeat(65), 'fish cat']) {
      await rejects(labels.label(['pi-1-3-20'], bad), /^class /);
    }
    await rejects(labels.label(['pi-1-3-20', 'pi-9-9-9'], 'fish'), /no pi-9-9-9\.json/);
    await rejects(labels.label(['../empty/pi-2-1-1'], 'fish'), /not a pulled sample's name/);
    await rejects(labels.label(['notes'], 'fish'), /not a pulled sample's name/);
    await rejects(labels.label([], 'fish'), /at least one/);
    assert.ok(ls(dir, 'unlabeled').includes('pi-1-3-20.json'), 'nothing moved');
    assert.equal(fs.existsSync(path.join(dir, 'fish')), false);
    await rejects(labels.view('nope'), /no class "nope"/);
  });

  it('runs concurrent moves one after the other', async () => {
    const [a, b] = await Promise.allSettled([labels.label(['pi-1-3-20'], 'fish'), labels.label(['pi-1-3-20'], 'cat')]);
    assert.equal(a.status, 'fulfilled');
    assert.equal(b.status, 'fulfilled'); // the second finds it in fish/ and moves it on
    assert.deepEqual(ls(dir, 'cat'), ['pi-1-3-20.jpg', 'pi-1-3-20.json']);
    assert.deepEqual(ls(dir, 'fish'), []);
  });

  it('refuses a data folder that does not exist', () => {
    assert.throws(() => new DatasetLabels({ dir: path.join(dir, 'missing'), maxList: 10 }), /dataset\.dir: not a folder/);
  });
});

describe('class names', () => {
  it('are ids that are neither hidden nor "unlabeled"', () => {
    assert.equal(classNameProblem('fish'), undefined);
    assert.equal(classNameProblem('no-fish_2.b'), undefined);
    assert.match(classNameProblem('.git') ?? '', /must not start with "\."/);
    assert.match(classNameProblem('unlabeled') ?? '', /not a class/);
    assert.match(classNameProblem('a b') ?? '', /letters, digits/);
  });
});

describe('dataset config', () => {
  it('is off by default and resolves dataset.dir against the config file', () => {
    const off = checkFleetConfig({ env: {}, checkFiles: false, hostname: 'h', random: () => 0, data: { version: 1 } });
    assert.deepEqual(off.errors, []);
    assert.equal(off.config!.dataset.dir, undefined);
    const on = checkFleetConfig({ env: {}, checkFiles: false, hostname: 'h', random: () => 0, data: { version: 1, dataset: { dir: 'data' } }, baseDir: '/etc/edgehead' });
    assert.deepEqual(on.errors, []);
    assert.equal(on.config!.dataset.dir, '/etc/edgehead/data');
  });
});
