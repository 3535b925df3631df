/**
 * #/label and #/label/<class> — the labelling page (server: operator/fleet/labels.ts, on when dataset.dir is set):
 * the class folders with their counts, and a grid of the unlabeled samples (or of one class's): a thumbnail when the
 * device kept a JPEG (fetched with the auth header, shown from a blob URL, only once scrolled into view), else a card
 * with the predicted label and score. Click cards to select them, type or pick a class (suggestions: the existing
 * classes and the predicted labels) and "Label selected" moves them into DIR/<class>/; in a class's view "Move back
 * to unlabeled" undoes it. The page reloads after every move and every 15 s (new samples from `dataset pull`).
 *
 * For tests: each card has data-sample="<name>" and aria-pressed; each class link data-class and data-count.
 */
import type { DatasetSample, DatasetView } from '../model';
import { ApiError, getJson, postJson, request } from './api';
import { h, setChildren } from './dom';
import { num } from './format';

const REFRESH_MS = 15_000;
/** Samples per POST (the server's LABEL_MAX_SAMPLES). */
const BATCH = 5000;

export class LabelPage {
  private readonly folders = h('nav', { class: 'label-classes', 'aria-label': 'Folders' });
  private readonly grid = h('div', { class: 'label-grid', role: 'listbox', 'aria-multiselectable': 'true', 'aria-label': 'Samples' });
  private readonly summary = h('p', { class: 'summary' });
  private readonly message = h('p', { class: 'form-message', role: 'status' });
  private readonly classInput = h('input', { type: 'text', name: 'class', list: 'label-suggestions', placeholder: 'class, e.g. fish', 'aria-label': 'Class', autocomplete: 'off' });
  private readonly suggestions = h('datalist', { id: 'label-suggestions' });
  private readonly labelButton = h('button', { type: 'submit', class: 'label-selected' }, 'Label selected');
  private readonly unlabelButton = h('button', { type: 'button', class: 'unlabel-selected', hidden: true }, 'Move back to unlabeled');
  private readonly selected = new Set<string>();
  private readonly blobs = new Map<string, string>();
  private readonly observer: IntersectionObserver;
  private readonly timer: number;
  private samples: DatasetSample[] = [];
  private destroyed = false;
  private busy = false;

  constructor(
    container: HTMLElement,
    /** The class whose samples are shown; undefined: the unlabeled ones. */
    private readonly className: string | undefined,
  ) {
    const form = h(
      'form',
      { class: 'label-form toolbar', 'aria-label': 'Label the selected samples' },
      this.classInput,
      this.suggestions,
      this.labelButton,
      this.unlabelButton,
      h('button', { type: 'button', class: 'select-all', onclick: () => this.selectAll(true) }, 'Select all'),
      h('button', { type: 'button', class: 'select-none', onclick: () => this.selectAll(false) }, 'Clear selection'),
      this.message,
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.move('label');
    });
    this.unlabelButton.hidden = className === undefined;
    this.unlabelButton.addEventListener('click', () => void this.move('unlabel'));
    container.replaceChildren(h('h2', {}, className === undefined ? 'Label samples' : `Class ${className}`), this.folders, form, this.summary, this.grid);
    this.observer = new IntersectionObserver((entries) => {
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        this.observer.unobserve(e.target);
        void this.loadThumb(e.target as HTMLElement);
      }
    });
    this.timer = window.setInterval(() => void this.load(), REFRESH_MS);
    void this.load();
  }

  destroy(): void {
    this.destroyed = true;
    window.clearInterval(this.timer);
    this.observer.disconnect();
    for (const url of this.blobs.values()) URL.revokeObjectURL(url);
  }

  private say(text: string, error = false): void {
    this.message.textContent = text;
    this.message.classList.toggle('error', error);
  }

  private async load(): Promise<void> {
    if (this.busy) return;
    let view: DatasetView;
    try {
      view = await getJson<DatasetView>(`api/dataset${this.className === undefined ? '' : `?class=${encodeURIComponent(this.className)}`}`);
    } catch (e) {
      if (this.destroyed) return;
      setChildren(this.grid, h('p', { class: 'error' }, e instanceof ApiError && e.status === 404 ? e.message : `Could not load the samples: ${(e as Error).message}`));
      return;
    }
    if (!this.destroyed) this.render(view);
  }

  private render(view: DatasetView): void {
    const folderLink = (name: string | undefined, count: number) =>
      h(
        'a',
        {
          href: name === undefined ? '#/label' : `#/label/${encodeURIComponent(name)}`,
          class: name === this.className ? 'active' : undefined,
          'data-class': name ?? '',
          'data-count': count,
        },
        `${name ?? 'Unlabeled'} (${count})`,
      );
    setChildren(this.folders, folderLink(undefined, view.unlabeledCount), ...view.classes.map((c) => folderLink(c.name, c.count)));
    this.samples = view.class ? view.class.samples : view.unlabeled;
    const names = new Set(this.samples.map((s) => s.name));
    for (const n of [...this.selected]) if (!names.has(n)) this.selected.delete(n);
    for (const [n, url] of this.blobs) {
      if (names.has(n)) continue;
      URL.revokeObjectURL(url);
      this.blobs.delete(n);
    }
    const suggestions = new Set([...view.classes.map((c) => c.name), ...this.samples.map((s) => s.prediction.label)]);
    setChildren(this.suggestions, ...[...suggestions].sort().map((s) => h('option', { value: s })));
    const total = view.class ? view.class.samples.length : view.unlabeledCount;
    this.summary.textContent =
      total === 0
        ? view.class
          ? 'No pulled samples in this class.'
          : `No unlabeled samples in ${view.dir}. Pull some with \`edgehead dataset pull --out ${view.dir}\`.`
        : `${total} sample${total === 1 ? '' : 's'}${this.samples.length < total ? ` (showing the oldest ${this.samples.length})` : ''} in ${view.dir}`;
    this.observer.disconnect();
    setChildren(this.grid, ...this.samples.map((s) => this.card(s)));
    this.updateButtons();
  }

  private card(s: DatasetSample): HTMLElement {
    const pressed = this.selected.has(s.name);
    const caption = h('figcaption', {}, h('strong', {}, s.prediction.label), ` ${num(s.prediction.score, 2)}`, h('br', {}), h('small', {}, `${s.device} · ${new Date(s.ts).toLocaleString()}`));
    const card = h('figure', { class: `sample${s.image ? '' : ' features-only'}`, 'data-sample': s.name, role: 'option', tabindex: 0, 'aria-selected': String(pressed), 'aria-pressed': String(pressed), title: `${s.name} (${s.reason})` });
    if (s.image) {
      const img = h('img', { class: 'thumb', alt: `${s.name}` });
      const url = this.blobs.get(s.name);
      if (url) img.src = url;
      else this.observer.observe(card);
      card.append(img);
    } else card.append(h('div', { class: 'thumb no-image' }, 'features only'));
    card.append(caption);
    const toggle = () => {
      const on = !this.selected.has(s.name);
      if (on) this.selected.add(s.name);
      else this.selected.delete(s.name);
      card.setAttribute('aria-pressed', String(on));
      card.setAttribute('aria-selected', String(on));
      this.updateButtons();
    };
    card.addEventListener('click', toggle);
    card.addEventListener('keydown', (e) => {
      if (e.key === ' ' || e.key === 'Enter') {
        e.preventDefault();
        toggle();
      }
    });
    return card;
  }

  private async loadThumb(card: HTMLElement): Promise<void> {
    const name = card.dataset.sample!;
    try {
      const blob = await (await request(`api/dataset/image/${encodeURIComponent(name)}`)).blob();
      if (this.destroyed) return;
      const url = URL.createObjectURL(blob);
      this.blobs.set(name, url);
      card.querySelector('img')!.src = url;
    } catch {
      card.classList.add('no-picture');
    }
  }

  private selectAll(on: boolean): void {
    if (on) for (const s of this.samples) this.selected.add(s.name);
    else this.selected.clear();
    for (const card of this.grid.querySelectorAll<HTMLElement>('[data-sample]')) {
      const v = String(this.selected.has(card.dataset.sample!));
      card.setAttribute('aria-pressed', v);
      card.setAttribute('aria-selected', v);
    }
    this.updateButtons();
  }

  private updateButtons(): void {
    const n = this.selected.size;
    this.labelButton.disabled = n === 0 || this.busy;
    this.unlabelButton.disabled = n === 0 || this.busy;
    this.labelButton.textContent = n ? `Label selected (${n})` : 'Label selected';
  }

  private async move(action: 'label' | 'unlabel'): Promise<void> {
    const names = [...this.selected];
    const cls = this.classInput.value.trim();
    if (names.length === 0) return this.say('Select samples first (click them).', true);
    if (action === 'label' && !cls) return this.say('Type the class to label them with.', true);
    this.busy = true;
    this.updateButtons();
    let moved = 0;
    try {
      for (let i = 0; i < names.length; i += BATCH) {
        const samples = names.slice(i, i + BATCH);
        const res = await postJson<{ moved: number }>(`api/dataset/${action}`, action === 'label' ? { samples, class: cls } : { samples });
        moved += res.moved;
      }
      this.selected.clear();
      this.say(action === 'label' ? `Moved ${moved} sample${moved === 1 ? '' : 's'} into ${cls}.` : `Moved ${moved} sample${moved === 1 ? '' : 's'} back to unlabeled.`);
    } catch (e) {
      this.say(`${moved ? `Moved ${moved}, then: ` : ''}${e instanceof ApiError ? `refused (${e.status}): ${e.message}` : (e as Error).message}`, true);
    } finally {
      this.busy = false;
    }
    await this.load();
  }
}
