/**
 * The high-water mark of head versions: for every head id this device ever applied, the highest version (and when).
 * A head of a known id with a version at or below its mark is a downgrade or a replay and is refused
 * (validate.ts), unless the operator allowed exactly that target with the `allow` command; an allowance is kept
 * here too, is used up by the first head it lets through and expires (default 60 minutes). The mark never goes down,
 * not even for an allowed head or a rollback. Persisted as <stateDir>/heads/high-water.json (mode 0600, atomic and
 * durable: base/durable-file.ts), so a restart does not reopen the door; the threat model is in docs/head-format.md.
 *
 * An unreadable file (damaged by hand or by a disk fault) is logged and rebuilt from the heads on disk (active,
 * previous), which loses the marks of ids no longer stored there: the log says so.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileDurable } from '../../base/durable-file';
import { describeError, EdgeheadError } from '../../base/errors';
import { createLogger } from '../../base/log';
import type { HeadManifest } from '../../protocol/head/format';

const log = createLogger('heads');

export const HIGH_WATER_FILE = 'high-water.json';
/** How long an allowance lasts unless the command says otherwise. */
export const ALLOW_DEFAULT_MINUTES = 60;

export interface Mark {
  version: number;
  sha256: string;
  /** When that version was applied (or first seen on disk). */
  at: string;
}

export interface Allowance {
  id: string;
  version: number;
  /** When set, only the payload whose manifest.sha256 is this. */
  sha256?: string;
  until: string;
}

/** A map without a prototype: a head id may be "__proto__" or "constructor" (ID_PATTERN allows them). */
const emptyHeads = (): Record<string, Mark> => Object.create(null) as Record<string, Mark>;

interface Persisted {
  heads: Record<string, Mark>;
  allow?: Allowance;
}

export class HighWaterMarks {
  private readonly file: string;
  private data: Persisted;

  constructor(
    dir: string,
    private readonly now: () => number = Date.now,
  ) {
    this.file = path.join(dir, HIGH_WATER_FILE);
    this.data = this.load();
  }

  private load(): Persisted {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') log.warn('cannot read the head high-water marks; rebuilding them from the stored heads', { file: this.file, error: describeError(e) });
      return { heads: emptyHeads() };
    }
    try {
      const v = JSON.parse(text) as Persisted;
      if (v === null || typeof v !== 'object' || v.heads === null || typeof v.heads !== 'object') throw new Error('not a {heads: {...}} object');
      const heads = emptyHeads();
      for (const [id, m] of Object.entries(v.heads)) if (Number.isSafeInteger(m?.version)) heads[id] = m;
      return { heads, ...(v.allow && typeof v.allow.id === 'string' ? { allow: v.allow } : {}) };
    } catch (e) {
      log.warn('damaged head high-water marks; rebuilt from the active and previous heads only: older heads of other ids could be accepted again', { file: this.file, error: describeError(e) });
      return { heads: emptyHeads() };
    }
  }

  private save(): void {
    writeFileDurable(this.file, JSON.stringify(this.data, null, 2) + '\n', { mode: 0o600 });
  }

  /**
   * save() for changes that must not fail what caused them (a head already persisted and applied): the mark holds
   * in memory, and the next start raises it again from the heads on disk.
   */
  private trySave(what: string): void {
    try {
      this.save();
    } catch (e) {
      log.warn(`could not persist the head high-water marks (${what}); they hold until the agent stops`, { file: this.file, error: describeError(e) });
    }
  }

  /** The highest version of `id` ever applied here, if any. */
  highest(id: string): Mark | undefined {
    return Object.hasOwn(this.data.heads, id) ? this.data.heads[id] : undefined;
  }

  /** Raises the mark of a head that is now active (never lowers it); persists when it changed. Never throws. */
  record(m: Pick<HeadManifest, 'id' | 'version' | 'sha256'>, at = new Date(this.now()).toISOString()): void {
    const cur = this.highest(m.id);
    if (cur && cur.version >= m.version) return;
    this.data.heads[m.id] = { version: m.version, sha256: m.sha256, at };
    this.trySave(`${m.id} v${m.version}`);
  }

  /** Whether an unexpired allowance names exactly this head. */
  allows(m: Pick<HeadManifest, 'id' | 'version' | 'sha256'>): boolean {
    const a = this.data.allow;
    if (!a || a.id !== m.id || a.version !== m.version) return false;
    if (a.sha256 !== undefined && a.sha256 !== m.sha256) return false;
    return Date.parse(a.until) >= this.now();
  }

  /** Records an allowance (replacing any other); refuses one that would not be needed. */
  allow(req: { id: string; version: number; sha256?: string; minutes?: number }): Allowance {
    const mark = this.highest(req.id);
    if (!mark) throw new EdgeheadError('BAD_ARGS', `allow: no head ${JSON.stringify(req.id)} was ever applied on this device; nothing to allow`);
    if (req.version > mark.version) throw new EdgeheadError('BAD_ARGS', `allow: ${req.id} v${req.version} is not a downgrade (the highest applied is v${mark.version}); push it as it is`);
    const minutes = req.minutes ?? ALLOW_DEFAULT_MINUTES;
    const allowance: Allowance = { id: req.id, version: req.version, ...(req.sha256 ? { sha256: req.sha256 } : {}), until: new Date(this.now() + minutes * 60_000).toISOString() };
    this.data.allow = allowance;
    this.save();
    log.info('rollback target allowed', { ...allowance });
    return allowance;
  }

  /** Uses up the allowance (after the head it let through was accepted). */
  consume(m: Pick<HeadManifest, 'id' | 'version' | 'sha256'>): void {
    if (!this.allows(m)) return;
    delete this.data.allow;
    this.trySave('allowance used');
  }
}
