/**
 * ServiceNotifier through the `systemd-notify` command. Node's dgram has no AF_UNIX datagram sockets, so speaking
 * the NOTIFY_SOCKET protocol directly would take a native addon, and the bundle runs with no node_modules.
 * systemd-notify (systemd >= 246; bookworm has 252) waits until the manager has processed the message (a barrier),
 * so the message is attributed to the unit although it comes from a child process: the unit needs NotifyAccess=all
 * (firmware-scripts/edgehead.service).
 *
 * Spawned without a shell, with a timeout; never more than one at a time: what is asked for meanwhile is merged
 * into the next message (READY=1 and STOPPING=1 are kept, WATCHDOG=1 once, the newest STATUS= wins), so a slow
 * manager never piles up processes. A failure is logged once at warn (then at debug until one succeeds again).
 */
import { execFile } from 'node:child_process';
import { describeError } from '../../base/errors';
import { createLogger } from '../../base/log';
import type { ServiceNotifier } from './notifier';

const log = createLogger('service');

/** systemd-notify itself gives up on the barrier after 5 s; past this the process is killed. */
export const NOTIFY_TIMEOUT_MS = 10_000;
/** A status line longer than this is cut (systemctl status shows one line). */
export const STATUS_MAX_CHARS = 200;

type Field = 'READY' | 'STATUS' | 'WATCHDOG' | 'STOPPING';

export interface SystemdNotifyOptions {
  /** The environment systemd-notify runs with (NOTIFY_SOCKET). Default: this process'. */
  env?: NodeJS.ProcessEnv;
  command?: string;
  timeoutMs?: number;
  /** Runs the command with these arguments; resolves when it succeeded (tests replace it). */
  exec?: (command: string, args: string[]) => Promise<void>;
}

export class SystemdNotify implements ServiceNotifier {
  private readonly command: string;
  private readonly exec: (command: string, args: string[]) => Promise<void>;
  private readonly pending = new Map<Field, string>();
  private sending?: Promise<void>;
  private closed = false;
  private failing = false;

  constructor(opts: SystemdNotifyOptions = {}) {
    this.command = opts.command ?? 'systemd-notify';
    const env = opts.env ?? process.env;
    const timeout = opts.timeoutMs ?? NOTIFY_TIMEOUT_MS;
    this.exec = opts.exec ?? ((command, args) => run(command, args, env, timeout));
  }

  ready(status: string): void {
    void this.send({ READY: '1', STATUS: status });
  }

  watchdog(status?: string): void {
    void this.send(status === undefined ? { WATCHDOG: '1' } : { WATCHDOG: '1', STATUS: status });
  }

  status(text: string): void {
    void this.send({ STATUS: text });
  }

  stopping(status?: string): Promise<void> {
    const done = this.send(status === undefined ? { STOPPING: '1' } : { STOPPING: '1', STATUS: status });
    this.closed = true;
    return done;
  }

  /** Merges the fields into the next message; resolves once everything asked for so far has been tried. */
  private send(fields: Partial<Record<Field, string>>): Promise<void> {
    if (this.closed) return this.sending ?? Promise.resolve();
    for (const [k, v] of Object.entries(fields) as [Field, string][]) this.pending.set(k, v);
    if (this.pending.size === 0) return this.sending ?? Promise.resolve();
    this.sending ??= this.drain();
    return this.sending;
  }

  private async drain(): Promise<void> {
    while (this.pending.size > 0) {
      const args = notifyArgs(this.pending);
      this.pending.clear();
      try {
        await this.exec(this.command, args);
        if (this.failing) log.info(`${this.command} works again`);
        this.failing = false;
      } catch (e) {
        const error = describeError(e);
        if (this.failing) log.debug(`${this.command} failed again`, { error });
        else log.warn(`${this.command} failed: systemd may not see READY or the watchdog pings (further failures at debug level)`, { error });
        this.failing = true;
      }
    }
    this.sending = undefined;
  }
}

/** systemd-notify's arguments: --ready, --status=TEXT (one line, cut), then VARIABLE=VALUE assignments. */
export function notifyArgs(fields: ReadonlyMap<Field, string>): string[] {
  const args: string[] = [];
  if (fields.has('READY')) args.push('--ready');
  const status = fields.get('STATUS');
  if (status !== undefined) args.push(`--status=${oneLine(status)}`);
  if (fields.has('WATCHDOG')) args.push('WATCHDOG=1');
  if (fields.has('STOPPING')) args.push('STOPPING=1');
  return args;
}

/** The protocol is newline-separated VARIABLE=VALUE: a newline in a status would start another variable. */
function oneLine(s: string): string {
  const line = s.replace(/[\r\n\t]+/g, ' ').trim();
  return line.length > STATUS_MAX_CHARS ? line.slice(0, STATUS_MAX_CHARS - 1) + '…' : line;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv, timeout: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { env, timeout, killSignal: 'SIGKILL', windowsHide: true }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const e = err as NodeJS.ErrnoException & { killed?: boolean };
      if (e.code === 'ENOENT') return reject(new Error(`${command} not found on PATH (NOTIFY_SOCKET is set: install systemd, or unset NOTIFY_SOCKET)`));
      if (e.killed) return reject(new Error(`${command} ${args.join(' ')} did not finish within ${timeout / 1000} s`));
      const why = String(stderr).trim().split('\n')[0] || `exit code ${String(e.code)}`;
      reject(new Error(`${command} ${args.join(' ')}: ${why}`));
    });
  });
}
