/**
 * What the project's two HTTP servers (the agent's /metrics endpoint, the fleet server) share: parsing a
 * "host:port" listen address, binding with a one-line error that says what to do, and closing including the
 * keep-alive connections a browser or scraper holds open.
 */
import type * as http from 'node:http';
import { EdgeheadError, type ErrorCode } from './errors';

/** "127.0.0.1:9464" -> {host, port}; "[::1]:9464" -> host ::1. `what` names the setting or flag in the error. */
export function parseHostPort(value: string, what: string, code: ErrorCode = 'BAD_CONFIG'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw new EdgeheadError(code, `${what}: must be host:port with a port 0-65535 (got "${value}")`);
  return { host: (m[1] ?? m[2])!, port };
}

/** Binds `server`; rejects with "<what> <host>:<port>: <why>; <advice>" when the address cannot be used. */
export function listenOn(server: http.Server, host: string, port: number, what: string, advice: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      const why =
        e.code === 'EADDRINUSE'
          ? 'the address is in use (another process listens there)'
          : e.code === 'EADDRNOTAVAIL'
            ? 'no interface of this machine has that address'
            : e.code === 'EACCES'
              ? 'permission denied (ports below 1024 need privileges)'
              : e.message;
      reject(new EdgeheadError('BAD_CONFIG', `${what} ${host.includes(':') ? `[${host}]` : host}:${port}: ${why}; ${advice}`));
    });
    server.listen(port, host, () => resolve());
  });
}

/** Stops listening and closes every connection, idle keep-alive ones included. */
export function closeServer(server: http.Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
