/**
 * head.publicKeys entries, checked where the config is checked (config/load.ts): each one an inline PEM or a PEM file
 * holding an Ed25519 public key. The agent reads them again at start (agent/hot-swap/public-keys.ts).
 */
import { createPublicKey } from 'node:crypto';

/** An inline PEM rather than a file path. */
export function isInlinePem(entry: string): boolean {
  return entry.includes('-----BEGIN');
}

/** What is wrong with a PEM text as a trusted head key; undefined when it is an Ed25519 public key. */
export function publicKeyProblem(pem: string): string | undefined {
  if (/PRIVATE KEY/.test(pem)) return 'this is a PRIVATE key; devices must only hold the public key (the .pub file from edgehead head keygen)';
  try {
    const key = createPublicKey(pem);
    if (key.asymmetricKeyType !== 'ed25519') return `not an Ed25519 public key (a ${key.asymmetricKeyType ?? 'symmetric'} key)`;
  } catch (e) {
    return `not an Ed25519 public key (${(e as Error).message.split('\n')[0]})`;
  }
  return undefined;
}
