/** How the CLI reports a failure: one line (plus the stack at debug level), and the exit code it means. */
import { describeError, isEdgeheadError } from '../base/errors';
import { logLevel, stderrPrefix } from '../base/log';
import { redactUrls } from '../base/redact';

/** 2 for bad arguments or configuration, 1 for everything else. */
export function exitCodeFor(e: unknown): number {
  return isEdgeheadError(e) && (e.code === 'BAD_ARGS' || e.code === 'BAD_CONFIG') ? 2 : 1;
}

export function reportFatal(e: unknown): void {
  process.stderr.write(`${stderrPrefix('error')}edgehead: error: ${redactUrls(describeError(e))}\n`);
  if (!isEdgeheadError(e) || logLevel() === 'debug') {
    if (logLevel() === 'debug') process.stderr.write(`${redactUrls(String((e as Error)?.stack ?? e))}\n`);
    else process.stderr.write('edgehead: (unexpected error; rerun with --verbose for the stack trace)\n');
  }
}
