/** The fleet server as a real subprocess (`edgehead fleet serve --config FILE`) and a small client of its API. */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, tmpDir } from './cli';
import { freePort } from './mosquitto';
import { deepMerge } from './agent-process';
import type { DeviceRow, RolloutView } from '../../operator/fleet/model';

export class FleetServerProcess {
  stderr = '';
  stdout = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(
    readonly proc: ChildProcess,
    readonly url: string,
    readonly dataDir: string,
  ) {
    proc.stdout!.on('data', (d) => (this.stdout += d));
    proc.stderr!.on('data', (d) => (this.stderr += d));
    this.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Starts a server for `brokerUrl` on a free loopback port; resolves once it printed its URL. */
  static async start(brokerUrl: string, overrides: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = {}): Promise<FleetServerProcess> {
    const port = await freePort();
    const dir = tmpDir('fleet-server-');
    const dataDir = path.join(dir, 'data');
    const config = deepMerge(
      { version: 1, broker: { url: brokerUrl }, listen: { host: '127.0.0.1', port }, rollouts: { dataDir }, log: { level: 'info' } },
      overrides,
    );
    const file = path.join(dir, 'fleet.json');
    fs.writeFileSync(file, JSON.stringify(config, null, 2));
    const proc = spawn(process.execPath, [path.join(ROOT, 'bin', 'edgehead.cjs'), 'fleet', 'serve', '--config', file], {
      cwd: ROOT,
      env: { ...process.env, EDGEHEAD_LOG_LEVEL: undefined, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const scheme = (config.listen as { tls?: unknown }).tls ? 'https' : 'http';
    const s = new FleetServerProcess(proc, `${scheme}://127.0.0.1:${port}/`, dataDir);
    const deadline = Date.now() + 60_000;
    while (!/fleet server on /.test(s.stderr)) {
      if (proc.exitCode !== null) throw new Error(`fleet serve exited ${proc.exitCode}:\n${s.stderr}`);
      if (Date.now() > deadline) throw new Error(`fleet serve did not start:\n${s.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return s;
  }

  get hostPort(): string {
    return new URL(this.url).host;
  }

  async get<T>(p: string, headers: Record<string, string> = {}): Promise<T> {
    const res = await fetch(new URL(p, this.url), { headers });
    if (!res.ok) throw new Error(`GET ${p}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }

  async devices(): Promise<DeviceRow[]> {
    return (await this.get<{ devices: DeviceRow[] }>('/api/devices')).devices;
  }

  async metricsText(): Promise<string> {
    return (await fetch(new URL('/metrics', this.url))).text();
  }

  /** POST /api/rollouts with the head file as the body; resolves with the status and JSON body. */
  async startRollout(query: string, bytes: Uint8Array): Promise<{ status: number; body: RolloutView & { error?: string } }> {
    const res = await fetch(new URL(`/api/rollouts?${query}`, this.url), {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'x-edgehead-request': '1' },
      body: bytes,
    });
    return { status: res.status, body: (await res.json()) as RolloutView & { error?: string } };
  }

  async post<T>(p: string): Promise<T> {
    const res = await fetch(new URL(p, this.url), { method: 'POST', headers: { 'x-edgehead-request': '1' } });
    if (!res.ok) throw new Error(`POST ${p}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }

  /** Polls `check` against the API (every 100 ms); `guardMs` only turns a hang into a failure. */
  async waitFor<T>(what: string, check: () => Promise<T | undefined | false | null>, guardMs = 60_000): Promise<T> {
    const deadline = Date.now() + guardMs;
    let last: unknown;
    for (;;) {
      try {
        const v = await check();
        if (v) return v;
      } catch (e) {
        last = e;
      }
      if (Date.now() > deadline) throw new Error(`still waiting for ${what} (${last ? String(last) : 'no error'})\n${this.stderr.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGTERM');
    await this.exited;
  }
}
