/**
 * A real Prometheus (Debian's `prometheus` package) for integration tests: a free loopback port, a temp config that
 * scrapes the given targets every second, a temp TSDB; and `promtool check metrics` on exposition text.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tmpDir } from './cli';
import { freePort } from './mosquitto';

export const PROMETHEUS = ['/usr/bin/prometheus'].find((p) => fs.existsSync(p));
export const PROMTOOL = ['/usr/bin/promtool'].find((p) => fs.existsSync(p));

export interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

export class Prometheus {
  log = '';
  private readonly exited: Promise<void>;

  private constructor(
    private readonly proc: ChildProcess,
    readonly port: number,
  ) {
    proc.stderr!.on('data', (d) => (this.log += d));
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
  }

  /** Starts Prometheus scraping `targets` (host:port, path /metrics) as job "edgehead"; resolves once it is ready. */
  static async start(targets: string[]): Promise<Prometheus> {
    if (!PROMETHEUS) throw new Error('prometheus is not installed (apt-get install prometheus)');
    const dir = tmpDir('prometheus-');
    const config = path.join(dir, 'prometheus.yml');
    const yaml = [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      'scrape_configs:',
      '  - job_name: edgehead',
      '    static_configs:',
      `      - targets: [${targets.map((t) => `"${t}"`).join(', ')}]`,
    ];
    fs.writeFileSync(config, yaml.join('\n') + '\n');
    const port = await freePort();
    const proc = spawn(PROMETHEUS, [`--config.file=${config}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const p = new Prometheus(proc, port);
    // The log line Prometheus writes once it serves queries (an event, not a delay).
    await new Promise<void>((resolve, reject) => {
      const onData = () => {
        if (p.log.includes('Server is ready to receive web requests')) {
          proc.stderr!.off('data', onData);
          resolve();
        }
      };
      proc.stderr!.on('data', onData);
      proc.once('exit', (code) => reject(new Error(`prometheus exited (${code}) before it was ready:\n${p.log}`)));
    });
    return p;
  }

  /** An instant query through the HTTP API. */
  async query(promql: string): Promise<Sample[]> {
    const res = await fetch(`http://127.0.0.1:${this.port}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: Sample[] } };
    if (body.status !== 'success') throw new Error(`query ${promql} failed: ${body.error}`);
    return body.data!.result;
  }

  /** Queries until `accept` takes the result (once per scrape interval at most); `guardMs` only turns a hang into a failure. */
  async waitFor(promql: string, accept: (r: Sample[]) => boolean, guardMs = 60_000): Promise<Sample[]> {
    const deadline = Date.now() + guardMs;
    for (;;) {
      const r = await this.query(promql);
      if (accept(r)) return r;
      if (Date.now() > deadline) throw new Error(`prometheus: still waiting for ${promql} (last: ${JSON.stringify(r)})\n${this.log.slice(-2000)}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGTERM');
    await this.exited;
  }
}

/** `promtool check metrics` on exposition text: its exit status and what it printed (lint problems). */
export function promtoolCheckMetrics(text: string): { status: number | null; output: string } {
  if (!PROMTOOL) throw new Error('promtool is not installed (apt-get install prometheus)');
  const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}
