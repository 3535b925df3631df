/** Small pieces the source implementations share: image signature checks, child-process handling. */
import type { ChildProcess } from 'node:child_process';

/** Sources check frames with the image prober's signature test (one definition of JPEG and PNG). */
export { imageKind } from '../image/probe';

/** "0 bytes" or "1234 bytes starting 3c 68 74 6d" — for errors about bytes that are not an image. */
export function describeBytes(bytes: Uint8Array): string {
  if (bytes.length === 0) return '0 bytes';
  const head = Array.from(bytes.subarray(0, 4), (v) => v.toString(16).padStart(2, '0')).join(' ');
  return `${bytes.length} bytes starting ${head}`;
}

/** Signals a child's whole process group (it was spawned detached, so its pid is the group id), falling back to the
 * child alone. Call it only before the child's 'close' event: the group may outlive the child (a grandchild holding
 * its pipes), but once 'close' has fired the ids may be reused. */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/** The last non-empty lines of a command's stderr, joined on one line, at most maxChars characters. */
export function stderrTail(stderr: string, lines = 3, maxChars = 300): string {
  const t = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-lines)
    .join(' | ');
  return t.length > maxChars ? '…' + t.slice(-(maxChars - 1)) : t;
}

/** Runs tasks one at a time, in call order (captures that share a temp file or a camera); a failure does not stop the line. */
export class OneAtATime {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** Resolves once every task queued so far has ended. */
  idle(): Promise<unknown> {
    return this.tail;
  }
}
