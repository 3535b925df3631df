/**
 * The fleet server's HTTP security as pure functions: the basic-auth file, constant-time secret comparison, request
 * authentication, the cross-site guard and the Host check; plus the SSE hub's coalescing on a ManualClock.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { ManualClock } from '../../base/clock';
import { EdgeheadError } from '../../base/errors';
import { authenticate, challenge, parseBasicAuth, readBasicAuthFile, secretEquals, sha256Secret } from '../../operator/fleet/http/auth';
import { crossSiteRefusal, hostRefusal, isLoopbackHost } from '../../operator/fleet/http/guard';
import { parseRolloutQuery } from '../../operator/fleet/http/routes';
import { SseHub } from '../../operator/fleet/http/sse';
import { deviceRow, FakeFleet, FakeRollouts } from '../support/browser';

const basicHeader = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

function badConfig(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof EdgeheadError, String(e));
    assert.equal(e.code, 'BAD_CONFIG');
    assert.ok(!e.message.includes('\n'), 'one line');
    return e.message;
  }
  assert.fail('expected a BAD_CONFIG error');
}

describe('basic-auth file', () => {
  const hashed = `{SHA256}${createHash('sha256').update('s3cret pass').digest('base64')}`;
  const text = ['# operators', '', 'alice:wonderland', `bob:${hashed}`, '  carol:with:colons  ', ''].join('\n');

  it('reads plain and {SHA256} passwords, skipping comments and blank lines', () => {
    const users = parseBasicAuth(text);
    assert.deepEqual([...users.keys()], ['alice', 'bob', 'carol']);
    assert.equal(users.get('alice')!('wonderland'), true);
    assert.equal(users.get('alice')!('Wonderland'), false);
    assert.equal(users.get('bob')!('s3cret pass'), true);
    assert.equal(users.get('bob')!(hashed), false, 'the hash itself is not the password');
    assert.equal(users.get('carol')!('with:colons'), true, 'a password may contain colons');
  });

  it('sha256Secret writes the form the parser reads', () => {
    assert.equal(sha256Secret('s3cret pass'), hashed);
  });

  it('reports every bad line at once, with its line number', () => {
    const msg = badConfig(() => parseBasicAuth('alice\nbob:{SHA}abc\nalice:x\nalice:y\n:nouser', 'users.txt'));
    assert.match(msg, /users\.txt:1: expected "user:password"/);
    assert.match(msg, /users\.txt:2: unsupported hash for user "bob"/);
    assert.match(msg, /users\.txt:4: user "alice" is listed twice/);
    assert.match(msg, /users\.txt:5: expected/);
  });

  it('refuses a file without a user', () => {
    assert.match(badConfig(() => parseBasicAuth('# nobody\n\n', 'empty.txt')), /empty\.txt: no user/);
  });

  it('readBasicAuthFile reads a file and names a missing one', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-auth-'));
    const file = path.join(dir, 'users');
    fs.writeFileSync(file, text);
    assert.equal(readBasicAuthFile(file).get('alice')!('wonderland'), true);
    assert.match(badConfig(() => readBasicAuthFile(path.join(dir, 'missing'))), /auth\.basicAuthFile: cannot read .*missing: ENOENT/);
    fs.rmSync(dir, { recursive: true });
  });
});

describe('secrets and authentication', () => {
  it('secretEquals compares whole secrets, whatever their lengths', () => {
    assert.equal(secretEquals('token-123', 'token-123'), true);
    assert.equal(secretEquals('token-12', 'token-123'), false);
    assert.equal(secretEquals('token-1234', 'token-123'), false);
    assert.equal(secretEquals('', 'token-123'), false);
    assert.equal(secretEquals('TOKEN-123', 'token-123'), false);
  });

  const auth = { token: 'tok-abc', basic: parseBasicAuth('alice:wonderland') };

  it('without auth configured every request is "local"', () => {
    assert.deepEqual(authenticate(undefined, undefined), { ok: true, actor: 'local' });
    assert.deepEqual(authenticate('Bearer whatever', {}), { ok: true, actor: 'local' });
  });

  it('accepts the bearer token and basic users, and names who it was', () => {
    assert.deepEqual(authenticate('Bearer tok-abc', auth), { ok: true, actor: 'token' });
    assert.deepEqual(authenticate('bearer tok-abc', auth), { ok: true, actor: 'token' }, 'the scheme is case-insensitive');
    assert.deepEqual(authenticate(basicHeader('alice', 'wonderland'), auth), { ok: true, actor: 'alice' });
  });

  it('refuses wrong tokens, wrong passwords, unknown users and malformed headers', () => {
    for (const h of [undefined, '', 'Bearer', 'Bearer tok-abd', 'Bearer tok-abc extra', 'Token tok-abc', basicHeader('alice', 'wrong'), basicHeader('mallory', 'wonderland'), 'Basic !!!', `Basic ${Buffer.from('alice').toString('base64')}`]) {
      assert.deepEqual(authenticate(h, auth), { ok: false }, String(h));
    }
  });

  it('a scheme that is not configured is refused', () => {
    assert.deepEqual(authenticate(basicHeader('alice', 'wonderland'), { token: 'tok-abc' }), { ok: false });
    assert.deepEqual(authenticate('Bearer tok-abc', { basic: auth.basic }), { ok: false });
  });

  it('challenges with Basic (the browser prompts) when basic auth is configured, else Bearer', () => {
    assert.match(challenge(auth), /^Basic realm="edgehead fleet"/);
    assert.match(challenge({ token: 'x' }), /^Bearer realm="edgehead fleet"/);
  });
});

describe('cross-site guard', () => {
  const own = 'http://127.0.0.1:8080';
  const req = (method: string, p: string, headers: Record<string, string> = {}) => crossSiteRefusal({ method, path: p, headers }, own);

  it('lets plain GETs and same-origin POSTs with the custom header through', () => {
    assert.equal(req('GET', '/api/devices'), undefined);
    assert.equal(req('GET', '/api/devices', { 'sec-fetch-site': 'same-origin', origin: own }), undefined);
    assert.equal(req('POST', '/api/rollouts', { 'x-edgehead-request': '1', origin: own, 'sec-fetch-site': 'same-origin' }), undefined);
    assert.equal(req('POST', '/api/rollouts', { 'x-edgehead-request': '1' }), undefined, 'curl sends no Origin');
  });

  it('refuses a non-GET without X-Edgehead-Request: 1', () => {
    assert.match(req('POST', '/api/rollouts') ?? '', /X-Edgehead-Request: 1/);
    assert.match(req('POST', '/api/rollouts', { 'x-edgehead-request': 'yes' }) ?? '', /X-Edgehead-Request/);
    assert.match(req('DELETE', '/api/rollouts/r1') ?? '', /X-Edgehead-Request/);
    assert.match(req('OPTIONS', '/api/rollouts') ?? '', /X-Edgehead-Request/);
  });

  it('refuses a foreign Origin, even with the header', () => {
    assert.match(req('POST', '/api/rollouts', { 'x-edgehead-request': '1', origin: 'https://evil.example' }) ?? '', /Origin https:\/\/evil\.example is not http:\/\/127\.0\.0\.1:8080/);
    assert.match(req('POST', '/api/rollouts', { 'x-edgehead-request': '1', origin: 'null' }) ?? '', /Origin null/);
    assert.match(req('GET', '/api/devices', { origin: 'http://127.0.0.1:9999' }) ?? '', /cross-origin/);
  });

  it('refuses Sec-Fetch-Site: cross-site except a navigation to the dashboard page', () => {
    assert.match(req('GET', '/api/devices', { 'sec-fetch-site': 'cross-site' }) ?? '', /Sec-Fetch-Site: cross-site/);
    assert.match(req('POST', '/api/rollouts', { 'sec-fetch-site': 'cross-site', 'x-edgehead-request': '1' }) ?? '', /cross-site/);
    assert.match(req('GET', '/', { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors' }) ?? '', /cross-site/);
    assert.equal(req('GET', '/', { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' }), undefined);
  });

  it('on a loopback listen, answers only loopback Host names (DNS rebinding)', () => {
    for (const h of ['127.0.0.1:8080', 'localhost:8080', '[::1]:8080', '127.0.0.2', 'LOCALHOST']) assert.equal(hostRefusal(h, true), undefined, h);
    assert.match(hostRefusal('evil.example:8080', true) ?? '', /Host evil\.example:8080 refused.*DNS rebinding/);
    assert.match(hostRefusal('192.168.1.5:8080', true) ?? '', /refused/);
    assert.match(hostRefusal(undefined, true) ?? '', /Host header is missing/);
    assert.equal(hostRefusal('fleet.example.org', false), undefined, 'a non-loopback listen has auth instead');
  });

  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) assert.equal(isLoopbackHost(h), true, h);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', 'example.com', '128.0.0.1', 'localhost.example.com']) assert.equal(isLoopbackHost(h), false, h);
  });
});

describe('rollout request from the query string', () => {
  const q = (s: string) => parseRolloutQuery(new URLSearchParams(s), 'alice');

  it('reads target, canary, agreement and timeout', () => {
    assert.deepEqual(q('target=all'), { target: { kind: 'all' }, actor: 'alice' });
    assert.deepEqual(q('target=group:kitchen&canary=pi-1,pi-2&minAgreement=0.9&stageTimeoutSec=60'), {
      target: { kind: 'group', group: 'kitchen' },
      actor: 'alice',
      canary: { devices: ['pi-1', 'pi-2'] },
      minAgreement: 0.9,
      stageTimeoutSec: 60,
    });
    assert.deepEqual(q('target=devices:a,b,a&canaryPercent=10'), { target: { kind: 'devices', devices: ['a', 'b'] }, actor: 'alice', canary: { percent: 10 } });
  });

  it('names the bad parameter', () => {
    const bad = (s: string, re: RegExp) => assert.throws(() => q(s), (e: Error) => re.test(e.message) && (e as { status?: number }).status === 400);
    bad('', /target: missing/);
    bad('target=fleet', /target: expected all, group:<group>/);
    bad('target=group:', /target: expected/);
    bad('target=devices:a,,b', /target: expected a comma-separated list/);
    bad('target=all&canary=a&canaryPercent=5', /one or the other/);
    bad('target=all&canaryPercent=0', /canaryPercent: must be a number/);
    bad('target=all&minAgreement=1.5', /minAgreement: must be a number from 0 to 1/);
    bad('target=all&stageTimeoutSec=abc', /stageTimeoutSec/);
    bad('target=all&canry=a', /unknown parameter "canry"/);
  });
});

/** A stand-in for http.ServerResponse: what the hub writes, and 'close' when the client goes. */
class FakeResponse extends EventEmitter {
  chunks: string[] = [];
  status = 0;
  ended = false;
  writableLength = 0;
  writeHead(status: number) {
    this.status = status;
    return this;
  }
  write(chunk: string) {
    this.chunks.push(chunk);
    return true;
  }
  end() {
    this.ended = true;
  }
  destroy() {
    this.ended = true;
    this.emit('close');
  }
  /** The events written so far, parsed. */
  events(): { event: string; data: unknown }[] {
    return this.chunks
      .join('')
      .split('\n\n')
      .filter((b) => b.startsWith('event: '))
      .map((b) => {
        const [ev, data] = b.split('\n');
        return { event: ev!.slice(7), data: JSON.parse(data!.slice(6)) };
      });
  }
}

describe('SSE hub', () => {
  const setup = (opts: { maxClients?: number } = {}) => {
    const clock = new ManualClock(0);
    const fleet = new FakeFleet();
    const rollouts = new FakeRollouts(fleet);
    const hub = new SseHub({ fleet, rollouts, clock, intervalMs: 1000, heartbeatMs: 15_000, ...opts });
    hub.start();
    const connect = () => {
      const req = new EventEmitter();
      const res = new FakeResponse();
      const ok = hub.accept(req as never, res as never);
      return { ok, req, res };
    };
    return { clock, fleet, rollouts, hub, connect };
  };

  it('coalesces changes: one devices event per interval with the latest rows, then removals', () => {
    const { clock, fleet, connect } = setup();
    const { res } = connect();
    fleet.set(deviceRow('pi-1', { cpuTempC: 50 }));
    fleet.update('pi-1', { cpuTempC: 51 });
    fleet.set(deviceRow('pi-2'));
    fleet.set(deviceRow('pi-3'));
    fleet.remove('pi-3');
    clock.advance(999);
    assert.deepEqual(res.events(), [], 'nothing before the interval');
    clock.advance(1);
    const events = res.events();
    assert.deepEqual(events.map((e) => e.event), ['devices', 'removed']);
    const rows = (events[0]!.data as { devices: { device: string; cpuTempC: number }[] }).devices;
    assert.deepEqual(rows.map((r) => [r.device, r.cpuTempC]), [['pi-1', 51], ['pi-2', 52.5]]);
    assert.deepEqual(events[1]!.data, { devices: ['pi-3'] });
    clock.advance(5000);
    assert.equal(res.events().length, 2, 'no event without a change');
  });

  it('sends the latest view of each changed rollout', async () => {
    const { clock, fleet, rollouts, connect } = setup();
    fleet.devices.set('pi-1', deviceRow('pi-1'));
    const { res } = connect();
    const view = await rollouts.start(new Uint8Array([1, 2, 3]), { target: { kind: 'all' } });
    rollouts.setDevice(view.id, 'pi-1', 'applied', 'done');
    clock.advance(1000);
    const events = res.events();
    assert.deepEqual(events.map((e) => e.event), ['rollout']);
    assert.equal((events[0]!.data as { phase: string }).phase, 'done');
  });

  it('heartbeats every 15 s while a client is connected', () => {
    const { clock, connect } = setup();
    const { res } = connect();
    clock.advance(30_000);
    assert.equal(res.chunks.filter((c) => c === ': ping\n\n').length, 2);
  });

  it('bounds the clients, forgets one that leaves, and keeps no timer when none is left', () => {
    const { clock, fleet, connect, hub } = setup({ maxClients: 1 });
    const first = connect();
    assert.equal(first.ok, true);
    assert.equal(first.res.status, 200);
    const second = connect();
    assert.equal(second.ok, false, 'over the limit');
    assert.equal(second.res.status, 0, 'nothing written to a refused client');
    first.res.emit('close');
    assert.equal(hub.clientCount, 0);
    fleet.set(deviceRow('pi-1'));
    assert.equal(clock.pending, 0, 'no flush or heartbeat pending without clients');
    assert.equal(connect().ok, true, 'room again');
  });

  it('stop() unsubscribes from the fleet and ends the streams', () => {
    const { fleet, rollouts, connect, hub } = setup();
    const { res } = connect();
    assert.equal(fleet.listenerCount('change'), 1);
    hub.stop();
    assert.equal(res.ended, true);
    assert.equal(fleet.listenerCount('change') + fleet.listenerCount('removed') + rollouts.listenerCount('change'), 0);
  });

  it('unsubscribes with the function `on` returned, when it returns one', () => {
    const listeners = new Set<unknown>();
    const fleet = Object.assign(new FakeFleet(), {
      on: (_e: string, fn: unknown) => (listeners.add(fn), () => listeners.delete(fn)),
    });
    const hub = new SseHub({ fleet, rollouts: new FakeRollouts(), clock: new ManualClock(), intervalMs: 1000 });
    hub.start();
    assert.equal(listeners.size, 2);
    hub.stop();
    assert.equal(listeners.size, 0);
  });
});
