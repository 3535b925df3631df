/**
 * The fleet dashboard in a real headless Chromium (Debian's, driven by playwright-core; skipped when it is not
 * installed) against the real HTTP server with a fake fleet: the table, a device going offline turning red without a
 * reload, filter and sort, the device page's charts and snapshot, a rollout started from the form and its live
 * progress, a thousand rows (the render time is printed, never asserted), and the token and basic-auth logins.
 * Screenshots go to test-artifacts/fleet/.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { parseBasicAuth } from '../../operator/fleet/http/auth';
import type { WebAssets } from '../../operator/fleet/http/deps';
import { createFleetHttpServer, type FleetHttpOptions, type FleetHttpServer } from '../../operator/fleet/http/server';
import { loadWebAssets } from '../../operator/fleet/web/build';
import { CHROMIUM, CHROMIUM_MISSING, type DashboardPage, deviceRow, fakeFleetDeps, type FakeFleetDeps, fleetStats, launchBrowser, openDashboard, screenshot, unexpectedErrors, visibleDevices, waitForRows } from '../support/browser';
import { ROOT } from '../support/cli';

const JPEG = fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'images', 'jpeg-baseline.jpg'));

/** Polls an async check until it holds; the guard only turns a hang into a failure with the last value. */
async function until<T>(what: string, check: () => Promise<T> | T, ok: (v: T) => boolean, guardMs = 30_000): Promise<T> {
  const deadline = Date.now() + guardMs;
  for (;;) {
    const v = await check();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`still waiting for ${what}; last value: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function serve(deps: FakeFleetDeps, assets: WebAssets, opts: Partial<FleetHttpOptions> = {}): Promise<{ server: FleetHttpServer; url: string }> {
  const server = createFleetHttpServer({ ...deps, listen: { host: '127.0.0.1', port: 0 }, auth: undefined, maxUploadBytes: 1024 * 1024, sseIntervalMs: 100, assets, ...opts });
  return { server, url: (await server.listen()).url };
}

describe('fleet dashboard in Chromium', { skip: !CHROMIUM && CHROMIUM_MISSING }, () => {
  let browser: Browser;
  let assets: WebAssets;
  let deps: FakeFleetDeps;
  let server: FleetHttpServer;
  let url: string;
  let dash: DashboardPage;

  before(async () => {
    assets = await loadWebAssets();
    deps = fakeFleetDeps([
      deviceRow('pi-1', { cpuTempC: 52.5 }),
      deviceRow('pi-2', { cpuTempC: 71.2 }),
      deviceRow('pi-3', { groups: ['garden'], cpuTempC: 45, head: { id: 'landsea', version: 2, sha256: 'b'.repeat(64) }, problems: [{ key: 'disk-full', message: 'the disk is full', since: new Date().toISOString() }] }),
    ]);
    deps.fleet.snapshots.set('pi-1', JPEG);
    ({ server, url } = await serve(deps, assets));
    browser = await launchBrowser();
    dash = await openDashboard(browser, url);
  });

  after(async () => {
    await dash?.close();
    await browser?.close();
    await server?.close();
  });

  const cell = (device: string, col: string) => dash.page.locator(`table.fleet tr[data-device="${device}"] td[data-col="${col}"]`);

  it('shows the devices with their group, status, head, latency and problems', async () => {
    await waitForRows(dash.page, 3);
    assert.deepEqual(await visibleDevices(dash.page), ['pi-1', 'pi-2', 'pi-3']);
    assert.equal(await cell('pi-3', 'group').textContent(), 'garden');
    assert.equal(await cell('pi-1', 'status').textContent(), 'online');
    assert.equal(await cell('pi-1', 'head').textContent(), 'demo v1');
    assert.equal(await cell('pi-3', 'head').textContent(), 'landsea v2');
    assert.equal(await cell('pi-1', 'p95').textContent(), '63');
    assert.equal(await cell('pi-2', 'temp').textContent(), '71.2');
    assert.equal(await cell('pi-3', 'problems').textContent(), 'the disk is full');
    assert.match((await cell('pi-1', 'frame').textContent()) ?? '', /^\d+ s$/);
    await screenshot(dash.page, 'fleet-table');
    assert.deepEqual(unexpectedErrors(dash.errors), []);
  });

  it('turns a device that goes offline red, live, without reloading the page', async () => {
    await dash.page.evaluate(() => ((globalThis as unknown as { __marker: number }).__marker = 42));
    const row = dash.page.locator('table.fleet tr[data-device="pi-2"]');
    assert.doesNotMatch((await row.getAttribute('class')) ?? '', /offline/);
    deps.fleet.update('pi-2', { online: false, offlineReason: 'connection lost' });
    await dash.page.waitForSelector('table.fleet tr[data-device="pi-2"].offline');
    assert.equal(await cell('pi-2', 'status').textContent(), 'offline');
    assert.equal(await row.evaluate((el) => (globalThis as unknown as { getComputedStyle(e: unknown): { backgroundColor: string } }).getComputedStyle(el).backgroundColor), 'rgb(254, 226, 226)');
    assert.equal(await dash.page.evaluate(() => (globalThis as unknown as { __marker: number }).__marker), 42, 'the same page: no reload');
    await screenshot(dash.page, 'fleet-offline');
  });

  it('filters by device, group or head, and sorts by a clicked column', async () => {
    const filter = dash.page.locator('input.filter');
    await filter.fill('garden');
    await until('the garden filter', () => visibleDevices(dash.page), (v) => v.join() === 'pi-3');
    await filter.fill('DEMO');
    await until('the head filter', () => visibleDevices(dash.page), (v) => v.join() === 'pi-1,pi-2');
    await filter.fill('pi-1');
    await until('the device filter', () => visibleDevices(dash.page), (v) => v.join() === 'pi-1');
    await filter.fill('');
    await until('no filter', () => visibleDevices(dash.page), (v) => v.length === 3);

    const temp = dash.page.locator('th[data-col="temp"] button');
    await temp.click();
    await until('ascending temperature', () => visibleDevices(dash.page), (v) => v.join() === 'pi-3,pi-1,pi-2');
    assert.equal(await dash.page.locator('th[data-col="temp"]').getAttribute('aria-sort'), 'ascending');
    await temp.click();
    await until('descending temperature', () => visibleDevices(dash.page), (v) => v.join() === 'pi-2,pi-1,pi-3');
    // A live change re-sorts: pi-3 becomes the hottest.
    deps.fleet.update('pi-3', { cpuTempC: 80 });
    await until('pi-3 first after its change', () => visibleDevices(dash.page), (v) => v.join() === 'pi-3,pi-2,pi-1');
    await dash.page.locator('th[data-col="device"] button').click();
    await until('sorted by device', () => visibleDevices(dash.page), (v) => v.join() === 'pi-1,pi-2,pi-3');
  });

  it('shows a device page with uPlot charts and the last snapshot', async () => {
    await dash.page.locator('table.fleet tr[data-device="pi-1"] a').click();
    await dash.page.waitForSelector('.facts dd');
    assert.equal(await dash.page.locator('h2').textContent(), 'pi-1');
    for (const chart of ['latency', 'temp', 'fps', 'labels']) await dash.page.waitForSelector(`.chart[data-chart="${chart}"] canvas`);
    assert.equal(await dash.page.locator('.chart[data-chart="labels"] .u-legend .u-series').count(), 3, 'time + the two labels');
    await dash.page.waitForSelector('.snapshot-box:not([hidden]) img.snapshot');
    await until('the snapshot decoded', () => dash.page.locator('img.snapshot').evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth), (w) => w > 0);
    await screenshot(dash.page, 'device-page');

    await dash.page.goto(`${url}#/device/pi-3`);
    await dash.page.waitForSelector('h2:text("pi-3")');
    await dash.page.waitForSelector('.chart[data-chart="latency"] canvas');
    assert.equal(await dash.page.locator('.snapshot-box').isHidden(), true, 'no snapshot: hidden');
    assert.deepEqual(unexpectedErrors(dash.errors), []);
  });

  it('starts a rollout from the form with the file and the target, and shows its progress live', async () => {
    const head = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) % 256));
    await dash.page.goto(`${url}#/rollouts`);
    const form = dash.page.locator('form.start-rollout');
    await form.locator('input[type=file]').setInputFiles({ name: 'landsea.head', mimeType: 'application/octet-stream', buffer: head });
    await form.locator('select[name=target]').selectOption('group');
    await form.locator('input[name=targetValue]').fill('kitchen');
    await form.locator('select[name=canary]').selectOption('devices');
    await form.locator('input[name=canaryValue]').fill('pi-1');
    await form.locator('input[name=minAgreement]').fill('0.9');
    await form.locator('button[type=submit]').click();
    await until('rollouts.start called', () => deps.rollouts.started.length, (n) => n === 1);
    const call = deps.rollouts.started[0]!;
    assert.deepEqual(Buffer.from(call.bytes), head, 'the file bytes, unchanged');
    assert.deepEqual(call.req, { target: { kind: 'group', group: 'kitchen' }, canary: { devices: ['pi-1'] }, minAgreement: 0.9, actor: 'local' });
    const id = deps.rollouts.list()[0]!.id;
    const card = dash.page.locator(`section[data-rollout="${id}"]`);
    await dash.page.waitForSelector(`section[data-rollout="${id}"][data-phase="canary"]`);
    assert.match((await dash.page.locator('.form-message').textContent()) ?? '', /Started rollout/);

    deps.rollouts.setDevice(id, 'pi-1', 'applied', 'rest');
    await dash.page.waitForSelector(`section[data-rollout="${id}"][data-phase="rest"] tr[data-device="pi-1"][data-state="applied"]`);
    assert.equal(await card.locator('.progress').textContent(), '1/2 applied');

    // The fleet table marks the device the rollout still waits for.
    await dash.page.goto(`${url}#/`);
    await waitForRows(dash.page, 3);
    await until('pi-2 pending', () => cell('pi-2', 'rollout').textContent(), (t) => t === 'pending landsea v2');
    assert.equal(await cell('pi-1', 'rollout').textContent(), '');

    await dash.page.goto(`${url}#/rollouts`);
    await dash.page.waitForSelector(`section[data-rollout="${id}"]`);
    deps.rollouts.setDevice(id, 'pi-2', 'applied', 'done');
    await dash.page.waitForSelector(`section[data-rollout="${id}"][data-phase="done"]`);
    assert.equal(await card.locator('.progress').textContent(), '2/2 applied');
    await screenshot(dash.page, 'rollout-done');

    // Roll back takes a second click.
    await card.locator('button.rollback').click();
    assert.equal(deps.rollouts.rolledBack.length, 0);
    await card.locator('button.rollback').click();
    await until('rollouts.rollback called', () => deps.rollouts.rolledBack.length, (n) => n === 1);
    await dash.page.waitForSelector(`section[data-rollout="${id}"][data-phase="rolling-back"]`);
  });

  it('shows a refused upload with the server message, and halts a running rollout', async () => {
    const form = dash.page.locator('form.start-rollout');
    await form.locator('input[type=file]').setInputFiles({ name: 'bad.head', mimeType: 'application/octet-stream', buffer: Buffer.from('junk') });
    const { EdgeheadError } = await import('../../base/errors');
    deps.rollouts.startError = new EdgeheadError('BAD_HEAD', 'not a head file: bad magic bytes');
    await form.locator('button[type=submit]').click();
    await until('the refusal shown', () => dash.page.locator('.form-message').textContent(), (t) => /Refused \(400\): not a head file: bad magic bytes/.test(t ?? ''));
    assert.deepEqual(unexpectedErrors(dash.errors, [400]), []);
    dash.errors.length = 0; // the 400 was provoked

    await form.locator('input[type=file]').setInputFiles({ name: 'ok.head', mimeType: 'application/octet-stream', buffer: Buffer.from('head v3') });
    await form.locator('button[type=submit]').click();
    await until('second rollout', () => deps.rollouts.started.length, (n) => n === 2);
    const id = deps.rollouts.list().at(-1)!.id;
    await dash.page.locator(`section[data-rollout="${id}"] button.halt`).click();
    await until('rollouts.halt called', () => deps.rollouts.halted.length, (n) => n === 1);
    assert.deepEqual(deps.rollouts.halted[0], { id, actor: 'local', reason: 'halted from the dashboard' });
    await dash.page.waitForSelector(`section[data-rollout="${id}"][data-phase="halted"] .halt-reason`);
    assert.deepEqual(unexpectedErrors(dash.errors), []);
  });

  it('renders a thousand rows and keeps up with live changes (times printed, not asserted)', async (t) => {
    for (let i = 4; i <= 1000; i++) {
      const id = `sim-${String(i).padStart(4, '0')}`;
      deps.fleet.devices.set(id, deviceRow(id, { groups: [i % 2 ? 'kitchen' : 'garden'], cpuTempC: 40 + (i % 30), online: i % 10 !== 0 }));
    }
    await dash.page.goto(`${url}#/`);
    await dash.page.reload();
    const stats = await waitForRows(dash.page, 1000);
    t.diagnostic(`1,000 rows: initial render ${stats.initialRenderMs.toFixed(1)} ms (build + layout, window.__fleet.initialRenderMs)`);
    console.log(`fleet table: 1,000 rows rendered in ${stats.initialRenderMs.toFixed(1)} ms`);
    assert.equal(await dash.page.locator('table.fleet tbody tr.offline').count(), 100 + 1, 'every tenth simulated device, and pi-2');

    const before = stats.updates;
    for (let i = 4; i < 304; i++) deps.fleet.update(`sim-${String(i).padStart(4, '0')}`, { cpuTempC: 99.5 });
    await until('the 300 changed rows shown', () => cell('sim-0303', 'temp').textContent(), (v) => v === '99.5');
    const live = (await fleetStats(dash.page))!;
    assert.ok(live.updates > before);
    t.diagnostic(`300 changed rows applied in ${live.lastRenderMs.toFixed(1)} ms (last batch)`);
    console.log(`fleet table: last live batch (300 changed rows) in ${live.lastRenderMs.toFixed(1)} ms`);
    await screenshot(dash.page, 'fleet-1000', false);
    assert.deepEqual(unexpectedErrors(dash.errors), []);
  });
});

describe('fleet dashboard sign-in', { skip: !CHROMIUM && CHROMIUM_MISSING }, () => {
  let browser: Browser;
  let assets: WebAssets;

  before(async () => {
    assets = await loadWebAssets();
    browser = await launchBrowser();
  });
  after(() => browser?.close());

  it('with a token: shows the sign-in form, then the fleet, live over the authenticated stream', async () => {
    const deps = fakeFleetDeps([deviceRow('pi-1'), deviceRow('pi-2')]);
    const { server, url } = await serve(deps, assets, { auth: { token: 'tok-0123456789' } });
    const dash = await openDashboard(browser, url);
    try {
      await dash.page.waitForSelector('form.login');
      await dash.page.locator('form.login input[name=token]').fill('wrong-token');
      await dash.page.locator('form.login button').click();
      await dash.page.waitForSelector('form.login p.error');
      await screenshot(dash.page, 'sign-in');
      await dash.page.locator('form.login input[name=token]').fill('tok-0123456789');
      await dash.page.locator('form.login button').click();
      await waitForRows(dash.page, 2);
      await dash.page.waitForSelector('#live[data-state="live"]');
      deps.fleet.update('pi-1', { online: false, offlineReason: 'shutdown' });
      await dash.page.waitForSelector('table.fleet tr[data-device="pi-1"].offline');
      assert.deepEqual(unexpectedErrors(dash.errors), []);
    } finally {
      await dash.close();
      await server.close();
    }
  });

  it('with basic auth: the browser answers the challenge and the dashboard works', async () => {
    const deps = fakeFleetDeps([deviceRow('pi-1')]);
    const { server, url } = await serve(deps, assets, { auth: { basic: parseBasicAuth('alice:wonderland') } });
    const dash = await openDashboard(browser, url, { basic: { username: 'alice', password: 'wonderland' } });
    try {
      await waitForRows(dash.page, 1);
      await dash.page.waitForSelector('#live[data-state="live"]');
      deps.fleet.update('pi-1', { online: false });
      await dash.page.waitForSelector('table.fleet tr[data-device="pi-1"].offline');
      assert.deepEqual(unexpectedErrors(dash.errors), []);
    } finally {
      await dash.close();
      await server.close();
    }
  });
});
