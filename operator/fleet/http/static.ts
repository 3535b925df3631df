/**
 * The dashboard's files and the security headers every response carries. The page is one index.html (hash routing:
 * #/, #/device/<id>, #/rollouts, #/label, so the server serves only "/"), one JS bundle and one CSS file; no inline script or
 * style, so the Content-Security-Policy can be `default-src 'self'` without exceptions for code. Images may be blob:
 * URLs (the snapshot is fetched with the Authorization header, then shown from a blob).
 */
import type * as http from 'node:http';
import type { WebAssets } from './deps';

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers on every response (the CSP too: harmless on JSON): no sniffing, no referrer, no framing. No CORS header, ever. */
export const COMMON_HEADERS: Record<string, string> = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Content-Security-Policy': CONTENT_SECURITY_POLICY,
};

/** The asset a GET path names: "/" is the page, "/assets/..." the bundle; undefined for anything else. */
export function assetFor(assets: WebAssets, path: string): { path: string; asset: NonNullable<ReturnType<WebAssets['get']>> } | undefined {
  const key = path === '/' || path === '/index.html' ? '/index.html' : path.startsWith('/assets/') ? path : undefined;
  const asset = key === undefined ? undefined : assets.get(key);
  return key && asset ? { path: key, asset } : undefined;
}

/** Answers a GET of a dashboard file. */
export function sendAsset(res: http.ServerResponse, found: NonNullable<ReturnType<typeof assetFor>>): void {
  const html = found.path === '/index.html';
  res.writeHead(200, {
    'Content-Type': found.asset.contentType,
    'Content-Length': found.asset.body.length,
    'Cache-Control': html ? 'no-store' : 'no-cache',
  });
  res.end(found.asset.body);
}
