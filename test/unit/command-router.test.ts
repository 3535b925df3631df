/**
 * CommandRouter (agent/commands/command-router.ts) over the protocol's command table: the replies a controller sees
 * for good, malformed and unknown requests and for failing handlers, and that no handler runs for a request that
 * was refused. Every parse error case is in protocol.test.ts (parseCommand); here only what the router adds.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import { type CommandHandlers, CommandRouter } from '../../agent/commands/command-router';
import { EdgeheadError } from '../../base/errors';
import { type CommandReply, CommandReplySchema } from '../../protocol/commands';

type Call = [string, unknown];

/** A full handler table that records its calls; `over` replaces some handlers. */
function router(over: Partial<CommandHandlers> = {}): { r: CommandRouter; calls: Call[]; handle: (p: string | Uint8Array) => Promise<CommandReply> } {
  const calls: Call[] = [];
  const handlers: CommandHandlers = {
    capture: async (args) => {
      calls.push(['capture', args]);
      return { label: 'cat' };
    },
    status: async (args) => {
      calls.push(['status', args]);
      return { online: true };
    },
    rollback: async (args) => void calls.push(['rollback', args]),
    allow: async (args) => void calls.push(['allow', args]),
    promote: async (args) => void calls.push(['promote', args]),
    discard: async (args) => void calls.push(['discard', args]),
    pause: async (args) => void calls.push(['pause', args]),
    resume: async (args) => void calls.push(['resume', args]),
    snapshot: async (args) => void calls.push(['snapshot', args]),
    'collect-fetch': async (args) => void calls.push(['collect-fetch', args]),
    'collect-ack': async (args) => void calls.push(['collect-ack', args]),
    'collect-status': async (args) => void calls.push(['collect-status', args]),
    shadow: async (args) => {
      calls.push(['shadow', args]);
      return { frames: args.frames };
    },
    ...over,
  };
  const r = new CommandRouter(handlers);
  const handle = async (p: string | Uint8Array) => {
    const reply = await r.handle(p);
    assert.ok(Value.Check(CommandReplySchema, reply), `reply matches the protocol schema: ${JSON.stringify(reply)}`);
    return reply;
  };
  return { r, calls, handle };
}

const req = (o: Record<string, unknown>) => JSON.stringify(o);

test('a good request: the reply carries the id, the command and the handler data', async () => {
  const { calls, handle } = router();
  assert.deepEqual(await handle(req({ id: 'req-1', cmd: 'status' })), { id: 'req-1', cmd: 'status', ok: true, data: { online: true } });
  assert.deepEqual(calls, [['status', {}]]);
});

test('a handler that returns nothing: ok without a data field', async () => {
  const { handle } = router();
  const reply = await handle(req({ id: 'x', cmd: 'rollback' }));
  assert.deepEqual(reply, { id: 'x', cmd: 'rollback', ok: true });
  assert.equal('data' in reply, false);
});

test('each command goes to its own handler, with its checked arguments', async () => {
  const { calls, handle } = router();
  await handle(req({ id: 1, cmd: 'promote' }));
  await handle(req({ id: 2, cmd: 'discard', args: {} }));
  const shadow = await handle(req({ id: 3, cmd: 'shadow', args: { frames: 20, autoPromoteAgreement: 0.95 } }));
  assert.deepEqual(shadow, { id: '3', cmd: 'shadow', ok: true, data: { frames: 20 } });
  assert.deepEqual(calls, [
    ['promote', {}],
    ['discard', {}],
    ['shadow', { frames: 20, autoPromoteAgreement: 0.95 }],
  ]);
});

test('ids: a string is echoed, an integer is echoed as a string', async () => {
  const { handle } = router();
  assert.equal((await handle(req({ id: 'abc-7', cmd: 'status' }))).id, 'abc-7');
  assert.equal((await handle(req({ id: 42, cmd: 'status' }))).id, '42');
  assert.equal((await handle(req({ id: -3, cmd: 'status' }))).id, '-3');
  assert.equal((await handle(req({ id: 0, cmd: 'status' }))).id, '0');
});

test('ids that cannot be echoed: refused with a null id, no handler runs', async () => {
  const { calls, handle } = router();
  for (const id of [1.5, '', 'x'.repeat(129), null, true, { a: 1 }, ['a']]) {
    const reply = await handle(req({ id, cmd: 'status' }));
    assert.deepEqual([reply.id, reply.ok], [null, false], JSON.stringify(id));
    assert.match(reply.error ?? '', /^malformed command/, JSON.stringify(id));
  }
  assert.deepEqual(calls, []);
});

test('Buffer and string payloads are handled alike', async () => {
  const { handle } = router();
  const body = req({ id: 'b', cmd: 'shadow', args: { frames: 2 } });
  assert.deepEqual(await handle(Buffer.from(body)), await handle(body));
  assert.deepEqual(await handle(new TextEncoder().encode(body)), await handle(body));
});

test('malformed payloads: an error reply (with the id when one can be read), no handler runs', async () => {
  const { calls, handle } = router();
  const cases: [string | Uint8Array, string | null][] = [
    ['', null],
    ['status', null],
    ['{"id":"a",', null],
    [Buffer.from([0xff, 0xfe, 0x00]), null],
    ['null', null],
    ['[]', null],
    ['"status"', null],
    [req({ cmd: 'status' }), null],
    [req({ id: 'm1' }), 'm1'],
    [req({ id: 'm2', cmd: 7 }), 'm2'],
    [req({ id: 'm3', cmd: 'status', args: [] }), 'm3'],
    [req({ id: 'm4', cmd: 'status', args: 'x' }), 'm4'],
    [req({ id: 'm5', cmd: 'status', args: null }), 'm5'],
  ];
  for (const [payload, id] of cases) {
    const reply = await handle(payload);
    const what = String(payload);
    assert.equal(reply.ok, false, what);
    assert.equal(reply.id, id, what);
    assert.match(reply.error ?? '', /^malformed command/, what);
    assert.ok(!(reply.error ?? '').includes('\n'), 'one line');
  }
  assert.deepEqual(calls, []);
});

test('an unknown command: an error reply naming it and the known ones, no handler runs', async () => {
  const { calls, handle } = router();
  const reply = await handle(req({ id: 'u', cmd: 'reboot', args: {} }));
  assert.equal(reply.id, 'u');
  assert.equal(reply.ok, false);
  assert.match(reply.error ?? '', /unknown command "reboot" \(known: allow, capture, collect-ack, collect-fetch, collect-status, discard, pause, promote, resume, rollback, shadow, snapshot, status\)/);
  for (const cmd of ['STATUS', 'constructor', 'toString', 'hasOwnProperty', '__proto__', '']) {
    const r = await handle(req({ id: 'p', cmd }));
    assert.equal(r.ok, false, cmd);
    assert.match(r.error ?? '', /unknown command/, cmd);
  }
  assert.deepEqual(calls, []);
});

test('arguments the command does not accept: an error reply naming the command, no handler runs', async () => {
  const { calls, handle } = router();
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ cmd: 'capture', args: { frames: 1 } }, /^capture: args\.frames: unknown key/],
    [{ cmd: 'shadow' }, /^shadow: args\.frames: required/],
    [{ cmd: 'shadow', args: { frames: 0 } }, /^shadow: args\.frames: must be >= 1/],
    [{ cmd: 'shadow', args: { frames: '5' } }, /^shadow: args\.frames: must be an integer/],
    [{ cmd: 'shadow', args: { frames: 5, autoPromoteAgreement: -0.1 } }, /^shadow: args\.autoPromoteAgreement: must be >= 0/],
  ];
  for (const [body, error] of cases) {
    const reply = await handle(req({ id: 'a1', ...body }));
    assert.deepEqual([reply.id, reply.cmd, reply.ok], ['a1', body.cmd, false], JSON.stringify(body));
    assert.match(reply.error ?? '', error);
  }
  assert.deepEqual(calls, []);
});

test('a handler that throws or rejects: an error reply with its one-line message, the router does not throw', async () => {
  const { handle } = router({
    rollback: async () => {
      throw new EdgeheadError('BAD_HEAD', 'no previous head', { hint: 'push one first' });
    },
    promote: async () => {
      throw new Error('disk full\n    at somewhere (file.ts:1:1)');
    },
    discard: () => {
      throw new Error('thrown before any promise');
    },
    status: () => Promise.reject('a bare string'),
  });
  const reply = (cmd: string) => handle(req({ id: cmd, cmd }));
  assert.deepEqual(await reply('rollback'), { id: 'rollback', cmd: 'rollback', ok: false, error: 'no previous head (push one first)' });
  assert.deepEqual(await reply('promote'), { id: 'promote', cmd: 'promote', ok: false, error: 'disk full' });
  assert.deepEqual(await reply('discard'), { id: 'discard', cmd: 'discard', ok: false, error: 'thrown before any promise' });
  assert.deepEqual(await reply('status'), { id: 'status', cmd: 'status', ok: false, error: 'a bare string' });
});

test('each reply answers its own request when handlers finish out of order', async () => {
  const gates: ((data: unknown) => void)[] = [];
  const { r } = router({ status: () => new Promise((resolve) => gates.push(resolve)) });
  const first = r.handle(req({ id: 'first', cmd: 'status' }));
  const second = r.handle(req({ id: 'second', cmd: 'status' }));
  while (gates.length < 2) await new Promise<void>((resolve) => setImmediate(resolve));
  gates[1]!('for second');
  assert.deepEqual(await second, { id: 'second', cmd: 'status', ok: true, data: 'for second' });
  gates[0]!('for first');
  assert.deepEqual(await first, { id: 'first', cmd: 'status', ok: true, data: 'for first' });
});
