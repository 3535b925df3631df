/**
 * type: http — GET a JPEG/PNG snapshot URL (an IP camera's "snapshot.jpg") per frame with the global fetch, a timeout
 * covering the whole request (headers and body) and optional basic auth. Credentials written in the URL
 * (http://user:pass@cam/...) are moved to the Authorization header, since fetch refuses such URLs; they never appear in
 * logs, errors or the frame origin. The body is streamed and counted: past source.http.maxFrameBytes (declared or
 * actual) the download is cancelled, so memory stays bounded by that limit; stop() aborts a request in flight, body
 * included.
 */
import type { Static } from '@sinclair/typebox';
import type { SourceSchema } from '../../config/schema';
import { type Clock, systemClock } from '../../base/clock';
import { redactUrl } from '../../base/redact';
import { EdgeheadError, describeError } from '../../base/errors';
import { createLogger } from '../../base/log';
import { describeBytes, imageKind } from './common';
import type { Frame, FrameSource } from './source';

export type HttpSettings = Static<typeof SourceSchema>['http'];

const log = createLogger('source:http');

export class HttpSource implements FrameSource {
  readonly type = 'http';
  /** The URL without credentials. */
  readonly url: string;
  private readonly timeoutMs: number;
  private readonly maxFrameBytes: number;
  private readonly authorization: string | undefined;
  private readonly clock: Clock;
  private started = false;
  /** Aborts requests in flight at stop(). */
  private stopping = new AbortController();

  constructor(settings: HttpSettings, deps: { clock?: Clock } = {}) {
    if (!settings.url) {
      throw new EdgeheadError('BAD_CONFIG', 'source.http.url is required when source.type is http');
    }
    let url: URL;
    try {
      url = new URL(settings.url);
    } catch {
      throw new EdgeheadError('BAD_CONFIG', `source.http.url is not a valid URL: ${settings.url}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new EdgeheadError('BAD_CONFIG', `source.http.url must be http:// or https:// (got ${url.protocol}//)`);
    }
    let username = settings.username;
    let password = settings.password;
    if (url.username || url.password) {
      username ??= decodeURIComponent(url.username);
      password ??= decodeURIComponent(url.password);
      url.username = '';
      url.password = '';
    }
    this.url = url.href;
    this.timeoutMs = settings.timeoutMs;
    this.maxFrameBytes = settings.maxFrameBytes;
    this.authorization =
      username !== undefined || password !== undefined
        ? 'Basic ' + Buffer.from(`${username ?? ''}:${password ?? ''}`, 'utf8').toString('base64')
        : undefined;
    this.clock = deps.clock ?? systemClock;
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.stopping = new AbortController();
    this.started = true;
    log.debug('started', { url: this.url, auth: this.authorization !== undefined });
  }

  async capture(): Promise<Frame> {
    if (!this.started) throw new EdgeheadError('CAPTURE', 'http source is not started');
    const t0 = this.clock.now();
    const signal = AbortSignal.any([AbortSignal.timeout(this.timeoutMs), this.stopping.signal]);
    const what = `GET ${this.url}`;
    let bytes: Uint8Array;
    try {
      const res = await fetch(this.url, {
        signal,
        headers: { accept: 'image/jpeg, image/png;q=0.9, image/*;q=0.5', ...(this.authorization ? { authorization: this.authorization } : {}) },
        redirect: 'follow',
      });
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        throw new EdgeheadError('CAPTURE', `${what}: HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''}`, {
          hint: res.status === 401 || res.status === 403 ? 'check source.http.username and source.http.password' : undefined,
        });
      }
      const type = res.headers.get('content-type') ?? '';
      if (!/^image\//i.test(type.trim())) {
        await res.body?.cancel().catch(() => undefined);
        throw new EdgeheadError('CAPTURE', `${what}: expected an image, got content-type ${type ? `"${type}"` : '(none)'}`, {
          hint: 'source.http.url must be a snapshot URL returning one JPEG or PNG image',
        });
      }
      bytes = await this.readBody(res, what);
    } catch (e) {
      if (e instanceof EdgeheadError) throw e;
      if (this.stopping.signal.aborted) throw new EdgeheadError('CAPTURE', `${what}: aborted, the source was stopped`);
      if (signal.aborted) throw new EdgeheadError('CAPTURE', `${what}: no complete answer within ${this.timeoutMs} ms`, { cause: e });
      throw new EdgeheadError('CAPTURE', `${what} failed: ${describeCause(e)}`, { cause: e });
    }
    if (!imageKind(bytes)) {
      throw new EdgeheadError('CAPTURE', `${what}: the answer is not a JPEG or PNG image (${describeBytes(bytes)})`);
    }
    const capturedAt = this.clock.now();
    return { bytes, capturedAt, origin: `http:${redactUrl(this.url)}`, captureMs: capturedAt - t0 };
  }

  /**
   * The body, streamed and counted: a declared or actual size past maxFrameBytes cancels the download, so memory
   * stays bounded by the limit (arrayBuffer() would hold any size the server sends).
   */
  private async readBody(res: Response, what: string): Promise<Uint8Array> {
    const max = this.maxFrameBytes;
    const tooLarge = (size: string) =>
      new EdgeheadError('CAPTURE', `${what}: the snapshot is ${size}, over the limit of ${max} bytes (source.http.maxFrameBytes)`, {
        hint: 'point source.http.url at a smaller snapshot, or raise source.http.maxFrameBytes',
      });
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (declared > max) {
      await res.body?.cancel().catch(() => undefined);
      throw tooLarge(`${declared} bytes`);
    }
    if (!res.body) return new Uint8Array(0);
    const reader = res.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > max) {
        await reader.cancel().catch(() => undefined);
        throw tooLarge(`more than ${max} bytes`);
      }
      chunks.push(value);
    }
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.stopping.abort();
  }
}

/** fetch reports network errors as TypeError("fetch failed") with the real reason in `cause`. */
function describeCause(e: unknown): string {
  const cause = e instanceof Error ? (e as Error & { cause?: unknown }).cause : undefined;
  return cause !== undefined ? describeError(cause) : describeError(e);
}
