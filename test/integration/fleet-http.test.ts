/**
 * The fleet server's HTTP side for real, on 127.0.0.1 with a fake fleet: the JSON API, auth (bearer and basic),
 * cross-site refusal, upload limits, errors as JSON, SSE, TLS, and the refusal to serve a non-loopback address without
 * auth. The dashboard itself is tested in a browser (fleet-browser.test.ts); here the assets are a stand-in page.
 */
import assert from 'node:assert/strict';
import * as https from 'node:https';
import * as http from 'node:http';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EdgeheadError } from '../../base/errors';
import { parseBasicAuth, sha256Secret } from '../../operator/fleet/http/auth';
import type { WebAssets } from '../../operator/fleet/http/deps';
import { createFleetHttpServer, type FleetHttpOptions, type FleetHttpServer } from '../../operator/fleet/http/server';
import type { DeviceRow, RolloutView } from '../../operator/fleet/model';
import { rejectsWith } from '../support/assertions';
import { deviceRow, fakeFleetDeps, type FakeFleetDeps } from '../support/browser';
import { makePki } from '../support/certs';
import { ROOT } from '../support/cli';

const ASSETS: WebAssets = new Map([
  ['/index.html', { contentType: 'text/html; charset=utf-8', body: Buffer.from('<!doctype html><title>fleet</title><script defer src="assets/app.js"></script>') }],
  ['/assets/app.js', { contentType: 'text/javascript; charset=utf-8', body: Buffer.from('console.log(1)') }],
]);
const MAX_UPLOAD = 1024;
const JPEG = fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'images', 'jpeg-baseline.jpg'));

async function start(deps: FakeFleetDeps, opts: Partial<FleetHttpOptions> = {}): Promise<{ server: FleetHttpServer; url: string }> {
  const server = createFleetHttpServer({ ...deps, listen: { host: '127.0.0.1', port: 0 }, auth: undefined, maxUploadBytes: MAX_UPLOAD, sseIntervalMs: 50, assets: ASSETS, ...opts });
  const { url } = await server.listen();
  return { server, url };
}

const POST = { method: 'POST', headers: { 'x-edgehead-request': '1' } };

/** A raw request (fetch cannot send every header or a chunked body the way a test needs). */
function raw(url: string, opts: { method?: string; path: string; headers?: Record<string, string>; chunks?: Buffer[] }): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(opts.path, url), { method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    for (const c of opts.chunks ?? []) req.write(c);
    req.end();
  });
}

/** Reads SSE events from a fetch body until `until` is satisfied. */
async function readEvents(res: Response, until: (events: { event: string; data: any }[]) => boolean): Promise<{ event: string; data: any }[]> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  const events: { event: string; data: any }[] = [];
  while (!until(events)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the stream ended after ${JSON.stringify(events)}`);
    text += value;
    let end: number;
    while ((end = text.indexOf('\n\n')) >= 0) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      const ev = /^event: (.*)$/m.exec(block);
      const data = /^data: (.*)$/m.exec(block);
      if (ev && data) events.push({ event: ev[1]!, data: JSON.parse(data[1]!) });
    }
  }
  await reader.cancel();
  return events;
}

describe('fleet HTTP server without auth (loopback)', () => {
  let deps: FakeFleetDeps;
  let server: FleetHttpServer;
  let url: string;

  before(async () => {
    deps = fakeFleetDeps([deviceRow('pi-1'), deviceRow('pi-2', { groups: ['garden'] })]);
    deps.fleet.snapshots.set('pi-1', JPEG);
    ({ server, url } = await start(deps));
  });
  after(() => server.close());

  it('serves the dashboard page with the security headers and no CORS header', async () => {
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(res.headers.get('access-control-allow-origin'), null);
    assert.match(await res.text(), /<title>fleet<\/title>/);
    assert.equal((await fetch(new URL('assets/app.js', url))).headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal((await fetch(new URL('assets/nope.js', url))).status, 404);
    assert.equal((await fetch(new URL('device/pi-1', url))).status, 404, 'hash routing: only / is the page');
  });

  it('answers the device list, one device with its history, and its snapshot', async () => {
    const list = (await (await fetch(new URL('api/devices', url))).json()) as { devices: DeviceRow[]; now: number };
    assert.deepEqual(list.devices.map((d) => d.device), ['pi-1', 'pi-2']);
    assert.equal(typeof list.now, 'number');
    const one = (await (await fetch(new URL('api/devices/pi-2', url))).json()) as { device: DeviceRow; history: { device: string; t: number[] } };
    assert.deepEqual(one.device.groups, ['garden']);
    assert.equal(one.history.device, 'pi-2');
    assert.ok(one.history.t.length > 0);
    const snap = await fetch(new URL('api/devices/pi-1/snapshot', url));
    assert.equal(snap.headers.get('content-type'), 'image/jpeg');
    assert.deepEqual(Buffer.from(await snap.arrayBuffer()), JPEG);
    const none = await fetch(new URL('api/devices/pi-2/snapshot', url));
    assert.equal(none.status, 404);
    assert.match(((await none.json()) as { error: string }).error, /no snapshot of "pi-2"/);
    const missing = await fetch(new URL('api/devices/ghost', url));
    assert.equal(missing.status, 404);
    assert.deepEqual(await missing.json(), { error: 'no device "ghost" in the fleet' });
  });

  it('serves /metrics and /healthz (503 while the broker is down)', async () => {
    const m = await fetch(new URL('metrics', url));
    assert.equal(m.headers.get('content-type'), deps.metrics.contentType);
    assert.match(await m.text(), /^edgehead_fake 1$/m);
    assert.deepEqual(await (await fetch(new URL('healthz', url))).json(), { ok: true, broker: { connected: true } });
    deps.healthState.ok = false;
    deps.healthState.broker.connected = false;
    const down = await fetch(new URL('healthz', url));
    assert.equal(down.status, 503);
    deps.healthState.ok = true;
    deps.healthState.broker.connected = true;
  });

  it('refuses a POST without X-Edgehead-Request, and a foreign Origin, with 403 naming the reason', async () => {
    const before = deps.rollouts.started.length;
    const noHeader = await fetch(new URL('api/rollouts?target=all', url), { method: 'POST', body: 'head' });
    assert.equal(noHeader.status, 403);
    assert.match(((await noHeader.json()) as { error: string }).error, /X-Edgehead-Request: 1/);
    const foreign = await raw(url, { method: 'POST', path: '/api/rollouts?target=all', headers: { 'x-edgehead-request': '1', origin: 'https://evil.example' }, chunks: [Buffer.from('head')] });
    assert.equal(foreign.status, 403);
    assert.match(JSON.parse(foreign.body).error, /Origin https:\/\/evil\.example/);
    const crossSite = await raw(url, { path: '/api/devices', headers: { 'sec-fetch-site': 'cross-site' } });
    assert.equal(crossSite.status, 403);
    const preflight = await raw(url, { method: 'OPTIONS', path: '/api/rollouts', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    assert.ok(preflight.status >= 400, `preflight answered ${preflight.status}`);
    assert.ok(!Object.keys(preflight.headers).some((h) => h.startsWith('access-control-')), 'no CORS header on a preflight');
    assert.equal(deps.rollouts.started.length, before, 'rollouts.start was not called');
  });

  it('refuses a Host that is not loopback (DNS rebinding)', async () => {
    const res = await raw(url, { path: '/api/devices', headers: { host: 'evil.example' } });
    assert.equal(res.status, 403);
    assert.match(JSON.parse(res.body).error, /DNS rebinding/);
  });

  it('starts a rollout with the uploaded bytes and the parsed request (201)', async () => {
    const bytes = Buffer.from('EHEAD fake head file bytes');
    const res = await fetch(new URL('api/rollouts?target=group:kitchen&canary=pi-1&minAgreement=0.9', url), { ...POST, body: bytes });
    assert.equal(res.status, 201);
    const view = (await res.json()) as RolloutView;
    const call = deps.rollouts.started.at(-1)!;
    assert.deepEqual(Buffer.from(call.bytes), bytes);
    assert.deepEqual(call.req, { target: { kind: 'group', group: 'kitchen' }, canary: { devices: ['pi-1'] }, minAgreement: 0.9, actor: 'local' });
    assert.deepEqual(await (await fetch(new URL(`api/rollouts/${view.id}`, url))).json(), view);
    const list = (await (await fetch(new URL('api/rollouts', url))).json()) as { rollouts: RolloutView[] };
    assert.ok(list.rollouts.some((r) => r.id === view.id));

    const halted = await fetch(new URL(`api/rollouts/${view.id}/halt`, url), { method: 'POST', headers: { 'x-edgehead-request': '1', 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'looks wrong' }) });
    assert.equal(halted.status, 200);
    assert.equal(((await halted.json()) as RolloutView).phase, 'halted');
    assert.deepEqual(deps.rollouts.halted.at(-1), { id: view.id, actor: 'local', reason: 'looks wrong' });
    const back = await fetch(new URL(`api/rollouts/${view.id}/rollback`, url), POST);
    assert.equal(back.status, 200);
    assert.deepEqual(deps.rollouts.rolledBack.at(-1), { id: view.id, actor: 'local' });
    assert.equal((await fetch(new URL('api/rollouts/r999/halt', url), POST)).status, 404);
  });

  it('answers a bad head with 400 and its message, a bad request with 422, a bad query with 400', async () => {
    deps.rollouts.startError = new EdgeheadError('BAD_HEAD', 'not a head file: bad magic bytes');
    const bad = await fetch(new URL('api/rollouts?target=all', url), { ...POST, body: 'garbage' });
    assert.equal(bad.status, 400);
    assert.deepEqual(await bad.json(), { error: 'not a head file: bad magic bytes' });
    deps.rollouts.startError = new EdgeheadError('BAD_ARGS', 'unknown devices: ghost');
    const args = await fetch(new URL('api/rollouts?target=devices:ghost', url), { ...POST, body: 'head' });
    assert.equal(args.status, 422);
    assert.deepEqual(await args.json(), { error: 'unknown devices: ghost' });
    const before = deps.rollouts.started.length;
    const query = await fetch(new URL('api/rollouts?target=everything', url), { ...POST, body: 'head' });
    assert.equal(query.status, 400);
    assert.match(((await query.json()) as { error: string }).error, /^target: expected all/);
    const empty = await fetch(new URL('api/rollouts?target=all', url), POST);
    assert.equal(empty.status, 400);
    assert.equal(deps.rollouts.started.length, before);
  });

  it('refuses an upload over maxUploadBytes with 413: declared, and streamed in chunks', async () => {
    const before = deps.rollouts.started.length;
    const declared = await fetch(new URL('api/rollouts?target=all', url), { ...POST, body: Buffer.alloc(MAX_UPLOAD + 1) });
    assert.equal(declared.status, 413);
    assert.match(((await declared.json()) as { error: string }).error, /larger than the limit of 1024 bytes/);
    const chunked = await raw(url, { method: 'POST', path: '/api/rollouts?target=all', headers: { 'x-edgehead-request': '1', 'transfer-encoding': 'chunked' }, chunks: [Buffer.alloc(600), Buffer.alloc(600)] });
    assert.equal(chunked.status, 413);
    assert.equal(chunked.headers.connection, 'close');
    assert.equal(deps.rollouts.started.length, before, 'rollouts.start was not called');
    const atLimit = await fetch(new URL('api/rollouts?target=all', url), { ...POST, body: Buffer.alloc(MAX_UPLOAD, 7) });
    assert.equal(atLimit.status, 201, 'exactly the limit is fine');
  });

  it('answers 405 with Allow for a known path and another method', async () => {
    const res = await fetch(new URL('api/devices', url), { method: 'DELETE', headers: { 'x-edgehead-request': '1' } });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'GET, HEAD');
  });

  it('survives a handler that throws: 500 as JSON, then serves on', async () => {
    deps.fleet.failNextRows = true;
    const res = await fetch(new URL('api/devices', url));
    assert.equal(res.status, 500);
    assert.match(((await res.json()) as { error: string }).error, /fake failure in rows\(\)/);
    assert.equal((await fetch(new URL('api/devices', url))).status, 200);
  });

  it('streams a changed row, a removal and a rollout change as SSE events', async () => {
    const res = await fetch(new URL('api/events', url));
    assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    const got = readEvents(res, (ev) => ev.some((e) => e.event === 'removed') && ev.some((e) => e.event === 'rollout'));
    // fetch resolved with the headers, which the hub writes when it takes the client: changes from now on are sent.
    deps.fleet.update('pi-1', { online: false, offlineReason: 'connection lost' });
    deps.fleet.remove('pi-2');
    const view = deps.rollouts.list()[0]!;
    deps.rollouts.change(view.id, (v) => (v.haltReason = 'changed by the test'));
    const events = await got;
    const devices = events.filter((e) => e.event === 'devices').flatMap((e) => e.data.devices as DeviceRow[]);
    assert.deepEqual(devices.map((d) => [d.device, d.online]), [['pi-1', false]]);
    assert.deepEqual(events.find((e) => e.event === 'removed')!.data, { devices: ['pi-2'] });
    assert.equal(events.find((e) => e.event === 'rollout')!.data.haltReason, 'changed by the test');
  });
});

describe('SSE client limit', () => {
  it('answers 503 beyond the limit and makes room when a client leaves', async () => {
    const deps = fakeFleetDeps();
    const { server, url } = await start(deps, { sse: { maxClients: 1 } });
    try {
      const ctl = new AbortController();
      const first = await fetch(new URL('api/events', url), { signal: ctl.signal });
      assert.equal(first.status, 200);
      const second = await fetch(new URL('api/events', url));
      assert.equal(second.status, 503);
      assert.match(((await second.json()) as { error: string }).error, /too many event streams/);
      ctl.abort();
      // The server learns of the disconnect asynchronously: poll until the slot is free (the guard only stops a hang).
      const deadline = Date.now() + 30_000;
      let status = 0;
      while (status !== 200 && Date.now() < deadline) {
        const again = await fetch(new URL('api/events', url));
        status = again.status;
        await again.body?.cancel();
      }
      assert.equal(status, 200, 'the slot was freed');
    } finally {
      await server.close();
    }
  });
});

describe('fleet HTTP server with auth', () => {
  let deps: FakeFleetDeps;
  let server: FleetHttpServer;
  let url: string;
  const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

  before(async () => {
    deps = fakeFleetDeps([deviceRow('pi-1')]);
    const users = parseBasicAuth(`alice:wonderland\nbob:${sha256Secret('builder')}\n`);
    ({ server, url } = await start(deps, { auth: { token: 'tok-0123456789', basic: users } }));
  });
  after(() => server.close());

  it('answers 401 with a Basic challenge without credentials, on the API, /metrics and the page', async () => {
    for (const p of ['api/devices', 'api/events', 'metrics', '', 'assets/app.js']) {
      const res = await fetch(new URL(p, url));
      assert.equal(res.status, 401, p);
      assert.equal(res.headers.get('www-authenticate'), 'Basic realm="edgehead fleet", charset="UTF-8"', p);
    }
    const post = await fetch(new URL('api/rollouts?target=all', url), { ...POST, body: 'head' });
    assert.equal(post.status, 401);
    assert.equal(deps.rollouts.started.length, 0);
  });

  it('/healthz needs no auth', async () => {
    assert.equal((await fetch(new URL('healthz', url))).status, 200);
  });

  it('accepts the bearer token and basic users (plain and {SHA256}); refuses wrong ones', async () => {
    const get = (headers: Record<string, string>) => fetch(new URL('api/devices', url), { headers }).then((r) => r.status);
    assert.equal(await get({ authorization: 'Bearer tok-0123456789' }), 200);
    assert.equal(await get(basic('alice', 'wonderland')), 200);
    assert.equal(await get(basic('bob', 'builder')), 200);
    assert.equal(await get({ authorization: 'Bearer tok-012345678' }), 401);
    assert.equal(await get(basic('alice', 'builder')), 401);
    assert.equal(await get(basic('mallory', 'wonderland')), 401);
  });

  it('passes the authenticated user to the rollout as its actor', async () => {
    const res = await fetch(new URL('api/rollouts?target=all', url), { method: 'POST', headers: { 'x-edgehead-request': '1', ...basic('bob', 'builder') }, body: 'head' });
    assert.equal(res.status, 201);
    assert.equal(deps.rollouts.started.at(-1)!.req.actor, 'bob');
    const viaToken = await fetch(new URL('api/rollouts?target=all', url), { method: 'POST', headers: { 'x-edgehead-request': '1', authorization: 'Bearer tok-0123456789' }, body: 'head' });
    assert.equal(viaToken.status, 201);
    assert.equal(deps.rollouts.started.at(-1)!.req.actor, 'token');
  });

  it('checks auth before reading an upload: 401, not 413', async () => {
    const res = await fetch(new URL('api/rollouts?target=all', url), { ...POST, body: Buffer.alloc(MAX_UPLOAD * 4) });
    assert.equal(res.status, 401);
  });
});

describe('fleet HTTP server with a token only', () => {
  it('serves the page (so its token form can load) but nothing else without the token', async () => {
    const deps = fakeFleetDeps([deviceRow('pi-1')]);
    const { server, url } = await start(deps, { auth: { token: 'tok-0123456789' } });
    try {
      assert.equal((await fetch(url)).status, 200);
      assert.equal((await fetch(new URL('assets/app.js', url))).status, 200);
      for (const p of ['api/devices', 'api/rollouts', 'api/events', 'metrics']) {
        const res = await fetch(new URL(p, url));
        assert.equal(res.status, 401, p);
        assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="edgehead fleet"', p);
      }
      assert.equal((await fetch(new URL('api/devices', url), { headers: { authorization: 'Bearer tok-0123456789' } })).status, 200);
    } finally {
      await server.close();
    }
  });
});

describe('fleet HTTP server over TLS', () => {
  it('serves https with the configured certificate', async () => {
    const pki = makePki();
    const deps = fakeFleetDeps([deviceRow('pi-1')]);
    const { server, url } = await start(deps, { listen: { host: '127.0.0.1', port: 0, tls: { cert: pki.serverCert, key: pki.serverKey } } });
    try {
      assert.match(url, /^https:\/\/127\.0\.0\.1:\d+\/$/);
      const body = await new Promise<string>((resolve, reject) => {
        https
          .get(new URL('api/devices', url), { ca: fs.readFileSync(pki.ca) }, (res) => {
            let text = '';
            res.on('data', (d) => (text += d));
            res.on('end', () => resolve(text));
          })
          .on('error', reject);
      });
      assert.deepEqual((JSON.parse(body) as { devices: DeviceRow[] }).devices.map((d) => d.device), ['pi-1']);
      await assert.rejects(fetch(new URL('api/devices', url.replace('https:', 'http:'))), 'plain http on the TLS port fails');
    } finally {
      await server.close();
    }
  });

  it('names an unreadable certificate file', async () => {
    const server = createFleetHttpServer({ ...fakeFleetDeps(), listen: { host: '127.0.0.1', port: 0, tls: { cert: '/nonexistent/cert.pem', key: '/nonexistent/key.pem' } }, auth: undefined, maxUploadBytes: MAX_UPLOAD, assets: ASSETS });
    await rejectsWith(server.listen(), 'BAD_CONFIG', /listen\.tls\.cert: cannot read \/nonexistent\/cert\.pem: ENOENT/);
  });
});

describe('fleet HTTP server listen checks', () => {
  it('refuses a non-loopback address without auth', async () => {
    for (const host of ['0.0.0.0', '::', '192.168.1.10']) {
      const server = createFleetHttpServer({ ...fakeFleetDeps(), listen: { host, port: 0 }, auth: undefined, maxUploadBytes: MAX_UPLOAD, assets: ASSETS });
      await rejectsWith(server.listen(), 'BAD_CONFIG', /non-loopback address needs auth/);
      await server.close();
    }
  });

  it('says when the port is taken', async () => {
    const { server, url } = await start(fakeFleetDeps());
    try {
      const port = Number(new URL(url).port);
      const second = createFleetHttpServer({ ...fakeFleetDeps(), listen: { host: '127.0.0.1', port }, auth: undefined, maxUploadBytes: MAX_UPLOAD, assets: ASSETS });
      await rejectsWith(second.listen(), 'BAD_CONFIG', /the address is in use/);
    } finally {
      await server.close();
    }
  });
});
