/**
 * Namespaced, structured logging. Quiet by default (level "info" prints only warnings and errors of the agent's own
 * components plus explicit user-facing lines); EDGEHEAD_LOG_LEVEL=debug shows everything including stacks.
 * Output: one line per record to stderr, either human-readable ("text") or JSON ("json", for journald/log shippers).
 *
 * Under systemd (stderr is the journal: JOURNAL_STREAM names stderr's device:inode) every line starts with its syslog
 * priority, <3> error, <4> warning, <6> info, <7> debug, which journald strips and stores (`journalctl -p warning`),
 * and carries no timestamp of ours (journald stamps each line); text and JSON are otherwise unchanged.
 * Identical warnings and errors repeated within REPEAT_WINDOW_SEC are collapsed into one summary line per window
 * (base/log-repeats.ts). Every line, summaries included, has its URL passwords redacted (base/redact.ts).
 */
import * as fs from 'node:fs';
import type { Clock } from './clock';
import { RepeatCollapser, repeatKey } from './log-repeats';
import { redactUrls } from './redact';

export type Level = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface LogSink {
  write(line: string): void;
}

/** Seconds during which an identical warning is counted instead of printed (then one summary line). */
export const REPEAT_WINDOW_SEC = 60;

/** Syslog priorities (sd-daemon(3)): what journald files each line under. */
const PRIORITY: Record<Exclude<Level, 'silent'>, number> = { error: 3, warn: 4, info: 6, debug: 7 };

interface LogSettings {
  level: Level;
  format: 'text' | 'json';
  sink: LogSink;
  /** Lines start with their syslog priority and carry no timestamp (stderr is the journal). */
  journal: boolean;
  /** Time and timers of the repeat collapsing; by default the system's, with unref'd timers. */
  clock: Clock;
  /** 0 = no collapsing: every line is printed. */
  repeatWindowSec: number;
}

/** The system clock whose timers never keep the process alive (a pending repeat summary is not worth waiting for). */
const unrefClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/**
 * Whether stderr is the journal: JOURNAL_STREAM is "device:inode" of the stream systemd connected (systemd.exec(5)),
 * compared with stderr's own, so that a process which merely inherited the variable (its stderr redirected) does not
 * prefix. `stat` is stderr's fstat (injectable for tests).
 */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env, stat: () => { dev: bigint; ino: bigint } = () => fs.fstatSync(2, { bigint: true })): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = stat();
    return st.dev === BigInt(m[1]!) && st.ino === BigInt(m[2]!);
  } catch {
    return false;
  }
}

const settings: LogSettings = {
  level: parseLevel(process.env.EDGEHEAD_LOG_LEVEL) ?? 'warn',
  format: process.env.EDGEHEAD_LOG_FORMAT === 'json' ? 'json' : 'text',
  sink: { write: (line) => process.stderr.write(line + '\n') },
  journal: stderrIsJournal(),
  clock: unrefClock,
  repeatWindowSec: REPEAT_WINDOW_SEC,
};
let repeats = new RepeatCollapser(settings.clock, settings.repeatWindowSec * 1000);

function parseLevel(s: string | undefined): Level | undefined {
  return s !== undefined && s in ORDER ? (s as Level) : undefined;
}

/** Changes settings; the summaries of repeats counted so far are written first (with the settings they were counted under). */
export function configureLogging(opts: Partial<LogSettings>): void {
  repeats.flush();
  Object.assign(settings, opts);
  repeats = new RepeatCollapser(settings.clock, settings.repeatWindowSec * 1000);
}

/** Writes the pending "repeated N times" summaries now (at shutdown, so the last counts are not lost). */
export function flushLogRepeats(): void {
  repeats.flush();
}

/** What a line written to stderr by hand (not through a Logger) starts with: its priority when stderr is the journal. */
export function stderrPrefix(level: Exclude<Level, 'silent'>): string {
  return settings.journal ? `<${PRIORITY[level]}>` : '';
}

export function logLevel(): Level {
  return settings.level;
}

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(ns: string): Logger;
}

export function createLogger(ns: string): Logger {
  const emit = (level: Exclude<Level, 'silent'>, rawMsg: string, rawFields?: Fields): void => {
    if (ORDER[level] < ORDER[settings.level]) return;
    // No password inside a URL ever reaches a log line, whoever logged it (base/redact.ts).
    const msg = redactUrls(rawMsg);
    const fields = rawFields && Object.fromEntries(Object.entries(rawFields).map(([k, v]) => [k, typeof v === 'string' ? redactUrls(v) : v]));
    if (ORDER[level] >= ORDER.warn && settings.repeatWindowSec > 0) {
      const key = repeatKey(level, ns, msg, fields);
      if (key !== undefined && !repeats.admit(key, (count, ms) => write(level, ns, msg, fields, { count, sec: Math.ceil(ms / 1000) }))) return;
    }
    write(level, ns, msg, fields);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (sub) => createLogger(`${ns}:${sub}`),
  };
}

/** One line to the sink; `repeated` makes it the summary of a collapsed line. Inputs are already redacted. */
function write(level: Exclude<Level, 'silent'>, ns: string, msg: string, fields: Fields | undefined, repeated?: { count: number; sec: number }): void {
  const prefix = stderrPrefix(level);
  const time = settings.journal ? undefined : new Date(settings.clock.now()).toISOString();
  if (settings.format === 'json') {
    const rep = repeated && { repeated: repeated.count, repeatedSec: repeated.sec };
    settings.sink.write(prefix + JSON.stringify({ time, level, ns, msg, ...fields, ...rep }));
    return;
  }
  const text = repeated ? `${msg} (repeated ${repeated.count} times in the last ${repeated.sec} s)` : msg;
  const extra = fields && Object.keys(fields).length ? ' ' + formatFields(fields) : '';
  settings.sink.write(`${prefix}${time ? time + ' ' : ''}${level.toUpperCase().padEnd(5)} [${ns}] ${text}${extra}`);
}

function formatFields(fields: Fields): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? (/\s/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v)}`)
    .join(' ');
}
