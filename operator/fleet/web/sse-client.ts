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

/** A line end of the SSE format. */
const LINE_END = /\r\n|\n|\r/g;

/**
 * Incremental SSE parser: push() text as it arrives, get the complete messages. Only the new text is searched for
 * line ends and a line's pieces are joined once it is complete, so a large event (a batch of a thousand device rows
 * arriving in many chunks) costs linear time, not a rescan of everything buffered at every chunk.
 */
export class SseParser {
  /** The pieces of the line being received (chunks without a line end yet). */
  private partial: string[] = [];
  /** The last chunk ended with "\r": a "\n" starting the next one is the rest of that line end. */
  private afterCR = false;
  private event = '';
  private data: string[] = [];

  push(text: string): SseMessage[] {
    const out: SseMessage[] = [];
    if (text === '') return out;
    let start = this.afterCR && text.startsWith('\n') ? 1 : 0;
    this.afterCR = false;
    LINE_END.lastIndex = start;
    for (let m = LINE_END.exec(text); m; m = LINE_END.exec(text)) {
      this.partial.push(text.slice(start, m.index));
      this.line(this.partial.length === 1 ? this.partial[0]! : this.partial.join(''), out);
      this.partial = [];
      start = LINE_END.lastIndex;
      if (m[0] === '\r' && start === text.length) this.afterCR = true;
    }
    if (start < text.length) this.partial.push(text.slice(start));
    return out;
  }

  private line(line: string, out: SseMessage[]): void {
    if (line === '') {
      if (this.data.length) out.push({ event: this.event || 'message', data: this.data.join('\n') });
      this.event = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + (line.charCodeAt(colon + 1) === 32 ? 2 : 1));
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
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
