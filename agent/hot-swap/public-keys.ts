/** head.publicKeys: inline PEM or PEM files, checked at start (a bad key is a configuration error). */
import { createPublicKey } from 'node:crypto';
import * as fs from 'node:fs';
import { EdgeheadError } from '../../base/errors';

export function loadPublicKeys(entries: readonly string[]): string[] {
  return entries.map((entry, i) => {
    const where = `head.publicKeys[${i}]`;
    let pem = entry;
    if (!entry.includes('-----BEGIN')) {
      try {
        pem = fs.readFileSync(entry, 'utf8');
      } catch (e) {
        throw new EdgeheadError('BAD_CONFIG', `${where}: cannot read ${entry}: ${(e as NodeJS.ErrnoException).code ?? e}`);
      }
    }
    if (/PRIVATE KEY/.test(pem)) {
      throw new EdgeheadError('BAD_CONFIG', `${where}: this is a PRIVATE key; devices must only hold the public key (the .pub file from edgehead head keygen)`);
    }
    try {
      const key = createPublicKey(pem);
      if (key.asymmetricKeyType !== 'ed25519') throw new Error(`a ${key.asymmetricKeyType} key, not ed25519`);
    } catch (e) {
      throw new EdgeheadError('BAD_CONFIG', `${where}: not an Ed25519 public key (${(e as Error).message})`);
    }
    return pem;
  });
}
