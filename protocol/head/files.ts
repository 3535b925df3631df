/** Reading and writing head files on disk (the same bytes as the MQTT wire format). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileDurable } from '../../base/durable-file';
import { EdgeheadError } from '../../base/errors';
import { resourcePath } from '../../base/paths';
import { decodeHead, encodeHead, type HeadFile } from './format';

export const DEMO_HEAD_PATH = (): string => resourcePath('assets', 'heads', 'demo.head');

export function readHeadFile(file: string, maxBytes: number): HeadFile {
  return readHeadBytes(file, maxBytes).head;
}

/** The file's bytes (the wire format, as persisted and re-sent) and the decoded head. */
export function readHeadBytes(file: string, maxBytes: number): { bytes: Uint8Array; head: HeadFile } {
  const bytes = readHeadPayload(file, maxBytes);
  try {
    return { bytes, head: decodeHead(bytes, { maxBytes }) };
  } catch (e) {
    if (e instanceof EdgeheadError) throw new EdgeheadError(e.code, `${file}: ${e.message}`, { hint: e.hint });
    throw e;
  }
}

/** The file's bytes, undecoded; BAD_HEAD when it is larger than `maxBytes` (checked before reading) or unreadable. */
export function readHeadPayload(file: string, maxBytes: number): Uint8Array {
  try {
    const st = fs.statSync(file);
    if (st.size > maxBytes) throw new EdgeheadError('BAD_HEAD', `${file}: head file too large: ${st.size} bytes > limit ${maxBytes}`);
    return new Uint8Array(fs.readFileSync(file));
  } catch (e) {
    if (e instanceof EdgeheadError) throw e;
    throw new EdgeheadError('BAD_HEAD', `cannot read head file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export function writeHeadFile(file: string, head: HeadFile): Uint8Array {
  const bytes = encodeHead(head);
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  writeFileDurable(file, bytes);
  return bytes;
}
