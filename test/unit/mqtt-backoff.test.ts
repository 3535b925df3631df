/**
 * MqttJsClient's reconnect policy (mqtt/mqttjs-client.ts): backoffMs (exponential from reconnectMinMs, capped at
 * reconnectMaxMs, times a jitter factor in [0.5, 1) from the injected random), and the reconnect scheduling on a
 * ManualClock against aedes in-process over in-memory streams (the `connect` seam; no sockets). A "down" broker is
 * a stream that closes at once, as a refused TCP connection does.
 */
import assert from 'node:assert/strict';
import { type Duplex, duplexPair } from 'node:stream';
import { after, before, test } from 'node:test';
import { Aedes } from 'aedes';
import { type IClientOptions, MqttClient } from 'mqtt';
import { ManualClock } from '../../base/clock';
import { configureLogging } from '../../base/log';
import { prng } from '../../base/prng';
import { defaultConfig } from '../../config/defaults';
import { type MqttConnect, MqttJsClient } from '../../mqtt/mqttjs-client';

configureLogging({ level: 'error', sink: { write: () => undefined } });

function settings(min: number, max: number) {
  return { ...defaultConfig().mqtt, url: 'mqtt://memory', reconnectMinMs: min, reconnectMaxMs: max };
}

const backoff = (min: number, max: number, random: () => number) => new MqttJsClient({ cfg: settings(min, max), clientId: 'dev1', random });

test('backoffMs: doubles from reconnectMinMs and stops at reconnectMaxMs (jitter factor 0.5 with random() = 0)', () => {
  const c = backoff(1000, 60_000, () => 0);
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7, 8].map((n) => c.backoffMs(n)),
    [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000],
  );
});

test('backoffMs: very large attempt counts stay at the cap (no overflow to Infinity or NaN)', () => {
  const c = backoff(1000, 60_000, () => 0);
  for (const n of [30, 31, 1024, 1e6, Number.MAX_SAFE_INTEGER]) assert.equal(c.backoffMs(n), 30_000, String(n));
});

test('backoffMs: the jitter keeps every delay in [base/2, base] and uses the injected random', () => {
  const random = prng(42);
  let calls = 0;
  const c = backoff(1000, 8000, () => (calls++, random()));
  const seen = new Set<number>();
  for (let n = 0; n < 8; n++) {
    const base = Math.min(8000, 1000 * 2 ** n);
    for (let i = 0; i < 200; i++) {
      const d = c.backoffMs(n);
      assert.ok(d >= base / 2 && d <= base, `attempt ${n}: ${d} outside [${base / 2}, ${base}]`);
      seen.add(d);
    }
  }
  assert.equal(calls, 8 * 200, 'one random number per delay');
  assert.ok(seen.size > 100, 'the delays are spread, not constant');
});

test('backoffMs: the factor is 0.5 + random/2 (random 0.5 gives 3/4 of the base, random close to 1 almost all of it)', () => {
  assert.equal(backoff(1000, 60_000, () => 0.5).backoffMs(2), 3000);
  assert.equal(backoff(1000, 60_000, () => 0.998).backoffMs(3), 7992);
});

test('backoffMs: reconnectMinMs equal to reconnectMaxMs gives a fixed base', () => {
  const c = backoff(5000, 5000, () => 0);
  assert.deepEqual([0, 1, 10].map((n) => c.backoffMs(n)), [2500, 2500, 2500]);
});

let aedes: Aedes;
before(async () => {
  aedes = await Aedes.createBroker();
});
after(() => new Promise<void>((resolve) => aedes.close(() => resolve())));

/** An in-memory "network" to aedes: `down` makes new connections close at once; drop() cuts the live one. */
function network() {
  const net = { down: false, attempts: 0, live: undefined as Duplex | undefined };
  const connect: MqttConnect = (_url: string, opts: IClientOptions) =>
    new MqttClient(() => {
      net.attempts++;
      const [client, server] = duplexPair();
      server.once('close', () => client.destroy());
      client.once('close', () => server.destroy());
      if (net.down) {
        server.destroy();
      } else {
        net.live = server;
        aedes.handle(server);
      }
      return client;
    }, opts);
  return { net, connect, drop: () => net.live?.destroy() };
}

/** Resolves on the next event of that kind (events are recorded by the handlers below). */
function recorder(client: MqttJsClient) {
  const events: string[] = [];
  const waiters: { kind: string; resolve: () => void }[] = [];
  const note = (kind: string) => {
    events.push(kind);
    for (const w of waiters.splice(0)) (w.kind === kind ? w.resolve : () => waiters.push(w))();
  };
  client.onConnect(() => note('connect'));
  client.onDisconnect(() => note('disconnect'));
  const next = (kind: string) => new Promise<void>((resolve) => waiters.push({ kind, resolve }));
  return { events, next };
}

test('reconnect: waits backoffMs of the consecutive failures on the injected clock, resets after a connection, stops on stop()', async () => {
  const clock = new ManualClock();
  const { net, connect, drop } = network();
  const client = new MqttJsClient({ cfg: settings(1000, 8000), clientId: 'backoff-1', clock, random: () => 0, connect });
  const { next } = recorder(client);
  try {
    let up = next('connect');
    client.start();
    await up;
    assert.deepEqual(client.stats(), { connected: true, reconnects: 0 });
    assert.equal(net.attempts, 1);

    net.down = true;
    let lost = next('disconnect');
    drop();
    await lost;
    assert.equal(client.connected, false);
    // Delays for failures 0, 1, 2, 3, 4, 5 in a row: 1000 * 2^n capped at 8000, times 0.5.
    for (const delay of [500, 1000, 2000, 4000, 4000]) {
      assert.equal(clock.pending, 1, 'one reconnect timer');
      const attemptsBefore: number = net.attempts;
      clock.advance(delay - 1);
      assert.equal(net.attempts, attemptsBefore, `no attempt before ${delay} ms`);
      lost = next('disconnect');
      clock.advance(1);
      assert.equal(net.attempts, attemptsBefore + 1, `an attempt at ${delay} ms`);
      await lost; // the failed attempt closes: scheduled again, one step longer
    }

    net.down = false;
    up = next('connect');
    clock.advance(4000);
    await up;
    assert.equal(clock.pending, 0);
    assert.deepEqual(client.stats(), { connected: true, reconnects: 1 });

    // A connection resets the count: the next loss waits the first delay again.
    lost = next('disconnect');
    drop();
    await lost;
    up = next('connect');
    clock.advance(499);
    assert.equal(client.connected, false);
    clock.advance(1);
    await up;
    assert.equal(client.stats().reconnects, 2);

    // stop() cancels a pending reconnect.
    lost = next('disconnect');
    drop();
    await lost;
    assert.equal(clock.pending, 1);
    const attempts = net.attempts;
    await client.stop(undefined, 1000);
    assert.equal(clock.pending, 0);
    clock.advance(60_000);
    assert.equal(net.attempts, attempts);
  } finally {
    await client.stop(undefined, 1000);
  }
});

test('reconnect: a broker refusing the connection is retried with the same backoff and named in stats().lastError', async () => {
  const clock = new ManualClock();
  const { net, connect } = network();
  let refuse = true;
  aedes.authenticate = (_client, _user, _pass, done) => (refuse ? done(Object.assign(new Error('Not authorized'), { returnCode: 5 }), false) : done(null, true));
  const client = new MqttJsClient({ cfg: settings(1000, 60_000), clientId: 'backoff-2', clock, random: () => 0, connect });
  const { next } = recorder(client);
  try {
    let lost = next('disconnect');
    client.start();
    await lost;
    assert.match(client.stats().lastError ?? '', /rejected the credentials/);
    lost = next('disconnect');
    clock.advance(500);
    await lost;
    assert.equal(net.attempts, 2);
    const up = next('connect');
    refuse = false;
    clock.advance(999);
    assert.equal(net.attempts, 2, 'second failure: 1000 ms');
    clock.advance(1);
    await up;
    assert.deepEqual(client.stats(), { connected: true, reconnects: 0 }, 'the first successful connection is not a reconnect');
  } finally {
    aedes.authenticate = (_client, _user, _pass, done) => done(null, true);
    await client.stop(undefined, 1000);
  }
});
