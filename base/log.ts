/**
 * Namespaced, structured logging. Quiet by default (level "info" prints only warnings and errors of the agent's own
 * components plus explicit user-facing lines); EDGEHEAD_LOG_LEVEL=debug shows everything including stacks.
 * Output: one line per record to stderr, either human-readable ("text") or JSON ("json", for journald/log shippers).
 */
import { redactUrls } from './redact';

export type Level = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface LogSink {
  write(line: string): void;
}

interface LogSettings {
  level: Level;
  format: 'text' | 'json';
  sink: LogSink;
}

const settings: LogSettings = {
  level: parseLevel(process.env.EDGEHEAD_LOG_LEVEL) ?? 'warn',
  format: process.env.EDGEHEAD_LOG_FORMAT === 'json' ? 'json' : 'text',
  sink: { write: (line) => process.stderr.write(line + '\n') },
};

function parseLevel(s: string | undefined): Level | undefined {
  return s !== undefined && s in ORDER ? (s as Level) : undefined;
}

export function configureLogging(opts: Partial<LogSettings>): void {
  Object.assign(settings, opts);
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
    const time = new Date().toISOString();
    if (settings.format === 'json') {
      settings.sink.write(JSON.stringify({ time, level, ns, msg, ...fields }));
      return;
    }
    const extra = fields && Object.keys(fields).length ? ' ' + formatFields(fields) : '';
    settings.sink.write(`${time} ${level.toUpperCase().padEnd(5)} [${ns}] ${msg}${extra}`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (sub) => createLogger(`${ns}:${sub}`),
  };
}

function formatFields(fields: Fields): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? (/\s/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v)}`)
    .join(' ');
}
