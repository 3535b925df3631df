/** Frame sources: one implementation per file, chosen by config.source.type. */
import type { Config } from '../../config/schema';
import type { Clock } from '../../base/clock';
import { EdgeheadError } from '../../base/errors';
import { DirectorySource } from './directory';
import { HttpSource } from './http';
import { RpicamSource } from './rpicam';
import type { FrameSource } from './source';
import { StreamSource } from './stream';
import { WebcamSource } from './webcam';

export type { Frame, FrameSource } from './source';
export { DirectorySource, type DirectorySettings } from './directory';
export { WebcamSource, type WebcamSettings } from './webcam';
export { StreamSource, type StreamSettings, type StreamEvent } from './stream';
export { RpicamSource, type RpicamSettings, type RpicamEvent } from './rpicam';
export { HttpSource, type HttpSettings } from './http';
export { MjpegParser, type MjpegStats } from './mjpeg-parser';

export interface SourceDeps {
  clock?: Clock;
}

/** The source config.source.type names, built from its own settings section. Throws BAD_CONFIG for settings that cannot
 * work (e.g. type http without a url); other checks happen at start(). */
export function createFrameSource(cfg: Config['source'], deps: SourceDeps = {}): FrameSource {
  switch (cfg.type) {
    case 'directory':
      return new DirectorySource(cfg.directory, deps);
    case 'webcam':
      return new WebcamSource(cfg.webcam, deps);
    case 'stream':
      return new StreamSource(cfg.stream, deps);
    case 'rpicam':
      return new RpicamSource(cfg.rpicam, deps);
    case 'http':
      if (!cfg.http.url) throw new EdgeheadError('BAD_CONFIG', 'source.http.url is required when source.type is http');
      return new HttpSource(cfg.http, deps);
    default: {
      const unknown: never = cfg.type;
      throw new EdgeheadError('BAD_CONFIG', `source.type: unknown source "${String(unknown)}"`);
    }
  }
}
