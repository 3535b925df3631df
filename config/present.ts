/** Presenting a config: secrets masked, keys in schema order (`edgehead config show`, the docs, error messages). */
import type { TSchema } from '@sinclair/typebox';
import { redactUrls } from '../base/redact';
import { isSecret, kindOf } from './env';
import { ConfigSchema } from './schema';

export const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);

/** A copy with every secret setting replaced by "***" (unset secrets stay unset) and passwords inside URLs masked. */
export function maskSecrets(value: unknown, schema: TSchema = ConfigSchema): unknown {
  if (isSecret(schema)) return value === undefined ? undefined : '***';
  if (typeof value === 'string') return redactUrls(value);
  const s = schema as Record<string, unknown>;
  if (kindOf(schema) === 'Object' && isPlainObject(value)) {
    const props = (s.properties ?? {}) as Record<string, TSchema>;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, props[k] ? maskSecrets(v, props[k]) : v]));
  }
  if (kindOf(schema) === 'Array' && Array.isArray(value) && s.items) return value.map((v) => maskSecrets(v, s.items as TSchema));
  return value;
}

/** A copy with keys in schema order (as the docs list them); unknown keys last. */
export function orderLikeSchema(value: unknown, schema: TSchema = ConfigSchema): unknown {
  if (kindOf(schema) !== 'Object' || !isPlainObject(value)) return value;
  const props = ((schema as Record<string, unknown>).properties ?? {}) as Record<string, TSchema>;
  const out: Record<string, unknown> = {};
  for (const [k, child] of Object.entries(props)) if (value[k] !== undefined) out[k] = orderLikeSchema(value[k], child);
  for (const [k, v] of Object.entries(value)) if (!(k in props)) out[k] = v;
  return out;
}
