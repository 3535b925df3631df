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
