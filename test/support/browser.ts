/**
 * The dashboard in a real browser, for the browser test, the end-to-end test and the benchmark: Debian's headless
 * Chromium (/usr/bin/chromium, or EDGEHEAD_CHROMIUM) driven by playwright-core, which never downloads a browser.
 * `CHROMIUM` is undefined when none is installed: tests skip with `CHROMIUM_MISSING` as the reason.
 *
 * Also a fake fleet (rows, history, rollouts, metrics) that satisfies the HTTP server's interfaces
 * (operator/fleet/http/deps.ts), so the server and the dashboard can be driven without a broker.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { EdgeheadError } from '../../base/errors';
import type { Health } from '../../operator/fleet/http/deps';
import type { DeviceHistory, DeviceRow, RolloutDevice, RolloutRequest, RolloutView } from '../../operator/fleet/model';
import { ROOT } from './cli';

// ---------------------------------------------------------------------------------------------------- the browser

export const CHROMIUM = [process.env.EDGEHEAD_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p): p is string => !!p && fs.existsSync(p));
export const CHROMIUM_MISSING = 'chromium is not installed (apt-get install chromium; .ci/run installs it)';

/** Where screenshots go (test-artifacts/ is git-ignored). */
export const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'fleet');

/** window.__fleet, as the fleet table publishes it (operator/fleet/web/fleet-table.ts). */
export interface FleetStats {
  rows: number;
  visible: number;
  lastRenderMs: number;
  initialRenderMs: number;
  lastUpdateAt: number;
  updates: number;
}

/** Launches headless Chromium (--no-sandbox: the tests run as root). */
export async function launchBrowser(): Promise<Browser> {
  if (!CHROMIUM) throw new Error(CHROMIUM_MISSING);
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

export interface DashboardPage {
  context: BrowserContext;
  page: Page;
  /** Uncaught page errors and console errors (CSP violations show up here). */
  errors: string[];
  close(): Promise<void>;
}

/**
 * Opens the dashboard at `url` in a fresh context. `token`: put in sessionStorage before the page runs (as the login
 * form would); `basic`: the credentials the browser answers a basic-auth challenge with.
 */
export async function openDashboard(browser: Browser, url: string, opts: { token?: string; basic?: { username: string; password: string }; ignoreHTTPSErrors?: boolean } = {}): Promise<DashboardPage> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, ...(opts.basic ? { httpCredentials: opts.basic } : {}), ignoreHTTPSErrors: opts.ignoreHTTPSErrors ?? false });
  if (opts.token !== undefined) await context.addInitScript((t: string) => (globalThis as unknown as { sessionStorage: { setItem(k: string, v: string): void } }).sessionStorage.setItem('edgehead.fleet.token', t), opts.token);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  await page.goto(url);
  return { context, page, errors, close: () => context.close() };
}

/**
 * The errors that are not an HTTP status the page meets in normal use (Chromium logs "Failed to load resource: ...
 * status of 404" for a device without a snapshot, 401 before sign-in); `allowStatuses` adds statuses a test provoked.
 */
export function unexpectedErrors(errors: string[], allowStatuses: number[] = []): string[] {
  const allowed = new Set([401, 404, ...allowStatuses]);
  return errors.filter((e) => {
    const m = /Failed to load resource: the server responded with a status of (\d+)/.exec(e);
    return !(m && allowed.has(Number(m[1])));
  });
}

/** window.__fleet of the page (undefined before the table rendered). */
export function fleetStats(page: Page): Promise<FleetStats | undefined> {
  return page.evaluate(() => (globalThis as unknown as { __fleet?: FleetStats }).__fleet);
}

/** Waits until the fleet table has `n` rows; `guardMs` only turns a hang into a failure. */
export async function waitForRows(page: Page, n: number, guardMs = 30_000): Promise<FleetStats> {
  await page.waitForFunction((want) => (globalThis as unknown as { __fleet?: FleetStats }).__fleet?.rows === want, n, { timeout: guardMs });
  return (await fleetStats(page))!;
}

/** The device ids of the visible table rows, top to bottom. */
export function visibleDevices(page: Page): Promise<string[]> {
  return page.locator('table.fleet tbody tr:not([hidden])').evaluateAll((trs) => trs.map((tr) => (tr as unknown as { dataset: { device: string } }).dataset.device));
}

/** Saves a screenshot (the full page unless `fullPage` is false) to test-artifacts/fleet/<name>.png; returns its path. */
export async function screenshot(page: Page, name: string, fullPage = true): Promise<string> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage });
  return file;
}

// ---------------------------------------------------------------------------------------------------- a fake fleet

/** A complete, plausible device row; `patch` overrides any field. */
export function deviceRow(device: string, patch: Partial<DeviceRow> = {}, now = Date.now()): DeviceRow {
  return {
    device,
    groups: ['kitchen'],
    online: true,
    offlineReason: null,
    statusSince: now - 3_600_000,
    agentVersion: '0.1.0',
    extractor: 'mobilenet_v2_140',
    head: { id: 'demo', version: 1, sha256: 'a'.repeat(64) },
    previousHead: null,
    lastUpdate: null,
    shadow: null,
    lastSeen: now - 1000,
    lastFrameTs: now - 2000,
    lastLabel: 'land',
    lastScore: 0.93,
    latencyMs: { p50: 41, p95: 63 },
    fps: 1,
    cpuTempC: 52.5,
    rssMB: 180,
    queueDepth: 0,
    problems: [],
    ...patch,
  };
}

/** Rows and snapshots the test sets; emits 'change' and 'removed' like FleetState. */
export class FakeFleet extends EventEmitter {
  readonly devices = new Map<string, DeviceRow>();
  readonly snapshots = new Map<string, Buffer>();
  /** Makes the next rows() call throw (a handler that fails must not take the server down). */
  failNextRows = false;

  rows(): DeviceRow[] {
    if (this.failNextRows) {
      this.failNextRows = false;
      throw new Error('fake failure in rows()');
    }
    return [...this.devices.keys()].sort().map((id) => this.devices.get(id)!);
  }

  row(id: string): DeviceRow | undefined {
    return this.devices.get(id);
  }

  snapshot(id: string): Buffer | undefined {
    return this.snapshots.get(id);
  }

  set(row: DeviceRow): void {
    this.devices.set(row.device, row);
    this.emit('change', row.device);
  }

  update(id: string, patch: Partial<DeviceRow>): DeviceRow {
    const row = { ...this.devices.get(id)!, ...patch };
    this.set(row);
    return row;
  }

  remove(id: string): void {
    this.devices.delete(id);
    this.snapshots.delete(id);
    this.emit('removed', id);
  }
}

/** An hour of 1-min history, the same shape for every device. */
export function fakeHistory(device: string, now = Date.now()): DeviceHistory {
  const n = 60;
  const t = Array.from({ length: n }, (_, i) => Math.floor(now / 60_000) * 60_000 - (n - 1 - i) * 60_000);
  const wave = (base: number, amp: number) => t.map((_, i) => (i % 17 === 5 ? null : Math.round((base + amp * Math.sin(i / 6)) * 10) / 10));
  return {
    device,
    resolutionSec: 60,
    t,
    latencyP50: wave(40, 5),
    latencyP95: wave(62, 9),
    cpuTempC: wave(52, 3),
    fps: wave(1, 0.2),
    labels: { land: t.map((_, i) => 40 + (i % 7)), sea: t.map((_, i) => 20 - (i % 5)) },
  };
}

/** Rollouts that record what they were asked and change when the test says so; emits 'change' like Rollouts. */
export class FakeRollouts extends EventEmitter {
  readonly views = new Map<string, RolloutView>();
  readonly started: { bytes: Uint8Array; req: RolloutRequest }[] = [];
  readonly halted: { id: string; actor: string; reason?: string }[] = [];
  readonly rolledBack: { id: string; actor: string }[] = [];
  /** Thrown by the next start() (e.g. an EdgeheadError BAD_HEAD), then cleared. */
  startError: Error | undefined;
  private seq = 0;

  constructor(private readonly fleet?: FakeFleet) {
    super();
  }

  async start(bytes: Uint8Array, req: RolloutRequest): Promise<RolloutView> {
    const error = this.startError;
    this.startError = undefined;
    if (error) throw error;
    this.started.push({ bytes: Uint8Array.from(bytes), req });
    const names =
      req.target.kind === 'devices'
        ? req.target.devices
        : (this.fleet?.rows() ?? []).filter((r) => req.target.kind === 'all' || (req.target.kind === 'group' && r.groups.includes(req.target.group))).map((r) => r.device);
    if (names.length === 0) throw new EdgeheadError('BAD_ARGS', 'the target has no known device');
    const canary = req.canary && 'devices' in req.canary ? req.canary.devices : names.slice(0, 1);
    const now = Date.now();
    const view: RolloutView = {
      id: `r${++this.seq}`,
      createdAt: now,
      actor: req.actor ?? 'local',
      head: { id: 'landsea', version: 2, sha256: 'b'.repeat(64), bytes: bytes.length, fileSha256: 'c'.repeat(64), correlationId: '0123456789abcdef', signedBy: null },
      target: req.target,
      topic: null,
      phase: 'canary',
      haltReason: null,
      devices: names.map((device): RolloutDevice => ({ device, stage: canary.includes(device) ? 'canary' : 'rest', state: canary.includes(device) ? 'pending' : 'waiting', reason: null, agreement: null, answeredAt: null })),
      updatedAt: now,
    };
    this.views.set(view.id, view);
    this.emit('change', view);
    return view;
  }

  /** Changes a rollout (a deep copy, as the real one emits a fresh view) and emits it. */
  change(id: string, fn: (v: RolloutView) => void): RolloutView {
    const view = structuredClone(this.views.get(id)!);
    fn(view);
    view.updatedAt = Date.now();
    this.views.set(id, view);
    this.emit('change', view);
    return view;
  }

  setDevice(id: string, device: string, state: RolloutDevice['state'], phase?: RolloutView['phase']): RolloutView {
    return this.change(id, (v) => {
      const d = v.devices.find((x) => x.device === device)!;
      d.state = state;
      d.answeredAt = Date.now();
      if (phase) v.phase = phase;
    });
  }

  async halt(id: string, actor: string, reason?: string): Promise<RolloutView> {
    this.halted.push({ id, actor, ...(reason === undefined ? {} : { reason }) });
    return this.change(id, (v) => {
      v.phase = 'halted';
      v.haltReason = reason ?? `halted by ${actor}`;
    });
  }

  async rollback(id: string, actor: string): Promise<RolloutView> {
    this.rolledBack.push({ id, actor });
    return this.change(id, (v) => (v.phase = 'rolling-back'));
  }

  list(): RolloutView[] {
    return [...this.views.values()];
  }

  get(id: string): RolloutView | undefined {
    return this.views.get(id);
  }
}

export interface FakeFleetDeps {
  fleet: FakeFleet;
  history: { get(device: string): DeviceHistory };
  rollouts: FakeRollouts;
  metrics: { contentType: string; metrics(): Promise<string> };
  health: () => Health;
  /** What health() answers; tests flip it. */
  healthState: Health;
}

/** The dependencies of createFleetHttpServer, faked; `devices` rows to start with. */
export function fakeFleetDeps(devices: DeviceRow[] = []): FakeFleetDeps {
  const fleet = new FakeFleet();
  for (const row of devices) fleet.devices.set(row.device, row);
  const healthState: Health = { ok: true, broker: { connected: true } };
  return {
    fleet,
    history: { get: (device) => fakeHistory(device) },
    rollouts: new FakeRollouts(fleet),
    metrics: { contentType: 'text/plain; version=0.0.4; charset=utf-8', metrics: async () => '# HELP edgehead_fake A fake.\n# TYPE edgehead_fake gauge\nedgehead_fake 1\n' },
    health: () => healthState,
    healthState,
  };
}
