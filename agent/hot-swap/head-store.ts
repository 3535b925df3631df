/**
 * Persistence of heads in <stateDir>/heads:
 *   active.head, previous.head   the applied heads (raw payload bytes, the wire format)
 *   candidate.head               a head in shadow mode
 *   state.json                   last update + which payload (sha256) each topic delivered last
 *   high-water.json              highest version of every head id ever applied (high-water.ts)
 *   rejected/<time>-<corr>.bin + .json   rejected payloads: the first 4 KiB of each (the excerpt) and a record of
 *                                its sha256, size, reason and topic. At most `rejectedKeep` of them and 1 MiB in
 *                                all (oldest removed first), and nothing at all while the state dir has less than
 *                                32 MiB free: whoever can publish to head/set cannot fill the disk with them.
 * Every write is atomic and durable (base/durable-file.ts: temp file, fsync, rename, fsync of the folder). A crash
 * at any point leaves either the old or the new file in place; a stray temp file is ignored (and removed) at the next
 * start.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeHead, type HeadFile } from '../../protocol/head/format';
import type { HeadStateMessage } from '../../protocol/messages';
import { describeError } from '../../base/errors';
import { fsyncDir, stageFile, writeFileDurable } from '../../base/durable-file';
import { createLogger } from '../../base/log';

const log = createLogger('heads:store');

/** Bytes kept of a rejected payload (its header and the start of its manifest). */
export const REJECTED_EXCERPT_BYTES = 4096;
/** Most bytes the rejected folder holds, excerpts and records together (oldest removed first). */
export const REJECTED_TOTAL_BYTES = 1024 * 1024;
/** No rejected payload is kept while the state dir has less free space than this. */
export const REJECTED_MIN_FREE_BYTES = 32 * 1024 * 1024;

/** What is kept of a rejected payload, beside its excerpt (<name>.json). */
export interface RejectedRecord {
  reason: string;
  topic: string;
  /** Size of the whole payload. */
  bytes: number;
  /** sha256 of the whole payload (its first 16 hex digits are the correlation id). */
  sha256: string;
  correlationId: string;
  /** Bytes in the .bin beside this record: the first `excerptBytes` of the payload. */
  excerptBytes: number;
  receivedAt: string;
}

export interface HeadStoreOptions {
  /** Free bytes in a folder's file system (test seam; default statfs). */
  freeBytes?: (dir: string) => number | undefined;
}

function statfsFreeBytes(dir: string): number | undefined {
  try {
    const s = fs.statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return undefined;
  }
}

export interface StoredHead {
  bytes: Uint8Array;
  head: HeadFile;
  appliedAt: string;
}

export interface PersistedState {
  lastUpdate: HeadStateMessage['lastUpdate'] | null;
  /** sha256 of the last payload processed per topic: a retained re-delivery of it is ignored. */
  processed: Record<string, string>;
  appliedAt: { active?: string; previous?: string };
  /** The topic each head came on (its precedence: device > group > fleet). */
  via?: { active?: string; previous?: string };
}

type Slot = 'active' | 'previous' | 'candidate';

export class HeadStore {
  readonly dir: string;
  /** Test hook: pause between the two renames of activate() (EDGEHEAD_TEST_PERSIST_PAUSE_MS), for kill -9 tests. */
  private readonly pauseMs = Number(process.env.EDGEHEAD_TEST_PERSIST_PAUSE_MS ?? 0);

  constructor(
    stateDir: string,
    private readonly maxBytes: number,
    private readonly rejectedKeep: number,
    private readonly opts: HeadStoreOptions = {},
  ) {
    this.dir = path.join(stateDir, 'heads');
    fs.mkdirSync(path.join(this.dir, 'rejected'), { recursive: true, mode: 0o700 }); // the state dir is private
    for (const f of fs.readdirSync(this.dir)) if (f.includes('.tmp')) fs.rmSync(path.join(this.dir, f), { force: true });
    // Into bounds at start too: a state dir from an older agent may hold whole payloads (up to 16 MiB each).
    try {
      this.pruneRejected(path.join(this.dir, 'rejected'));
    } catch (e) {
      log.warn('could not prune the rejected payloads', { error: describeError(e) });
    }
  }

  private file(slot: Slot): string {
    return path.join(this.dir, `${slot}.head`);
  }

  /** A stored head, or undefined if absent or invalid (a damaged file is logged and ignored). */
  read(slot: Slot): StoredHead | undefined {
    const f = this.file(slot);
    if (!fs.existsSync(f)) return undefined;
    try {
      const bytes = new Uint8Array(fs.readFileSync(f));
      const state = this.readState();
      return { bytes, head: decodeHead(bytes, { maxBytes: this.maxBytes }), appliedAt: state.appliedAt[slot as 'active'] ?? fs.statSync(f).mtime.toISOString() };
    } catch (e) {
      log.warn(`ignoring damaged ${slot} head`, { file: f, error: describeError(e) });
      return undefined;
    }
  }

  /** Makes `bytes` the active head; the current active one (if any) becomes previous. */
  async activate(bytes: Uint8Array, current: { bytes: Uint8Array; appliedAt: string } | undefined, appliedAt: string, via = 'unknown'): Promise<void> {
    const incoming = stageFile(this.file('active'), bytes, { mode: 0o600 });
    try {
      if (current) {
        if (fs.existsSync(this.file('active'))) fs.renameSync(this.file('active'), this.file('previous'));
        else writeFileDurable(this.file('previous'), current.bytes, { mode: 0o600 });
      }
      if (this.pauseMs > 0) {
        // The most fragile moment: the old head is already "previous" and the new one not yet "active".
        process.stderr.write(`edgehead: test hook: paused before renaming the new head into place\n`);
        await new Promise((r) => setTimeout(r, this.pauseMs));
      }
      incoming.commit();
    } catch (e) {
      incoming.abort();
      throw e;
    }
    this.updateState((s) => ({ ...s, appliedAt: { active: appliedAt, previous: current?.appliedAt }, via: { active: via, previous: s.via?.active } }));
  }

  /** Swaps active and previous (rollback). */
  swapActivePrevious(now: string): void {
    const a = this.file('active');
    const p = this.file('previous');
    const t = path.join(this.dir, 'swap.tmp');
    fs.renameSync(a, t);
    fs.renameSync(p, a);
    fs.renameSync(t, p);
    fsyncDir(this.dir);
    this.updateState((s) => ({ ...s, appliedAt: { active: now, previous: s.appliedAt.active }, via: { active: s.via?.previous, previous: s.via?.active } }));
  }

  async writeCandidate(bytes: Uint8Array): Promise<void> {
    writeFileDurable(this.file('candidate'), bytes, { mode: 0o600 });
  }

  removeCandidate(): void {
    fs.rmSync(this.file('candidate'), { force: true });
  }

  /**
   * Keeps an excerpt of a rejected payload and its record (see the module comment for the bounds). Never throws:
   * keeping evidence must not turn a rejection into a failure.
   */
  keepRejected(bytes: Uint8Array, info: Omit<RejectedRecord, 'bytes' | 'excerptBytes'>): void {
    if (this.rejectedKeep === 0) return;
    const dir = path.join(this.dir, 'rejected');
    try {
      const free = (this.opts.freeBytes ?? statfsFreeBytes)(dir);
      if (free !== undefined && free < REJECTED_MIN_FREE_BYTES) {
        log.warn('rejected payload not kept: the state dir is low on space', { freeMB: Math.round(free / 1024 / 1024), correlationId: info.correlationId });
        return;
      }
      const excerpt = bytes.subarray(0, REJECTED_EXCERPT_BYTES);
      const record: RejectedRecord = { ...info, bytes: bytes.byteLength, excerptBytes: excerpt.byteLength };
      const base = `${info.receivedAt.replace(/[:.]/g, '-')}-${info.correlationId}`;
      fs.writeFileSync(path.join(dir, `${base}.bin`), excerpt, { mode: 0o600 });
      fs.writeFileSync(path.join(dir, `${base}.json`), JSON.stringify(record, null, 2) + '\n', { mode: 0o600 });
      this.pruneRejected(dir);
    } catch (e) {
      log.warn('could not keep the rejected payload', { error: describeError(e) });
    }
  }

  /** Removes the oldest kept payloads (names start with the time) until the count and the total size are in bounds. */
  private pruneRejected(dir: string): void {
    const files = fs.readdirSync(dir).sort();
    const groups = new Map<string, string[]>();
    for (const f of files) {
      const base = f.replace(/\.(bin|json)$/, '');
      groups.set(base, [...(groups.get(base) ?? []), f]);
    }
    const entries = [...groups.entries()].map(([base, names]) => ({
      base,
      names,
      size: names.reduce((n, f) => n + (fs.statSync(path.join(dir, f), { throwIfNoEntry: false })?.size ?? 0), 0),
    }));
    let total = entries.reduce((n, e) => n + e.size, 0);
    let count = entries.length;
    for (const e of entries) {
      if (count <= this.rejectedKeep && total <= REJECTED_TOTAL_BYTES) break;
      for (const f of e.names) fs.rmSync(path.join(dir, f), { force: true });
      total -= e.size;
      count--;
    }
  }

  readState(): PersistedState {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.dir, 'state.json'), 'utf8')) as PersistedState;
    } catch {
      return { lastUpdate: null, processed: {}, appliedAt: {} };
    }
  }

  updateState(fn: (s: PersistedState) => PersistedState): void {
    writeFileDurable(path.join(this.dir, 'state.json'), JSON.stringify(fn(this.readState()), null, 2), { mode: 0o600 });
  }
}
