/** The http source against a local server: snapshots, basic auth, and every way a camera can fail. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { defaultConfig } from '../../config/defaults';
import { createFrameSource } from '../../agent/sources';
import { type HttpSettings, HttpSource } from '../../agent/sources/http';
import { EdgeheadError } from '../../base/errors';
import { rejectsWith } from '../support/assertions';

const JPEG = fs.readFileSync(path.resolve(__dirname, '../fixtures/images/jpeg-baseline.jpg'));
const PNG = fs.readFileSync(path.resolve(__dirname, '../fixtures/images/png-rgb8.png'));
const AUTH = 'Basic ' + Buffer.from('cam:s3cr:t').toString('base64');

let server: http.Server;
let base = '';
const requests: http.IncomingHttpHeaders[] = [];
/** Called when a /hang request reaches the server. */
let hangArrived: (() => void) | undefined;
/** The latest /endless or /trickle response: resolves when the client closed it (how many bytes were sent by then). */
let streaming: { started: Promise<void>; closed: Promise<number> } | undefined;

/** The next /endless or /trickle response, once the server has it. */
async function nextStream(): Promise<NonNullable<typeof streaming>> {
  for (;;) {
    if (streaming) return streaming;
    await new Promise((r) => setImmediate(r));
  }
}

/** Sends `chunk` again and again (as fast as the client reads, or every `everyMs`) until the client goes away. */
function sendForever(res: http.ServerResponse, chunk: Buffer, everyMs?: number): void {
  let sent = 0;
  let started!: () => void;
  streaming = { started: new Promise<void>((r) => (started = r)), closed: new Promise<number>((r) => res.on('close', () => r(sent))) };
  res.writeHead(200, { 'content-type': 'image/jpeg' });
  const more = (): void => {
    if (res.destroyed) return;
    let ok = true;
    do {
      ok = res.write(chunk);
      sent += chunk.length;
      started();
    } while (ok && everyMs === undefined);
    if (everyMs !== undefined) setTimeout(more, everyMs);
    else res.once('drain', more);
  };
  more();
}

before(async () => {
  server = http.createServer((req, res) => {
    requests.push(req.headers);
    switch (req.url) {
      case '/snap.jpg':
        return void res.writeHead(200, { 'content-type': 'image/jpeg' }).end(JPEG);
      case '/snap.png':
        return void res.writeHead(200, { 'content-type': 'image/png' }).end(PNG);
      case '/auth.jpg':
        if (req.headers.authorization !== AUTH) return void res.writeHead(401, { 'www-authenticate': 'Basic realm="cam"' }).end();
        return void res.writeHead(200, { 'content-type': 'image/jpeg' }).end(JPEG);
      case '/html':
        return void res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<html>login</html>');
      case '/untyped':
        return void res.writeHead(200).end(JPEG);
      case '/fake.jpg':
        return void res.writeHead(200, { 'content-type': 'image/jpeg' }).end('not really');
      case '/moved':
        return void res.writeHead(302, { location: '/snap.jpg' }).end();
      case '/hang':
        hangArrived?.();
        return; // never answers
      case '/endless': // a "snapshot" that never ends, as fast as the client takes it
        return sendForever(res, Buffer.concat([JPEG, Buffer.alloc(64 * 1024 - JPEG.length)]));
      case '/trickle': // a snapshot that arrives a few bytes at a time
        return sendForever(res, JPEG.subarray(0, 16), 20);
      case '/declared-huge':
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': '1000000000' });
        return void res.write(JPEG);
      case '/slow-body':
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': String(JPEG.length) });
        return void res.write(JPEG.subarray(0, 10)); // and never the rest
      default:
        return void res.writeHead(404).end('no such page');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

function source(url: string | undefined, over: Partial<HttpSettings> = {}): HttpSource {
  return new HttpSource({ ...defaultConfig().source.http, url, ...over });
}


async function captureOnce(src: HttpSource) {
  await src.start();
  try {
    return await src.capture();
  } finally {
    await src.stop();
  }
}

describe('http source', { timeout: 60_000 }, () => {
  test('fetches a JPEG or PNG snapshot', async () => {
    const f = await captureOnce(source(`${base}/snap.jpg`));
    assert.ok(Buffer.from(f.bytes).equals(JPEG));
    assert.equal(f.origin, `http:${base}/snap.jpg`);
    assert.ok(f.captureMs >= 0);
    assert.ok(Buffer.from((await captureOnce(source(`${base}/snap.png`))).bytes).equals(PNG));
    assert.ok(Buffer.from((await captureOnce(source(`${base}/moved`))).bytes).equals(JPEG), 'redirects are followed');
  });

  test('basic auth from the settings, or from the URL (kept out of the origin)', async () => {
    const f = await captureOnce(source(`${base}/auth.jpg`, { username: 'cam', password: 's3cr:t' }));
    assert.ok(Buffer.from(f.bytes).equals(JPEG));
    assert.equal(requests.at(-1)!.authorization, AUTH);
    const g = await captureOnce(source(`http://cam:s3cr%3At@${base.slice('http://'.length)}/auth.jpg`));
    assert.ok(Buffer.from(g.bytes).equals(JPEG));
    assert.equal(g.origin, `http:${base}/auth.jpg`);
  });

  test('no Authorization header without credentials', async () => {
    await captureOnce(source(`${base}/snap.jpg`));
    assert.equal(requests.at(-1)!.authorization, undefined);
  });

  test('non-2xx answers are CAPTURE errors naming the status', async () => {
    await rejectsWith(captureOnce(source(`${base}/missing.jpg`)), 'CAPTURE', new RegExp(`^GET ${base}/missing\\.jpg: HTTP 404 Not Found$`));
    const err = await rejectsWith(captureOnce(source(`${base}/auth.jpg`, { username: 'cam', password: 'wrong' })), 'CAPTURE', /HTTP 401 Unauthorized/);
    assert.match(err.hint ?? '', /source\.http\.username/);
  });

  test('a content-type that is not image/* (or none) is a CAPTURE error', async () => {
    await rejectsWith(captureOnce(source(`${base}/html`)), 'CAPTURE', /expected an image, got content-type "text\/html; charset=utf-8"/);
    await rejectsWith(captureOnce(source(`${base}/untyped`)), 'CAPTURE', /expected an image, got content-type \(none\)/);
  });

  test('image/* that is not a JPEG or PNG is a CAPTURE error', async () => {
    await rejectsWith(captureOnce(source(`${base}/fake.jpg`)), 'CAPTURE', /not a JPEG or PNG image \(10 bytes starting 6e 6f 74 20\)/);
  });

  test('a server that never answers, or stalls mid-body, times out', async () => {
    await rejectsWith(captureOnce(source(`${base}/hang`, { timeoutMs: 300 })), 'CAPTURE', new RegExp(`^GET ${base}/hang: no complete answer within 300 ms$`));
    await rejectsWith(captureOnce(source(`${base}/slow-body`, { timeoutMs: 300 })), 'CAPTURE', /slow-body: no complete answer within 300 ms/);
  });

  test('a refused connection is a CAPTURE error with the reason', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    await rejectsWith(captureOnce(source(`http://127.0.0.1:${port}/snap.jpg`)), 'CAPTURE', /failed: .*ECONNREFUSED/);
  });

  test('stop() aborts a request in flight', async () => {
    const src = source(`${base}/hang`, { timeoutMs: 600_000 });
    await src.start();
    const arrived = new Promise<void>((r) => (hangArrived = r));
    const capture = rejectsWith(src.capture(), 'CAPTURE', /aborted, the source was stopped/);
    await arrived; // the request is at the server, waiting for an answer
    hangArrived = undefined;
    await src.stop();
    await capture;
    await rejectsWith(src.capture(), 'CAPTURE', /not started/);
  });

  test('a body past source.http.maxFrameBytes is refused: the download is cancelled, nothing beyond the limit is held', async () => {
    const maxFrameBytes = 1024 * 1024;
    const err = await rejectsWith(
      captureOnce(source(`${base}/endless`, { maxFrameBytes, timeoutMs: 600_000 })),
      'CAPTURE',
      new RegExp(`/endless: the snapshot is more than ${maxFrameBytes} bytes, over the limit of ${maxFrameBytes} bytes \\(source\\.http\\.maxFrameBytes\\)$`),
    );
    assert.match(err.hint ?? '', /raise source\.http\.maxFrameBytes/);
    const sent = await streaming!.closed; // the server sees the client go away: the body is not read to its (absent) end
    assert.ok(sent > maxFrameBytes, `the server sent ${sent} bytes before the client went away`);
  });

  test('a declared Content-Length past the limit is refused before the body is read', async () => {
    await rejectsWith(
      captureOnce(source(`${base}/declared-huge`)),
      'CAPTURE',
      /declared-huge: the snapshot is 1000000000 bytes, over the limit of 16777216 bytes \(source\.http\.maxFrameBytes\)$/,
    );
  });

  test('stop() during a slow body download aborts it (the server sees the request closed)', async () => {
    const src = source(`${base}/trickle`, { timeoutMs: 600_000 });
    await src.start();
    streaming = undefined;
    const capture = rejectsWith(src.capture(), 'CAPTURE', /aborted, the source was stopped/);
    const response = await nextStream();
    await response.started; // the body is flowing
    await src.stop();
    await capture;
    await response.closed;
  });

  test('the factory requires a url for type http', () => {
    const cfg = { ...defaultConfig().source, type: 'http' as const };
    assert.throws(
      () => createFrameSource(cfg),
      (e: unknown) => e instanceof EdgeheadError && e.code === 'BAD_CONFIG' && e.message === 'source.http.url is required when source.type is http',
    );
    assert.ok(createFrameSource({ ...cfg, http: { ...cfg.http, url: `${base}/snap.jpg` } }) instanceof HttpSource);
  });
});
