/**
 * The HTTP endpoint Prometheus scrapes: GET (or HEAD) /metrics on `metrics.listen` and nothing else (404 for any
 * other path, 405 for other methods on /metrics). It binds only the address it is given; stop() closes it and any
 * keep-alive connection a scraper holds open.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeError } from '../../base/errors';
import { closeServer, listenOn, parseHostPort } from '../../base/http-server';
import { createLogger } from '../../base/log';
import type { AgentMetrics } from './metrics';

const log = createLogger('metrics');

/** "127.0.0.1:9464" -> host 127.0.0.1, port 9464; "[::1]:9464" -> host ::1 (config/schema.ts checks the form). */
export const parseListen = (listen: string): { host: string; port: number } => parseHostPort(listen, 'metrics.listen');

export class MetricsServer {
  private server: http.Server | undefined;

  constructor(
    private readonly listen: string,
    private readonly metrics: AgentMetrics,
  ) {}

  /** Binds; rejects with a one-line error saying what to do when the address cannot be used. */
  async start(): Promise<void> {
    const { host, port } = parseListen(this.listen);
    const server = http.createServer((req, res) => void this.handle(req, res));
    await listenOn(server, host, port, 'metrics.listen', 'choose another metrics.listen, or remove it to turn metrics off');
    server.on('error', (e) => log.warn('metrics server error', { error: describeError(e) }));
    this.server = server;
    log.info('serving Prometheus metrics', { url: `http://${this.listen.replace(/:\d+$/, '')}:${this.address!.port}/metrics` });
  }

  /** The bound address (port 0 in the config becomes the port the system chose); undefined before start. */
  get address(): AddressInfo | undefined {
    return (this.server?.address() as AddressInfo | null) ?? undefined;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await closeServer(server);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') return send(res, 404, 'not found: metrics are at /metrics\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, 405, 'method not allowed\n');
    }
    try {
      const body = await this.metrics.exposition();
      res.writeHead(200, { 'Content-Type': this.metrics.contentType, 'Content-Length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch (e) {
      log.warn('collecting metrics failed', { error: describeError(e) });
      send(res, 500, `collecting metrics failed: ${describeError(e)}\n`);
    }
  }
}

function send(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
