/** `edgehead head keygen --out DIR [--name NAME] [--force]`: an Ed25519 key pair for signing heads. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { generateKeyPair } from '../../protocol/head/signature';
import { writeFileDurable } from '../../base/durable-file';
import { EdgeheadError } from '../../base/errors';
import { ID_RE, ID_RULE } from '../../protocol/patterns';
import { type Command, defineCommand } from '../args';
import type { CommandSpec } from '../spec';

const DEFAULT_NAME = 'edgehead-head';
export const HEAD_KEYGEN_SPEC = {
  path: 'head keygen',
  purpose: 'create an Ed25519 key pair for signing heads',
  options: {
    out: { type: 'string', arg: 'DIR', required: true, description: 'the folder for NAME.key and NAME.pub (created 0700)' },
    name: { type: 'string', arg: 'NAME', description: 'the files\' base name', default: DEFAULT_NAME },
    force: { type: 'boolean', description: 'replace an existing pair (devices trusting the old .pub then reject heads signed with the new key)' },
  },
  details: `Writes DIR/NAME.key (private, PKCS#8 PEM, mode 0600: keep it on the signing machine) and DIR/NAME.pub (public,
SPKI PEM: install it on the devices). Existing files are never replaced unless --force is given.`,
  examples: ['edgehead head keygen --out keys/', 'edgehead head keygen --out keys/ --name shop-2025'],
} as const satisfies CommandSpec;

export const headKeygenCommand: Command = defineCommand(HEAD_KEYGEN_SPEC, async ({ values }) => {
  if (!values.out) throw new EdgeheadError('BAD_ARGS', 'head keygen needs --out DIR');
  const name = values.name ?? DEFAULT_NAME;
  if (!ID_RE.test(name)) throw new EdgeheadError('BAD_ARGS', `--name ${ID_RULE} (got ${JSON.stringify(name)})`);
  const keyFile = path.join(values.out, `${name}.key`);
  const pubFile = path.join(values.out, `${name}.pub`);
  if (!values.force) {
    const existing = [keyFile, pubFile].filter((f) => fs.existsSync(f));
    if (existing.length > 0) {
      throw new EdgeheadError('IO', `${existing.join(' and ')} already exist${existing.length === 1 ? 's' : ''}; not overwriting`, {
        hint: 'pass --force to replace the pair, or --name for another one; devices given a new .pub reject heads signed with the old key',
      });
    }
  }
  const pair = generateKeyPair();
  try {
    fs.mkdirSync(values.out, { recursive: true, mode: 0o700 });
    writeFileDurable(keyFile, pair.privateKeyPem, { mode: 0o600 }); // never readable by others, not even briefly
    writeFileDurable(pubFile, pair.publicKeyPem, { mode: 0o644 });
  } catch (e) {
    throw new EdgeheadError('IO', `cannot write the key pair to ${values.out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  process.stdout.write(
    [
      `wrote ${keyFile} (private key, mode 0600: keep it off the devices)`,
      `wrote ${pubFile} (public key)`,
      `key id: ${pair.keyId}`,
      `install ${name}.pub on each device as /etc/edgehead/keys/${name}.pub and add to its config:`,
      `  head.publicKeys: [/etc/edgehead/keys/${name}.pub]`,
      `then sign heads with: edgehead head sign --key ${keyFile} HEAD`,
    ].join('\n') + '\n',
  );
  return 0;
});
