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
  if (typeof v === 'number') return String(v);
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

const lengthOf = (v: unknown): number => (typeof v === 'string' || Array.isArray(v) ? v.length : 0);
const ARTICLE: Record<string, string> = { integer: 'an integer', array: 'an array', object: 'an object', tuple: 'an array', null: 'null' };
const kindOf = (s: Record<string, unknown>): string => ('const' in s ? JSON.stringify(s.const) : ARTICLE[String(s.type)] ?? `a ${String(s.type)}`);

/**
 * One line for one error. A schema node may carry `errorMessage` (how any failure of that value is described, e.g.
 * "must be an integer >= 1") or `patternMessage` (how a failed `pattern` is described); otherwise a generic line.
 */
function describe(e: ValueError, root: string): string {
  const where = pathOf(root, e.path);
  const s = e.schema as Record<string, unknown>;
  if (e.type === ValueErrorType.ObjectRequiredProperty) return `${where}: required`;
  if (e.type === ValueErrorType.ObjectAdditionalProperties) return `${where}: unknown key`;
  if (typeof s.errorMessage === 'string') return `${where}: ${s.errorMessage} (got ${got(e.value)})`;
  switch (e.type) {
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.NumberMinimum:
      return `${where}: must be >= ${s.minimum} (got ${got(e.value)})`;
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.NumberMaximum:
      return `${where}: must be <= ${s.maximum} (got ${got(e.value)})`;
    case ValueErrorType.StringPattern:
      return `${where}: ${typeof s.patternMessage === 'string' ? s.patternMessage : `must match /${s.pattern}/`} (got ${got(e.value)})`;
    case ValueErrorType.StringMaxLength:
      return `${where}: must be at most ${s.maxLength} characters long (got ${lengthOf(e.value)})`;
    case ValueErrorType.StringMinLength:
      return s.minLength === 1 ? `${where}: must not be empty` : `${where}: must be at least ${s.minLength} characters long (got ${lengthOf(e.value)})`;
    case ValueErrorType.ArrayMinItems:
      return `${where}: must have at least ${s.minItems} items (got ${lengthOf(e.value)})`;
    case ValueErrorType.ArrayMaxItems:
      return `${where}: must have at most ${s.maxItems} items (got ${lengthOf(e.value)})`;
    case ValueErrorType.TupleLength:
      return `${where}: must have exactly ${s.maxItems} items (got ${lengthOf(e.value)})`;
    case ValueErrorType.Literal:
      return `${where}: must be ${JSON.stringify(s.const)} (got ${got(e.value)})`;
    case ValueErrorType.Union:
      return `${where}: must be one of ${(s.anyOf as Record<string, unknown>[]).map(kindOf).join(', ')} (got ${got(e.value)})`;
    default: {
      const kind = /^Expected (\w+)$/.exec(e.message)?.[1];
      const what = kind === undefined ? e.message.replace(/^Expected /, '').replace(/^./, (c) => c.toLowerCase()) : (ARTICLE[kind] ?? `a ${kind}`);
      return `${where}: must be ${what} (got ${got(e.value)})`;
    }
  }
}

/** Every problem of `value` against `schema`, one line each (at most `max`), paths starting at `root`. */
export function schemaErrors(schema: TSchema, value: unknown, root: string, max = 10): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const missing: string[] = [];
  for (const e of Value.Errors(schema, value)) {
    // A missing key is reported as "required" first, then checked as undefined: "required" alone says it.
    if (missing.some((p) => e.path === p || e.path.startsWith(`${p}/`))) continue;
    if (e.type === ValueErrorType.ObjectRequiredProperty) missing.push(e.path);
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
