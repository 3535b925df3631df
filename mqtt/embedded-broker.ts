/**
 * The zero-config broker: aedes, in-process, on a loopback address. Started only when mqtt.embeddedBroker is
 * "auto", the URL is mqtt:// on a loopback host, and nothing is listening there yet (a real broker wins).
 */
import * as net from 'node:net';
import { Aedes } from 'aedes';
import { describeError } from '../base/errors';
import { createLogger } from '../base/log';

const log = createLogger('broker');

export interface EmbeddedBroker {
  host: string;
  port: number;
  close(): Promise<void>;
}

export function loopbackTarget(url: string): { host: string; port: number } | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (u.protocol !== 'mqtt:') return undefined;
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (!(host === 'localhost' || host === '::1' || /^127\./.test(host))) return undefined;
  return { host: host === 'localhost' ? '127.0.0.1' : host, port: Number(u.port || 1883) };
}

/** True when something accepts TCP connections there. */
export function isListening(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * The embedded broker when mqtt.embeddedBroker is "auto", the URL is mqtt:// on a loopback host and nothing listens
 * there yet; undefined otherwise (or when it cannot start: the client keeps trying to connect).
 */
export async function embeddedBrokerIfWanted(mqtt: { url: string; embeddedBroker: 'auto' | 'off' }): Promise<EmbeddedBroker | undefined> {
  const target = loopbackTarget(mqtt.url);
  if (mqtt.embeddedBroker !== 'auto' || !target) return undefined;
  if (await isListening(target.host, target.port)) {
    log.info('using the MQTT broker already listening', { host: target.host, port: target.port });
    return undefined;
  }
  try {
    return await startEmbeddedBroker(target.host, target.port);
  } catch (e) {
    log.warn('could not start the embedded broker; will keep trying to connect', { error: describeError(e) });
    return undefined;
  }
}

export async function startEmbeddedBroker(host: string, port: number): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker();
  const server = net.createServer(aedes.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  log.info('embedded MQTT broker listening', { host, port });
  return {
    host,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        // aedes.close() disconnects its clients, which lets server.close() complete.
        aedes.close(() => server.close(() => resolve()));
      }),
  };
}
