/**
 * The event stream (GET api/events) read with fetch streaming rather than EventSource, because EventSource cannot
 * send the Authorization header. The parser follows the SSE format (event:, data:, comments, CRLF or LF); the stream
 * reconnects with a growing delay (1 s .. 30 s) and reports each (re)connection so the caller can reload what it missed.
 */
import { request, Unauthorized } from './api';

export interface SseMessage {
  event: string;
  data: string;
}

/** Incremental SSE parser: push() text as it arrives, get the complete messages. */
export class SseParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];

  push(text: string): SseMessage[] {
    this.buffer += text;
    const out: SseMessage[] = [];
    for (;;) {
      const nl = this.buffer.search(/\r\n|\n|\r/);
      if (nl < 0) break;
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + (this.buffer.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') {
        if (this.data.length) out.push({ event: this.event || 'message', data: this.data.join('\n') });
        this.event = '';
        this.data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') this.event = value;
      else if (field === 'data') this.data.push(value);
    }
    return out;
  }
}

export interface EventStreamHandlers {
  message(m: SseMessage): void;
  /** true: (re)connected (reload the state); false: lost, retrying. */
  state(connected: boolean): void;
  unauthorized(e: Unauthorized): void;
}

/** Opens the stream and keeps it open until close(). */
export function openEventStream(path: string, on: EventStreamHandlers): { close(): void } {
  let closed = false;
  let controller: AbortController | undefined;
  let delay = 1000;
  const run = async (): Promise<void> => {
    while (!closed) {
      controller = new AbortController();
      try {
        const res = await request(path, { signal: controller.signal, headers: { Accept: 'text/event-stream' } });
        const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
        const parser = new SseParser();
        on.state(true);
        delay = 1000;
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const m of parser.push(value)) on.message(m);
        }
      } catch (e) {
        if (closed) return;
        if (e instanceof Unauthorized) return on.unauthorized(e);
      }
      if (closed) return;
      on.state(false);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 30_000);
    }
  };
  void run();
  return {
    close() {
      closed = true;
      controller?.abort();
    },
  };
}
