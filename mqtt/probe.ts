/**
 * Is the configured broker reachable? For `edgehead doctor`: a TCP connection to the URL's host and port with a short
 * timeout (TLS, WebSocket and credentials are not checked: the agent's log says what fails there). With
 * mqtt.embeddedBroker "auto" and an mqtt:// URL on a loopback address, nothing listening is fine: the agent starts its
 * embedded broker there.
 */
import * as net from 'node:net';
import { redactUrl } from '../base/redact';
import { loopbackTarget } from './embedded-broker';

export interface BrokerProbe {
  /** The URL, password redacted. */
  url: string;
  /** ok: accepts TCP connections; embedded: nothing listens, the agent will start its own; failed: see detail. */
  status: 'ok' | 'embedded' | 'failed';
  detail: string;
}

const DEFAULT_PORTS: Record<string, number> = { 'mqtt:': 1883, 'mqtts:': 8883, 'ws:': 80, 'wss:': 443 };

export async function probeBroker(mqtt: { url: string; embeddedBroker: 'auto' | 'off' }, opts: { timeoutMs?: number } = {}): Promise<BrokerProbe> {
  const timeoutMs = opts.timeoutMs ?? 3000;
  const url = redactUrl(mqtt.url);
  let u: URL;
  try {
    u = new URL(mqtt.url);
  } catch {
    return { url, status: 'failed', detail: 'not a URL' };
  }
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = Number(u.port || DEFAULT_PORTS[u.protocol]);
  if (!host || !Number.isInteger(port)) return { url, status: 'failed', detail: `no host or port in ${url}` };
  const r = await tcpConnect(host, port, timeoutMs);
  const embedded = mqtt.embeddedBroker === 'auto' && loopbackTarget(mqtt.url) !== undefined;
  if (r.ok) {
    const tls = u.protocol === 'mqtts:' || u.protocol === 'wss:' ? 'TLS and credentials not checked' : 'credentials not checked';
    return { url, status: 'ok', detail: `${host}:${port} accepts TCP connections (${r.ms} ms; ${tls})${embedded ? ', so the agent uses it (no embedded broker)' : ''}` };
  }
  if (embedded && r.code === 'ECONNREFUSED') {
    return { url, status: 'embedded', detail: `nothing listens on ${host}:${port}: the agent starts its embedded broker there (mqtt.embeddedBroker: auto)` };
  }
  return { url, status: 'failed', detail: r.error };
}

function tcpConnect(host: string, port: number, timeoutMs: number): Promise<{ ok: true; ms: number } | { ok: false; error: string; code?: string }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (r: { ok: true; ms: number } | { ok: false; error: string; code?: string }) => {
      s.destroy();
      resolve(r);
    };
    s.setTimeout(timeoutMs, () => done({ ok: false, error: `${host}:${port}: no answer within ${timeoutMs} ms` }));
    s.once('connect', () => done({ ok: true, ms: Date.now() - t0 }));
    // e.g. "connect ECONNREFUSED 10.0.0.5:1883", "getaddrinfo ENOTFOUND broker.local"
    s.once('error', (e: NodeJS.ErrnoException) => done({ ok: false, error: e.message.split('\n')[0]!, code: e.code }));
  });
}
