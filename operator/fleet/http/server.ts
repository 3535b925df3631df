/**
 * The fleet server's HTTP side: the JSON API and SSE (routes.ts, sse.ts), the dashboard (static.ts), /metrics and
 * /healthz, over node:http or node:https. No web framework: the API is a dozen fixed routes, and owning the request
 * path keeps every security decision in view here, in this order:
 *
 *   Host (loopback listen: loopback names only) -> cross-site guard (guard.ts) -> auth (auth.ts) -> route -> handler
 *
 * Authentication covers every route but /healthz. The one exception: with token auth only (no basic auth), the
 * dashboard's own files (/, /assets/*; the same bytes for everyone, no fleet data) are served without it, since the
 * page must load to show its token form; every /api route and /metrics still needs the token. With basic auth the page
 * needs it too (the browser prompts). Listening on a non-loopback address without auth is refused here as well as
 * by the config loader. A handler that throws answers a JSON error; it never takes the server down.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { type Clock, systemClock } from '../../../base/clock';
import { describeError, EdgeheadError } from '../../../base/errors';
import { closeServer, listenOn } from '../../../base/http-server';
import { createLogger } from '../../../base/log';
import { authenticate, challenge, type FleetAuth } from './auth';
import type { DatasetSource, FleetSource, Health, HistorySource, MetricsSource, RolloutControl, WebAssets } from './deps';
import { crossSiteRefusal, hostRefusal, isLoopbackHost } from './guard';
import { type ApiDeps, HttpError, matchRoute, sendJson, statusOf } from './routes';
import { SseHub } from './sse';
import { assetFor, COMMON_HEADERS, sendAsset } from './static';

const log = createLogger('fleet:http');

export interface FleetHttpOptions {
  fleet: FleetSource;
  history: HistorySource;
  rollouts: RolloutControl;
  metrics: MetricsSource;
  health: () => Health;
  /** tls: PEM file paths; the server speaks https when given. */
  listen: { host: string; port: number; tls?: { cert: string; key: string } };
  /** undefined: no auth (loopback only). */
  auth: FleetAuth | undefined;
  /** Largest head file POST /api/rollouts accepts (bytes). */
  maxUploadBytes: number;
  /** How often SSE device changes are coalesced (ms). Default 1000. */
  sseIntervalMs?: number;
  assets: WebAssets;
  clock?: Clock;
  /** SSE limits (defaults in sse.ts: heartbeat 15 s, 100 clients). */
  sse?: { heartbeatMs?: number; maxClients?: number };
  /** The labelling page's data folder (dataset.dir); undefined: its routes answer 404. */
  dataset?: DatasetSource;
}

export interface FleetHttpServer {
  /** Binds; resolves with the base URL (e.g. "http://127.0.0.1:8080/"); rejects with a one-line BAD_CONFIG error. */
  listen(): Promise<{ url: string }>;
  /** Ends the event streams and every open connection. */
  close(): Promise<void>;
}

export function createFleetHttpServer(opts: FleetHttpOptions): FleetHttpServer {
  return new FleetHttp(opts);
}

const hasAuth = (auth: FleetAuth | undefined): auth is FleetAuth => !!auth && (!!auth.token || !!auth.basic);

function readPem(file: string, setting: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new EdgeheadError('BAD_CONFIG', `${setting}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

class FleetHttp implements FleetHttpServer {
  private server: http.Server | undefined;
  private readonly sse: SseHub;
  private readonly api: ApiDeps;
  private readonly scheme: 'http' | 'https';
  private readonly loopback: boolean;

  constructor(private readonly opts: FleetHttpOptions) {
    const clock = opts.clock ?? systemClock;
    this.sse = new SseHub({ fleet: opts.fleet, rollouts: opts.rollouts, clock, intervalMs: opts.sseIntervalMs ?? 1000, ...opts.sse });
    this.api = { ...opts, sse: this.sse, now: () => clock.now() };
    this.scheme = opts.listen.tls ? 'https' : 'http';
    this.loopback = isLoopbackHost(opts.listen.host);
  }

  async listen(): Promise<{ url: string }> {
    const { host, port, tls } = this.opts.listen;
    if (!this.loopback && !hasAuth(this.opts.auth)) {
      throw new EdgeheadError('BAD_CONFIG', `listen ${host}: serving the fleet on a non-loopback address needs auth (auth.token, auth.tokenFile or auth.basicAuthFile); refusing to start without it`);
    }
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => void this.handle(req, res);
    const server = tls ? https.createServer({ cert: readPem(tls.cert, 'listen.tls.cert'), key: readPem(tls.key, 'listen.tls.key') }, handler) : http.createServer(handler);
    await listenOn(server, host, port, 'listen', 'choose another listen.host / listen.port (--listen)');
    server.on('error', (e) => log.warn('HTTP server error', { error: describeError(e) }));
    this.server = server;
    this.sse.start();
    const bound = (server.address() as AddressInfo).port;
    return { url: `${this.scheme}://${host.includes(':') ? `[${host}]` : host}:${bound}/` };
  }

  async close(): Promise<void> {
    this.sse.stop();
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await closeServer(server);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    for (const [k, v] of Object.entries(COMMON_HEADERS)) res.setHeader(k, v);
    try {
      await this.route(req, res);
    } catch (e) {
      this.fail(req, res, e);
    }
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const raw = req.url ?? '/';
    if (!raw.startsWith('/')) throw new HttpError(400, 'the request target must be a path');
    const url = new URL(`${this.scheme}://fleet${raw}`);
    const path = url.pathname;

    const badHost = hostRefusal(req.headers.host, this.loopback);
    if (badHost) throw new HttpError(403, badHost);
    const refusal = crossSiteRefusal({ method, path, headers: req.headers }, `${this.scheme}://${req.headers.host ?? ''}`);
    if (refusal) throw new HttpError(403, refusal);

    const auth = this.opts.auth;
    const asset = method === 'GET' || method === 'HEAD' ? assetFor(this.opts.assets, path) : undefined;
    const open = path === '/healthz' || (asset !== undefined && !auth?.basic);
    const who = authenticate(req.headers.authorization, auth);
    if (!who.ok && !open) throw new HttpError(401, 'authentication required', { 'WWW-Authenticate': challenge(auth!) });
    if (asset) return sendAsset(res, asset);

    const match = matchRoute(method, path);
    if (!match) throw new HttpError(404, `not found: ${path}`);
    if ('allow' in match) throw new HttpError(405, `method ${method} not allowed on ${path}`, { Allow: match.allow.join(', ') });
    await match.route.handler({ req, res, url, actor: who.ok ? who.actor : 'anonymous', params: match.params }, this.api);
  }

  /** Answers an error as JSON (or drops the connection when the response had started). */
  private fail(req: http.IncomingMessage, res: http.ServerResponse, e: unknown): void {
    const status = statusOf(e);
    if (status >= 500 && !(e instanceof HttpError)) {
      log.warn(`${req.method} ${req.url?.split('?')[0]} failed`, { error: describeError(e) });
      if (e instanceof Error) log.debug('stack', { stack: e.stack });
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const message = status === 500 && !(e instanceof EdgeheadError) ? `internal error: ${describeError(e)}` : describeError(e);
    const headers: Record<string, string> = e instanceof HttpError ? { ...e.headers } : {};
    // An unread request body (an upload refused early) is not drained: the connection closes after the answer.
    if (!req.complete) headers.Connection = 'close';
    sendJson(res, status, { error: message }, headers);
  }
}
