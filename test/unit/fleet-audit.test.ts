/** The rollout audit log (operator/fleet/audit.ts): JSON Lines, appended only, private modes, torn lines survived. */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { configureLogging, logLevel } from '../../base/log';
import { type AuditEntry, AuditLog } from '../../operator/fleet/audit';
import { tmpDir } from '../support/cli';

const entry = (n: number, extra: Partial<AuditEntry> = {}): AuditEntry => ({ at: new Date(Date.UTC(2026, 4, 1, 12, 0, n)).toISOString(), rollout: 'r1', actor: 'alice', action: `step-${n}`, ...extra });

/** Runs fn with warnings captured (returned) instead of printed. */
function captureWarnings(fn: () => void): string[] {
  const lines: string[] = [];
  const level = logLevel();
  configureLogging({ level: 'warn', sink: { write: (l) => lines.push(l) }, repeatWindowSec: 0 });
  try {
    fn();
  } finally {
    configureLogging({ level, sink: { write: (l) => process.stderr.write(l + '\n') } });
  }
  return lines;
}

describe('audit log', () => {
  after(() => configureLogging({ repeatWindowSec: 60 }));

  test('appends one JSON object per line; creates the folder 0700 and the file 0600', () => {
    const dir = path.join(tmpDir('fleet-audit-'), 'data', 'fleet');
    const file = path.join(dir, 'audit.jsonl');
    const log = new AuditLog(file);
    assert.deepEqual(log.readAll(), [], 'a missing file is an empty log');
    const first = entry(1, { sha256: 'a'.repeat(64), head: { id: 'kitchen', version: 3 }, devices: ['pi-1', 'pi-2'], detail: { canary: ['pi-1'] } });
    log.append(first);
    log.append(entry(2, { result: 'halted' }));
    const text = fs.readFileSync(file, 'utf8');
    assert.ok(text.endsWith('\n'));
    assert.deepEqual(text.split('\n'), [JSON.stringify(first), JSON.stringify(entry(2, { result: 'halted' })), '']);
    assert.deepEqual(log.readAll(), [first, entry(2, { result: 'halted' })]);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  });

  test('never rewrites: what was written stays a prefix, also across instances', () => {
    const file = path.join(tmpDir('fleet-audit-'), 'audit.jsonl');
    new AuditLog(file).append(entry(1));
    const before = fs.readFileSync(file);
    const ino = fs.statSync(file).ino;
    const again = new AuditLog(file);
    again.append(entry(2));
    again.append(entry(3));
    const afterBytes = fs.readFileSync(file);
    assert.deepEqual(afterBytes.subarray(0, before.length), before);
    assert.equal(fs.statSync(file).ino, ino, 'the same file, appended (not replaced)');
    assert.deepEqual(again.readAll().map((e) => e.action), ['step-1', 'step-2', 'step-3']);
  });

  test('a torn last line is skipped with a warning, and the next append starts on a new line', () => {
    const file = path.join(tmpDir('fleet-audit-'), 'audit.jsonl');
    new AuditLog(file).append(entry(1));
    fs.appendFileSync(file, JSON.stringify(entry(2)).slice(0, 25)); // a crash mid-write
    const log = new AuditLog(file);
    let read: AuditEntry[] = [];
    const warnings = captureWarnings(() => (read = log.readAll()));
    assert.deepEqual(read.map((e) => e.action), ['step-1']);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /line 2 is not JSON \(torn by a crash mid-write\?\); skipped/);
    log.append(entry(3));
    captureWarnings(() => (read = log.readAll()));
    assert.deepEqual(read.map((e) => e.action), ['step-1', 'step-3']);
  });

  test('a line that is JSON but not an entry is skipped with a warning naming the problem', () => {
    const file = path.join(tmpDir('fleet-audit-'), 'audit.jsonl');
    fs.writeFileSync(file, `${JSON.stringify({ at: 'x', actor: 'a', action: 'start' })}\n${JSON.stringify(entry(2))}\n`);
    let read: AuditEntry[] = [];
    const warnings = captureWarnings(() => (read = new AuditLog(file).readAll()));
    assert.deepEqual(read.map((e) => e.action), ['step-2']);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /line 1 is not an audit entry \(entry\.rollout: required\); skipped/);
  });

  test('an unwritable place is a one-line IO error', () => {
    const dir = tmpDir('fleet-audit-');
    const blocker = path.join(dir, 'not-a-folder');
    fs.writeFileSync(blocker, '');
    const log = new AuditLog(path.join(blocker, 'audit.jsonl'));
    assert.throws(() => log.append(entry(1)), (e: Error & { code?: string }) => e.code === 'IO' && /^cannot append to the audit log .*: (EEXIST|ENOTDIR)$/.test(e.message));
  });
});
