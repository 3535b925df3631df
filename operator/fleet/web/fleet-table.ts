/**
 * #/ — the fleet table. Built for a thousand rows and a stream of changes: each row is built once and keeps its cells;
 * changes are queued and written in one requestAnimationFrame batch that touches only the cells whose text changed;
 * rows are re-ordered only when a sort value changed; the filter hides rows rather than rebuilding them. An offline
 * device's row gets the class "offline" (red), a device a rollout waits for shows "pending <head>".
 *
 * For tests and the benchmark: each row has data-device="<id>", and window.__fleet holds
 * { rows, visible, lastRenderMs, initialRenderMs, lastUpdateAt, updates }.
 */
import type { DeviceRow, RolloutView } from '../model';
import { h, setText } from './dom';
import { age, headText, num, statusText } from './format';
import type { DeviceChange, FleetStore } from './store';

interface Ctx {
  now: number;
  pending: RolloutView | undefined;
}

type SortValue = string | number | null;

interface Column {
  key: string;
  title: string;
  numeric?: boolean;
  text(r: DeviceRow, c: Ctx): string;
  sort(r: DeviceRow, c: Ctx): SortValue;
  tip?(r: DeviceRow): string;
}

const COLUMNS: Column[] = [
  { key: 'device', title: 'Device', text: (r) => r.device, sort: (r) => r.device },
  { key: 'group', title: 'Group', text: (r) => r.groups.join(', '), sort: (r) => r.groups.join(',') || null },
  { key: 'status', title: 'Status', text: (r) => statusText(r), sort: (r) => (r.online === true ? 0 : r.online === null ? 1 : 2) },
  { key: 'agent', title: 'Agent', text: (r) => r.agentVersion ?? '', sort: (r) => r.agentVersion },
  { key: 'head', title: 'Head', text: (r) => headText(r.head), sort: (r) => (r.head ? `${r.head.id}\u0000${String(r.head.version).padStart(9, '0')}` : null) },
  { key: 'frame', title: 'Last frame', numeric: true, text: (r, c) => (r.lastFrameTs === null ? '' : age(c.now - r.lastFrameTs)), sort: (r) => (r.lastFrameTs === null ? null : -r.lastFrameTs) },
  { key: 'p50', title: 'p50 ms', numeric: true, text: (r) => num(r.latencyMs?.p50), sort: (r) => r.latencyMs?.p50 ?? null },
  { key: 'p95', title: 'p95 ms', numeric: true, text: (r) => num(r.latencyMs?.p95), sort: (r) => r.latencyMs?.p95 ?? null },
  { key: 'temp', title: 'Temp °C', numeric: true, text: (r) => num(r.cpuTempC, 1), sort: (r) => r.cpuTempC },
  { key: 'problems', title: 'Problems', text: (r) => r.problems.map((p) => p.message).join('; '), sort: (r) => r.problems.length || null, tip: (r) => r.problems.map((p) => `${p.key}: ${p.message}`).join('\n') },
  { key: 'rollout', title: 'Rollout', text: (_r, c) => (c.pending ? `pending ${headText(c.pending.head)}` : ''), sort: (_r, c) => (c.pending ? headText(c.pending.head) : null) },
];

const FRAME_COLUMN = COLUMNS.findIndex((c) => c.key === 'frame');

interface RowView {
  tr: HTMLTableRowElement;
  cells: HTMLElement[];
  sortValue: SortValue;
  search: string;
}

export interface FleetStats {
  rows: number;
  visible: number;
  lastRenderMs: number;
  initialRenderMs: number;
  lastUpdateAt: number;
  updates: number;
}

declare global {
  interface Window {
    __fleet?: FleetStats;
  }
}

/** One collator for every comparison ("pi-2" before "pi-10"); localeCompare with options builds one per call. */
const collator = new Intl.Collator(undefined, { numeric: true });

function compare(a: SortValue, b: SortValue): number {
  if (a === b) return 0;
  if (a === null) return 1;
  if (b === null) return -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return collator.compare(String(a), String(b));
}

export class FleetTable {
  private readonly rows = new Map<string, RowView>();
  private readonly tbody = h('tbody');
  private readonly summary = h('p', { class: 'summary' });
  private readonly headers: HTMLTableCellElement[] = [];
  private sortKey = 0;
  private sortDir = 1;
  private filter = '';
  private queued = new Set<string>();
  private queuedRemovals = new Set<string>();
  private queuedFull = false;
  private reorder = false;
  private refilter = false;
  private frame = 0;
  private readonly unsubscribe: () => void;
  private readonly ticker: number;
  private readonly stats: FleetStats;

  constructor(
    private readonly store: FleetStore,
    container: HTMLElement,
  ) {
    this.stats = window.__fleet ?? { rows: 0, visible: 0, lastRenderMs: 0, initialRenderMs: 0, lastUpdateAt: 0, updates: 0 };
    window.__fleet = this.stats;
    const filterBox = h('input', { type: 'search', class: 'filter', placeholder: 'Filter: device, group or head', 'aria-label': 'Filter devices', oninput: (e) => this.setFilter((e.target as HTMLInputElement).value) });
    const headRow = h('tr');
    COLUMNS.forEach((col, i) => {
      const th = h('th', { scope: 'col', class: col.numeric ? 'num' : undefined, 'data-col': col.key }, h('button', { type: 'button', onclick: () => this.sortBy(i) }, col.title));
      this.headers.push(th);
      headRow.append(th);
    });
    container.replaceChildren(h('div', { class: 'toolbar' }, filterBox, this.summary), h('table', { class: 'fleet' }, h('thead', {}, headRow), this.tbody));
    this.markSort();
    this.unsubscribe = store.onDevices((c) => this.enqueue(c));
    this.ticker = window.setInterval(() => this.schedule(), 1000);
    this.enqueue({ changed: [...store.devices.keys()], removed: [], full: true });
  }

  destroy(): void {
    this.unsubscribe();
    window.clearInterval(this.ticker);
    if (this.frame) cancelAnimationFrame(this.frame);
  }

  private enqueue(c: DeviceChange): void {
    if (c.full) this.queuedFull = true;
    for (const id of c.changed) this.queued.add(id);
    for (const id of c.removed) {
      this.queued.delete(id);
      this.queuedRemovals.add(id);
    }
    this.schedule();
  }

  private schedule(): void {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  private setFilter(value: string): void {
    this.filter = value.trim().toLowerCase();
    this.refilter = true;
    this.schedule();
  }

  private sortBy(i: number): void {
    this.sortDir = this.sortKey === i ? -this.sortDir : 1;
    this.sortKey = i;
    for (const [id, view] of this.rows) view.sortValue = this.sortValueOf(id);
    this.markSort();
    this.reorder = true;
    this.schedule();
  }

  private markSort(): void {
    this.headers.forEach((th, i) => (i === this.sortKey ? th.setAttribute('aria-sort', this.sortDir > 0 ? 'ascending' : 'descending') : th.removeAttribute('aria-sort')));
  }

  private ctx(row: DeviceRow, now: number): Ctx {
    return { now, pending: this.store.pendingFor(row.device) };
  }

  private sortValueOf(id: string): SortValue {
    const row = this.store.devices.get(id);
    return row ? COLUMNS[this.sortKey]!.sort(row, this.ctx(row, this.store.now())) : null;
  }

  private render(): void {
    this.frame = 0;
    const t0 = performance.now();
    const initial = this.rows.size === 0;
    const now = this.store.now();
    const touched = this.queuedFull ? new Set([...this.rows.keys(), ...this.store.devices.keys()]) : this.queued;
    const updates = touched.size + this.queuedRemovals.size;
    for (const id of this.queuedRemovals) this.remove(id);
    for (const id of touched) {
      const row = this.store.devices.get(id);
      if (row) this.upsert(row, now);
      else this.remove(id);
    }
    this.queued = new Set();
    this.queuedRemovals = new Set();
    this.queuedFull = false;
    // The age column moves with time for every row; only cells whose text changes are written.
    for (const [id, view] of this.rows) {
      const row = this.store.devices.get(id);
      if (row) setText(view.cells[FRAME_COLUMN]!, COLUMNS[FRAME_COLUMN]!.text(row, this.ctx(row, now)));
    }
    if (this.reorder) this.sortRows();
    if (this.refilter) for (const [id, view] of this.rows) this.applyFilter(id, view);
    this.reorder = this.refilter = false;
    let visible = 0;
    let online = 0;
    let offline = 0;
    for (const [id, view] of this.rows) {
      if (!view.tr.hidden) visible++;
      const r = this.store.devices.get(id);
      if (r?.online === true) online++;
      else if (r?.online === false) offline++;
    }
    setText(this.summary, `${this.rows.size} devices · ${online} online · ${offline} offline${visible !== this.rows.size ? ` · ${visible} shown` : ''}`);
    if (updates > 0) {
      void this.tbody.offsetHeight; // lay out now, so the time below includes the browser's layout of the rows
      const ms = performance.now() - t0;
      Object.assign(this.stats, { rows: this.rows.size, visible, lastRenderMs: ms, lastUpdateAt: Date.now(), updates: this.stats.updates + 1 });
      if (initial && this.rows.size > 0) this.stats.initialRenderMs = ms;
    } else this.stats.visible = visible;
  }

  private upsert(row: DeviceRow, now: number): void {
    const ctx = this.ctx(row, now);
    let view = this.rows.get(row.device);
    if (!view) {
      const cells = COLUMNS.map((col) => h('td', { class: col.numeric ? 'num' : undefined, 'data-col': col.key }));
      const link = h('a', { href: `#/device/${encodeURIComponent(row.device)}` });
      cells[0]!.append(link);
      view = { tr: h('tr', { 'data-device': row.device }, ...cells), cells: [link, ...cells.slice(1)], sortValue: null, search: '' };
      this.rows.set(row.device, view);
      this.reorder = true;
    }
    COLUMNS.forEach((col, i) => {
      setText(view.cells[i]!, col.text(row, ctx));
      if (col.tip) view.cells[i]!.title = col.tip(row);
    });
    const tr = view.tr;
    tr.classList.toggle('offline', row.online === false);
    tr.classList.toggle('unknown', row.online === null);
    tr.classList.toggle('pending', ctx.pending !== undefined);
    tr.classList.toggle('problem', row.problems.length > 0);
    const sortValue = COLUMNS[this.sortKey]!.sort(row, ctx);
    if (sortValue !== view.sortValue) {
      view.sortValue = sortValue;
      this.reorder = true;
    }
    view.search = [row.device, ...row.groups, row.head?.id ?? ''].join('\n').toLowerCase();
    this.applyFilter(row.device, view);
  }

  private remove(id: string): void {
    const view = this.rows.get(id);
    if (!view) return;
    view.tr.remove();
    this.rows.delete(id);
  }

  private applyFilter(_id: string, view: RowView): void {
    const hidden = this.filter !== '' && !view.search.includes(this.filter);
    if (view.tr.hidden !== hidden) view.tr.hidden = hidden;
  }

  private sortRows(): void {
    const ordered = [...this.rows.entries()].sort(([ida, a], [idb, b]) => {
      const c = compare(a.sortValue, b.sortValue);
      // nulls stay last whatever the direction
      if (a.sortValue === null || b.sortValue === null) return c || collator.compare(ida, idb);
      return this.sortDir * c || collator.compare(ida, idb);
    });
    const children = this.tbody.children;
    if (children.length === ordered.length && ordered.every(([, v], i) => children[i] === v.tr)) return;
    this.tbody.append(...ordered.map(([, v]) => v.tr));
  }
}
