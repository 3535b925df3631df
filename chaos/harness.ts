/**
 * The chaos suite's harness: the agent as deployed (the esbuild bundle dist/edgehead.cjs, with the unit's node
 * flags) against a real Mosquitto on loopback, a ledger of what the agent published and what a persistent-session
 * subscriber received, keyed by (run, frameId), and the agent's peak RSS (VmHWM) per process.
 *
 * "Published" means printed by the agent: it prints a prediction once the publisher has it (sent, or written to the
 * offline queue), so a printed prediction is one the agent promised to deliver.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { deviceTopic } from '../protocol/topics';
import { deepMerge } from '../test/support/agent-process';
import { tmpDir } from '../test/support/cli';

export const ROOT = path.resolve(__dirname, '..');
export const BUNDLE = path.join(ROOT, 'dist', 'edgehead.cjs');
export const PREFIX = 'chaos';

/** One agent process. */
export class ChaosAgent {
  stdout = '';
  stderr = '';
  /** Highest VmHWM seen, kB. */
  peakKb = 0;
  run: number | undefined;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly sampler: NodeJS.Timeout;

  constructor(readonly proc: ChildProcess) {
    proc.stdout!.on('data', (d: Buffer) => (this.stdout += d));
    proc.stderr!.on('data', (d: Buffer) => {
      this.stderr += d;
      const m = /agent started .*\brun=(\d+)/.exec(this.stderr);
      if (m && this.run === undefined) this.run = Number(m[1]);
    });
    this.sampler = setInterval(() => this.sample(), 100);
    this.exited = new Promise((resolve) =>
      proc.once('exit', (code, signal) => {
        clearInterval(this.sampler);
        resolve({ code, signal });
      }),
    );
  }

  private sample(): void {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${this.proc.pid}/status`, 'utf8'));
      if (m) this.peakKb = Math.max(this.peakKb, Number(m[1]));
    } catch {
      // exited
    }
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Frame ids this process printed as published. */
  printedIds(): number[] {
    const ids: number[] = [];
    for (const line of this.stdout.split('\n')) {
      const m = /^#(\d+) /.exec(line);
      if (m && !line.includes('[not published]')) ids.push(Number(m[1]));
    }
    return ids;
  }

  async waitFor(what: string, cond: () => boolean, guardMs = 60_000): Promise<void> {
    const deadline = Date.now() + guardMs;
    while (!cond()) {
      if (!this.running) throw new Error(`agent exited while waiting for ${what}: ${this.stderr.split('\n').slice(-5).join(' | ')}`);
      if (Date.now() > deadline) throw new Error(`still waiting for ${what} after ${guardMs} ms; the agent's last log lines: ${this.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      await sleep(50);
    }
  }

  /** Waits until this process printed n more predictions than now. */
  async frames(n: number): Promise<void> {
    const target = this.printedIds().length + n;
    await this.waitFor(`${n} frames`, () => this.printedIds().length >= target);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.sample();
    if (this.running) this.proc.kill(signal);
    return this.exited;
  }
}

/** What the agents printed vs what the subscriber received. */
export class Ledger {
  private readonly agents: ChaosAgent[] = [];
  readonly received = new Map<string, number>();
  /** Highest offlineQueue counters seen in telemetry (dropped is persisted by the queue; skipped counts since start). */
  readonly queueCounters = { dropped: 0, skipped: 0 };
  private client: MqttClient | undefined;

  constructor(private readonly url: string) {}

  /** A persistent-session QoS 1 subscriber: it keeps its messages across broker restarts (mosquitto persistence). */
  async connect(device: string): Promise<void> {
    const client = mqtt.connect(this.url, { clientId: `chaos-ledger-${process.pid}-${device}`, clean: false, reconnectPeriod: 200, connectTimeout: 5000 });
    client.on('message', (topic, payload) => {
      try {
        if (topic.endsWith('/telemetry')) {
          const q = (JSON.parse(payload.toString()) as { offlineQueue: { dropped: number; skipped?: number } }).offlineQueue;
          this.queueCounters.dropped = Math.max(this.queueCounters.dropped, q.dropped);
          this.queueCounters.skipped = Math.max(this.queueCounters.skipped, q.skipped ?? 0);
          return;
        }
        const p = JSON.parse(payload.toString()) as { run: number; frameId: number };
        const key = `${p.run}/${p.frameId}`;
        this.received.set(key, (this.received.get(key) ?? 0) + 1);
      } catch {
        // not a prediction
      }
    });
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    await client.subscribeAsync(deviceTopic(PREFIX, device, 'predictions'), { qos: 1 });
    await client.subscribeAsync(deviceTopic(PREFIX, device, 'telemetry'), { qos: 0 });
    this.client = client;
  }

  track(agent: ChaosAgent): void {
    this.agents.push(agent);
  }

  published(): string[] {
    return this.agents.flatMap((a) => (a.run === undefined ? [] : a.printedIds().map((id) => `${a.run}/${id}`)));
  }

  missing(): string[] {
    return this.published().filter((k) => !this.received.has(k));
  }

  /** Waits until every published prediction arrived (or the guard passes: then the rest is lost). */
  async settle(guardMs = 20_000): Promise<void> {
    const deadline = Date.now() + guardMs;
    while (this.missing().length > 0 && Date.now() < deadline) await sleep(100);
  }

  peakRssMB(): number {
    return Math.round(Math.max(0, ...this.agents.map((a) => a.peakKb)) / 1024);
  }

  summary(): { published: number; received: number; lost: number; duplicates: number; peakRssMB: number } {
    const published = new Set(this.published());
    let received = 0;
    let duplicates = 0;
    for (const [key, n] of this.received) {
      if (!published.has(key)) continue;
      received++;
      duplicates += n - 1;
    }
    return { published: published.size, received, lost: published.size - received, duplicates, peakRssMB: this.peakRssMB() };
  }

  async close(): Promise<void> {
    await this.client?.endAsync(true);
  }
}

/** An agent config for chaos runs (JSON is valid YAML). */
export function chaosConfig(url: string, stateDir: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Record<string, unknown> = {
    version: 1,
    device: { id: 'chaos1' },
    stateDir,
    mqtt: { url, embeddedBroker: 'off', topicPrefix: PREFIX, reconnectMinMs: 200, reconnectMaxMs: 1000, keepaliveSec: 5 },
    source: { type: 'directory' },
    schedule: { intervalMs: 150 },
    predictions: { console: 'on' },
    telemetry: { intervalSec: 1 },
    backend: { threads: 1 },
    log: { level: 'info' },
  };
  return deepMerge(base, over);
}

/** Starts the bundle on `config` (as the systemd unit does: node --max-semi-space-size=1). */
export function startAgent(ledger: Ledger, config: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): ChaosAgent {
  const file = path.join(tmpDir('chaos-cfg-'), 'config.json');
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  const proc = spawn(process.execPath, ['--max-semi-space-size=1', BUNDLE, 'run', '--config', file], {
    cwd: ROOT,
    env: { ...process.env, EDGEHEAD_LOG_LEVEL: undefined, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const agent = new ChaosAgent(proc);
  ledger.track(agent);
  return agent;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
