/** The agent as a real subprocess (`edgehead run --config FILE`) and an MQTT subscriber that collects messages. */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { ROOT, tmpDir } from './cli';

export class AgentProcess {
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(
    readonly proc: ChildProcess,
    readonly configFile: string,
  ) {
    proc.stdout!.on('data', (d) => (this.stdout += d));
    proc.stderr!.on('data', (d) => (this.stderr += d));
    this.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Writes `config` (an object; JSON is valid YAML) to a temp file and starts `edgehead run --config` on it. */
  static start(config: Record<string, unknown>, opts: { env?: NodeJS.ProcessEnv; configFile?: string } = {}): AgentProcess {
    const file = opts.configFile ?? path.join(tmpDir('agent-cfg-'), 'config.json');
    fs.writeFileSync(file, JSON.stringify(config, null, 2));
    const proc = spawn(process.execPath, [path.join(ROOT, 'bin', 'edgehead.cjs'), 'run', '--config', file], {
      cwd: ROOT,
      env: { ...process.env, EDGEHEAD_LOG_LEVEL: undefined, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new AgentProcess(proc, file);
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.proc.kill(signal);
    return this.exited;
  }
}

export interface Received {
  topic: string;
  text: string;
  retain: boolean;
  at: number;
}

export class Collector {
  readonly messages: Received[] = [];
  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => this.messages.push({ topic, text: payload.toString(), retain: packet.retain, at: Date.now() }));
  }

  static async connect(url: string, topics: string[], opts: IClientOptions = {}): Promise<Collector> {
    const client = mqtt.connect(url, { reconnectPeriod: 200, connectTimeout: 5000, ...opts });
    const c = new Collector(client);
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    await client.subscribeAsync(topics, { qos: 1 });
    return c;
  }

  json<T = Record<string, unknown>>(topic: string): T[] {
    return this.messages.filter((m) => m.topic === topic).map((m) => JSON.parse(m.text) as T);
  }

  async waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = fn();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

/** A base agent config for tests: loopback broker, bundled sample frames, fast schedule, quiet console. */
export function testConfig(url: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Record<string, unknown> = {
    version: 1,
    device: { id: 'dev1', groups: ['g1'] },
    stateDir: tmpDir('agent-state-'),
    mqtt: { url, embeddedBroker: 'off', reconnectMinMs: 200, reconnectMaxMs: 1000, keepaliveSec: 5 },
    source: { type: 'directory' },
    schedule: { intervalMs: 200 },
    predictions: { console: 'off' },
    telemetry: { intervalSec: 1 },
    log: { level: 'info' },
  };
  return deepMerge(base, overrides);
}

export function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur) ? deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}
