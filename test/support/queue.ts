/** Shared fixtures of the queue tests: fresh queue folders under one temp root, numbered messages, captured logs. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, beforeEach } from 'node:test';
import type { QueuedMessage } from '../../agent/store/queue';
import { configureLogging, type Level } from '../../base/log';

/** A function giving a new, not yet existing folder per call; all removed after the file's tests. */
export function queueDirs(prefix: string): () => string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `edgehead-${prefix}-`));
  after(() => fs.rmSync(root, { recursive: true, force: true }));
  let n = 0;
  return () => path.join(root, `q${n++}`);
}

/** Log lines at `level` and above, emptied before each test. */
export function capturedLogs(level: Level = 'warn'): string[] {
  const lines: string[] = [];
  configureLogging({ level, format: 'text', sink: { write: (line) => lines.push(line) } });
  beforeEach(() => void (lines.length = 0));
  return lines;
}

/** Message i: a small JSON payload holding its number. */
export const msg = (i: number): QueuedMessage => ({ topic: 't/x', payload: JSON.stringify({ i: String(i).padStart(6, '0') }), qos: 1, retain: false });
export const ids = (ms: QueuedMessage[]): number[] => ms.map((m) => Number((JSON.parse(m.payload) as { i: string }).i));
export const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, k) => a + k);
