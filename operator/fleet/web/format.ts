/**
 * How the dashboard writes values: ages, numbers, heads, targets. Pure functions (no DOM), shared by the pages.
 */
import type { DeviceRow, HeadSummary, RolloutTarget, RolloutView } from '../model';

/** "4 s", "12 min", "3 h", "2 d"; "" for null. */
export function age(ms: number | null): string {
  if (ms === null) return '';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

export function num(v: number | null | undefined, digits = 0): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '' : v.toFixed(digits);
}

export function headText(h: HeadSummary | null | undefined): string {
  return h ? `${h.id} v${h.version}` : '';
}

export function targetText(t: RolloutTarget): string {
  return t.kind === 'all' ? 'whole fleet' : t.kind === 'group' ? `group ${t.group}` : `${t.devices.length} device${t.devices.length === 1 ? '' : 's'}: ${t.devices.slice(0, 5).join(', ')}${t.devices.length > 5 ? '…' : ''}`;
}

export function statusText(row: DeviceRow): string {
  if (row.online === true) return 'online';
  if (row.online === false) return row.offlineReason === 'shutdown' ? 'offline (shut down)' : 'offline';
  return 'unknown';
}

/** Devices that took the head (applied, or running it in shadow) out of all the rollout's devices. */
export function rolloutProgress(v: RolloutView): { done: number; total: number } {
  return { done: v.devices.filter((d) => d.state === 'applied' || d.state === 'shadow').length, total: v.devices.length };
}

/** Whether a rollout still acts (its devices may be waiting for it). */
export function rolloutActive(v: RolloutView): boolean {
  return v.phase === 'canary' || v.phase === 'rest' || v.phase === 'done' || v.phase === 'rolling-back';
}
