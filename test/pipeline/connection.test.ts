// Connection (lib/pipeline/connection.ts) in this process on real sockets:
// admission, refusals before and after matching, outcomes decided once, and
// one record per connection with what is known of it.
import { once } from 'node:events';
import net from 'node:net';
import t, { type Test } from 'tap';
import { encodeProxyV1 } from '../../lib/net/proxy-protocol.js';
import { UNRECOGNIZED_NAME_ALERT } from '../../lib/tls/alert.js';
import { startEchoBackend, type TestBackend } from '../helpers/backends.js';
import { buildClientHello, CONTENT_TYPE_HANDSHAKE, record } from '../helpers/client-hello-fixtures.js';
import { TestConnectionHost } from '../helpers/connection-host.js';
import { readUntilClosed } from '../helpers/raw-client.js';
import { guard, sleep } from '../helpers/wait.js';

const hello = (serverName: string): Buffer => record(CONTENT_TYPE_HANDSHAKE, buildClientHello({ serverName, alpn: ['h2'] }));

const echo = await startEchoBackend();
t.teardown(() => echo.close());

/** A backend that accepts, reads, and never sends a byte. */
async function silentBackend(t: Test): Promise<TestBackend> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.resume();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return { name: 'silent', port, address: `127.0.0.1:${port}`, accepted: 0, close: async () => {} };
}

const LISTENER = (backend: string, extra: string[] = []): string =>
  [
    'name: unit',
    'listen: 127.0.0.1:0',
    ...extra,
    'routes:',
    '  - hostnames: [app.example.com]',
    `    backends: [${backend}]`,
    '  - hostnames: [private.example.com]',
    '    allow: [10.0.0.0/8]',
    `    backends: [${backend}]`,
  ].join('\n');

t.test('a normal connection: one record with everything known of it', async (t) => {
  const host = new TestConnectionHost(LISTENER(echo.address));
  const client = await host.connect(t);
  const closed = readUntilClosed(client);
  const clientPort = client.localPort;
  const sent = hello('App.Example.com');
  client.end(sent);
  await guard(closed, 10_000, 'closed');
  const log = await host.record();
  t.same(
    { ...log, durationMs: typeof log.durationMs },
    {
      listener: 'unit',
      client: `127.0.0.1:${clientPort}`,
      sni: 'app.example.com',
      alpn: ['h2'],
      route: 'app.example.com',
      backend: echo.address,
      attempts: 1,
      bytesFromClient: sent.length,
      bytesToClient: sent.length,
      durationMs: 'number',
      outcome: 'ok',
      reason: null,
    },
  );
  await sleep(50);
  t.equal(host.observer.closed.length, 1, 'exactly one record');
  t.equal(host.open.size, 0, 'and the host was told it ended');
});

t.test('no route: the unrecognized_name alert, then the connection closes', async (t) => {
  const host = new TestConnectionHost(LISTENER(echo.address));
  const client = await host.connect(t);
  const closed = readUntilClosed(client);
  client.write(hello('nowhere.example.org'));
  const outcome = await guard(closed, 10_000, 'closed');
  t.ok(outcome.received.equals(UNRECOGNIZED_NAME_ALERT), 'the client got the alert record');
  t.equal(outcome.endedBy, 'end', 'and a clean close after it');
  t.match(await host.record(), { outcome: 'no_route', route: null, backend: null, attempts: 0, sni: 'nowhere.example.org' });
});

t.test('refusals before a byte is read: the listener’s access list, an untrusted PROXY peer', async (t) => {
  const refused = new TestConnectionHost(LISTENER(echo.address));
  refused.refused.add('127.0.0.1');
  const first = await refused.connect(t);
  first.write(hello('app.example.com'));
  await guard(readUntilClosed(first), 10_000, 'closed');
  t.match(await refused.record(), { outcome: 'denied', reason: 'listener_access_list', bytesFromClient: 0, sni: null });

  const untrusted = new TestConnectionHost(LISTENER(echo.address, ['acceptProxyProtocol: true', 'proxyProtocolFrom: [10.0.0.0/8]']));
  const second = await untrusted.connect(t);
  second.write(
    Buffer.concat([encodeProxyV1({ source: { address: '192.0.2.7', port: 1 }, destination: { address: '192.0.2.1', port: 2 } }), hello('app.example.com')]),
  );
  await guard(readUntilClosed(second), 10_000, 'closed');
  t.match(await untrusted.record(), { outcome: 'denied', reason: 'untrusted_proxy', client: /^127\.0\.0\.1:/, bytesFromClient: 0 });
});

t.test('a route’s access list refuses after matching: the route is named, no backend dialled', async (t) => {
  const host = new TestConnectionHost(LISTENER(echo.address));
  const client = await host.connect(t);
  client.write(hello('private.example.com'));
  await guard(readUntilClosed(client), 10_000, 'closed');
  t.match(await host.record(), { outcome: 'denied', reason: 'route_access_list', route: 'private.example.com', attempts: 0, backend: null });
});

t.test('a client that resets: before relaying it is client_closed, while relaying a normal end passed on', async (t) => {
  const early = new TestConnectionHost(LISTENER(echo.address));
  const first = await early.connect(t);
  first.write(hello('app.example.com').subarray(0, 10));
  await sleep(50);
  first.resetAndDestroy();
  t.match(await early.record(), { outcome: 'client_closed', reason: 'ECONNRESET' });

  const silent = await silentBackend(t);
  const relaying = new TestConnectionHost(LISTENER(silent.address));
  const second = await relaying.connect(t);
  second.write(hello('app.example.com'));
  await sleep(100);
  second.resetAndDestroy();
  t.match(await relaying.record(), { outcome: 'ok', reason: 'client_reset', backend: silent.address });
});

t.test('timeouts: idle, and half-closed with a backend that never answers', async (t) => {
  const silent = await silentBackend(t);
  const idle = new TestConnectionHost(LISTENER(silent.address, ['idleTimeout: 200ms']));
  const first = await idle.connect(t);
  first.write(hello('app.example.com'));
  t.match(await idle.record(), { outcome: 'idle_timeout', reason: null });

  const halfClosed = new TestConnectionHost(LISTENER(silent.address, ['halfCloseTimeout: 200ms']));
  const second = await halfClosed.connect(t);
  second.end(hello('app.example.com'));
  t.match(await halfClosed.record(), { outcome: 'idle_timeout', reason: 'half_closed' }, 'the client left, the backend said nothing');
});

t.test('finish() decides once: a later cause does not replace the first', async (t) => {
  const silent = await silentBackend(t);
  const host = new TestConnectionHost(LISTENER(silent.address));
  const client = await host.connect(t);
  client.write(hello('app.example.com'));
  await sleep(100);
  const [connection] = host.open;
  connection!.finish('shutdown', null);
  connection!.finish('idle_timeout', 'later');
  t.match(await host.record(), { outcome: 'shutdown', reason: null });
});

t.test('an answer-and-close lingers: a client still sending after the answer is read from, not reset', async (t) => {
  const host = new TestConnectionHost(LISTENER(echo.address));
  const client = await host.connect(t);
  let errorCode: string | null = null;
  client.on('error', (error: NodeJS.ErrnoException) => (errorCode = error.code ?? error.message));
  const closed = new Promise((resolve) => client.once('close', resolve));
  client.write(hello('nowhere.example.org'));
  await guard(once(client, 'data'), 10_000, 'the answer');
  await guard(once(client, 'end'), 10_000, 'the proxy’s FIN after its answer');
  // The client goes on sending after it got the answer (as one sending a request body does): 256 KiB in pieces.
  const piece = Buffer.alloc(16 * 1024, 0x61);
  for (let index = 0; index < 16 && errorCode === null; index++) {
    client.write(piece);
    await sleep(10);
  }
  client.end();
  await guard(closed, 10_000, 'closed');
  t.equal(errorCode, null, 'no reset: what it sent was read and dropped until it closed');
  t.match(await host.record(), { outcome: 'no_route' });
});
