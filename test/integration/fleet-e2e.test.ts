/**
 * The fleet dashboard end to end in a real headless Chromium: Mosquitto, simulated devices, `edgehead fleet serve`
 * as a process. The table lists the devices, a device that dies turns red without a reload, and a rollout started
 * from the dashboard's form reaches `applied` on the devices (an offline one stays pending). Screenshots go to
 * test-artifacts/fleet/.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { encodeHead } from '../../protocol/head/format';
import { SimulatedFleet } from '../../operator/fleet/simulate';
import type { RolloutView } from '../../operator/fleet/model';
import { CHROMIUM, CHROMIUM_MISSING, type DashboardPage, launchBrowser, openDashboard, screenshot, unexpectedErrors, visibleDevices, waitForRows } from '../support/browser';
import { FleetServerProcess } from '../support/fleet-server';
import { Mosquitto } from '../support/mosquitto';
import { kitchenHead } from '../support/push-fixtures';

const IDS = ['sim-1', 'sim-2', 'sim-3', 'sim-4', 'sim-5'];

describe('fleet dashboard end to end: Chromium, the server, simulated devices on Mosquitto', { skip: !CHROMIUM && CHROMIUM_MISSING }, () => {
  let broker: Mosquitto;
  let sims: SimulatedFleet;
  let server: FleetServerProcess;
  let browser: Browser;
  let dash: DashboardPage;

  before(async () => {
    broker = await Mosquitto.start();
    sims = new SimulatedFleet({ broker: broker.url, devices: IDS.length, groups: () => ['kitchen'], telemetryIntervalMs: 1000, predictionIntervalMs: 500 });
    await sims.start();
    server = await FleetServerProcess.start(broker.url);
    browser = await launchBrowser();
    dash = await openDashboard(browser, server.url);
  });

  after(async () => {
    await dash?.close();
    await browser?.close();
    await server?.stop();
    await sims?.stop();
    await broker?.stop();
  });

  it('lists every device, online', async () => {
    await waitForRows(dash.page, IDS.length);
    assert.deepEqual(await visibleDevices(dash.page), IDS);
    assert.equal(await dash.page.locator('table.fleet tr.offline').count(), 0);
    await screenshot(dash.page, 'e2e-fleet');
  });

  it('turns a device that dies red without a reload', async () => {
    const before = await dash.page.evaluate(() => performance.timeOrigin);
    sims.kill(['sim-2']); // its socket closes without DISCONNECT: the broker publishes its last will
    await dash.page.waitForSelector('table.fleet tr[data-device="sim-2"].offline');
    assert.equal(await dash.page.evaluate(() => performance.timeOrigin), before, 'same page: no reload');
    assert.equal(await dash.page.locator('table.fleet tr.offline').count(), 1);
    await screenshot(dash.page, 'e2e-offline');
  });

  it('starts a rollout from the form; the devices apply it, the dead one is pending', async () => {
    const head = encodeHead(kitchenHead(7));
    await dash.page.goto(`${server.url}#/rollouts`);
    const form = dash.page.locator('form.start-rollout');
    await form.locator('input[type=file]').setInputFiles({ name: 'kitchen-v7.head', mimeType: 'application/octet-stream', buffer: Buffer.from(head) });
    await form.locator('select[name=target]').selectOption('group');
    await form.locator('input[name=targetValue]').fill('kitchen');
    await form.locator('select[name=canary]').selectOption('devices');
    await form.locator('input[name=canaryValue]').fill('sim-1');
    await form.locator('button[type=submit]').click();
    const section = await dash.page.waitForSelector('section[data-rollout][data-phase="done"]', { timeout: 60_000 });
    const id = await section.getAttribute('data-rollout');
    for (const d of ['sim-1', 'sim-3', 'sim-4', 'sim-5']) await dash.page.waitForSelector(`section[data-rollout="${id}"] tr[data-device="${d}"][data-state="applied"]`);
    await dash.page.waitForSelector(`section[data-rollout="${id}"] tr[data-device="sim-2"][data-state="pending"]`);
    await screenshot(dash.page, 'e2e-rollout');

    // The server's view agrees, and the devices really run the head (their retained head/state says so).
    const view = await server.get<RolloutView>(`/api/rollouts/${id}`);
    assert.equal(view.actor, 'local');
    assert.equal(view.topic, 'edgehead/groups/kitchen/head/set');
    const rows = await server.waitFor('the devices to report the head', async () => {
      const r = await server.devices();
      return r.filter((d) => d.head?.id === 'kitchen' && d.head.version === 7).length === 4 ? r : undefined;
    });
    assert.notEqual(rows.find((r) => r.device === 'sim-2')!.head?.id, 'kitchen');
    assert.deepEqual(unexpectedErrors(dash.errors), []);
  });
});
