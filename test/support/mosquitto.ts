/**
 * A real Mosquitto (Debian package) for integration tests: a free loopback port, a temp config, optional TLS,
 * persistence (so sessions survive a broker restart, like production), stop/restart on the same port.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { tmpDir } from './cli';

export const MOSQUITTO = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'].find((p) => fs.existsSync(p));

/** A loopback port nothing listens on right now (the one helper for tests and the bench: bench/run.ts imports it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface TlsFiles {
  cafile: string;
  certfile: string;
  keyfile: string;
  requireCertificate: boolean;
}

export class Mosquitto {
  private proc: ChildProcess | undefined;
  readonly dir = tmpDir('mosquitto-');
  log = '';

  private constructor(
    readonly port: number,
    private readonly tls?: TlsFiles,
  ) {
    // Started as root, mosquitto drops to its own user, which must be able to write its persistence file here.
    fs.chmodSync(this.dir, 0o777);
  }

  static async start(opts: { tls?: TlsFiles } = {}): Promise<Mosquitto> {
    if (!MOSQUITTO) throw new Error('mosquitto is not installed (apt-get install mosquitto)');
    const m = new Mosquitto(await freePort(), opts.tls);
    await m.restart();
    return m;
  }

  get url(): string {
    return `${this.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${this.port}`;
  }

  async restart(): Promise<void> {
    const conf = path.join(this.dir, 'mosquitto.conf');
    const lines = [
      `listener ${this.port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence true',
      `persistence_location ${this.dir}/`,
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'log_type notice',
      'max_queued_messages 100000',
    ];
    if (this.tls) {
      lines.push(`cafile ${this.tls.cafile}`, `certfile ${this.tls.certfile}`, `keyfile ${this.tls.keyfile}`);
      if (this.tls.requireCertificate) lines.push('require_certificate true', 'use_identity_as_username true');
    }
    fs.writeFileSync(conf, lines.join('\n') + '\n');
    const proc = spawn(MOSQUITTO!, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr!.on('data', (d) => (this.log += d));
    this.proc = proc;
    const deadline = Date.now() + 10_000;
    while (!(await canConnect(this.port))) {
      if (proc.exitCode !== null) throw new Error(`mosquitto exited: ${this.log}`);
      if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${this.port}: ${this.log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** SIGTERM (mosquitto saves its persistence database) and wait for the process to end. */
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    });
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
