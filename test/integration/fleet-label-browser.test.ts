/**
 * The labelling page (operator/fleet/labels.ts behind the fleet HTTP server, operator/fleet/web/label-page.ts) over a
 * temp data folder laid out as `dataset pull` writes it: the API's answers and refusals (off without dataset.dir,
 * the cross-site header, bad classes and names, body size), then in a real headless Chromium (skipped when it is not
 * installed): select two samples, label them "fish", and see the files moved on disk and the class count on the page.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import type { DatasetSource, WebAssets } from '../../operator/fleet/http/deps';
import { createFleetHttpServer, type FleetHttpOptions, type FleetHttpServer } from '../../operator/fleet/http/server';
import { DatasetLabels } from '../../operator/fleet/labels';
import type { DatasetView } from '../../operator/fleet/model';
import { loadWebAssets } from '../../operator/fleet/web/build';
import { encodeFeatures, type Sample } from '../../protocol/dataset';
import { CHROMIUM, CHROMIUM_MISSING, type DashboardPage, deviceRow, fakeFleetDeps, launchBrowser, openDashboard, screenshot, unexpectedErrors } from '../support/browser';
import { ROOT } from '../support/cli';

const FISH = fs.readFileSync(path.join(ROOT, 'assets', 'samples', 'fish', 'fish1.jpg'));

function sample(device: string, id: string, ts: string, label: string, score: number, image: boolean): Sample {
  return {
    id,
    device,
    ts,
    reason: 'low-confidence',
    extractor: { id: 'mobilenet_v2_140', fingerprint: 'f'.repeat(64) },
    featureDim: 8,
    dtype: 'float16',
    features: encodeFeatures([0.5, 0, 1, 0.25, 0, 0, 2, 0.125], 'float16'),
    prediction: { label, score },
    head: { id: 'demo', version: 1 },
    region: null,
    image,
  };
}

/** A data folder: three unlabeled samples (one with a JPEG) and a class "land" with one. */
function dataFolder(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgehead-label-'));
  const put = (folder: string, s: Sample, jpeg?: Buffer) => {
    fs.mkdirSync(path.join(dir, folder), { recursive: true });
    if (jpeg) fs.writeFileSync(path.join(dir, folder, `${s.device}-${s.id}.jpg`), jpeg);
    fs.writeFileSync(path.join(dir, folder, `${s.device}-${s.id}.json`), JSON.stringify(s) + '\n');
  };
  put('unlabeled', sample('pi-1', '2-7', '2026-05-01T10:00:01Z', 'sea', 0.41, true), FISH);
  put('unlabeled', sample('pi-1', '2-9', '2026-05-01T10:00:02Z', 'sea', 0.55, false));
  put('unlabeled', sample('pi-2', '1-3', '2026-05-01T10:00:03Z', 'land', 0.48, false));
  put('land', sample('pi-2', '1-1', '2026-04-30T09:00:00Z', 'land', 0.9, false));
  return dir;
}

async function serve(assets: WebAssets, dataset: DatasetSource | undefined): Promise<{ server: FleetHttpServer; url: string }> {
  const opts: FleetHttpOptions = {
    ...fakeFleetDeps([deviceRow('pi-1'), deviceRow('pi-2')]),
    listen: { host: '127.0.0.1', port: 0 },
    auth: undefined,
    maxUploadBytes: 1024 * 1024,
    sseIntervalMs: 100,
    assets,
    ...(dataset ? { dataset } : {}),
  };
  const server = createFleetHttpServer(opts);
  return { server, url: (await server.listen()).url };
}

const post = (url: string, body: unknown, headers: Record<string, string> = { 'X-Edgehead-Request': '1' }) =>
  fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

describe('labelling API', () => {
  let assets: WebAssets;
  let dir: string;
  let server: FleetHttpServer;
  let url: string;

  before(async () => {
    assets = await loadWebAssets();
    dir = dataFolder();
    ({ server, url } = await serve(assets, new DatasetLabels({ dir, maxList: 100 })));
  });

  after(async () => {
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers 404 with the setting to set when there is no dataset folder', async () => {
    const off = await serve(assets, undefined);
    try {
      for (const res of [await fetch(`${off.url}api/dataset`), await post(`${off.url}api/dataset/label`, { samples: ['pi-1-2-7'], class: 'fish' })]) {
        assert.equal(res.status, 404);
        assert.match(((await res.json()) as { error: string }).error, /dataset\.dir/);
      }
    } finally {
      await off.server.close();
    }
  });

  it('lists the classes and the unlabeled samples, and serves a sample\'s JPEG', async () => {
    const view = (await (await fetch(`${url}api/dataset`)).json()) as DatasetView;
    assert.deepEqual(view.classes, [{ name: 'land', count: 1 }]);
    assert.deepEqual(view.unlabeled.map((s) => [s.name, s.image]), [['pi-1-2-7', true], ['pi-1-2-9', false], ['pi-2-1-3', false]]);
    const img = await fetch(`${url}api/dataset/image/pi-1-2-7`);
    assert.equal(img.status, 200);
    assert.equal(img.headers.get('content-type'), 'image/jpeg');
    assert.deepEqual(Buffer.from(await img.arrayBuffer()), FISH);
    assert.equal((await fetch(`${url}api/dataset/image/pi-1-2-9`)).status, 404, 'features only');
    assert.equal((await fetch(`${url}api/dataset/image/..%2Fland%2Fpi-2-1-1`)).status, 404);
  });

  it('refuses a label request without the cross-site header, with a bad class or name, or too big', async () => {
    assert.equal((await post(`${url}api/dataset/label`, { samples: ['pi-1-2-7'], class: 'fish' }, {})).status, 403);
    const badClass = await post(`${url}api/dataset/label`, { samples: ['pi-1-2-7'], class: '..' });
    assert.equal(badClass.status, 422);
    assert.match(((await badClass.json()) as { error: string }).error, /^class "\.\.":/);
    const badName = await post(`${url}api/dataset/label`, { samples: ['../land/pi-2-1-1'], class: 'fish' });
    assert.equal(badName.status, 422);
    assert.equal((await post(`${url}api/dataset/label`, { samples: 'pi-1-2-7', class: 'fish' })).status, 400);
    assert.equal((await post(`${url}api/dataset/label`, 'not json')).status, 400);
    assert.equal((await post(`${url}api/dataset/label`, { samples: Array.from({ length: 40_000 }, (_, i) => `pi-1-2-${i}`), class: 'fish' })).status, 413);
    assert.equal(fs.existsSync(path.join(dir, 'fish')), false, 'nothing moved');
    assert.equal((await fetch(`${url}api/dataset/label`)).status, 405);
  });

  it('labels and unlabels through the API', async () => {
    const res = await post(`${url}api/dataset/label`, { samples: ['pi-2-1-3'], class: 'land' });
    assert.deepEqual(await res.json(), { moved: 1 });
    assert.ok(fs.existsSync(path.join(dir, 'land', 'pi-2-1-3.json')));
    const back = await post(`${url}api/dataset/unlabel`, { samples: ['pi-2-1-3'] });
    assert.deepEqual(await back.json(), { moved: 1 });
    assert.ok(fs.existsSync(path.join(dir, 'unlabeled', 'pi-2-1-3.json')));
  });
});

describe('labelling page in Chromium', { skip: !CHROMIUM && CHROMIUM_MISSING }, () => {
  let browser: Browser;
  let dir: string;
  let server: FleetHttpServer;
  let url: string;
  let dash: DashboardPage;

  before(async () => {
    dir = dataFolder();
    ({ server, url } = await serve(await loadWebAssets(), new DatasetLabels({ dir, maxList: 100 })));
    browser = await launchBrowser();
    dash = await openDashboard(browser, `${url}#/label`);
  });

  after(async () => {
    await dash?.close();
    await browser?.close();
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('shows the unlabeled samples: a thumbnail when there is a JPEG, else the prediction', async () => {
    await dash.page.waitForSelector('[data-sample="pi-2-1-3"]');
    assert.deepEqual(await dash.page.locator('[data-sample]').evaluateAll((els) => els.map((e) => (e as unknown as { dataset: { sample: string } }).dataset.sample)), ['pi-1-2-7', 'pi-1-2-9', 'pi-2-1-3']);
    const thumb = dash.page.locator('[data-sample="pi-1-2-7"] img.thumb');
    await dash.page.waitForFunction(() => ((globalThis as unknown as { document: { querySelector(s: string): { naturalWidth: number } | null } }).document.querySelector('[data-sample="pi-1-2-7"] img.thumb')?.naturalWidth ?? 0) > 0);
    assert.match((await thumb.getAttribute('src')) ?? '', /^blob:/);
    assert.match((await dash.page.locator('[data-sample="pi-1-2-9"]').textContent()) ?? '', /features only.*sea 0\.55/);
    assert.equal(await dash.page.locator('.label-classes [data-class="land"]').getAttribute('data-count'), '1');
    assert.equal(await dash.page.locator('nav a[data-nav="label"]').getAttribute('class'), 'active');
    await screenshot(dash.page, 'label-unlabeled');
  });

  it('labels two selected samples "fish": the files move on disk and the page shows the class', async () => {
    await dash.page.locator('[data-sample="pi-1-2-7"]').click();
    await dash.page.locator('[data-sample="pi-1-2-9"]').click();
    assert.equal(await dash.page.locator('[data-sample="pi-1-2-7"]').getAttribute('aria-pressed'), 'true');
    assert.equal(await dash.page.locator('[data-sample="pi-2-1-3"]').getAttribute('aria-pressed'), 'false');
    const suggestions = await dash.page.locator('#label-suggestions option').evaluateAll((os) => os.map((o) => (o as unknown as { value: string }).value));
    assert.deepEqual(suggestions, ['land', 'sea'], 'the classes and the predicted labels');
    await dash.page.locator('input[name=class]').fill('fish');
    await dash.page.locator('button.label-selected').click();
    await dash.page.waitForSelector('.label-classes [data-class="fish"][data-count="2"]');
    assert.deepEqual(fs.readdirSync(path.join(dir, 'fish')).sort(), ['pi-1-2-7.jpg', 'pi-1-2-7.json', 'pi-1-2-9.json']);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'unlabeled')).sort(), ['pi-2-1-3.json']);
    await dash.page.waitForSelector('[data-sample]:only-child');
    assert.equal(await dash.page.locator('[data-sample]').count(), 1);
    assert.equal(await dash.page.locator('.label-classes [data-class=""]').getAttribute('data-count'), '1');
    assert.match((await dash.page.locator('.form-message').textContent()) ?? '', /Moved 2 samples into fish/);
    await screenshot(dash.page, 'label-labelled');
  });

  it('shows a class and moves a sample back to unlabeled', async () => {
    await dash.page.locator('.label-classes [data-class="fish"]').click();
    await dash.page.waitForSelector('h2:text("Class fish")');
    await dash.page.waitForSelector('[data-sample="pi-1-2-9"]');
    await dash.page.locator('[data-sample="pi-1-2-9"]').click();
    await dash.page.locator('button.unlabel-selected').click();
    await dash.page.waitForSelector('.label-classes [data-class="fish"][data-count="1"]');
    assert.ok(fs.existsSync(path.join(dir, 'unlabeled', 'pi-1-2-9.json')));
    assert.deepEqual(unexpectedErrors(dash.errors), []);
  });
});
