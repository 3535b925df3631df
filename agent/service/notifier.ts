/**
 * The service-manager seam: what the agent tells systemd through the sd_notify(3) protocol: READY=1 once it is up,
 * WATCHDOG=1 while its frame loop is alive, STATUS= for `systemctl status`, STOPPING=1 at shutdown.
 * serviceFromEnv() reads what systemd passed (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID): no notifier when
 * NOTIFY_SOCKET is unset (a shell, `npm start`, a container, Type=simple), else systemd-notify (systemd-notify.ts).
 * A notifier never throws and never blocks the caller: a failure is logged, never fatal.
 */
import { createLogger } from '../../base/log';
import { SystemdNotify } from './systemd-notify';

const log = createLogger('service');

export interface ServiceNotifier {
  /** READY=1: start-up is over (Type=notify: the unit becomes "active"), with the status line to show. */
  ready(status: string): void;
  /** WATCHDOG=1 (the frame loop is alive), with a fresh status line when given. */
  watchdog(status?: string): void;
  /** STATUS=: the one line `systemctl status` shows. */
  status(text: string): void;
  /** STOPPING=1 (with a status line); resolves once handed over or failed. Nothing is sent after it. */
  stopping(status?: string): Promise<void>;
}

/** What systemd asked for: a notifier, and the watchdog ping period when a watchdog is on for this process. */
export interface ServiceSettings {
  notifier: ServiceNotifier;
  /** Half of WATCHDOG_USEC, in ms; undefined: no watchdog (WatchdogSec= unset, or it watches another process). */
  watchdogMs?: number;
}

/**
 * undefined when NOTIFY_SOCKET is unset: nobody listens, the agent sends nothing. Otherwise the variables are taken
 * out of `env` (like sd_notify(3)'s unset_environment): systemd-notify gets them, the agent's other children
 * (ffmpeg, fswebcam, rpicam-still) do not, since under NotifyAccess=all whatever they sent would count.
 */
export function serviceFromEnv(env: NodeJS.ProcessEnv = process.env, pid = process.pid): ServiceSettings | undefined {
  if (!env.NOTIFY_SOCKET) return undefined;
  const watchdogMs = watchdogPeriodMs(env, pid);
  const own = { ...env };
  for (const k of ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID']) delete env[k];
  log.debug('service manager', { notifySocket: own.NOTIFY_SOCKET, watchdogMs });
  return { notifier: new SystemdNotify({ env: own }), watchdogMs };
}

/**
 * The ping period: half of WATCHDOG_USEC (sd_watchdog_enabled(3)), undefined when it is unset, not a positive
 * integer (logged), or when WATCHDOG_PID names another process (the watchdog is not ours).
 */
export function watchdogPeriodMs(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const usec = env.WATCHDOG_USEC;
  if (usec === undefined || usec === '') return undefined;
  if (!/^[1-9]\d{0,15}$/.test(usec)) {
    log.warn(`WATCHDOG_USEC is not a positive number of microseconds (got "${usec}"): no watchdog pings`);
    return undefined;
  }
  const owner = env.WATCHDOG_PID;
  if (owner !== undefined && owner !== '' && owner !== String(pid)) {
    log.debug('the watchdog is for another process: no pings', { watchdogPid: owner, pid });
    return undefined;
  }
  return Math.max(1, Math.floor(Number(usec) / 2000));
}
