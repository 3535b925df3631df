/**
 * `edgehead fleet rollout <start|list|show|halt|rollback>`: staged rollouts through the fleet server's HTTP API
 * (operator/fleet/model.ts API_ROUTES; the engine is operator/fleet/rollout.ts). Every POST carries
 * `X-Edgehead-Request: 1` (the server's cross-site guard). Credentials come from a file or the environment, never
 * from argv: --token-file F or EDGEHEAD_FLEET_TOKEN (Bearer), or --user U with --password-file F (Basic).
 *
 * The HTTP transport and the output are injected (RolloutCliIo), so the commands are tested in-process; the real
 * one is node:http / node:https (https verifies the server against --ca F, else the system's CAs).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { EdgeheadError } from '../../base/errors';
import { readHeadPayload } from '../../protocol/head/files';
import type { RolloutDevice, RolloutView } from '../../operator/fleet/model';
import { type Command, commandGroup, defineCommand, numberArg, type ParsedArgs, usageError as specUsageError } from '../args';
import type { CommandSpec, OptionDefs } from '../spec';

export const DEFAULT_FLEET_SERVER = 'http://127.0.0.1:8080';
/** How often --wait asks the server for the rollout. */
const POLL_MS = 1000;
/** A request that gets no answer within this time fails. */
const REQUEST_TIMEOUT_MS = 30_000;
/** Largest head file the CLI reads (the server applies its own, usually smaller, limit). */
const MAX_FILE_BYTES = 64 * 1024 * 1024;
/** Largest answer read from the server. */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

export interface HttpCall {
  method: 'GET' | 'POST';
  url: URL;
  headers: Record<string, string>;
  body?: Uint8Array;
  /** PEM of the CA that signed the server's certificate (--ca). */
  ca?: Buffer;
}

export interface HttpAnswer {
  status: number;
  body: Buffer;
}

export interface RolloutCliIo {
  /** Rejects with the transport's error (e.g. code ECONNREFUSED) when there is no answer. */
  request(call: HttpCall): Promise<HttpAnswer>;
  out(line: string): void;
  err(line: string): void;
  sleep(ms: number): Promise<void>;
  env: NodeJS.ProcessEnv;
}

const COMMON_OPTIONS = {
  server: { type: 'string', arg: 'URL', description: "the fleet server (https://... with --ca F, the server's CA certificate)", default: DEFAULT_FLEET_SERVER },
  'token-file': { type: 'string', arg: 'F', description: 'a bearer token: the first line of F (or EDGEHEAD_FLEET_TOKEN)' },
  user: { type: 'string', arg: 'U', description: 'basic auth user, with --password-file' },
  'password-file': { type: 'string', arg: 'F', description: 'basic auth password: the first line of F' },
  ca: { type: 'string', arg: 'F', description: "the CA certificate (PEM) of an https:// server" },
} as const satisfies OptionDefs;

const CREDENTIALS = `Credentials, never on the command line: --token-file F (its first line) or EDGEHEAD_FLEET_TOKEN (a bearer token),
or --user U with --password-file F (basic auth).`;
const ID = [{ name: 'ID', description: 'the rollout id (from `rollout start` or `rollout list`)' }];

export const ROLLOUT_START_SPEC = {
  path: 'fleet rollout start',
  purpose: 'upload a head and start a staged rollout (canary, then the rest)',
  positionals: [{ name: 'HEAD', description: 'the head file (validated by the server like a device does)' }],
  synopsis: ['(--all | --group G | --devices a,b) [options] HEAD'],
  options: {
    all: { type: 'boolean', description: 'the whole fleet (retained on the fleet topic)' },
    group: { type: 'string', arg: 'G', description: 'the devices of group G (retained on the group topic)' },
    devices: { type: 'string', arg: 'a,b', description: 'these devices' },
    canary: { type: 'string', arg: 'a,b', description: 'the canary devices' },
    'canary-percent': { type: 'string', arg: 'N', description: 'N% of the target as canary, online ones first', default: "the server's" },
    'min-agreement': { type: 'string', arg: 'X', description: 'halt when a shadow candidate agrees on fewer than X of the frames', default: "the server's" },
    'stage-timeout': { type: 'string', arg: 'S', description: 'halt when a device does not answer within S seconds', default: "the server's" },
    wait: { type: 'boolean', description: 'print progress until done (exit 0) or halted (exit 1)' },
    ...COMMON_OPTIONS,
  },
  details: `Uploads HEAD and starts a staged rollout: the canary devices first, then the rest. It halts by itself on a
rejection, a shadow agreement below X, a device going offline mid-update or no answer within S seconds. Prints the
rollout id. ${CREDENTIALS}`,
  examples: ['edgehead fleet rollout start --group kitchens --canary-percent 10 --wait shop.head', 'edgehead fleet rollout start --devices pi-1,pi-2 --canary pi-1 shop.head'],
} as const satisfies CommandSpec;

export const ROLLOUT_LIST_SPEC = {
  path: 'fleet rollout list',
  purpose: 'the rollouts the server knows, newest first',
  options: { ...COMMON_OPTIONS, json: { type: 'boolean', description: 'the rollouts as JSON on stdout' } },
  details: `The rollouts the server knows (newest first): id, phase, head, target, progress. ${CREDENTIALS}`,
  examples: ['edgehead fleet rollout list', 'edgehead fleet rollout list --json --server https://fleet.local:8443 --ca ca.pem'],
} as const satisfies CommandSpec;

export const ROLLOUT_SHOW_SPEC = {
  path: 'fleet rollout show',
  purpose: 'one rollout and its devices',
  positionals: ID,
  options: { ...COMMON_OPTIONS, json: { type: 'boolean', description: 'the rollout as JSON on stdout' } },
  details: `One rollout: phase, halt reason, head, target, and every device's stage, state and reason. ${CREDENTIALS}`,
  examples: ['edgehead fleet rollout show r-20250101-1'],
} as const satisfies CommandSpec;

export const ROLLOUT_HALT_SPEC = {
  path: 'fleet rollout halt',
  purpose: 'halt a rollout (and clear its retained head)',
  positionals: ID,
  options: { reason: { type: 'string', arg: 'TEXT', description: 'why (kept in the audit log)' }, ...COMMON_OPTIONS },
  details: `Halts a rollout: nothing more is published and a retained group/fleet head is cleared. Devices keep what they
applied. ${CREDENTIALS}`,
  examples: ['edgehead fleet rollout halt --reason "wrong labels" r-20250101-1'],
} as const satisfies CommandSpec;

export const ROLLOUT_ROLLBACK_SPEC = {
  path: 'fleet rollout rollback',
  purpose: "roll the rollout's devices back",
  positionals: ID,
  options: { wait: { type: 'boolean', description: 'print progress until every device answered: exit 0 when all rolled back, 1 if not' }, ...COMMON_OPTIONS },
  details: `Sends rollback to every device that applied the rollout's head (discard to those running it in shadow mode) and
clears the retained head. ${CREDENTIALS}`,
  examples: ['edgehead fleet rollout rollback --wait r-20250101-1'],
} as const satisfies CommandSpec;

/** The `rollout` command group with the given transport and output (tests pass fakes). */
export function createFleetRolloutCommand(io: RolloutCliIo): Command {
  const out = (text: string) => io.out(text);
  return commandGroup('fleet rollout', 'staged rollouts through the fleet server', [
    defineCommand(ROLLOUT_START_SPEC, (args) => start(args, io), out),
    defineCommand(ROLLOUT_LIST_SPEC, (args) => list(args, io), out),
    defineCommand(ROLLOUT_SHOW_SPEC, (args) => show(args, io), out),
    defineCommand(ROLLOUT_HALT_SPEC, (args) => halt(args, io), out),
    defineCommand(ROLLOUT_ROLLBACK_SPEC, (args) => rollback(args, io), out),
  ]);
}

export const fleetRolloutCommand: Command = createFleetRolloutCommand({
  request: nodeRequest,
  out: (line) => process.stdout.write(line + '\n'),
  err: (line) => process.stderr.write(line + '\n'),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  env: process.env,
});

// -------------------------------------------------------------------------------------------------------------
// Subcommands

async function start({ values, positionals }: ParsedArgs<typeof ROLLOUT_START_SPEC.options>, io: RolloutCliIo): Promise<number> {
  if (positionals.length !== 1) throw usageError('rollout start takes exactly one head file', ROLLOUT_START_SPEC);
  const chosen = [values.all === true, values.group !== undefined, values.devices !== undefined].filter(Boolean).length;
  if (chosen !== 1) throw usageError('rollout start needs exactly one of --all, --group G or --devices a,b', ROLLOUT_START_SPEC);
  if (values.canary !== undefined && values['canary-percent'] !== undefined) throw new EdgeheadError('BAD_ARGS', 'give --canary or --canary-percent, not both');
  const q = new URLSearchParams();
  q.set('target', values.all ? 'all' : values.group !== undefined ? `group:${nonEmpty(values.group, 'group')}` : `devices:${listArg(values.devices!, 'devices')}`);
  if (values.canary !== undefined) q.set('canary', listArg(values.canary, 'canary'));
  if (values['canary-percent'] !== undefined) q.set('canaryPercent', String(numberArg(values['canary-percent'], 'canary-percent', 0.01, 100, 0)));
  if (values['min-agreement'] !== undefined) q.set('minAgreement', String(numberArg(values['min-agreement'], 'min-agreement', 0, 1, 0)));
  if (values['stage-timeout'] !== undefined) q.set('stageTimeoutSec', String(numberArg(values['stage-timeout'], 'stage-timeout', 1, 7 * 24 * 3600, 0)));
  const client = new FleetApi(values, io);
  const bytes = readHeadPayload(positionals[0]!, MAX_FILE_BYTES);
  const view = await client.call<RolloutView>('POST', `/api/rollouts?${q}`, { body: bytes, contentType: 'application/octet-stream' });
  io.out(view.id);
  io.err(`started rollout ${view.id}: ${view.head.id} v${view.head.version} to ${targetText(view)}; canary ${view.devices.filter((d) => d.stage === 'canary').map((d) => d.device).join(', ')}`);
  if (!values.wait) return 0;
  const end = await waitFor(client, io, view, (v) => v.phase !== 'canary' && v.phase !== 'rest');
  if (end.phase === 'done') {
    io.err(`done: ${progressText(end)}`);
    return 0;
  }
  io.err(`${end.phase}: ${end.haltReason ?? progressText(end)}`);
  return 1;
}

async function list({ values, positionals }: ParsedArgs<typeof ROLLOUT_LIST_SPEC.options>, io: RolloutCliIo): Promise<number> {
  if (positionals.length > 0) throw usageError('rollout list takes no arguments', ROLLOUT_LIST_SPEC);
  const { rollouts } = await new FleetApi(values, io).call<{ rollouts: RolloutView[] }>('GET', '/api/rollouts');
  if (values.json) {
    io.out(JSON.stringify(rollouts, null, 2));
    return 0;
  }
  if (rollouts.length === 0) {
    io.out('no rollouts');
    return 0;
  }
  const rows = rollouts.map((v) => [v.id, v.phase, `${v.head.id} v${v.head.version}`, targetText(v), `${count(v.devices, 'applied')}/${v.devices.length}`, new Date(v.createdAt).toISOString(), v.actor]);
  for (const line of table(['rollout', 'phase', 'head', 'target', 'applied', 'created', 'by'], rows)) io.out(line);
  return 0;
}

async function show({ values, positionals }: ParsedArgs<typeof ROLLOUT_SHOW_SPEC.options>, io: RolloutCliIo): Promise<number> {
  const id = oneId(positionals, 'show', ROLLOUT_SHOW_SPEC);
  const view = await new FleetApi(values, io).call<RolloutView>('GET', `/api/rollouts/${encodeURIComponent(id)}`);
  if (values.json) io.out(JSON.stringify(view, null, 2));
  else for (const line of formatRollout(view)) io.out(line);
  return 0;
}

async function halt({ values, positionals }: ParsedArgs<typeof ROLLOUT_HALT_SPEC.options>, io: RolloutCliIo): Promise<number> {
  const id = oneId(positionals, 'halt', ROLLOUT_HALT_SPEC);
  const body = values.reason === undefined ? undefined : Buffer.from(JSON.stringify({ reason: values.reason }));
  const view = await new FleetApi(values, io).call<RolloutView>('POST', `/api/rollouts/${encodeURIComponent(id)}/halt`, body && { body, contentType: 'application/json' });
  io.out(`${view.id} ${view.phase}: ${view.haltReason ?? '-'}`);
  return 0;
}

async function rollback({ values, positionals }: ParsedArgs<typeof ROLLOUT_ROLLBACK_SPEC.options>, io: RolloutCliIo): Promise<number> {
  const id = oneId(positionals, 'rollback', ROLLOUT_ROLLBACK_SPEC);
  const client = new FleetApi(values, io);
  const view = await client.call<RolloutView>('POST', `/api/rollouts/${encodeURIComponent(id)}/rollback`);
  io.out(`${view.id} ${view.phase}: ${rollbackText(view)}`);
  if (!values.wait) return 0;
  const end = await waitFor(client, io, view, (v) => v.phase !== 'rolling-back');
  io.err(`${end.phase}: ${rollbackText(end)}`);
  return end.devices.some((d) => d.state === 'rollback-failed') ? 1 : 0;
}

/** Polls the rollout until `finished`, printing a progress line whenever it changes. */
async function waitFor(client: FleetApi, io: RolloutCliIo, first: RolloutView, finished: (v: RolloutView) => boolean): Promise<RolloutView> {
  let view = first;
  let last = '';
  for (;;) {
    const line = `${view.phase}: ${progressText(view)}`;
    if (line !== last) io.err(line);
    last = line;
    if (finished(view)) return view;
    await io.sleep(POLL_MS);
    view = await client.call<RolloutView>('GET', `/api/rollouts/${encodeURIComponent(first.id)}`);
  }
}

// -------------------------------------------------------------------------------------------------------------
// The HTTP client

type CommonValues = { server?: string; 'token-file'?: string; user?: string; 'password-file'?: string; ca?: string };

class FleetApi {
  private readonly base: URL;
  private readonly authorization: string | undefined;
  private readonly ca: Buffer | undefined;

  constructor(values: CommonValues, private readonly io: RolloutCliIo) {
    this.base = serverUrl(values.server ?? DEFAULT_FLEET_SERVER);
    this.authorization = authorizationHeader(values, io.env);
    if (values.ca !== undefined && this.base.protocol !== 'https:') throw new EdgeheadError('BAD_ARGS', '--ca applies to an https:// --server');
    this.ca = values.ca === undefined ? undefined : readSecretFile(values.ca, '--ca');
  }

  /** The parsed JSON answer of a 2xx; anything else is a one-line error. */
  async call<T>(method: 'GET' | 'POST', pathAndQuery: string, upload?: { body: Uint8Array; contentType: string }): Promise<T> {
    const url = new URL(this.base.pathname.replace(/\/$/, '') + pathAndQuery, this.base);
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (method === 'POST') headers['X-Edgehead-Request'] = '1';
    if (upload) headers['Content-Type'] = upload.contentType;
    if (this.authorization) headers.Authorization = this.authorization;
    let answer: HttpAnswer;
    try {
      answer = await this.io.request({ method, url, headers, ...(upload ? { body: upload.body } : {}), ...(this.ca ? { ca: this.ca } : {}) });
    } catch (e) {
      throw unreachable(this.base, e);
    }
    const where = `the fleet server at ${this.base.origin}`;
    if (answer.status === 401) {
      throw new EdgeheadError('IO', `${where} refused the credentials (401 ${serverMessage(answer) ?? 'authentication required'})`, {
        hint: this.authorization ? 'check the token or the user and password' : 'give --token-file F, EDGEHEAD_FLEET_TOKEN or --user U --password-file F',
      });
    }
    if (answer.status < 200 || answer.status > 299) {
      throw new EdgeheadError('IO', `${where} answered ${answer.status}: ${serverMessage(answer) ?? 'no message'}`);
    }
    try {
      return JSON.parse(answer.body.toString('utf8')) as T;
    } catch {
      throw new EdgeheadError('IO', `${where} answered ${answer.status} with something that is not JSON (is --server the fleet server?)`);
    }
  }
}

function serverUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new EdgeheadError('BAD_ARGS', `--server must be an http:// or https:// URL (got "${raw}")`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new EdgeheadError('BAD_ARGS', `--server must be an http:// or https:// URL (got "${url.protocol}//...")`);
  if (url.username || url.password) throw new EdgeheadError('BAD_ARGS', '--server must not carry credentials', { hint: 'use --user U --password-file F, --token-file F or EDGEHEAD_FLEET_TOKEN' });
  if (url.search || url.hash) throw new EdgeheadError('BAD_ARGS', '--server must be the server\'s base URL, without ?query or #fragment');
  return url;
}

/** Bearer from --token-file or EDGEHEAD_FLEET_TOKEN, Basic from --user and --password-file; none: no header. */
export function authorizationHeader(values: CommonValues, env: NodeJS.ProcessEnv): string | undefined {
  const tokenFile = values['token-file'];
  if (tokenFile !== undefined && (values.user !== undefined || values['password-file'] !== undefined)) {
    throw new EdgeheadError('BAD_ARGS', 'give --token-file or --user with --password-file, not both');
  }
  if (values.user !== undefined || values['password-file'] !== undefined) {
    if (values.user === undefined) throw new EdgeheadError('BAD_ARGS', '--password-file needs --user');
    if (values['password-file'] === undefined) throw new EdgeheadError('BAD_ARGS', '--user needs --password-file F (the password is its first line; never on the command line)');
    if (values.user === '' || values.user.includes(':')) throw new EdgeheadError('BAD_ARGS', '--user must be non-empty and contain no ":"');
    const password = firstLine(values['password-file'], '--password-file');
    return `Basic ${Buffer.from(`${values.user}:${password}`).toString('base64')}`;
  }
  if (tokenFile !== undefined) return `Bearer ${firstLine(tokenFile, '--token-file')}`;
  const token = env.EDGEHEAD_FLEET_TOKEN?.trim();
  return token ? `Bearer ${token}` : undefined;
}

function firstLine(file: string, what: string): string {
  const line = readSecretFile(file, what).toString('utf8').split(/\r?\n/)[0]!.trim();
  if (line === '') throw new EdgeheadError('BAD_ARGS', `${what}: ${file} is empty (the secret is its first line)`);
  return line;
}

function readSecretFile(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new EdgeheadError('BAD_ARGS', `${what}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** The one-line error of a request that got no answer. */
function unreachable(base: URL, e: unknown): EdgeheadError {
  const code = (e as NodeJS.ErrnoException)?.code;
  const where = `cannot reach the fleet server at ${base.origin}`;
  const why: Record<string, string> = {
    ECONNREFUSED: 'connection refused (is `edgehead fleet serve` running there?)',
    ENOTFOUND: 'host not found',
    EAI_AGAIN: 'host not found (DNS lookup failed)',
    ETIMEDOUT: `no answer within ${REQUEST_TIMEOUT_MS / 1000} s`,
    ECONNRESET: 'the connection was reset (an http:// URL for an https:// server?)',
    EHOSTUNREACH: 'host unreachable',
    DEPTH_ZERO_SELF_SIGNED_CERT: 'its certificate is self-signed: pass --ca with the server\'s CA certificate',
    SELF_SIGNED_CERT_IN_CHAIN: 'its certificate is not signed by a trusted CA: pass --ca with the server\'s CA certificate',
    UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its certificate cannot be verified: pass --ca with the server\'s CA certificate',
    ERR_TLS_CERT_ALTNAME_INVALID: 'its certificate does not name this host',
    EPROTO: 'TLS handshake failed (an https:// URL for an http server?)',
  };
  const message = (e instanceof Error ? e.message : String(e)).split('\n')[0];
  return new EdgeheadError('IO', `${where}: ${(code && why[code]) ?? message}`);
}

/** The server's `{error}` message (or the first line of a text answer), shortened. */
function serverMessage(answer: HttpAnswer): string | undefined {
  const text = answer.body.toString('utf8');
  let message: string | undefined;
  try {
    const v = JSON.parse(text) as { error?: unknown };
    if (typeof v?.error === 'string') message = v.error;
  } catch {
    message = text.split('\n')[0]?.trim() || undefined;
  }
  return message === undefined ? undefined : message.length > 300 ? message.slice(0, 300) + '...' : message;
}

/** node:http(s) transport: one request, the whole answer (bounded), a timeout. */
function nodeRequest(call: HttpCall): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const mod = call.url.protocol === 'https:' ? https : http;
    const headers = { ...call.headers, ...(call.body ? { 'Content-Length': String(call.body.byteLength) } : {}) };
    // agent: false: a fresh connection per request (a few requests per run; no stale kept-alive socket after a server restart).
    const req = mod.request(call.url, { method: call.method, headers, agent: false, ...(call.ca ? { ca: call.ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_ANSWER_BYTES) req.destroy(new Error(`the answer is larger than ${MAX_ANSWER_BYTES} bytes`));
        else chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(call.body);
  });
}

// -------------------------------------------------------------------------------------------------------------
// Output

function targetText(v: RolloutView): string {
  const t = v.target;
  return t.kind === 'all' ? 'the fleet' : t.kind === 'group' ? `group ${t.group}` : `devices ${t.devices.join(',')}`;
}

function count(devices: RolloutDevice[], state: RolloutDevice['state']): number {
  return devices.filter((d) => d.state === state).length;
}

/** "2/5 applied (1 waiting, 2 pending)". */
export function progressText(v: RolloutView): string {
  const others = new Map<string, number>();
  for (const d of v.devices) if (d.state !== 'applied') others.set(d.state, (others.get(d.state) ?? 0) + 1);
  const rest = [...others].map(([s, n]) => `${n} ${s}`).join(', ');
  return `${count(v.devices, 'applied')}/${v.devices.length} applied${rest ? ` (${rest})` : ''}`;
}

function rollbackText(v: RolloutView): string {
  const ok = count(v.devices, 'rolled-back');
  const failed = count(v.devices, 'rollback-failed');
  return `${ok} rolled back${failed ? `, ${failed} failed` : ''}`;
}

export function formatRollout(v: RolloutView): string[] {
  const h = v.head;
  const lines = [
    `rollout  ${v.id}`,
    `phase    ${v.phase}${v.haltReason ? ` (${v.haltReason})` : ''}`,
    `head     ${h.id} v${h.version} (${h.bytes} bytes, ${h.signedBy ? `signed by key ${h.signedBy}` : 'signature not checked'}, correlation id ${h.correlationId})`,
    `sha256   ${h.fileSha256}`,
    `target   ${targetText(v)}${v.topic ? ` (rest on ${v.topic}, retained)` : ''}`,
    `started  ${new Date(v.createdAt).toISOString()} by ${v.actor}`,
    `progress ${progressText(v)}`,
    '',
  ];
  const rows = v.devices.map((d) => [d.device, d.stage, d.state, d.agreement === null ? '-' : d.agreement.toFixed(2), d.reason ?? '-']);
  return [...lines, ...table(['device', 'stage', 'state', 'agreement', 'reason'], rows)];
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)];
}

// -------------------------------------------------------------------------------------------------------------
// Argument helpers

function usageError(message: string, spec: CommandSpec): EdgeheadError {
  return specUsageError(spec, message);
}

function oneId(positionals: string[], what: string, spec: CommandSpec): string {
  if (positionals.length !== 1 || positionals[0] === '') throw usageError(`rollout ${what} takes exactly one rollout id`, spec);
  return positionals[0]!;
}

function nonEmpty(value: string, name: string): string {
  if (value.trim() === '') throw new EdgeheadError('BAD_ARGS', `--${name} must not be empty`);
  return value.trim();
}

function listArg(value: string, name: string): string {
  const items = value.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) throw new EdgeheadError('BAD_ARGS', `--${name} must be a comma-separated list of device ids (got "${value}")`);
  return items.join(',');
}
