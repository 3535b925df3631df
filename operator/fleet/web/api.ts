/**
 * The dashboard's calls to the fleet server. With token auth the token (typed once into the login form) lives in
 * sessionStorage and goes out as `Authorization: Bearer`; with basic auth the browser adds its own credentials. Every
 * state-changing request carries `X-Edgehead-Request: 1` (the server's cross-site guard). URLs are relative, so the
 * dashboard also works behind a reverse proxy under a path prefix.
 */

const TOKEN_KEY = 'edgehead.fleet.token';

/** The server answered 401; `bearer`: it wants the token (show the login form), else the browser handles basic auth. */
export class Unauthorized extends Error {
  constructor(readonly bearer: boolean) {
    super('not authorized');
  }
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function token(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(value: string | null): void {
  if (value === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, value);
}

export function authHeaders(): Record<string, string> {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

/** fetch with the auth header; Unauthorized on 401, ApiError (with the server's `error`) on any other failure. */
export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const method = (init.method ?? 'GET').toUpperCase();
  const headers = { ...authHeaders(), ...(method === 'GET' ? {} : { 'X-Edgehead-Request': '1' }), ...(init.headers as Record<string, string> | undefined) };
  const res = await fetch(path, { ...init, headers, credentials: 'same-origin', cache: 'no-store' });
  if (res.status === 401) throw new Unauthorized(/^bearer/i.test(res.headers.get('WWW-Authenticate') ?? ''));
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      const body = (await res.json()) as { error?: string };
      if (body.error) message = body.error;
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(res.status, message);
  }
  return res;
}

export async function getJson<T>(path: string): Promise<T> {
  return (await (await request(path)).json()) as T;
}

export async function postJson<T>(path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method: 'POST' };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'Content-Type': 'application/json' };
  }
  return (await (await request(path, init)).json()) as T;
}
