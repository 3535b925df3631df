/** `edgehead head inspect HEAD [--json] [--key PUB...]`: manifest, checksum, size, correlation id and signature. */
import * as fs from 'node:fs';
import { defaultConfig } from '../../config/defaults';
import { readHeadFile } from '../../protocol/head/files';
import { verifyHead } from '../../protocol/head/signature';
import { correlationIdOf } from '../../protocol/messages';
import { EdgeheadError } from '../../base/errors';
import { sha256Hex } from '../../base/hash';
import { type Command, help, parseCommandArgs } from '../args';

const USAGE = `edgehead head inspect HEAD [--json] [--key PUB ...]
  Validates HEAD as a device would (format, schema, checksum: a broken file exits 1) and prints its manifest, size,
  correlation id (first 16 hex of sha256 of the file) and signature. With --key (repeatable), verifies the signature
  against those public keys: "valid (key ID)", "INVALID: reason" or "unsigned"; exits 1 unless valid.`;

export const headInspectCommand: Command = {
  name: 'inspect',
  summary: 'print a head file\'s manifest, checksum and signature status',
  usage: USAGE,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { json: { type: 'boolean' }, key: { type: 'string', multiple: true } }, USAGE);
    if (values.help) return help(USAGE);
    if (positionals.length !== 1) throw new EdgeheadError('BAD_ARGS', 'head inspect takes exactly one head file');
    const file = positionals[0]!;
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
  },
};

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
