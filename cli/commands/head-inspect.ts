/**
 * `edgehead head inspect HEAD [--json] [--key PUB...]`: manifest, checksum, size, correlation id and signature.
 * `edgehead head inspect --rejected FILE [--json]`: what a device kept of a rejected payload (its record, and what
 * its 4 KiB excerpt shows: header fields, the manifest's id, version and key id when the manifest fits in it).
 */
import * as fs from 'node:fs';
import { defaultConfig } from '../../config/defaults';
import * as path from 'node:path';
import { readHeadFile } from '../../protocol/head/files';
import { HEAD_HEADER_BYTES } from '../../protocol/head/format';
import { verifyHead } from '../../protocol/head/signature';
import { correlationIdOf } from '../../protocol/messages';
import { EdgeheadError } from '../../base/errors';
import { sha256Hex } from '../../base/hash';
import { type Command, defineCommand } from '../args';
import type { CommandSpec } from '../spec';

export const HEAD_INSPECT_SPEC = {
  path: 'head inspect',
  purpose: "print a head file's manifest, checksum and signature status",
  positionals: [{ name: 'HEAD', description: 'the head file (with --rejected: a .json record or .bin excerpt from <stateDir>/heads/rejected)' }],
  synopsis: ['[--json] [--key PUB ...] HEAD', '--rejected [--json] FILE'],
  options: {
    key: { type: 'string', multiple: true, arg: 'PUB', description: 'verify the signature against this Ed25519 public key (PEM); exit 1 unless valid' },
    rejected: { type: 'boolean', description: 'FILE is a rejected payload a device kept: show its record and what its excerpt shows' },
    json: { type: 'boolean', description: 'one JSON object on stdout' },
  },
  details: `Validates HEAD as a device would (format, schema, checksum: a broken file exits 1) and prints its manifest, size,
correlation id (first 16 hex of sha256 of the file) and signature. With --key, verifies the signature against those
public keys: "valid (key ID)", "INVALID: reason" or "unsigned"; exits 1 unless valid.
--rejected FILE: the reason, topic, size and sha256 of the whole payload, and what its first 4 KiB show (header
fields; the manifest's id, version and signing key id when the whole manifest fits in the excerpt).`,
  examples: ['edgehead head inspect my.head', 'edgehead head inspect --key keys/edgehead-head.pub my.head', 'edgehead head inspect --rejected /var/lib/edgehead/heads/rejected/1733500000000.json'],
} as const satisfies CommandSpec;

export const headInspectCommand: Command = defineCommand(HEAD_INSPECT_SPEC, async ({ values, positionals }) => {
  if (positionals.length !== 1) throw new EdgeheadError('BAD_ARGS', 'head inspect takes exactly one head file');
  const file = positionals[0]!;
  if (values.rejected) return inspectRejected(file, values.json === true);
  const keyFiles = values.key ?? [];
  const keys = keyFiles.map(readPublicKey);
  const head = readHeadFile(file, defaultConfig().head.maxBytes);
  const bytes = fs.readFileSync(file);
  const sha = sha256Hex(bytes);

  let signature: string;
  let verified: boolean | null = null;
  const sig = head.manifest.signature;
  if (keys.length === 0) {
    signature = sig ? `present (ed25519, key ${sig.keyId}; not verified: pass --key PUB)` : 'unsigned';
  } else {
    let r;
    try {
      r = verifyHead(head, keys);
    } catch (e) {
      // A trusted key that is not Ed25519: name the file instead of "trusted key #N".
      const m = /trusted key #(\d+)/.exec((e as Error).message);
      const name = m ? keyFiles[Number(m[1]) - 1] : undefined;
      if (e instanceof EdgeheadError && name !== undefined) throw new EdgeheadError(e.code, `--key ${name}: ${e.message.replace(/^trusted key #\d+ /, '')}`, { hint: e.hint });
      throw e;
    }
    verified = r.ok;
    signature = r.ok ? `valid (key ${r.keyId})` : sig === undefined ? 'unsigned' : `INVALID: ${r.reason}`;
  }

  const { testVectors, signature: _sig, ...manifest } = head.manifest;
  const summary = {
    ...manifest,
    testVectors: testVectors?.length ?? 0,
    bytes: bytes.byteLength,
    fileSha256: sha,
    correlationId: correlationIdOf(sha),
    checksum: 'ok (sha256 of the weights matches)',
    signature,
    ...(keys.length > 0 ? { verified } : {}),
  };
  if (values.json) {
    process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
  } else {
    for (const [k, v] of Object.entries(summary)) {
      if (k === 'verified') continue;
      process.stdout.write(`${k.padEnd(13)} ${typeof v === 'object' ? JSON.stringify(v) : v}\n`);
    }
  }
  return verified === false ? 1 : 0;
});

function readPublicKey(file: string): string {
  let pem: string;
  try {
    pem = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new EdgeheadError('BAD_ARGS', `--key: cannot read public key ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  // Node derives a public key from a private PEM; refuse it so private keys do not end up where public ones go.
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new EdgeheadError('BAD_ARGS', `--key ${file}: is a private key`, { hint: 'pass the .pub file; the .key stays on the signing machine' });
  }
  return pem;
}

/** The record and excerpt of a rejected payload (agent/hot-swap/head-store.ts keepRejected). */
function inspectRejected(file: string, json: boolean): number {
  const base = file.replace(/\.(json|bin)$/, '');
  let record: Record<string, unknown>;
  let excerpt: Buffer;
  try {
    record = JSON.parse(fs.readFileSync(`${base}.json`, 'utf8')) as Record<string, unknown>;
    excerpt = fs.readFileSync(`${base}.bin`);
  } catch (e) {
    throw new EdgeheadError('BAD_ARGS', `--rejected ${file}: cannot read ${path.basename(base)}.json and .bin: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { hint: 'pass a file from <stateDir>/heads/rejected' });
  }
  const summary: Record<string, unknown> = { ...record, excerpt: describeExcerpt(excerpt) };
  if (json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
  else for (const [k, v] of Object.entries(summary)) process.stdout.write(`${k.padEnd(13)} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}\n`);
  return 0;
}

function describeExcerpt(b: Buffer): Record<string, unknown> {
  const out: Record<string, unknown> = { bytes: b.byteLength };
  if (b.byteLength < HEAD_HEADER_BYTES) return { ...out, note: 'shorter than the 12-byte header', hex: b.toString('hex') };
  const magic = b.subarray(0, 4);
  const manifestLength = b.readUInt32LE(8);
  Object.assign(out, { magic: /^[\x20-\x7e]{4}$/.test(magic.toString('latin1')) ? magic.toString('latin1') : `0x${magic.toString('hex')}`, formatVersion: b.readUInt16LE(4), flags: b.readUInt16LE(6), manifestLength });
  const end = HEAD_HEADER_BYTES + manifestLength;
  if (end <= b.byteLength) {
    try {
      const m = JSON.parse(b.subarray(HEAD_HEADER_BYTES, end).toString('utf8')) as { id?: unknown; version?: unknown; notAfter?: unknown; signature?: { keyId?: unknown } };
      return { ...out, manifest: { id: m.id, version: m.version, notAfter: m.notAfter, keyId: m.signature?.keyId } };
    } catch {
      // not JSON: show the start below
    }
  }
  const text = b.subarray(HEAD_HEADER_BYTES, Math.min(end, b.byteLength, HEAD_HEADER_BYTES + 200)).toString('latin1').replace(/[^\x20-\x7e]/g, '.');
  return { ...out, manifestStart: text };
}
