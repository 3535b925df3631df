/** Assertions shared by the tests. */
import assert from 'node:assert/strict';
import { EdgeheadError } from '../../base/errors';

/** `p` rejects with an EdgeheadError of this code whose one-line message matches `re`; returns the error. */
export async function rejectsWith(p: Promise<unknown>, code: string, re: RegExp): Promise<EdgeheadError> {
  let err: unknown;
  await assert.rejects(p, (e: unknown) => ((err = e), true));
  assert.ok(err instanceof EdgeheadError, `expected EdgeheadError, got ${err instanceof Error ? err.stack : String(err)}`);
  assert.equal(err.code, code, err.message);
  assert.match(err.message, re);
  assert.ok(!err.message.includes('\n'), 'one-line message');
  return err;
}

/**
 * Resolves with the first truthy value of `check`, polled every 20 ms. For conditions no event announces (a file
 * appearing, another process' state). `guardMs` only stops a hang: it is never what a test asserts.
 */
export async function waitUntil<T>(what: string, check: () => T | undefined | null | false, guardMs = 30_000): Promise<T> {
  const deadline = Date.now() + guardMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`still waiting for ${what} after ${guardMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
