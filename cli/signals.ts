/**
 * How the long-running commands (`run`, `fleet serve`) end: SIGTERM/SIGINT call `stop()` once, exit 0 when it
 * resolves (1 when it fails), and force the exit when it takes longer than FORCED_EXIT_MS. An unhandled rejection
 * is logged, never fatal.
 */
import { describeError } from '../base/errors';
import type { Logger } from '../base/log';
import { reportFatal } from './report';

export const FORCED_EXIT_MS = 5000;

/**
 * `stop` reads the component at signal time (it may still be starting: then it resolves at once). Returns the same
 * shutdown for other reasons: `shutdown(reason, 1)` stops cleanly, then exits 1 (the service manager restarts it).
 */
export function stopOnSignals(
  what: string,
  log: Logger,
  stop: () => Promise<void>,
  beforeExit: () => void = () => undefined,
): (reason: string, exitCode?: number) => void {
  let stopping = false;
  const shutdown = (reason: string, exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', reason.startsWith('SIG') ? { signal: reason } : { reason, exitCode });
    setTimeout(() => {
      process.stderr.write(`edgehead: ${what} did not stop within ${FORCED_EXIT_MS / 1000} s; forcing exit\n`);
      process.exit(1);
    }, FORCED_EXIT_MS).unref();
    stop().then(
      () => {
        beforeExit();
        process.exit(exitCode);
      },
      (e) => {
        reportFatal(e);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('unhandledRejection', (e) => log.error('unhandled rejection (continuing)', { error: describeError(e) }));
  return shutdown;
}
