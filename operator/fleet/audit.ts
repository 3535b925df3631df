/**
 * The rollout audit log: an append-only file of every rollout step (who started what, which sha256, which devices,
 * what each device answered, halts, rollbacks). It is, with the history, the only state the fleet server keeps that
 * the broker does not hold; operator/fleet/rollout.ts writes it and rebuilds the rollouts of earlier runs from it.
 *
 * Format: JSON Lines (UTF-8). One JSON object per line, each line ended by "\n", appended in order and never
 * rewritten:
 *
 *   {"at":"2026-05-01T12:00:00.000Z","rollout":"20260501T120000Z-133d9356","actor":"alice","action":"start",
 *    "sha256":"133d93...","head":{"id":"kitchen","version":3},"devices":["pi-1","pi-2"],"detail":{...}}
 *
 *   at       ISO 8601 time (UTC) of the step, server clock
 *   rollout  the rollout id
 *   actor    who did it: the authenticated user (or "local") for start/halt/rollback, the device for its answers,
 *            "server" for what the engine does by itself (publish, automatic halt, done)
 *   action   what happened (rollout.ts lists them: start, publish, rest, answer, device, promote, halt, clear, done,
 *            rollback, rolled-back)
 *   sha256   the head file's sha256 (whole file), on "start"
 *   head     {id, version}, on "start"
 *   devices  the devices the step concerns
 *   result   the outcome: a device's answer status, a halt reason...
 *   detail   anything else, as an object
 *
 * Appends open the file with O_APPEND (the folder is created 0700, the file 0600) and write one whole line per
 * call. A crash mid-write can leave a torn last line: readAll() skips any line that is not a valid entry, with a
 * warning, and the first append of a new AuditLog starts with a newline when the file does not end with one, so a
 * torn line never swallows the next entry. Appends are not fsync'ed (a rollout to a thousand devices writes
 * thousands of lines); the log survives a crash of the server, not necessarily a power cut of its machine.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Static, Type } from '@sinclair/typebox';
import { EdgeheadError } from '../../base/errors';
import { createLogger } from '../../base/log';
import { schemaErrors } from '../../protocol/validate';

const log = createLogger('fleet:audit');

export const AuditEntrySchema = Type.Object({
  at: Type.String({ description: 'ISO 8601 time, UTC' }),
  rollout: Type.String({ minLength: 1 }),
  actor: Type.String(),
  action: Type.String({ minLength: 1 }),
  sha256: Type.Optional(Type.String()),
  head: Type.Optional(Type.Object({ id: Type.String(), version: Type.Integer() })),
  devices: Type.Optional(Type.Array(Type.String())),
  result: Type.Optional(Type.String()),
  detail: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type AuditEntry = Static<typeof AuditEntrySchema>;

export class AuditLog {
  /** Whether this instance made the folder and checked that the file ends with a newline (once, at the first append). */
  private ready = false;

  constructor(readonly file: string) {}

  /** Appends one entry as one line. Throws IO when the file cannot be written. */
  append(entry: AuditEntry): void {
    const line = JSON.stringify(entry) + '\n';
    let fd: number | undefined;
    try {
      if (!this.ready) fs.mkdirSync(path.dirname(path.resolve(this.file)), { recursive: true, mode: 0o700 });
      fd = fs.openSync(this.file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o600);
      const prefix = !this.ready && this.tailNeedsNewline(fd) ? '\n' : '';
      this.ready = true;
      fs.writeSync(fd, prefix + line);
    } catch (e) {
      throw new EdgeheadError('IO', `cannot append to the audit log ${this.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }

  /** Every entry in file order; a missing file is an empty log; damaged lines (a torn last line) are skipped with a warning. */
  readAll(): AuditEntry[] {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new EdgeheadError('IO', `cannot read the audit log ${this.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const out: AuditEntry[] = [];
    const lines = text.split('\n');
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      const last = i === lines.length - 1;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        log.warn(`audit log ${this.file}: line ${i + 1} is not JSON${last ? ' (torn by a crash mid-write?)' : ''}; skipped`);
        return;
      }
      const errors = schemaErrors(AuditEntrySchema, value, 'entry', 1);
      if (errors.length > 0) {
        log.warn(`audit log ${this.file}: line ${i + 1} is not an audit entry (${errors[0]}); skipped`);
        return;
      }
      out.push(value as AuditEntry);
    });
    return out;
  }

  private tailNeedsNewline(fd: number): boolean {
    const size = fs.fstatSync(fd).size;
    if (size === 0) return false;
    const last = Buffer.alloc(1);
    // Reading needs a readable descriptor: the append descriptor is write-only.
    const rfd = fs.openSync(this.file, 'r');
    try {
      fs.readSync(rfd, last, 0, 1, size - 1);
    } finally {
      fs.closeSync(rfd);
    }
    return last[0] !== 0x0a;
  }
}
