/**
 * The JSON API (model.ts API_ROUTES) as a table of method + path pattern -> handler. A path that matches with
 * another method is a 405 with Allow; errors are JSON `{error}` with their status (HttpError here, EdgeheadError from
 * the rollouts: BAD_HEAD 400, BAD_ARGS 422, MQTT 503). Authentication and cross-site checks happen before any of this.
 */
import type * as http from 'node:http';
import { EdgeheadError } from '../../../base/errors';
import type { RolloutRequest, RolloutTarget } from '../model';
import { BodyTooLarge, readBody } from './body';
import type { DatasetSource, FleetSource, Health, HistorySource, MetricsSource, RolloutControl } from './deps';
import type { SseHub } from './sse';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export interface ApiDeps {
  fleet: FleetSource;
  history: HistorySource;
  rollouts: RolloutControl;
  metrics: MetricsSource;
  health: () => Health;
  sse: SseHub;
  maxUploadBytes: number;
  now: () => number;
  /** The labelling page's data folder; undefined when dataset.dir is not set (its routes answer 404). */
  dataset?: DatasetSource;
}

export interface RouteContext {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  url: URL;
  /** The authenticated user ("token" for the bearer token, "local" without auth). */
  actor: string;
  /** Decoded path parameters, in order. */
  params: string[];
}

type Handler = (ctx: RouteContext, deps: ApiDeps) => Promise<void> | void;

interface Route {
  method: 'GET' | 'POST';
  pattern: RegExp;
  handler: Handler;
}

/** Largest JSON body of a halt request ({"reason": "..."}). */
const MAX_JSON_BODY = 16 * 1024;
/** Largest JSON body of a label request (5000 names of ~100 characters). */
const MAX_LABEL_BODY = 512 * 1024;

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store', ...headers });
  res.end(text);
}

/** The HTTP status of an error thrown by a handler or a dependency. */
export function statusOf(e: unknown): number {
  if (e instanceof HttpError) return e.status;
  if (e instanceof BodyTooLarge) return 413;
  if (e instanceof EdgeheadError) {
    if (e.code === 'BAD_HEAD' || e.code === 'HEAD_MISMATCH' || e.code === 'BAD_CONFIG') return 400;
    if (e.code === 'BAD_ARGS') return 422;
    if (e.code === 'MQTT') return 503;
  }
  return 500;
}

function parseList(value: string, what: string): string[] {
  const items = value.split(',').map((s) => s.trim());
  if (items.length === 0 || items.some((s) => s === '')) throw new HttpError(400, `${what}: expected a comma-separated list of device ids (got "${value}")`);
  return [...new Set(items)];
}

function parseNumber(value: string, what: string, min: number, max: number): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new HttpError(400, `${what}: must be a number from ${min} to ${max} (got "${value}")`);
  return n;
}

const ROLLOUT_PARAMS = new Set(['target', 'canary', 'canaryPercent', 'minAgreement', 'stageTimeoutSec']);

/**
 * The rollout request of POST /api/rollouts?target=all|group:G|devices:a,b[&canary=a,b|&canaryPercent=N]
 * [&minAgreement=X][&stageTimeoutSec=S]; HttpError 400 naming the first bad parameter (unknown ones included).
 */
export function parseRolloutQuery(q: URLSearchParams, actor: string): RolloutRequest {
  for (const k of q.keys()) if (!ROLLOUT_PARAMS.has(k)) throw new HttpError(400, `unknown parameter "${k}" (known: ${[...ROLLOUT_PARAMS].join(', ')})`);
  const rawTarget = q.get('target');
  let target: RolloutTarget;
  if (rawTarget === null) throw new HttpError(400, 'target: missing (all, group:<group> or devices:<id>,<id>...)');
  if (rawTarget === 'all') target = { kind: 'all' };
  else if (rawTarget.startsWith('group:') && rawTarget.length > 6) target = { kind: 'group', group: rawTarget.slice(6) };
  else if (rawTarget.startsWith('devices:')) target = { kind: 'devices', devices: parseList(rawTarget.slice(8), 'target') };
  else throw new HttpError(400, `target: expected all, group:<group> or devices:<id>,<id>... (got "${rawTarget}")`);
  const req: RolloutRequest = { target, actor };
  const canary = q.get('canary');
  const percent = q.get('canaryPercent');
  if (canary !== null && percent !== null) throw new HttpError(400, 'canary and canaryPercent: give one or the other');
  if (canary !== null) req.canary = { devices: parseList(canary, 'canary') };
  if (percent !== null) req.canary = { percent: parseNumber(percent, 'canaryPercent', 0.01, 100) };
  const agreement = q.get('minAgreement');
  if (agreement !== null) req.minAgreement = parseNumber(agreement, 'minAgreement', 0, 1);
  const timeout = q.get('stageTimeoutSec');
  if (timeout !== null) req.stageTimeoutSec = parseNumber(timeout, 'stageTimeoutSec', 1, 7 * 24 * 3600);
  return req;
}

function deviceOr404(deps: ApiDeps, id: string) {
  const row = deps.fleet.row(id);
  if (!row) throw new HttpError(404, `no device "${id}" in the fleet`);
  return row;
}

function rolloutOr404(deps: ApiDeps, id: string) {
  const view = deps.rollouts.get(id);
  if (!view) throw new HttpError(404, `no rollout "${id}"`);
  return view;
}

/** The optional JSON body of a halt: {"reason": "..."}. */
async function haltReason(req: http.IncomingMessage): Promise<string | undefined> {
  const body = await readBody(req, MAX_JSON_BODY);
  if (body.length === 0) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'the body must be JSON: {"reason": "..."} (or empty)');
  }
  const reason = (parsed as { reason?: unknown } | null)?.reason;
  if (reason === undefined) return undefined;
  if (typeof reason !== 'string' || reason.length > 500) throw new HttpError(400, 'reason: must be a string of at most 500 characters');
  return reason;
}

function datasetOr404(deps: ApiDeps): DatasetSource {
  if (!deps.dataset) throw new HttpError(404, 'labelling is off: this server has no dataset folder (set dataset.dir in its config, or EDGEHEAD_FLEET_DATASET_DIR)');
  return deps.dataset;
}

/** The body of a label/unlabel request: {"samples": [name...], "class": "..."} (class only when `withClass`). */
async function labelRequest(req: http.IncomingMessage, withClass: boolean): Promise<{ samples: string[]; className: string }> {
  const shape = withClass ? '{"samples": ["<name>", ...], "class": "<class>"}' : '{"samples": ["<name>", ...]}';
  let parsed: unknown;
  try {
    parsed = JSON.parse((await readBody(req, MAX_LABEL_BODY)).toString('utf8'));
  } catch (e) {
    if (e instanceof BodyTooLarge) throw new HttpError(413, `the body is larger than ${MAX_LABEL_BODY} bytes: send fewer samples per request`);
    throw new HttpError(400, `the body must be JSON: ${shape}`);
  }
  const body = (parsed ?? {}) as { samples?: unknown; class?: unknown };
  if (!Array.isArray(body.samples) || body.samples.some((s) => typeof s !== 'string')) throw new HttpError(400, `samples: must be an array of sample names (${shape})`);
  if (withClass && typeof body.class !== 'string') throw new HttpError(400, `class: must be a string (${shape})`);
  return { samples: body.samples as string[], className: withClass ? (body.class as string) : '' };
}

const ID = '([^/]+)';

export const ROUTES: Route[] = [
  { method: 'GET', pattern: /^\/api\/devices$/, handler: (c, d) => sendJson(c.res, 200, { devices: d.fleet.rows(), now: d.now() }) },
  {
    method: 'GET',
    pattern: new RegExp(`^/api/devices/${ID}$`),
    handler: (c, d) => sendJson(c.res, 200, { device: deviceOr404(d, c.params[0]!), history: d.history.get(c.params[0]!) }),
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/api/devices/${ID}/snapshot$`),
    handler: (c, d) => {
      const jpeg = d.fleet.snapshot(c.params[0]!);
      if (!jpeg) throw new HttpError(404, `no snapshot of "${c.params[0]}" received yet`);
      c.res.writeHead(200, { 'Content-Type': 'image/jpeg', 'Content-Length': jpeg.length, 'Cache-Control': 'no-store' });
      c.res.end(jpeg);
    },
  },
  {
    method: 'GET',
    pattern: /^\/api\/events$/,
    handler: (c, d) => {
      if (c.req.method === 'HEAD') return void c.res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8' }).end();
      if (!d.sse.accept(c.req, c.res)) throw new HttpError(503, 'too many event streams are open; close another dashboard tab', { 'Retry-After': '10' });
    },
  },
  { method: 'GET', pattern: /^\/api\/rollouts$/, handler: (c, d) => sendJson(c.res, 200, { rollouts: d.rollouts.list() }) },
  { method: 'GET', pattern: new RegExp(`^/api/rollouts/${ID}$`), handler: (c, d) => sendJson(c.res, 200, rolloutOr404(d, c.params[0]!)) },
  {
    method: 'POST',
    pattern: /^\/api\/rollouts$/,
    handler: async (c, d) => {
      const request = parseRolloutQuery(c.url.searchParams, c.actor);
      const bytes = await readBody(c.req, d.maxUploadBytes);
      if (bytes.length === 0) throw new HttpError(400, 'the body is empty: POST the head file (application/octet-stream)');
      sendJson(c.res, 201, await d.rollouts.start(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), request));
    },
  },
  {
    method: 'POST',
    pattern: new RegExp(`^/api/rollouts/${ID}/halt$`),
    handler: async (c, d) => {
      rolloutOr404(d, c.params[0]!);
      sendJson(c.res, 200, await d.rollouts.halt(c.params[0]!, c.actor, await haltReason(c.req)));
    },
  },
  {
    method: 'POST',
    pattern: new RegExp(`^/api/rollouts/${ID}/rollback$`),
    handler: async (c, d) => {
      rolloutOr404(d, c.params[0]!);
      sendJson(c.res, 200, await d.rollouts.rollback(c.params[0]!, c.actor));
    },
  },
  {
    method: 'GET',
    pattern: /^\/api\/dataset$/,
    handler: async (c, d) => sendJson(c.res, 200, await datasetOr404(d).view(c.url.searchParams.get('class') ?? undefined)),
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/api/dataset/image/${ID}$`),
    handler: async (c, d) => {
      const jpeg = await datasetOr404(d).image(c.params[0]!);
      if (!jpeg) throw new HttpError(404, `no picture of sample "${c.params[0]}" (unknown, or collected as features only)`);
      c.res.writeHead(200, { 'Content-Type': 'image/jpeg', 'Content-Length': jpeg.length, 'Cache-Control': 'no-cache' });
      c.res.end(jpeg);
    },
  },
  {
    method: 'POST',
    pattern: /^\/api\/dataset\/label$/,
    handler: async (c, d) => {
      const dataset = datasetOr404(d);
      const { samples, className } = await labelRequest(c.req, true);
      sendJson(c.res, 200, await dataset.label(samples, className));
    },
  },
  {
    method: 'POST',
    pattern: /^\/api\/dataset\/unlabel$/,
    handler: async (c, d) => {
      const dataset = datasetOr404(d);
      const { samples } = await labelRequest(c.req, false);
      sendJson(c.res, 200, await dataset.unlabel(samples));
    },
  },
  {
    method: 'GET',
    pattern: /^\/metrics$/,
    handler: async (c, d) => {
      const text = await d.metrics.metrics();
      c.res.writeHead(200, { 'Content-Type': d.metrics.contentType, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
      c.res.end(text);
    },
  },
  {
    method: 'GET',
    pattern: /^\/healthz$/,
    handler: (c, d) => {
      const h = d.health();
      sendJson(c.res, h.ok ? 200 : 503, h);
    },
  },
];

/** The route for a method and path: the handler with its decoded parameters, 'method' (405) or undefined (404). */
export function matchRoute(method: string, path: string): { route: Route; params: string[] } | { allow: string[] } | undefined {
  const allow: string[] = [];
  for (const route of ROUTES) {
    const m = route.pattern.exec(path);
    if (!m) continue;
    const wanted = method === 'HEAD' ? 'GET' : method;
    if (route.method !== wanted) {
      allow.push(route.method === 'GET' ? 'GET, HEAD' : route.method);
      continue;
    }
    let params: string[];
    try {
      params = m.slice(1).map((p) => decodeURIComponent(p));
    } catch {
      throw new HttpError(400, `bad percent-encoding in ${path}`);
    }
    return { route, params };
  }
  return allow.length ? { allow } : undefined;
}
