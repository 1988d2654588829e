// Supervisor (lib/runtime/supervisor.ts) with real listeners on 127.0.0.1:
// applying configs all or nothing, kept sockets across applies, removed
// listeners, a port that is taken, connection counts and shutdown.
import t from 'tap';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseConfig } from '../../lib/config/load.js';
import type { ProxyConfig } from '../../lib/config/types.js';
import { ListenError } from '../../lib/errors.js';
import { Supervisor } from '../../lib/runtime/supervisor.js';
import { startEchoBackend, unusedAddress } from '../helpers/backends.js';
import { buildClientHello, CONTENT_TYPE_HANDSHAKE, record } from '../helpers/client-hello-fixtures.js';
import { RecordingObserver } from '../helpers/observer.js';
import { guard, waitFor } from '../helpers/wait.js';

const echo = await startEchoBackend();
t.teardown(() => echo.close());

const HELLO = record(CONTENT_TYPE_HANDSHAKE, buildClientHello({ serverName: 'app.example.com' }));

/** A config from listener entries `{ name, listen }`, each with a default route to `backend`. */
function configOf(listeners: Array<{ name: string; listen: string; drainTimeout?: string }>, backend = echo.address): ProxyConfig {
  const lines = ['listeners:'];
  for (const listener of listeners) {
    lines.push(`  - name: ${listener.name}`, `    listen: "${listener.listen}"`);
    if (listener.drainTimeout) lines.push(`    drainTimeout: ${listener.drainTimeout}`);
    lines.push('    default:', `      backends: [${backend}]`);
  }
  return parseConfig(`${lines.join('\n')}\n`, 'supervisor.yaml');
}

const portOf = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1));

/** A client through the proxy to the echo backend: sends a ClientHello and waits for it to come back. */
async function connectThrough(port: number): Promise<{ socket: net.Socket; echo(text: string): Promise<void>; close(): Promise<void> }> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  let received = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
  await guard(new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject)), 30_000, `connect to ${port}`);
  socket.write(HELLO);
  await waitFor(() => received.length >= HELLO.length, `the hello echoed back through port ${port}`, 20_000);
  if (!received.subarray(0, HELLO.length).equals(HELLO)) throw new Error('the backend did not get the hello unchanged');
  return {
    socket,
    async echo(text) {
      const before = received.length;
      socket.write(text);
      await waitFor(() => received.subarray(before).toString() === text, `"${text}" echoed`, 20_000);
    },
    close: () =>
      new Promise((resolve) => {
        if (socket.destroyed) return resolve();
        socket.once('close', () => resolve());
        socket.end();
      }),
  };
}

/** Resolves with the error code of a connect to `port` that fails, or null when it connects. */
function connectError(port: number): Promise<string | null> {
  return guard(
    new Promise((resolve) => {
      const socket = net.connect({ port, host: '127.0.0.1' });
      socket.once('connect', () => {
        socket.destroy();
        resolve(null);
      });
      socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    }),
    3_000,
    `connect to ${port}`,
  );
}

function listenOn(port: number): Promise<net.Server> {
  const server = net.createServer((socket) => socket.destroy());
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

t.test('apply, reapply, removal, a taken port, and shutdown', async (t) => {
  const observer = new RecordingObserver();
  const supervisor = new Supervisor(observer);
  const clients: Array<{ close(): Promise<void> }> = [];
  t.teardown(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await supervisor.shutdown();
  });

  // Generation 1: two port-0 listeners.
  const first = configOf([
    { name: 'a', listen: '127.0.0.1:0' },
    { name: 'b', listen: '127.0.0.1:0' },
  ]);
  const summary1 = await supervisor.apply(first);
  t.equal(summary1.generation, 1);
  t.same(summary1.added, ['a', 'b']);
  t.same([summary1.removed, summary1.kept, summary1.changed], [[], [], []]);
  t.match(summary1.bound.a, /^127\.0\.0\.1:\d+$/, `a bound at ${summary1.bound.a}`);
  t.match(summary1.bound.b, /^127\.0\.0\.1:\d+$/, `b bound at ${summary1.bound.b}`);
  const portA = portOf(summary1.bound.a!);
  const portB = portOf(summary1.bound.b!);
  t.ok(portA > 0 && portB > 0 && portA !== portB, 'real, distinct ports');
  t.equal(supervisor.generation, 1);
  t.equal(supervisor.config, first);

  const beforeA = await connectThrough(portA);
  const onB = await connectThrough(portB);
  clients.push(beforeA, onB);
  t.same(observer.connected, [echo.address, echo.address], 'both reached the backend');
  t.equal(supervisor.openConnections(), 2);
  t.same(
    supervisor.openConnectionsByListener().sort((x, y) => x.listener.localeCompare(y.listener)),
    [
      { listener: 'a', open: 1 },
      { listener: 'b', open: 1 },
    ],
  );

  // Generation 2: keep a (same name, port 0), remove b, add c.
  const second = configOf([
    { name: 'a', listen: '127.0.0.1:0' },
    { name: 'c', listen: '127.0.0.1:0' },
  ]);
  const summary2 = await supervisor.apply(second);
  t.equal(summary2.generation, 2);
  t.same(summary2.added, ['c']);
  t.same(summary2.removed, ['b']);
  t.same(summary2.kept, ['a']);
  t.same(summary2.changed, [], 'a is the same as before');
  t.same(Object.keys(summary2.bound), ['c'], 'bound lists only the added listener');
  const portC = portOf(summary2.bound.c!);

  t.test('the kept listener keeps its socket', async (t) => {
    await beforeA.echo('still there');
    t.pass('a client connected before the apply still passes bytes');
    const afterA = await connectThrough(portA);
    clients.push(afterA);
    await afterA.echo('new client');
    t.pass('a client connecting after the apply reaches it on the same port');
    const c = await connectThrough(portC);
    clients.push(c);
    t.pass('the added listener accepts');
  });

  t.test('the removed listener refuses new connections; its open one goes on', async (t) => {
    t.equal(await connectError(portB), 'ECONNREFUSED');
    await onB.echo('after removal');
    t.pass('the connection accepted before removal still works');
    const counts = new Map(supervisor.openConnectionsByListener().map(({ listener, open }) => [listener, open]));
    t.equal(counts.get('b'), 1, 'a retired listener’s connections are still counted');
    t.equal(counts.get('a'), 2);
    t.equal(counts.get('c'), 1);
    t.equal(supervisor.openConnections(), 4);
    await onB.close();
    await waitFor(() => !supervisor.openConnectionsByListener().some(({ listener, open }) => listener === 'b' && open > 0), 'b has no connection left', 20_000);
    t.equal(supervisor.openConnections(), 3);
    t.equal(observer.closed.filter((closed) => closed.listener === 'b').length, 1, 'closed and recorded');
    t.equal(observer.closed.find((closed) => closed.listener === 'b')?.outcome, 'ok');
  });

  t.test('a port that is taken: ListenError, nothing changes, the one just bound is closed', async (t) => {
    const taken = await listenOn(0);
    t.teardown(() => new Promise<void>((resolve) => taken.close(() => resolve())));
    const takenPort = (taken.address() as net.AddressInfo).port;
    const freePort = portOf(await unusedAddress());
    const third = configOf([
      { name: 'a', listen: '127.0.0.1:0' },
      { name: 'c', listen: '127.0.0.1:0' },
      { name: 'fresh', listen: `127.0.0.1:${freePort}` },
      { name: 'clash', listen: `127.0.0.1:${takenPort}` },
    ]);
    const error = await supervisor.apply(third).then(
      () => null,
      (rejection: unknown) => rejection,
    );
    t.ok(error instanceof ListenError, 'rejects with ListenError');
    t.match(error, { listener: 'clash', address: `127.0.0.1:${takenPort}`, code: 'SNIP_LISTEN_FAILED', errno: 'EADDRINUSE' });
    t.match((error as Error).message, `cannot listen on 127.0.0.1:${takenPort} (listener "clash")`);
    t.equal(supervisor.generation, 2, 'generation unchanged');
    t.equal(supervisor.config, second, 'config unchanged');

    t.equal(await connectError(freePort), 'ECONNREFUSED', 'the listener bound during the failed apply was closed');
    const rebind = await listenOn(freePort);
    await new Promise<void>((resolve) => rebind.close(() => resolve()));
    t.pass('and its port is free again');

    await beforeA.echo('untouched');
    const again = await connectThrough(portA);
    clients.push(again);
    const onC = await connectThrough(portC);
    clients.push(onC);
    t.pass('the previous listeners still accept and pass bytes');
    t.same(
      supervisor
        .openConnectionsByListener()
        .map(({ listener }) => listener)
        .sort(),
      ['a', 'c'],
    );
  });

  t.test('a refused apply leaves the backend states as they were', async (t) => {
    const taken = await listenOn(0);
    t.teardown(() => new Promise<void>((resolve) => taken.close(() => resolve())));
    const before = supervisor.backendHealth();
    const refused = configOf([{ name: 'other', listen: `127.0.0.1:${(taken.address() as net.AddressInfo).port}` }], '127.0.0.1:9');
    const error = await supervisor.apply(refused).then(
      () => null,
      (rejection: unknown) => rejection,
    );
    t.ok(error instanceof ListenError, 'refused with ListenError');
    t.same(supervisor.backendHealth(), before, 'backendHealth() unchanged by the refused config');
  });

  t.test('a kept port-0 listener is identified by name: a renamed one is a new socket', async (t) => {
    const renamed = configOf([
      { name: 'a', listen: '127.0.0.1:0' },
      { name: 'd', listen: '127.0.0.1:0' },
    ]);
    const summary = await supervisor.apply(renamed);
    t.same(summary.kept, ['a']);
    t.same(summary.added, ['d']);
    t.same(summary.removed, ['c']);
    t.not(portOf(summary.bound.d!), portC, 'd got its own port');
    t.equal(await connectError(portC), 'ECONNREFUSED');
  });

  t.test('shutdown resolves once the open connections end', async (t) => {
    let resolved = false;
    const done = supervisor.shutdown().then(() => (resolved = true));
    t.equal(await connectError(portA), 'ECONNREFUSED', 'no new connections once shutting down');
    t.equal(resolved, false, 'not while connections are open');
    await Promise.all(clients.map((client) => client.close()));
    await guard(done, 30_000, 'shutdown');
    t.equal(supervisor.openConnections(), 0);
  });
});

t.test('shutdown with nothing open resolves at once', async (t) => {
  const supervisor = new Supervisor(new RecordingObserver());
  await supervisor.apply(configOf([{ name: 'idle', listen: '127.0.0.1:0' }]));
  await guard(supervisor.shutdown(), 30_000, 'shutdown');
  t.equal(supervisor.openConnections(), 0);
});

t.test('a config applied once shutdown began is refused and binds nothing', async (t) => {
  const supervisor = new Supervisor(new RecordingObserver());
  await supervisor.apply(configOf([{ name: 'first', listen: '127.0.0.1:0' }]));
  const stopped = supervisor.shutdown();
  const free = await unusedAddress();
  const refused = await supervisor.apply(configOf([{ name: 'late', listen: free }])).then(
    () => null,
    (error: unknown) => error,
  );
  t.match(refused, { name: 'ShuttingDownError', code: 'SNIP_SHUTTING_DOWN' }, `refused as shutting down (${String(refused)})`);
  t.equal(await connectError(portOf(free)), 'ECONNREFUSED', 'the late listener was never bound');
  t.equal(supervisor.generation, 1, 'the generation did not move');
  await guard(stopped, 30_000, 'shutdown');
});

t.test('shutdown ends connections still open after drainTimeout', async (t) => {
  const observer = new RecordingObserver();
  const supervisor = new Supervisor(observer);
  const summary = await supervisor.apply(configOf([{ name: 'slow', listen: '127.0.0.1:0', drainTimeout: '100ms' }]));
  const client = await connectThrough(portOf(summary.bound.slow!));
  t.teardown(() => client.close());
  await guard(supervisor.shutdown(), 30_000, 'shutdown after drainTimeout');
  t.equal(supervisor.openConnections(), 0);
  await waitFor(() => observer.closed.length === 1, 'the connection recorded', 20_000);
  t.equal(observer.closed[0]!.outcome, 'shutdown', 'recorded as ended by shutdown');
  await waitFor(() => client.socket.destroyed || client.socket.readableEnded, 'the client sees the close', 20_000);
});

t.test('terminateAll ends every open connection now, retired listeners included', async (t) => {
  const observer = new RecordingObserver();
  const supervisor = new Supervisor(observer);
  t.teardown(() => supervisor.shutdown());
  const summary = await supervisor.apply(
    configOf([
      { name: 'kept', listen: '127.0.0.1:0' },
      { name: 'gone', listen: '127.0.0.1:0' },
    ]),
  );
  const onKept = await connectThrough(portOf(summary.bound.kept!));
  const onGone = await connectThrough(portOf(summary.bound.gone!));
  await supervisor.apply(configOf([{ name: 'kept', listen: '127.0.0.1:0' }]));
  t.equal(supervisor.openConnections(), 2);
  await guard(supervisor.terminateAll('shutdown'), 30_000, 'terminateAll');
  t.equal(supervisor.openConnections(), 0, 'resolved once all are closed');
  t.same(
    observer.closed.map((closed) => `${closed.listener} ${closed.outcome}`).sort(),
    ['gone shutdown', 'kept shutdown'],
    'each recorded once, with the outcome given',
  );
  await waitFor(() => onKept.socket.destroyed && onGone.socket.destroyed, 'both clients see the close', 20_000);
  const again = await connectThrough(portOf(summary.bound.kept!));
  t.pass('the listener still accepts: terminateAll is not shutdown');
  await again.close();
});

t.test('a changed kept listener is reported as changed and new connections use its new routes', async (t) => {
  const other = await startEchoBackend('other');
  const observer = new RecordingObserver();
  const supervisor = new Supervisor(observer);
  t.teardown(async () => {
    await supervisor.shutdown();
    await other.close();
  });
  const freePort = portOf(await unusedAddress());
  const summary1 = await supervisor.apply(configOf([{ name: 'main', listen: `127.0.0.1:${freePort}` }]));
  t.same(summary1.bound, { main: `127.0.0.1:${freePort}` });
  const old = await connectThrough(freePort);
  const summary2 = await supervisor.apply(configOf([{ name: 'main', listen: `127.0.0.1:${freePort}` }], other.address));
  t.same(summary2.kept, ['main'], 'same address: kept');
  t.same(summary2.changed, ['main'], 'its route changed');
  const fresh = await connectThrough(freePort);
  t.same(observer.connected, [echo.address, other.address], 'the new connection went to the new backend');
  await old.echo('old backend still');
  t.pass('the connection routed before keeps its backend');
  await Promise.all([old.close(), fresh.close()]);
});

t.test('moving a listener to another host on the same port is refused with a hint that names the proxy, not another process', async (t) => {
  const supervisor = new Supervisor(new RecordingObserver());
  t.teardown(() => supervisor.shutdown());
  const first = await supervisor.apply(configOf([{ name: 'main', listen: '127.0.0.1:0' }]));
  const port = portOf(first.bound.main!);
  try {
    await supervisor.apply(configOf([{ name: 'main', listen: `0.0.0.0:${port}` }]));
    t.fail('expected a ListenError');
  } catch (error) {
    t.ok(error instanceof ListenError, 'a ListenError');
    t.match((error as Error).message, `held by this proxy's listener "main" on 127.0.0.1:${port}`);
    t.match((error as Error).message, 'needs a restart');
  }
  t.equal(supervisor.generation, 1, 'nothing changed');
});

t.test('what the admin endpoint reads: live connections (retired listeners included), listener status, backend drain', async (t) => {
  const observer = new RecordingObserver();
  const supervisor = new Supervisor(observer);
  t.teardown(() => supervisor.shutdown());
  const summary = await supervisor.apply(
    configOf([
      { name: 'kept', listen: '127.0.0.1:0' },
      { name: 'gone', listen: '127.0.0.1:0' },
    ]),
  );
  const onKept = await connectThrough(portOf(summary.bound.kept!));
  const onGone = await connectThrough(portOf(summary.bound.gone!));
  await supervisor.apply(configOf([{ name: 'kept', listen: '127.0.0.1:0' }]));

  const listed = [...supervisor.liveConnections()].map((connection) => connection.snapshot(performance.now()));
  t.same(listed.map((snapshot) => snapshot.listener).sort(), ['gone', 'kept'], 'the retired listener’s connection is still listed');
  t.same(
    supervisor.listenerStatus(),
    [{ listener: 'kept', address: summary.bound.kept, protocol: 'tls', open: 1 }],
    'listener status: the active listeners with their bound address',
  );

  t.match(supervisor.setBackendDrained(echo.address, true), { backend: echo.address, drained: true, active: 2 });
  t.match(
    supervisor.backendHealth().find((entry) => entry.backend === echo.address),
    { drained: true },
  );
  t.equal(supervisor.setBackendDrained('127.0.0.1:1', true), null, 'not a backend of the running config');
  await onKept.echo('still relaying after the drain');
  await supervisor.apply(configOf([{ name: 'kept', listen: '127.0.0.1:0' }]));
  t.match(
    supervisor.backendHealth().find((entry) => entry.backend === echo.address),
    { drained: true },
    'kept by an apply that keeps the backend',
  );

  const gone = [...supervisor.liveConnections()].find((connection) => connection.snapshot(performance.now()).listener === 'gone')!;
  gone.closeByAdmin('retiring the old port');
  await waitFor(() => onGone.socket.destroyed, 'the client on the retired listener closed', 20_000);
  await waitFor(() => observer.closed.length === 1, 'its record', 20_000);
  t.match(observer.closed[0], { listener: 'gone', outcome: 'closed_by_admin', reason: 'retiring the old port' });
  supervisor.setBackendDrained(echo.address, false);
  await onKept.close();
});
