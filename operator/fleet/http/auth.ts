/**
 * Authentication of the fleet server's HTTP requests: a bearer token and/or basic-auth users read from a file.
 *
 * The basic-auth file (auth.basicAuthFile) has one user per line, either `user:password` or
 * `user:{SHA256}<base64 of sha256(password)>` (the htpasswd -s style, without its SHA-1); blank lines and lines
 * starting with '#' are skipped. Every comparison of a secret is constant-time (crypto.timingSafeEqual over equal-length
 * digests, so not even the length leaks).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import { EdgeheadError } from '../../../base/errors';

/** Answers whether a password is right for one user (constant-time). */
export type PasswordVerifier = (password: string) => boolean;

/** What the server accepts: a token (Authorization: Bearer), basic-auth users, or both. */
export interface FleetAuth {
  token?: string;
  basic?: Map<string, PasswordVerifier>;
}

/** Who a request is from: the basic-auth user, "token" for the bearer token, "local" when no auth is configured. */
export type AuthResult = { ok: true; actor: string } | { ok: false };

export const AUTH_REALM = 'edgehead fleet';

const sha256 = (s: string | Buffer): Buffer => createHash('sha256').update(s).digest();

/** Constant-time string equality: compares the sha256 digests, which always have the same length. */
export function secretEquals(given: string, expected: string): boolean {
  return timingSafeEqual(sha256(given), sha256(expected));
}

/** The verifier of one `user:...` line's secret part. */
function verifierFor(secret: string): PasswordVerifier | undefined {
  const m = /^\{SHA256\}([A-Za-z0-9+/]{43}=)$/.exec(secret);
  if (m) {
    const digest = Buffer.from(m[1]!, 'base64');
    return (password) => timingSafeEqual(sha256(password), digest);
  }
  if (secret.startsWith('{')) return undefined;
  return (password) => secretEquals(password, secret);
}

/**
 * Parses the basic-auth file's text; `source` names it in errors. Every bad line is reported at once
 * ("fleet.htpasswd:3: ..."), and a file with no user is refused (it would lock everyone out silently).
 */
export function parseBasicAuth(text: string, source = 'basic-auth file'): Map<string, PasswordVerifier> {
  const users = new Map<string, PasswordVerifier>();
  const errors: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const where = `${source}:${i + 1}`;
    const colon = line.indexOf(':');
    const user = colon > 0 ? line.slice(0, colon) : '';
    const secret = colon > 0 ? line.slice(colon + 1) : '';
    if (!user || !secret) return void errors.push(`${where}: expected "user:password" or "user:{SHA256}<base64>"`);
    if (/\s/.test(user)) return void errors.push(`${where}: the user name "${user}" contains white space`);
    if (users.has(user)) return void errors.push(`${where}: user "${user}" is listed twice`);
    const verify = verifierFor(secret);
    if (!verify) return void errors.push(`${where}: unsupported hash for user "${user}" (use {SHA256}<base64 of sha256(password)> or a plain password)`);
    users.set(user, verify);
  });
  if (errors.length) throw new EdgeheadError('BAD_CONFIG', errors.join('; '));
  if (users.size === 0) throw new EdgeheadError('BAD_CONFIG', `${source}: no user in the file (one "user:password" per line)`);
  return users;
}

/** Reads and parses the basic-auth file; a one-line BAD_CONFIG error when it cannot be read or is malformed. */
export function readBasicAuthFile(file: string): Map<string, PasswordVerifier> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new EdgeheadError('BAD_CONFIG', `auth.basicAuthFile: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseBasicAuth(text, file);
}

/** The `{SHA256}` form of a password, for the basic-auth file (`edgehead fleet` docs show how to make it by hand). */
export function sha256Secret(password: string): string {
  return `{SHA256}${sha256(password).toString('base64')}`;
}

/**
 * Checks an Authorization header against the configured auth. With no auth configured every request is from "local".
 * A wrong user and a wrong password cost the same (an unknown user is checked against a dummy secret).
 */
export function authenticate(header: string | undefined, auth: FleetAuth | undefined): AuthResult {
  if (!auth || (!auth.token && !auth.basic)) return { ok: true, actor: 'local' };
  const m = /^(Bearer|Basic)\s+(\S+)\s*$/i.exec(header ?? '');
  if (!m) return { ok: false };
  const scheme = m[1]!.toLowerCase();
  if (scheme === 'bearer') return auth.token !== undefined && secretEquals(m[2]!, auth.token) ? { ok: true, actor: 'token' } : { ok: false };
  if (!auth.basic) return { ok: false };
  const decoded = Buffer.from(m[2]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return { ok: false };
  const user = decoded.slice(0, colon);
  const verify = auth.basic.get(user);
  const good = verify ? verify(decoded.slice(colon + 1)) : secretEquals(decoded.slice(colon + 1), '\u0000no such user');
  return verify && good ? { ok: true, actor: user } : { ok: false };
}

/** The WWW-Authenticate challenge of a 401: Basic (the browser prompts) when basic auth is configured, else Bearer. */
export function challenge(auth: FleetAuth): string {
  return auth.basic ? `Basic realm="${AUTH_REALM}", charset="UTF-8"` : `Bearer realm="${AUTH_REALM}"`;
}
