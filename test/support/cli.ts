/** Test helpers: project paths and running the real CLI as a subprocess. */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const SHARED_PHOTOS = path.resolve(ROOT, '..', 'shared', 'data', 'photos');
export const HAVE_SHARED = fs.existsSync(SHARED_PHOTOS);
export const SAMPLES = path.join(ROOT, 'assets', 'samples');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `edgehead ARGS...` from source, the way a user runs `npx edgehead`. */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'edgehead.cjs'), ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, EDGEHEAD_LOG_LEVEL: undefined, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const created: string[] = [];
process.once('exit', () => {
  for (const d of created) fs.rmSync(d, { recursive: true, force: true });
});

/** A fresh temporary folder, removed when the test process exits. */
export function tmpDir(prefix = 'edgehead-test-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  created.push(d);
  return d;
}

/** True if the text contains something that looks like a JS stack frame. */
export function hasStackTrace(text: string): boolean {
  return /^\s+at .+[(:]\S+:\d+/m.test(text);
}
