/**
 * The frame-source seam. One implementation per file in agent/sources/, chosen by config.source.type;
 * test/integration/sources-contract.test.ts runs the same assertions against every one of them.
 */
export interface Frame {
  /** Encoded image (JPEG or PNG) exactly as the source produced it. */
  bytes: Uint8Array;
  /** Epoch ms when the frame was captured (for stream sources: when its last byte arrived). */
  capturedAt: number;
  /** Short description of where it came from, e.g. "directory:fish/fish1.jpg", "webcam:/dev/video0". */
  origin: string;
  /** Milliseconds the capture() call took. */
  captureMs: number;
}

export interface FrameSource {
  /** "directory" | "webcam" | "stream" | "rpicam" | "http". */
  readonly type: string;
  /** Prepares the source (spawns a stream process, checks a folder...). Throws EdgeheadError on bad setup. */
  start(): Promise<void>;
  /** One frame now. Throws EdgeheadError('CAPTURE', ...) when no frame can be had; the source stays usable. */
  capture(): Promise<Frame>;
  /** Releases everything (processes, timers, sockets); the process must be able to exit afterwards. */
  stop(): Promise<void>;
}
