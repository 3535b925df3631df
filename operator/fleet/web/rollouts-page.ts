/**
 * #/rollouts — the rollouts, newest first (phase, head, target, applied/total, halt reason, each device's state),
 * kept live by the `rollout` events; Halt and Roll back buttons (roll back asks for a second click); and the form
 * that starts one: a head file, a target (fleet / group / devices), canary devices or a percentage, and the minimum
 * shadow agreement. The file is POSTed as the request body with fetch (api.ts adds X-Edgehead-Request).
 *
 * For tests: each rollout is a section with data-rollout="<id>" and data-phase; each device row data-device and
 * data-state.
 */
import type { RolloutView } from '../model';
import { ApiError, postJson, request } from './api';
import { h, setChildren } from './dom';
import { headText, rolloutProgress, targetText } from './format';
import type { FleetStore } from './store';

function field(label: string, control: HTMLElement, hint?: string): HTMLElement {
  return h('label', { class: 'field' }, h('span', {}, label), control, hint ? h('small', {}, hint) : null);
}

/** The query string of POST api/rollouts from the form's values; an Error naming what is missing. */
export function rolloutQuery(f: { target: string; targetValue: string; canary: string; canaryValue: string; minAgreement: string }): string {
  const q = new URLSearchParams();
  const list = (s: string) =>
    s
      .split(/[\s,]+/)
      .filter(Boolean)
      .join(',');
  if (f.target === 'all') q.set('target', 'all');
  else if (f.target === 'group') {
    if (!f.targetValue.trim()) throw new Error('Name the group to roll out to.');
    q.set('target', `group:${f.targetValue.trim()}`);
  } else {
    if (!list(f.targetValue)) throw new Error('List the devices to roll out to.');
    q.set('target', `devices:${list(f.targetValue)}`);
  }
  if (f.canary === 'devices') {
    if (!list(f.canaryValue)) throw new Error('List the canary devices.');
    q.set('canary', list(f.canaryValue));
  } else if (f.canary === 'percent') {
    if (!f.canaryValue.trim()) throw new Error('Give the canary percentage.');
    q.set('canaryPercent', f.canaryValue.trim());
  }
  if (f.minAgreement.trim()) q.set('minAgreement', f.minAgreement.trim());
  return q.toString();
}

export class RolloutsPage {
  private readonly list = h('div', { class: 'rollouts' });
  private readonly formMessage = h('p', { class: 'form-message', role: 'status' });
  private readonly cards = new Map<string, HTMLElement>();
  private readonly dirty = new Set<string>();
  private frame = 0;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly store: FleetStore,
    container: HTMLElement,
  ) {
    container.replaceChildren(h('h2', {}, 'Rollouts'), this.form(), this.list);
    this.unsubscribe = store.onRollout((v) => {
      if (v) this.dirty.add(v.id);
      else for (const id of store.rollouts.keys()) this.dirty.add(id);
      if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
    });
    for (const id of store.rollouts.keys()) this.dirty.add(id);
    this.render();
  }

  destroy(): void {
    this.unsubscribe();
    if (this.frame) cancelAnimationFrame(this.frame);
  }

  private form(): HTMLElement {
    const file = h('input', { type: 'file', name: 'head', required: true, accept: '.head,application/octet-stream' });
    const target = h('select', { name: 'target' }, h('option', { value: 'all' }, 'Whole fleet'), h('option', { value: 'group' }, 'A group'), h('option', { value: 'devices' }, 'Listed devices'));
    const targetValue = h('input', { type: 'text', name: 'targetValue', placeholder: 'group name, or device ids separated by commas', disabled: true });
    const canary = h('select', { name: 'canary' }, h('option', { value: 'default' }, 'Server default'), h('option', { value: 'devices' }, 'Listed devices'), h('option', { value: 'percent' }, 'Percentage'));
    const canaryValue = h('input', { type: 'text', name: 'canaryValue', placeholder: 'device ids, or a percentage', disabled: true });
    const minAgreement = h('input', { type: 'number', name: 'minAgreement', min: '0', max: '1', step: '0.01', placeholder: 'e.g. 0.9 (shadow heads)' });
    const submit = h('button', { type: 'submit' }, 'Start rollout');
    target.addEventListener('change', () => (targetValue.disabled = target.value === 'all'));
    canary.addEventListener('change', () => (canaryValue.disabled = canary.value === 'default'));
    const form = h(
      'form',
      { class: 'start-rollout', 'aria-label': 'Start a rollout' },
      h('h3', {}, 'Start a rollout'),
      field('Head file', file, 'a .head file made by `edgehead head train` (signed when devices require it)'),
      h('div', { class: 'row' }, field('Target', target), field('Group or devices', targetValue)),
      h('div', { class: 'row' }, field('Canary', canary), field('Canary devices or %', canaryValue)),
      field('Minimum shadow agreement', minAgreement, 'optional: 0..1'),
      h('div', { class: 'row' }, submit, this.formMessage),
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      void (async () => {
        const chosen = file.files?.[0];
        this.say('');
        try {
          if (!chosen) throw new Error('Choose a head file.');
          const query = rolloutQuery({ target: target.value, targetValue: targetValue.value, canary: canary.value, canaryValue: canaryValue.value, minAgreement: minAgreement.value });
          submit.disabled = true;
          const res = await request(`api/rollouts?${query}`, { method: 'POST', body: chosen, headers: { 'Content-Type': 'application/octet-stream' } });
          const view = (await res.json()) as RolloutView;
          this.store.apply({ event: 'rollout', data: JSON.stringify(view) });
          this.say(`Started rollout ${view.id}: ${headText(view.head)} to ${targetText(view.target)}.`);
          form.reset();
          targetValue.disabled = canaryValue.disabled = true;
        } catch (err) {
          this.say(err instanceof ApiError ? `Refused (${err.status}): ${err.message}` : (err as Error).message, true);
        } finally {
          submit.disabled = false;
        }
      })();
    });
    return form;
  }

  private say(text: string, error = false): void {
    this.formMessage.textContent = text;
    this.formMessage.classList.toggle('error', error);
  }

  private render(): void {
    this.frame = 0;
    for (const id of this.dirty) {
      const view = this.store.rollouts.get(id);
      const old = this.cards.get(id);
      if (!view) {
        old?.remove();
        this.cards.delete(id);
        continue;
      }
      const open = old?.querySelector('details')?.open ?? view.devices.length <= 50;
      const card = this.card(view, open);
      if (old) old.replaceWith(card);
      this.cards.set(id, card);
    }
    this.dirty.clear();
    const ordered = [...this.store.rollouts.values()].sort((a, b) => b.createdAt - a.createdAt).map((v) => this.cards.get(v.id)!);
    if (ordered.length === 0) setChildren(this.list, h('p', { class: 'muted' }, 'No rollouts yet.'));
    else if (ordered.some((c, i) => this.list.children[i] !== c) || this.list.children.length !== ordered.length) setChildren(this.list, ...ordered);
  }

  private card(v: RolloutView, open: boolean): HTMLElement {
    const { done, total } = rolloutProgress(v);
    const actions = h('div', { class: 'actions' });
    if (v.phase === 'canary' || v.phase === 'rest') {
      actions.append(h('button', { type: 'button', class: 'halt', onclick: () => void this.act(v.id, 'halt') }, 'Halt'));
    }
    if (v.phase === 'done' || v.phase === 'halted') {
      const rollback = h('button', { type: 'button', class: 'rollback' }, 'Roll back');
      rollback.addEventListener('click', () => {
        if (rollback.dataset.confirm !== '1') {
          rollback.dataset.confirm = '1';
          rollback.textContent = 'Confirm roll back';
          return;
        }
        void this.act(v.id, 'rollback');
      });
      actions.append(rollback);
    }
    const rows = v.devices.map((d) =>
      h(
        'tr',
        { 'data-device': d.device, 'data-state': d.state, class: `state-${d.state}` },
        h('td', {}, d.device),
        h('td', {}, d.stage),
        h('td', {}, d.state),
        h('td', {}, d.agreement === null ? '' : d.agreement.toFixed(2)),
        h('td', {}, d.reason ?? ''),
      ),
    );
    return h(
      'section',
      { class: `rollout phase-${v.phase}`, 'data-rollout': v.id, 'data-phase': v.phase },
      h('header', {}, h('strong', {}, headText(v.head)), ' ', h('span', { class: 'phase' }, v.phase), ' ', h('span', { class: 'progress', 'data-done': done, 'data-total': total }, `${done}/${total} applied`), actions),
      h('p', { class: 'meta' }, `${v.id} · ${targetText(v.target)} · by ${v.actor} · ${new Date(v.createdAt).toLocaleString()} · sha256 ${v.head.fileSha256.slice(0, 12)}…${v.head.signedBy ? ` · signed by ${v.head.signedBy}` : ''}`),
      v.haltReason ? h('p', { class: 'halt-reason error' }, `Halted: ${v.haltReason}`) : null,
      h(
        'details',
        { open },
        h('summary', {}, `Devices (${total})`),
        h('table', { class: 'rollout-devices' }, h('thead', {}, h('tr', {}, ...['Device', 'Stage', 'State', 'Agreement', 'Reason'].map((t) => h('th', { scope: 'col' }, t)))), h('tbody', {}, ...rows)),
      ),
    );
  }

  private async act(id: string, action: 'halt' | 'rollback'): Promise<void> {
    try {
      const view = await postJson<RolloutView>(`api/rollouts/${encodeURIComponent(id)}/${action}`, action === 'halt' ? { reason: 'halted from the dashboard' } : undefined);
      this.store.apply({ event: 'rollout', data: JSON.stringify(view) });
    } catch (err) {
      this.say(`${action === 'halt' ? 'Halt' : 'Roll back'} failed: ${(err as Error).message}`, true);
    }
  }
}
