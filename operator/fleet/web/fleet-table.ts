/**
 * #/ — the fleet table. Built for a thousand rows and a stream of changes, without leaving any row out of the DOM:
 *   - every row is a clone of one empty template row (one native call instead of a dozen createElement), built
 *     unattached and appended to the table body in one go on the first render;
 *   - each row keeps its cells' text nodes and what they show: a change writes a text node's `data` only when the
 *     text differs, compared in JS (the DOM is never read back);
 *   - changes are queued and applied in one requestAnimationFrame batch; rows are re-ordered only when a sort value
 *     changed, and then with as few DOM moves as possible (the rows already in order stay put); the filter hides
 *     rows (the `hidden` attribute) rather than rebuilding them;
 *   - style.css lays each row out as a flex box of fixed columns with `content-visibility: auto`, so the browser
 *     styles, lays out and paints only the rows on screen (and each row alone): the first render and a batch of a
 *     thousand changed rows cost little more than a screenful.
 * An offline device's row gets the class "offline" (red), a device a rollout waits for shows "pending <head>".
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
  { key: 'problems', title: 'Problems', text: (r) => r.problems.map((p) => p.message).join('; '), sort: (r) => r.problems.length || null },
  { key: 'rollout', title: 'Rollout', text: (_r, c) => (c.pending ? `pending ${headText(c.pending.head)}` : ''), sort: (_r, c) => (c.pending ? headText(c.pending.head) : null) },
];

const FRAME_COLUMN = COLUMNS.findIndex((c) => c.key === 'frame');
const PROBLEMS_COLUMN = COLUMNS.findIndex((c) => c.key === 'problems');

/** The problems cell's tooltip: each problem with its key. */
const problemsTip = (r: DeviceRow): string => r.problems.map((p) => `${p.key}: ${p.message}`).join('\n');

interface RowView {
  id: string;
  tr: HTMLTableRowElement;
  /** Each column's text node (the device column's is inside its link). */
  texts: Text[];
  /** What each text node holds: compared in JS, so the DOM is never read back. */
  shown: string[];
  tip: string;
  className: string;
  sortValue: SortValue;
  /** The row's place among all device ids in collator order: the tie-break of every sort. */
  rank: number;
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

/**
 * Which entries of `a` form a longest strictly increasing subsequence (negative entries never do): patience sorting,
 * O(n log n). Used to keep the rows that are already in order where they are when the table is re-sorted.
 */
function longestIncreasing(a: readonly number[]): boolean[] {
  const tails: number[] = []; // tails[k]: the index of the smallest last entry of an increasing run of length k + 1
  const prev = new Int32Array(a.length).fill(-1);
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    if (x < 0) continue;
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (a[tails[mid]!]! < x) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) prev[i] = tails[lo - 1]!;
    tails[lo] = i;
  }
  const keep = new Array<boolean>(a.length).fill(false);
  for (let i = tails.length ? tails[tails.length - 1]! : -1; i >= 0; i = prev[i]!) keep[i] = true;
  return keep;
}

/**
 * The empty row every row is cloned from. The table's parts carry explicit ARIA roles: style.css displays them as
 * blocks and flex boxes (for content-visibility), and some browsers drop a table's semantics when its display changes.
 */
function rowTemplate(): HTMLTableRowElement {
  const tr = h('tr', { role: 'row' });
  for (const col of COLUMNS) {
    const td = h('td', { role: 'cell', class: col.numeric ? 'num' : undefined, 'data-col': col.key });
    (col.key === 'device' ? td.appendChild(h('a')) : td).append(document.createTextNode(''));
    tr.append(td);
  }
  return tr;
}

export class FleetTable {
  private readonly rows = new Map<string, RowView>();
  private readonly tbody = h('tbody', { role: 'rowgroup' });
  private readonly template = rowTemplate();
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
    const headRow = h('tr', { role: 'row' });
    COLUMNS.forEach((col, i) => {
      const th = h('th', { scope: 'col', role: 'columnheader', class: col.numeric ? 'num' : undefined, 'data-col': col.key }, h('button', { type: 'button', onclick: () => this.sortBy(i) }, col.title));
      this.headers.push(th);
      headRow.append(th);
    });
    container.replaceChildren(h('div', { class: 'toolbar' }, filterBox, this.summary), h('table', { class: 'fleet', role: 'table' }, h('thead', { role: 'rowgroup' }, headRow), this.tbody));
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
    for (const view of this.rows.values()) view.sortValue = this.sortValueOf(view.id);
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
    let added = false;
    for (const id of touched) {
      const row = this.store.devices.get(id);
      if (row) added = this.upsert(row, now) || added;
      else this.remove(id);
    }
    this.queued = new Set();
    this.queuedRemovals = new Set();
    this.queuedFull = false;
    if (added) this.rankRows();
    // The age column moves with time for every row; only cells whose text changes are written.
    const ageCtx: Ctx = { now, pending: undefined };
    const frameColumn = COLUMNS[FRAME_COLUMN]!;
    for (const view of this.rows.values()) {
      const row = this.store.devices.get(view.id);
      if (row) write(view, FRAME_COLUMN, frameColumn.text(row, ageCtx));
    }
    if (this.reorder) this.sortRows();
    if (this.refilter) for (const view of this.rows.values()) this.applyFilter(view);
    this.reorder = this.refilter = false;
    let visible = 0;
    let online = 0;
    let offline = 0;
    for (const view of this.rows.values()) {
      if (!view.tr.hidden) visible++;
      const r = this.store.devices.get(view.id);
      if (r?.online === true) online++;
      else if (r?.online === false) offline++;
    }
    setText(this.summary, `${this.rows.size} devices · ${online} online · ${offline} offline${visible !== this.rows.size ? ` · ${visible} shown` : ''}`);
    if (updates > 0) {
      // Lay out now (once, after every write), so the time below includes the browser's layout of the rows.
      void this.tbody.offsetHeight;
      const ms = performance.now() - t0;
      Object.assign(this.stats, { rows: this.rows.size, visible, lastRenderMs: ms, lastUpdateAt: Date.now(), updates: this.stats.updates + 1 });
      if (initial && this.rows.size > 0) this.stats.initialRenderMs = ms;
    } else this.stats.visible = visible;
  }

  /** A new, unattached row for a device: a clone of the template. */
  private createRow(id: string): RowView {
    const tr = this.template.cloneNode(true) as HTMLTableRowElement;
    tr.dataset.device = id;
    const texts: Text[] = [];
    for (let td: Element | null = tr.firstElementChild; td; td = td.nextElementSibling) texts.push((td.firstElementChild ?? td).firstChild as Text);
    texts[0]!.parentElement!.setAttribute('href', `#/device/${encodeURIComponent(id)}`);
    return { id, tr, texts, shown: COLUMNS.map(() => ''), tip: '', className: '', sortValue: null, rank: 0, search: '' };
  }

  /** Writes a row's cells, classes, sort value and filter text; true when the row is new. */
  private upsert(row: DeviceRow, now: number): boolean {
    const ctx = this.ctx(row, now);
    let view = this.rows.get(row.device);
    const added = !view;
    if (!view) {
      view = this.createRow(row.device);
      this.rows.set(row.device, view);
      this.reorder = true;
    }
    for (let i = 0; i < COLUMNS.length; i++) write(view, i, COLUMNS[i]!.text(row, ctx));
    const tip = problemsTip(row);
    if (tip !== view.tip) view.texts[PROBLEMS_COLUMN]!.parentElement!.title = view.tip = tip;
    const className = [row.online === false && 'offline', row.online === null && 'unknown', ctx.pending !== undefined && 'pending', row.problems.length > 0 && 'problem'].filter(Boolean).join(' ');
    if (className !== view.className) view.tr.className = view.className = className;
    const sortValue = COLUMNS[this.sortKey]!.sort(row, ctx);
    if (sortValue !== view.sortValue) {
      view.sortValue = sortValue;
      this.reorder = true;
    }
    view.search = [row.device, ...row.groups, row.head?.id ?? ''].join('\n').toLowerCase();
    this.applyFilter(view);
    return added;
  }

  private remove(id: string): void {
    const view = this.rows.get(id);
    if (!view) return;
    view.tr.remove();
    this.rows.delete(id);
  }

  /** Numbers the rows in collator order of their ids (after rows were added). */
  private rankRows(): void {
    [...this.rows.values()].sort((a, b) => collator.compare(a.id, b.id)).forEach((view, i) => (view.rank = i));
  }

  private applyFilter(view: RowView): void {
    const hidden = this.filter !== '' && !view.search.includes(this.filter);
    if (view.tr.hidden !== hidden) view.tr.hidden = hidden;
  }

  private sortRows(): void {
    const dir = this.sortDir;
    const ordered = [...this.rows.values()].sort((a, b) => {
      // nulls stay last whatever the direction; ties go by device id
      if (a.sortValue === null || b.sortValue === null) return compare(a.sortValue, b.sortValue) || a.rank - b.rank;
      return dir * compare(a.sortValue, b.sortValue) || a.rank - b.rank;
    });
    this.place(ordered.map((v) => v.tr));
  }

  /**
   * Puts the table body's rows in this order with few DOM moves (every moved row is restyled and laid out again):
   * the rows of a longest subsequence already in order stay put and the others are inserted before their successor,
   * from the last row up (so each lands where it belongs). The first render appends every row in one call.
   */
  private place(ordered: HTMLTableRowElement[]): void {
    if (!this.tbody.firstElementChild) return this.tbody.append(...ordered);
    const position = new Map<Element, number>();
    let i = 0;
    for (let tr: Element | null = this.tbody.firstElementChild; tr; tr = tr.nextElementSibling) position.set(tr, i++);
    const keep = longestIncreasing(ordered.map((tr) => position.get(tr) ?? -1));
    let next: HTMLTableRowElement | null = null;
    for (let k = ordered.length - 1; k >= 0; k--) {
      const tr = ordered[k]!;
      if (!keep[k]) this.tbody.insertBefore(tr, next);
      next = tr;
    }
  }
}

/** Sets a cell's text when it differs from what the cell shows. */
function write(view: RowView, column: number, text: string): void {
  if (view.shown[column] !== text) view.texts[column]!.data = view.shown[column] = text;
}
