/**
 * Reading a request body within a size limit. A declared Content-Length over the limit is refused before a byte is
 * read; a chunked (or lying) body is counted as it streams and cut at the limit. Either way the caller answers 413
 * and closes the connection, so the rest of an oversized upload is never buffered.
 */
import type * as http from 'node:http';

export class BodyTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`the request body is larger than the limit of ${limit} bytes (rollouts.maxUploadBytes)`);
    this.name = 'BodyTooLarge';
  }
}

/** Whether the declared Content-Length already exceeds the limit. */
export function declaredTooLarge(req: http.IncomingMessage, limit: number): boolean {
  const declared = req.headers['content-length'];
  return declared !== undefined && Number(declared) > limit;
}

/** The whole body, or a BodyTooLarge rejection as soon as more than `limit` bytes arrived (reading stops there). */
export function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  if (declaredTooLarge(req, limit)) return Promise.reject(new BodyTooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.pause();
        reject(new BodyTooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks, size)));
    req.once('error', reject);
    req.once('aborted', () => reject(new Error('the client aborted the upload')));
  });
}
