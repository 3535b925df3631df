/**
 * Canonical JSON: object keys sorted by UTF-16 code unit at every level, no whitespace, numbers as JSON.stringify
 * prints them, undefined members left out. A stable byte form for hashing (extractor fingerprints) and signing
 * (head manifests; docs/head-format.md specifies it for other languages).
 */
import { EdgeheadError } from './errors';

export interface CanonicalOptions {
  /** Name of the root value in error messages. */
  root?: string;
  maxDepth?: number;
  fail?: (message: string) => Error;
}

export function canonicalJson(value: unknown, opts: CanonicalOptions = {}): string {
  const fail = opts.fail ?? ((m: string) => new EdgeheadError('BAD_ARGS', m));
  const maxDepth = opts.maxDepth ?? 64;
  const canon = (value: unknown, path: string, depth: number): string => {
    if (depth > maxDepth) throw fail(`${path}: nested deeper than ${maxDepth - 2} levels`);
    if (value === null) return 'null';
    switch (typeof value) {
      case 'string':
      case 'boolean':
        return JSON.stringify(value);
      case 'number':
        if (!Number.isFinite(value)) throw fail(`${path}: ${value} is not representable in JSON`);
        return JSON.stringify(value);
      case 'object': {
        if (Array.isArray(value)) return '[' + value.map((v, i) => canon(v, `${path}[${i}]`, depth + 1)).join(',') + ']';
        const obj = value as Record<string, unknown>;
        const keys = Object.keys(obj)
          .filter((k) => obj[k] !== undefined)
          .sort();
        return '{' + keys.map((k) => JSON.stringify(k) + ':' + canon(obj[k], `${path}.${k}`, depth + 1)).join(',') + '}';
      }
      default:
        throw fail(`${path}: a ${typeof value} is not representable in JSON`);
    }
  };
  return canon(value, opts.root ?? 'value', 0);
}
