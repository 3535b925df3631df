/**
 * Active windows: "HH:MM-HH:MM" in local time, start inclusive, end exclusive ("06:00-20:00" runs 06:00:00 through
 * 19:59:59). A window may cross midnight ("22:00-06:00"). Equal start and end is refused: omit the window instead.
 */
import { EdgeheadError } from '../../base/errors';

export interface ActiveWindow {
  /** Minutes after local midnight, 0..1439. */
  readonly start: number;
  readonly end: number;
}

const WINDOW_RE = /^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$/;

export function parseWindow(s: string): ActiveWindow {
  const m = WINDOW_RE.exec(s);
  if (!m) throw new EdgeheadError('BAD_CONFIG', `schedule.activeWindow: expected "HH:MM-HH:MM" in 24-hour local time (got "${s}")`);
  const start = Number(m[1]) * 60 + Number(m[2]);
  const end = Number(m[3]) * 60 + Number(m[4]);
  if (start === end) {
    throw new EdgeheadError('BAD_CONFIG', `schedule.activeWindow: start and end are equal ("${s}")`, {
      hint: 'omit activeWindow to take frames all day',
    });
  }
  return { start, end };
}

/** Whether the local time of `date` falls inside the window. */
export function inWindow(w: ActiveWindow, date: Date): boolean {
  const m = date.getHours() * 60 + date.getMinutes();
  return w.start < w.end ? m >= w.start && m < w.end : m >= w.start || m < w.end;
}
