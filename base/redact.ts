/**
 * Credentials never reach a log, a config printout, an error line or a published payload: URLs are shown with the
 * password replaced by "***" (the user name stays, so a person can still tell which account is used).
 */

/** `scheme://user:***@host/...` for any URL with a password; other strings unchanged. */
export function redactUrl(url: string): string {
  return redactUrls(url);
}

// scheme://user:password@  (user may be empty; the password runs to the last "@" before the host part)
const CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^\s/@:]*):([^\s/]*)@/gi;

/** Every URL with a password inside `text`, redacted. */
export function redactUrls(text: string): string {
  return text.replace(CREDENTIALS, (_m, userPart: string) => `${userPart}:***@`);
}
