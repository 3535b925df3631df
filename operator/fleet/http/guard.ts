/**
 * Cross-site refusal, as pure functions of a request's method, path and headers (the server answers 403 with the
 * reason). A browser page of another site must not drive the fleet server through the operator's browser:
 *
 * - every request other than GET/HEAD must carry `X-Edgehead-Request: 1`. A custom header makes a cross-origin fetch
 *   send a CORS preflight (OPTIONS), which this server never answers with CORS headers, so the real request is never
 *   sent; an HTML form cannot set headers at all;
 * - an `Origin` header, when present, must be the server's own origin (scheme://host:port as the request addressed it);
 * - `Sec-Fetch-Site: cross-site` is refused, except for a top-level navigation to the dashboard page itself (a link
 *   to the dashboard from a wiki must still open it; the page then talks to the API same-origin);
 * - when the server listens on loopback only, the Host header must name a loopback address: a DNS-rebinding page
 *   (evil.example resolving to 127.0.0.1) is same-origin with itself, so only the Host name gives it away.
 */

export type HeaderBag = Record<string, string | string[] | undefined>;

export interface GuardRequest {
  method: string;
  /** The URL path, without the query. */
  path: string;
  headers: HeaderBag;
}

/** The header every state-changing request must carry (value "1"). */
export const REQUEST_HEADER = 'x-edgehead-request';

const SAFE_METHODS = new Set(['GET', 'HEAD']);

function header(h: HeaderBag, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Why this request is refused as cross-site, or undefined when it may proceed. `ownOrigin`: e.g. "http://127.0.0.1:8080". */
export function crossSiteRefusal(req: GuardRequest, ownOrigin: string): string | undefined {
  const site = header(req.headers, 'sec-fetch-site');
  const navigation = SAFE_METHODS.has(req.method) && req.path === '/' && header(req.headers, 'sec-fetch-mode') === 'navigate';
  if (site === 'cross-site' && !navigation) return 'cross-site request refused (Sec-Fetch-Site: cross-site)';
  const origin = header(req.headers, 'origin');
  if (origin !== undefined && origin !== ownOrigin) return `cross-origin request refused (Origin ${origin} is not ${ownOrigin})`;
  if (!SAFE_METHODS.has(req.method) && header(req.headers, REQUEST_HEADER) !== '1') {
    return `${req.method} requests need the header "X-Edgehead-Request: 1" (cross-site protection)`;
  }
  return undefined;
}

/** Whether a host name or address is loopback: localhost, 127.0.0.0/8, ::1. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || /^::ffff:127(\.\d{1,3}){3}$/.test(h);
}

/** The host name of a Host header ("127.0.0.1:8080" -> "127.0.0.1", "[::1]:80" -> "::1"). */
export function hostName(hostHeader: string): string {
  const m = /^\[([^\]]*)\](?::\d+)?$/.exec(hostHeader);
  return m ? m[1]! : hostHeader.replace(/:\d+$/, '');
}

/** Why the Host header is refused (DNS rebinding), or undefined. Only checked when the server listens on loopback. */
export function hostRefusal(hostHeader: string | undefined, loopbackListen: boolean): string | undefined {
  if (!loopbackListen) return undefined;
  if (!hostHeader) return 'the Host header is missing';
  if (!isLoopbackHost(hostName(hostHeader))) return `Host ${hostHeader} refused: this server listens on loopback and answers only loopback names (DNS rebinding protection)`;
  return undefined;
}
