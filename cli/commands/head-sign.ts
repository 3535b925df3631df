/** `edgehead head sign --key KEY HEAD [--out FILE] [--not-after WHEN]`: add (or replace) a head's Ed25519 signature. */
import * as fs from 'node:fs';
import { defaultConfig } from '../../config/defaults';
import { readHeadFile, writeHeadFile } from '../../protocol/head/files';
import { signHead } from '../../protocol/head/signature';
import { correlationIdOf } from '../../protocol/messages';
import { EdgeheadError } from '../../base/errors';
import { sha256Hex } from '../../base/hash';
import { type Command, defineCommand, usageError } from '../args';
import type { CommandSpec } from '../spec';

export const HEAD_SIGN_SPEC = {
  path: 'head sign',
  purpose: 'sign a head file with an Ed25519 private key',
  positionals: [{ name: 'HEAD', description: 'the head file, signed in place (atomic rename) unless --out' }],
  options: {
    key: { type: 'string', arg: 'KEY', required: true, description: 'the private key (the .key file from `edgehead head keygen`)' },
    out: { type: 'string', arg: 'FILE', description: 'write the signed head here', default: 'HEAD, in place' },
    'not-after': { type: 'string', arg: 'WHEN', description: 'set manifest.notAfter: an ISO 8601 date-time with a time zone or a duration from now (90d, 12h, 30m)', default: 'keep an existing notAfter' },
  },
  details: `An existing signature is replaced. Prints the key id and the signed file's sha256 and correlation id (what
\`head push\` and the devices' head/state use to identify this exact payload). Devices whose clock is past notAfter
refuse the head ("expired"), so an old signed payload cannot be replayed forever.`,
  examples: ['edgehead head sign --key keys/edgehead-head.key shop.head', 'edgehead head sign --key keys/edgehead-head.key --not-after 90d --out shop-signed.head shop.head'],
} as const satisfies CommandSpec;

export const headSignCommand: Command = defineCommand(HEAD_SIGN_SPEC, async ({ values, positionals }) => {
  if (!values.key) throw new EdgeheadError('BAD_ARGS', 'head sign needs --key KEY (the .key file from `edgehead head keygen`)');
  if (positionals.length !== 1) throw usageError(HEAD_SIGN_SPEC, 'head sign takes exactly one head file');
  const file = positionals[0]!;
  const keyPem = readKey(values.key);
  const head = readHeadFile(file, defaultConfig().head.maxBytes);
  if (values['not-after'] !== undefined) head.manifest = { ...head.manifest, notAfter: notAfterArg(values['not-after'], new Date()) };
  const previous = head.manifest.signature?.keyId;
  let signed;
  try {
    signed = signHead(head, keyPem);
  } catch (e) {
    if (e instanceof EdgeheadError && e.code === 'BAD_ARGS') {
      const hint = /BEGIN PUBLIC KEY/.test(keyPem) ? 'this is a public key; sign with the .key file, the .pub goes on the devices' : e.hint;
      throw new EdgeheadError('BAD_ARGS', `${values.key}: ${e.message}`, { hint });
    }
    throw e;
  }
  const out = values.out ?? file;
  let bytes: Uint8Array;
  try {
    bytes = writeHeadFile(out, signed);
  } catch (e) {
    if (e instanceof EdgeheadError) throw e;
    throw new EdgeheadError('IO', `cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const sha = sha256Hex(bytes);
  const keyId = signed.manifest.signature!.keyId;
  process.stdout.write(
    [
      `signed ${signed.manifest.id} v${signed.manifest.version} with key ${keyId}${previous && previous !== keyId ? ` (replaced the signature of key ${previous})` : ''} -> ${out}`,
      `key id:         ${keyId}`,
      `sha256:         ${sha}`,
      `correlation id: ${correlationIdOf(sha)}`,
      ...(signed.manifest.notAfter ? [`not after:      ${signed.manifest.notAfter}`] : []),
    ].join('\n') + '\n',
  );
  return 0;
});

const UNIT_MS: Record<string, number> = { d: 86_400_000, h: 3_600_000, m: 60_000 };

/** --not-after: an ISO 8601 date-time with a time zone (checked like every manifest date), or 90d / 12h / 30m from `now`. */
export function notAfterArg(value: string, now: Date): string {
  const rel = /^(\d{1,6})([dhm])$/.exec(value);
  if (rel) {
    const ms = Number(rel[1]) * UNIT_MS[rel[2]!]!;
    if (ms === 0) throw new EdgeheadError('BAD_ARGS', `--not-after must be in the future (got "${value}")`);
    return new Date(now.getTime() + ms).toISOString();
  }
  const t = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/.test(value) || Number.isNaN(t)) {
    throw new EdgeheadError('BAD_ARGS', `--not-after must be an ISO 8601 date-time with a time zone (2025-06-30T00:00:00Z) or a duration like 90d, 12h, 30m (got "${value}")`);
  }
  if (t <= now.getTime()) throw new EdgeheadError('BAD_ARGS', `--not-after ${value} is already past: devices would refuse the head`);
  return value;
}

function readKey(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new EdgeheadError('BAD_ARGS', `cannot read signing key ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
