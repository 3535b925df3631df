/**
 * Typed errors. An EdgeheadError is an expected failure (bad input, bad config, missing file): the CLI prints its
 * one-line message (and hint) without a stack trace, and long-running code logs it and carries on.
 * Anything else is a bug and is shown with its stack at debug level.
 */
export type ErrorCode =
  | 'BAD_IMAGE'
  | 'IMAGE_TOO_LARGE'
  | 'BAD_HEAD'
  | 'HEAD_MISMATCH'
  | 'MODEL_NOT_FOUND'
  | 'BAD_MODEL'
  | 'DOWNLOAD_FAILED'
  | 'BAD_ARGS'
  | 'BAD_CONFIG'
  | 'BACKEND'
  | 'IO'
  | 'CAPTURE'
  | 'SNAPSHOT'
  | 'MQTT';

export class EdgeheadError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;
  constructor(code: ErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EdgeheadError';
    this.code = code;
    this.hint = options.hint;
  }
}

export function isEdgeheadError(e: unknown): e is EdgeheadError {
  return e instanceof EdgeheadError;
}

/** A short, single-line description of any thrown value. */
export function describeError(e: unknown): string {
  if (e instanceof EdgeheadError) return e.hint ? `${e.message} (${e.hint})` : e.message;
  if (e instanceof Error) return e.message.split('\n')[0] ?? String(e);
  return String(e);
}
