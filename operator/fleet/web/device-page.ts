/**
 * #/device/<id> — one device: its facts from the row, the charts from its history (api/devices/<id>), refreshed
 * every 10 s and when the event stream says the device changed (at most every 2 s), and its last snapshot
 * (api/devices/<id>/snapshot, fetched with the auth header and shown from a blob URL; hidden while there is none).
 */
import type { DeviceHistory, DeviceRow } from '../model';
import { ApiError, getJson, request } from './api';
import { DeviceCharts } from './charts';
import { h, setChildren } from './dom';
import { age, headText, num, statusText } from './format';
import type { FleetStore } from './store';

const REFRESH_MS = 10_000;
const MIN_GAP_MS = 2_000;

export class DevicePage {
  private readonly facts = h('dl', { class: 'facts' });
  private readonly charts = new DeviceCharts();
  private readonly image = h('img', { class: 'snapshot', alt: 'last snapshot' });
  private readonly snapshotBox = h('figure', { class: 'snapshot-box', hidden: true }, this.image, h('figcaption', {}, 'Last snapshot'));
  private readonly message = h('p', { class: 'error', hidden: true });
  private readonly timer: number;
  private readonly unsubscribe: () => void;
  private blobUrl: string | undefined;
  private lastLoad = 0;
  private queued: number | undefined;
  private destroyed = false;

  constructor(
    private readonly store: FleetStore,
    container: HTMLElement,
    private readonly id: string,
  ) {
    container.replaceChildren(
      h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← Fleet')),
      h('h2', { 'data-device-title': id }, id),
      this.message,
      h('div', { class: 'device-top' }, this.facts, this.snapshotBox),
      this.charts.el,
    );
    this.timer = window.setInterval(() => void this.load(), REFRESH_MS);
    this.unsubscribe = store.onDevices((c) => {
      if (c.full || c.changed.includes(id)) this.loadSoon();
      if (c.removed.includes(id)) this.showError(`${id} was removed from the fleet`);
    });
    void this.load();
  }

  destroy(): void {
    this.destroyed = true;
    window.clearInterval(this.timer);
    if (this.queued !== undefined) window.clearTimeout(this.queued);
    this.unsubscribe();
    this.charts.destroy();
    if (this.blobUrl) URL.revokeObjectURL(this.blobUrl);
  }

  private loadSoon(): void {
    if (this.queued !== undefined) return;
    const wait = Math.max(0, this.lastLoad + MIN_GAP_MS - Date.now());
    this.queued = window.setTimeout(() => {
      this.queued = undefined;
      void this.load();
    }, wait);
  }

  private showError(text: string): void {
    this.message.textContent = text;
    this.message.hidden = false;
  }

  private async load(): Promise<void> {
    this.lastLoad = Date.now();
    const path = `api/devices/${encodeURIComponent(this.id)}`;
    try {
      const { device, history } = await getJson<{ device: DeviceRow; history: DeviceHistory }>(path);
      if (this.destroyed) return;
      this.message.hidden = true;
      this.renderFacts(device);
      this.charts.update(history);
    } catch (e) {
      if (!this.destroyed) this.showError(e instanceof ApiError && e.status === 404 ? `No device "${this.id}" in the fleet.` : `Could not load ${this.id}: ${(e as Error).message}`);
      return;
    }
    await this.loadSnapshot(`${path}/snapshot`);
  }

  private async loadSnapshot(path: string): Promise<void> {
    try {
      const blob = await (await request(path)).blob();
      if (this.destroyed) return;
      if (this.blobUrl) URL.revokeObjectURL(this.blobUrl);
      this.blobUrl = URL.createObjectURL(blob);
      this.image.src = this.blobUrl;
      this.snapshotBox.hidden = false;
    } catch {
      this.snapshotBox.hidden = true;
    }
  }

  private renderFacts(r: DeviceRow): void {
    const now = this.store.now();
    const pending = this.store.pendingFor(r.device);
    const facts: [string, string][] = [
      ['Status', `${statusText(r)}${r.statusSince ? ` for ${age(now - r.statusSince)}` : ''}`],
      ['Groups', r.groups.join(', ')],
      ['Agent', r.agentVersion ?? ''],
      ['Extractor', r.extractor ?? ''],
      ['Head', r.head ? `${headText(r.head)} (${r.head.sha256.slice(0, 12)}…)` : ''],
      ['Previous head', headText(r.previousHead)],
      ['Last update', r.lastUpdate ? `${r.lastUpdate.status}${r.lastUpdate.reason ? `: ${r.lastUpdate.reason}` : ''} (via ${r.lastUpdate.via})` : ''],
      ['Shadow', r.shadow ? JSON.stringify(r.shadow) : ''],
      ['Rollout', pending ? `pending ${headText(pending.head)} (${pending.id})` : ''],
      ['Last seen', r.lastSeen ? `${age(now - r.lastSeen)} ago` : ''],
      ['Last frame', r.lastFrameTs ? `${age(now - r.lastFrameTs)} ago: ${r.lastLabel ?? '?'} ${num(r.lastScore, 2)}` : ''],
      ['Latency p50 / p95', r.latencyMs ? `${num(r.latencyMs.p50)} / ${num(r.latencyMs.p95)} ms` : ''],
      ['Frames/s', num(r.fps, 2)],
      ['CPU temperature', r.cpuTempC === null ? '' : `${num(r.cpuTempC, 1)} °C`],
      ['RSS', r.rssMB === null ? '' : `${num(r.rssMB)} MB`],
      ['Offline queue', num(r.queueDepth)],
      ['Problems', r.problems.map((p) => `${p.key}: ${p.message}`).join('\n') || 'none'],
    ];
    setChildren(this.facts, ...facts.filter(([, v]) => v !== '').flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
    this.facts.classList.toggle('offline', r.online === false);
  }
}
