/**
 * Runs one doc-test shell block (doc-blocks.ts) as a user would in a fresh checkout, without touching the repo:
 *   - cwd: a temp dir holding symlinks to the repo's top-level entries (assets, config, models, package.json, ...),
 *     so relative paths in the docs resolve while what the commands write (state/, my.head...) lands in the temp dir;
 *   - PATH: `edgehead` is `node <repo>/bin/edgehead.cjs`, and `npx edgehead` runs it too (what npx resolves in the
 *     repo, without npm's start-up or any registry);
 *   - EDGEHEAD_MQTT_URL: a free loopback port, so the agent's embedded broker never takes 1883 from anything else;
 *   - the blocks of one doc share that dir and run in document order, as a reader follows the doc (a head trained in
 *     section 1 is signed in section 3); HOME is a fresh folder in it, shown as DOC_HOME in the output compared;
 *   - bash -e, its own process group (stopped as a whole at the end), a timeout.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, tmpDir } from './cli';
import { type DocBlock, outputMatches } from './doc-blocks';
import { freePort } from './mosquitto';

export interface DocRunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  timedOut: boolean;
  /** Long-running blocks: their output block matched and they were stopped. */
  matched: boolean;
}

const NOT_LINKED = new Set(['.git', 'state', 'node_modules']);
/** HOME as the docs show it. */
export const DOC_HOME = '/home/ops';
let realNpx: string | undefined;
const sandboxes = new Map<string, Sandbox>();

interface Sandbox {
  dir: string;
  bin: string;
  home: string;
}

/** The sandbox of one doc file, made at its first block. */
function sandboxFor(file: string): Sandbox {
  let s = sandboxes.get(file);
  if (!s) sandboxes.set(file, (s = sandbox()));
  return s;
}

function sandbox(): Sandbox {
  const dir = tmpDir('doctest-');
  for (const entry of fs.readdirSync(ROOT)) {
    if (!NOT_LINKED.has(entry)) fs.symlinkSync(path.join(ROOT, entry), path.join(dir, entry));
  }
  // node_modules through its real path (a worktree's is itself a symlink).
  fs.symlinkSync(fs.realpathSync(path.join(ROOT, 'node_modules')), path.join(dir, 'node_modules'));
  const bin = path.join(dir, '.doctest-bin');
  fs.mkdirSync(bin);
  realNpx ??= execFileSync('bash', ['-c', 'command -v npx'], { encoding: 'utf8' }).trim();
  const script = (name: string, text: string) => fs.writeFileSync(path.join(bin, name), `#!/bin/sh\n${text}\n`, { mode: 0o755 });
  script('edgehead', `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(path.join(ROOT, 'bin', 'edgehead.cjs'))} "$@"`);
  script('npx', `if [ "$1" = edgehead ]; then shift; exec edgehead "$@"; fi\nexec ${JSON.stringify(realNpx)} "$@"`);
  const home = path.join(dir, '.doctest-home');
  fs.mkdirSync(home);
  return { dir, bin, home };
}

export async function runDocBlock(block: DocBlock): Promise<DocRunResult> {
  if (block.marker?.kind !== 'run') throw new Error(`${block.file}:${block.line} is not marked runnable`);
  const { timeoutSec, longRunning } = block.marker;
  const { dir, bin, home } = sandboxFor(block.file);
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, HOME: home, EDGEHEAD_MQTT_URL: `mqtt://127.0.0.1:${port}` };
  delete env.EDGEHEAD_LOG_LEVEL;
  delete env.NODE_TEST_CONTEXT;
  const child = spawn('bash', ['-e', '-c', block.body], { cwd: dir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let timedOut = false;
  let matched = false;
  const stop = () => {
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {
      /* already gone */
    }
    setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, 5000).unref();
  };
  const onData = (d: Buffer) => {
    output += d.toString();
    if (longRunning && !matched && block.output && outputMatches(block.output.body, output.replaceAll(home, DOC_HOME))) {
      matched = true;
      stop();
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const timer = setTimeout(() => {
    timedOut = true;
    stop();
  }, timeoutSec * 1000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c, s) => resolve([c, s]));
  });
  clearTimeout(timer);
  // Whatever the block left running in its group (a background agent...).
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    /* none left */
  }
  return { code, signal, output: output.replaceAll(home, DOC_HOME), timedOut: timedOut && !matched, matched };
}

/** The failure text: what was expected and the end of what came out. */
export function describeRun(block: DocBlock, r: DocRunResult): string {
  const tail = r.output.split('\n').slice(-40).join('\n');
  const what = r.timedOut ? `timed out after ${(block.marker as { timeoutSec: number }).timeoutSec} s` : `exit ${r.code ?? r.signal}`;
  return `${block.file}:${block.line}: ${what}\n--- block\n${block.body}\n--- expected output\n${block.output?.body ?? '(none)'}\n--- output (last 40 lines)\n${tail}`;
}
