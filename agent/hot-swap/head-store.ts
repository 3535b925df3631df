/**
 * Persistence of heads in <stateDir>/heads:
 *   active.head, previous.head   the applied heads (raw payload bytes, the wire format)
 *   candidate.head               a head in shadow mode
 *   state.json                   last update + which payload (sha256) each topic delivered last
 *   rejected/<time>-<corr>.bin + .json   rejected payloads and their reasons (bounded)
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
  ) {
    this.dir = path.join(stateDir, 'heads');
    fs.mkdirSync(path.join(this.dir, 'rejected'), { recursive: true });
    for (const f of fs.readdirSync(this.dir)) if (f.includes('.tmp')) fs.rmSync(path.join(this.dir, f), { force: true });
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
    const incoming = stageFile(this.file('active'), bytes);
    try {
      if (current) {
        if (fs.existsSync(this.file('active'))) fs.renameSync(this.file('active'), this.file('previous'));
        else writeFileDurable(this.file('previous'), current.bytes);
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
    writeFileDurable(this.file('candidate'), bytes);
  }

  removeCandidate(): void {
    fs.rmSync(this.file('candidate'), { force: true });
  }

  /** Keeps a rejected payload and its reason; only the newest `rejectedKeep` are kept. */
  keepRejected(bytes: Uint8Array, correlationId: string, reason: string, topic: string): void {
    if (this.rejectedKeep === 0) return;
    const dir = path.join(this.dir, 'rejected');
    const base = `${new Date().toISOString().replace(/[:.]/g, '-')}-${correlationId}`;
    try {
      fs.writeFileSync(path.join(dir, `${base}.bin`), bytes.subarray(0, this.maxBytes));
      fs.writeFileSync(path.join(dir, `${base}.json`), JSON.stringify({ reason, topic, bytes: bytes.byteLength, correlationId }, null, 2));
      const bins = fs.readdirSync(dir).filter((f) => f.endsWith('.bin')).sort();
      for (const old of bins.slice(0, Math.max(0, bins.length - this.rejectedKeep))) {
        fs.rmSync(path.join(dir, old), { force: true });
        fs.rmSync(path.join(dir, old.replace(/\.bin$/, '.json')), { force: true });
      }
    } catch (e) {
      log.warn('could not keep the rejected payload', { error: describeError(e) });
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
    writeFileDurable(path.join(this.dir, 'state.json'), JSON.stringify(fn(this.readState()), null, 2));
  }
}
