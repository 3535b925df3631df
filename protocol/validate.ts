/**
 * Checking a value received from the wire against its TypeBox schema: every problem as `path: what is wrong`, one
 * line each, and parsing a JSON payload with a size limit before anything is allocated for it.
 */
import type { Static, TSchema } from '@sinclair/typebox';
import { type ValueError, ValueErrorType, Value } from '@sinclair/typebox/value';

/** `args.frames` from a JSON pointer `/args/frames`, with a root name. */
function pathOf(root: string, pointer: string): string {
  if (pointer === '') return root;
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, seg) => (/^\d+$/.test(seg) ? `${acc}[${seg}]` : `${acc}.${seg}`), root);
}

function got(v: unknown): string {
  if (v === undefined) return 'nothing';
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

function describe(e: ValueError, root: string): string {
  const where = pathOf(root, e.path);
  const s = e.schema as Record<string, unknown>;
  switch (e.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return `${where}: required`;
    case ValueErrorType.ObjectAdditionalProperties:
      return `${where}: unknown key`;
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.NumberMinimum:
      return `${where}: must be >= ${s.minimum} (got ${got(e.value)})`;
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.NumberMaximum:
      return `${where}: must be <= ${s.maximum} (got ${got(e.value)})`;
    case ValueErrorType.StringPattern:
      return `${where}: ${typeof s.patternMessage === 'string' ? s.patternMessage : `must match /${s.pattern}/`} (got ${got(e.value)})`;
    case ValueErrorType.StringMaxLength:
      return `${where}: must be at most ${s.maxLength} characters long`;
    case ValueErrorType.StringMinLength:
      return `${where}: must not be empty`;
    default:
      return `${where}: ${e.message.replace(/^Expected /, 'must be ').replace(/^./, (c) => c.toLowerCase())} (got ${got(e.value)})`;
  }
}

/** Every problem of `value` against `schema`, one line each (at most `max`), paths starting at `root`. */
export function schemaErrors(schema: TSchema, value: unknown, root: string, max = 10): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const e of Value.Errors(schema, value)) {
    // A union reports its own failure and each branch's: the union line alone says it.
    const line = describe(e, root);
    if (seen.has(line)) continue;
    seen.add(line);
    out.push(line);
    if (out.length >= max) break;
  }
  return out;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Parses a JSON payload of at most maxBytes and checks it against `schema`. Never throws; the error is one line
 * that names `what` and never echoes more than a few characters of the input.
 */
export function parseJsonPayload<S extends TSchema>(schema: S, payload: Uint8Array | string, what: string, maxBytes: number): Parsed<Static<S>> {
  const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength;
  if (size > maxBytes) return { ok: false, error: `${what}: too large (${size} bytes > limit ${maxBytes})` };
  let value: unknown;
  try {
    value = JSON.parse(typeof payload === 'string' ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  } catch {
    return { ok: false, error: `${what}: not JSON` };
  }
  const errors = schemaErrors(schema, value, what, 3);
  if (errors.length > 0) return { ok: false, error: errors.join('; ') };
  return { ok: true, value: value as Static<S> };
}
