/**
 * Runs a short-lived diagnostic tool (v4l2-ctl, rpicam-hello --list-cameras, vcgencmd) without a shell: an argv array,
 * a timeout (SIGKILL), bounded output. Never throws: a tool that is not installed, times out or fails is a result.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface ToolResult {
  stdout: string;
  stderr: string;
  /** Exit code (null when killed or not started). */
  code: number | null;
  /** The executable was not found. */
  notFound: boolean;
  timedOut: boolean;
  /** Why it failed to run or finish, one line ("" when it exited by itself). */
  error: string;
}

export interface ToolOptions {
  timeoutMs?: number;
  /** Largest stdout or stderr kept (bytes); past it the tool is killed. */
  maxBytes?: number;
}

export function runTool(bin: string, args: readonly string[], opts: ToolOptions = {}): Promise<ToolResult> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: timeoutMs, maxBuffer: opts.maxBytes ?? 1024 * 1024, killSignal: 'SIGKILL', encoding: 'utf8', windowsHide: true }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { killed?: boolean; signal?: NodeJS.Signals | null; code?: number | string }) | null;
      const result: ToolResult = { stdout: String(stdout ?? ''), stderr: String(stderr ?? ''), code: 0, notFound: false, timedOut: false, error: '' };
      if (e) {
        result.code = typeof e.code === 'number' ? e.code : null;
        if (e.code === 'ENOENT') {
          result.notFound = true;
          result.error = `${bin} not found`;
        } else if (e.killed && e.code !== 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') {
          result.timedOut = true;
          result.error = `${bin} did not finish within ${timeoutMs} ms`;
        } else if (typeof e.code === 'number') {
          result.error = `${bin} exited with code ${e.code}`;
        } else {
          result.error = `${bin}: ${(e.message ?? String(e)).split('\n')[0]}`;
        }
      }
      resolve(result);
    });
  });
}

/** The first of `names` found as an executable file on PATH (or given as a path), undefined if none is. */
export function findExecutable(names: readonly string[], pathEnv = process.env.PATH ?? ''): string | undefined {
  const dirs = pathEnv.split(path.delimiter).filter(Boolean);
  for (const name of names) {
    const candidates = name.includes('/') ? [name] : dirs.map((d) => path.join(d, name));
    for (const c of candidates) {
      try {
        fs.accessSync(c, fs.constants.X_OK);
        if (fs.statSync(c).isFile()) return c;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}
