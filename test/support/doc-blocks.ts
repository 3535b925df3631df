/**
 * Doc tests: the fenced blocks of a Markdown file, the doctest markers in front of them, and the output matcher.
 *
 * A marker is an HTML comment (invisible on GitHub) on the nearest non-blank line before a fence:
 *   <!-- doctest -->                      run this shell block (bash -e, in a fresh temp dir); it must exit 0
 *   <!-- doctest: timeout=90 -->          the same with another limit in seconds (default 60)
 *   <!-- doctest: long-running -->        a command that does not end by itself (`npm start`): it runs until the
 *                                         output block matched (then it is stopped), and fails at the timeout
 *   <!-- doctest: skip REASON -->         not run here (hardware, the internet, root...): the reason is shown
 *   <!-- doctest: output -->              the next block (any language) is output of the last runnable block
 *                                         above it in the file
 * Output matching: the expected lines must appear as consecutive lines of the output (stdout and stderr, as they
 * arrived), anywhere in it; a line `...` stands for any number of lines, `...` inside a line for any text, a
 * duration (`210 ms`, `1.5 s`) for any duration, an ISO time (`2026-11-29T02:57:04.355Z`) for any, and a run of 16 or
 * more lowercase hex digits (a key id, a sha256) for any as long. Trailing spaces are ignored. The blocks of one file
 * run in order in one folder, with HOME a fresh folder inside it, shown as /home/ops in the expected output.
 */
import * as fs from 'node:fs';

export type Marker = { kind: 'run'; timeoutSec: number; longRunning: boolean } | { kind: 'skip'; reason: string } | { kind: 'output' };

export interface DocBlock {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The fence's info string ("sh", "text", "" ...). */
  lang: string;
  body: string;
  marker: Marker | null;
  /** For a runnable block: the output block marked for it. */
  output?: DocBlock;
}

export const SHELL_LANGS = ['sh', 'bash', 'shell'];
export const DEFAULT_TIMEOUT_SEC = 60;
const MARKER_RE = /^\s*<!--\s*doctest(?::\s*(.*?))?\s*-->\s*$/;

/** Parses a marker comment's text (after "doctest:"); throws a one-line error naming the problem. */
export function parseMarker(text: string | undefined, where: string): Marker {
  const t = (text ?? '').trim();
  if (t === 'output') return { kind: 'output' };
  if (t === 'skip' || t.startsWith('skip ')) {
    const reason = t.slice(4).trim();
    if (!reason) throw new Error(`${where}: "doctest: skip" needs a reason (e.g. <!-- doctest: skip needs a Raspberry Pi camera -->)`);
    return { kind: 'skip', reason };
  }
  const marker: Marker = { kind: 'run', timeoutSec: DEFAULT_TIMEOUT_SEC, longRunning: false };
  for (const opt of t.split(/\s+/).filter(Boolean)) {
    const m = /^timeout=(\d+)$/.exec(opt);
    if (m) marker.timeoutSec = Number(m[1]);
    else if (opt === 'long-running') marker.longRunning = true;
    else throw new Error(`${where}: unknown doctest option ${JSON.stringify(opt)} (known: timeout=S, long-running, skip REASON, output)`);
  }
  return marker;
}

/** Every fenced block of a Markdown text, with its marker; output blocks attached to their runnable block. */
export function parseBlocks(text: string, file: string): DocBlock[] {
  const lines = text.split('\n');
  const blocks: DocBlock[] = [];
  let lastRunnable: DocBlock | undefined;
  for (let i = 0; i < lines.length; i++) {
    const open = /^( {0,3})(`{3,})\s*([^`]*)$/.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence, info] = open;
    let end = i + 1;
    while (end < lines.length && !new RegExp(`^ {0,3}${fence}\`*\\s*$`).test(lines[end]!)) end++;
    if (end >= lines.length) throw new Error(`${file}:${i + 1}: unclosed code fence`);
    const body = lines
      .slice(i + 1, end)
      .map((l) => (l.startsWith(indent!) ? l.slice(indent!.length) : l))
      .join('\n');
    let prev = i - 1;
    while (prev >= 0 && lines[prev]!.trim() === '') prev--;
    const m = prev >= 0 ? MARKER_RE.exec(lines[prev]!) : null;
    const where = `${file}:${i + 1}`;
    const block: DocBlock = { file, line: i + 1, lang: info!.trim().split(/\s+/)[0] ?? '', body, marker: m ? parseMarker(m[1], where) : null };
    if (block.marker?.kind === 'run') {
      if (!SHELL_LANGS.includes(block.lang)) throw new Error(`${where}: only shell blocks (${SHELL_LANGS.join(', ')}) can be run, not ${JSON.stringify(block.lang)}`);
      lastRunnable = block;
    } else if (block.marker?.kind === 'output') {
      if (!lastRunnable) throw new Error(`${where}: "doctest: output" with no runnable block above it`);
      if (lastRunnable.output) throw new Error(`${where}: a second output block for the block at line ${lastRunnable.line}`);
      lastRunnable.output = block;
    }
    blocks.push(block);
    i = end;
  }
  for (const b of blocks) {
    if (b.marker?.kind === 'run' && b.marker.longRunning && !b.output) {
      throw new Error(`${b.file}:${b.line}: a long-running block needs a "doctest: output" block (what to wait for)`);
    }
  }
  return blocks;
}

export function readBlocks(file: string, label = file): DocBlock[] {
  return parseBlocks(fs.readFileSync(file, 'utf8'), label);
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The parts of an expected line that stand for any value of their kind (the doc shows an example value). */
const WILDCARDS: { re: RegExp; src: string }[] = [
  { re: /^\.\.\.$/, src: '.*' },
  { re: /^\d+(?:\.\d+)? ms$/, src: '\\d+(?:\\.\\d+)? ms' },
  { re: /^\d+(?:\.\d+)? s$/, src: '\\d+(?:\\.\\d+)? s' },
  { re: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z$/, src: '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(?:\\.\\d+)?Z' },
];
const WILDCARD_SPLIT = /(\.\.\.|\b\d+(?:\.\d+)? m?s\b|\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z|\b[0-9a-f]{16,}\b)/;

/** One expected line as a regular expression: `...` any text; a duration, an ISO time, a hex digest (16+ digits) any of its kind. */
function lineRegExp(expected: string): RegExp {
  const parts = expected.trimEnd().split(WILDCARD_SPLIT);
  const src = parts
    .map((p, i) => {
      if (i % 2 === 0) return escape(p);
      const w = WILDCARDS.find((x) => x.re.test(p));
      return w ? w.src : `[0-9a-f]{${p.length}}`;
    })
    .join('');
  return new RegExp(`^${src}\\s*$`);
}

/** True when the expected lines (with wildcards) appear in the actual output. */
export function outputMatches(expected: string, actual: string): boolean {
  const want = expected.replace(/\n+$/, '').split('\n');
  const have = actual.replace(/\r/g, '').split('\n');
  const res = want.map((l) => (l.trim() === '...' ? null : lineRegExp(l)));
  const from = (j: number, k: number): boolean => {
    if (j === res.length) return true;
    const re = res[j];
    if (re === null) {
      for (let kk = k; kk <= have.length; kk++) if (from(j + 1, kk)) return true;
      return false;
    }
    return k < have.length && re!.test(have[k]!) && from(j + 1, k + 1);
  };
  for (let start = 0; start < Math.max(1, have.length); start++) if (from(0, start)) return true;
  return false;
}
