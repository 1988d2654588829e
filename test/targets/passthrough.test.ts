// PassthroughTarget (lib/targets/passthrough.ts) behind a Connection in this
// process, with real backends on loopback: dial, failover, replay, splice,
// and the retry before a backend's first byte.
import { once } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import t, { type Test } from 'tap';
import { encodeProxyV2 } from '../../lib/net/proxy-protocol.js';
import { startEchoBackend, startResettingBackend, type TestBackend, unusedAddress } from '../helpers/backends.js';
import { buildClientHello, CONTENT_TYPE_HANDSHAKE, record } from '../helpers/client-hello-fixtures.js';
import { TestConnectionHost } from '../helpers/connection-host.js';
import { PP2_TYPE_AUTHORITY, readProxyHeader, tlvValue } from '../helpers/proxy-protocol-reader.js';
import { readUntilClosed } from '../helpers/raw-client.js';
import { guard } from '../helpers/wait.js';

const HELLO = record(CONTENT_TYPE_HANDSHAKE, buildClientHello({ serverName: 'app.example.com' }));

const echo = await startEchoBackend();
const resetting = await startResettingBackend();
t.teardown(() => Promise.all([echo.close(), resetting.close()]));

/** A backend that answers one byte, then resets: it has answered, so no retry may follow. */
async function answeringThenResetting(t: Test): Promise<TestBackend> {
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => {
      socket.write('!');
      setTimeout(() => socket.resetAndDestroy(), 50);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { name: 'answering', port, address: `127.0.0.1:${port}`, accepted: 0, close: async () => {} };
}

/** Serves one client through a host whose default route has `backends` (YAML list items) and `route` options; returns the test's client end. */
async function through(
  t: Test,
  backends: string[],
  options: { listener?: string[]; route?: string[] } = {},
): Promise<{ host: TestConnectionHost; client: net.Socket }> {
  const lines = ['name: unit', 'listen: 127.0.0.1:0', ...(options.listener ?? []), 'default:', `  backends: [${backends.join(', ')}]`];
  const host = new TestConnectionHost([...lines, ...(options.route ?? []).map((line) => `  ${line}`)].join('\n'));
  const peer = await host.connect(t);
  return { host, client: peer };
}

t.test('the hello and what came with it are replayed, then bytes flow both ways', async (t) => {
  const { host, client } = await through(t, [echo.address]);
  const closed = readUntilClosed(client);
  client.write(Buffer.concat([HELLO, Buffer.from('early ')]));
  client.end('late');
  const { received } = await guard(closed, 10_000, 'the echo came back and the connection closed');
  t.ok(received.equals(Buffer.concat([HELLO, Buffer.from('early late')])), 'the echo holds every byte, in order');
  const log = await host.record();
  t.match(log, { outcome: 'ok', reason: null, route: 'default', backend: echo.address, attempts: 1, sni: 'app.example.com' });
  t.equal(log.bytesFromClient, HELLO.length + 'early late'.length);
  t.equal(log.bytesToClient, log.bytesFromClient);
});

t.test('a refused backend: the next is dialled, the client never notices', async (t) => {
  const dead = await unusedAddress();
  const { host, client } = await through(t, [dead, echo.address], { route: ['balance: leastconn'] });
  const closed = readUntilClosed(client);
  client.end(HELLO);
  t.ok((await guard(closed, 10_000, 'the connection closed')).received.equals(HELLO));
  const log = await host.record();
  t.match(log, { outcome: 'ok', attempts: 2, backend: echo.address });
  t.same(host.observer.connectFailures, [`${dead} ECONNREFUSED`]);
});

t.test('every backend refused: backend_unreachable with the last error, the client closed', async (t) => {
  const dead = await unusedAddress();
  const { host, client } = await through(t, [dead]);
  const closed = readUntilClosed(client);
  client.write(HELLO);
  const outcome = await guard(closed, 10_000, 'the client closed');
  t.equal(outcome.received.length, 0, 'nothing was sent back');
  t.match(await host.record(), { outcome: 'backend_unreachable', reason: 'ECONNREFUSED', attempts: 1, backend: dead });
});

t.test('a backend that resets before answering: the same bytes go to the next one', async (t) => {
  const { host, client } = await through(t, [resetting.address, echo.address], { route: ['balance: leastconn'] });
  const closed = readUntilClosed(client);
  client.write(HELLO);
  const echoed = await guard(
    new Promise<Buffer>((resolve) => {
      let received = Buffer.alloc(0);
      client.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        if (received.length >= HELLO.length) resolve(received);
      });
    }),
    10_000,
    'the hello echoed by the second backend',
  );
  t.ok(echoed.equals(HELLO), 'the second backend got exactly the hello');
  client.end();
  await guard(closed, 10_000, 'closed');
  t.match(await host.record(), { outcome: 'ok', attempts: 2, backend: echo.address });
  t.same(host.observer.connectFailures, [`${resetting.address} ECONNRESET`], 'the reset is reported as a failed attempt');
  t.same(host.observer.health, [], 'and not held against the backend’s health');
});

t.test('a backend that answered and then resets: no retry, the client gets the reset', async (t) => {
  const answering = await answeringThenResetting(t);
  const { host, client } = await through(t, [answering.address, echo.address], { route: ['balance: leastconn'] });
  const closed = readUntilClosed(client);
  client.write(HELLO);
  const outcome = await guard(closed, 10_000, 'the client closed');
  t.equal(String(outcome.received), '!', 'the client got the backend’s answer');
  t.equal(outcome.errorCode, 'ECONNRESET', 'and then the reset, passed on');
  t.match(await host.record(), { outcome: 'backend_error', reason: 'ECONNRESET', attempts: 1, backend: answering.address });
});

t.test('every backend marked down: they are tried anyway (panic routing), and reported', async (t) => {
  const { host, client } = await through(t, [echo.address], { route: ['maxFails: 1', 'failTimeout: 5m'] });
  host.registry.get(echo.address).connectFailed(performance.now(), 1, 300_000);
  t.notOk(host.registry.health()[0]!.up, 'the only backend is marked down');
  const closed = readUntilClosed(client);
  client.end(HELLO);
  t.ok((await guard(closed, 10_000, 'closed')).received.equals(HELLO), 'served by it all the same');
  t.match(await host.record(), { outcome: 'ok', attempts: 1 });
  t.same(host.observer.panics, [{ listener: 'unit', route: 'default' }]);
  t.ok(host.registry.health()[0]!.up, 'and it is up again');
});

t.test('a PROXY v2 header before the replayed hello, naming the client and the SNI', async (t) => {
  const { host, client } = await through(t, [`{ address: "${echo.address}", proxyProtocol: v2 }`]);
  const clientPort = client.localPort;
  const closed = readUntilClosed(client);
  client.end(HELLO);
  const { received } = await guard(closed, 10_000, 'closed');
  const header = readProxyHeader(received)!;
  t.match(header, { version: 2, command: 'PROXY', source: { address: '127.0.0.1', port: clientPort } });
  t.equal(String(tlvValue(header, PP2_TYPE_AUTHORITY)), 'app.example.com', 'the SNI as PP2_TYPE_AUTHORITY');
  t.ok(received.subarray(header.length).equals(HELLO), 'the hello follows the header');
  await host.record();
});

t.test('an incoming PROXY header is not counted as the client’s bytes, nor replayed', async (t) => {
  const { host, client } = await through(t, [echo.address], { listener: ['acceptProxyProtocol: true'] });
  const incoming = encodeProxyV2({ source: { address: '203.0.113.9', port: 4242 }, destination: { address: '192.0.2.1', port: 443 } }, null);
  const closed = readUntilClosed(client);
  client.end(Buffer.concat([incoming, HELLO]));
  const { received } = await guard(closed, 10_000, 'closed');
  t.ok(received.equals(HELLO), 'the backend got the hello only');
  t.match(await host.record(), { client: '203.0.113.9:4242', bytesFromClient: HELLO.length, outcome: 'ok' });
});
