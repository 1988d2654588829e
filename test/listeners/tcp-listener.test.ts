// TcpListener (lib/listeners/tcp-listener.ts) with a real socket on 127.0.0.1: a listener
// bound for a config being applied holds its clients unread until `open`, and
// `terminateAll` (the rollback of a failed apply) closes them without a byte
// reaching a backend. Its open connections as the admin endpoint sees them:
// live views with byte counts read from the sockets, and closing one.
import { performance } from 'node:perf_hooks';
import t from 'tap';
import { parseConfig } from '../../lib/config/load.js';
import { BackendRegistry } from '../../lib/backends/health.js';
import { HostResolver } from '../../lib/backends/host-resolver.js';
import { TcpListener } from '../../lib/listeners/tcp-listener.js';
import { NO_TLS_MATERIAL } from '../../lib/tls/certificates.js';
import { RecordingObserver } from '../helpers/observer.js';
import { runProgram, which } from '../helpers/programs.js';
import { startEchoBackend } from '../helpers/backends.js';
import { buildClientHello, CONTENT_TYPE_HANDSHAKE, record } from '../helpers/client-hello-fixtures.js';
import { connectRaw, readUntilClosed } from '../helpers/raw-client.js';
import { guard, sleep, waitFor } from '../helpers/wait.js';

const echo = await startEchoBackend();
t.teardown(() => echo.close());

const HELLO = record(CONTENT_TYPE_HANDSHAKE, buildClientHello({ serverName: 'app.example.com' }));

const observer = new RecordingObserver();
const { accepted } = observer;

function newListener(name: string): TcpListener {
  const config = parseConfig(`listeners:\n  - name: ${name}\n    listen: 127.0.0.1:0\n    default:\n      backends: [${echo.address}]\n`, 'listener.yaml');
  return new TcpListener(
    config.listeners[0]!,
    { observer, registry: new BackendRegistry(observer), resolver: new HostResolver(), descriptors: null },
    NO_TLS_MATERIAL,
  );
}

const portOf = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1));

t.test('clients of a listener not yet opened wait unread; open() serves them', async (t) => {
  const listener = newListener('held');
  const port = portOf(await listener.listen());
  t.teardown(() => listener.stopAccepting());
  const client = await connectRaw(port);
  t.teardown(() => client.destroy());
  let received = Buffer.alloc(0);
  client.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
  client.write(HELLO);
  await sleep(200);
  t.equal(echo.accepted, 0, 'no backend was dialled before open()');
  t.equal(received.length, 0, 'nothing came back');
  t.same(accepted, [], 'not counted as accepted yet');

  listener.open();
  await waitFor(() => received.length >= HELLO.length, 'the hello echoed back once open', 20_000);
  t.ok(received.subarray(0, HELLO.length).equals(HELLO), 'the held hello went through unchanged');
  t.equal(echo.accepted, 1);
  t.same(accepted, ['held'], 'counted once it started');
});

t.test('terminateAll before open(): held clients are closed and no backend is dialled', async (t) => {
  const listener = newListener('rolled-back');
  const port = portOf(await listener.listen());
  const client = await connectRaw(port);
  t.teardown(() => client.destroy());
  const closed = readUntilClosed(client);
  client.write(HELLO);
  await sleep(100);
  listener.stopAccepting();
  listener.terminateAll('shutdown');
  const outcome = await guard(closed, 30_000, 'the held client closed');
  t.equal(outcome.received.length, 0, 'the client got nothing');
  await guard(listener.whenIdle(), 30_000, 'the listener idle');
  t.equal(echo.accepted, 1, 'still only the first test’s backend connection');
});

const ss = await which('ss');

t.test(
  'accepted sockets have TCP keepalive from the start (inherited from the listening socket, no per-connection calls)',
  { skip: ss ? false : 'ss (iproute2) is not installed' },
  async (t) => {
    const listener = newListener('keepalive');
    const port = portOf(await listener.listen());
    listener.open();
    t.teardown(() => listener.stopAccepting());
    const client = await connectRaw(port);
    t.teardown(() => client.destroy());
    client.write(HELLO);
    await waitFor(() => listener.openConnections() === 1, 'the connection started', 20_000);
    // The proxy's end of the connection: local port = the listener's port.
    const { stdout } = await runProgram(ss!, ['-tnoH', 'state', 'established', `( sport = :${port} )`]);
    t.match(stdout, /timer:\(keepalive,/, `the accepted socket has a keepalive timer (${stdout.trim()})`);
  },
);

t.test('liveConnections: read-only snapshots with ids in accept order and live byte counts; closeByAdmin ends one with its reason', async (t) => {
  const listener = newListener('live');
  const port = portOf(await listener.listen());
  listener.open();
  t.teardown(() => listener.stopAccepting());
  const snapshots = () => [...listener.liveConnections()].map((connection) => connection.snapshot(performance.now()));

  const silent = await connectRaw(port);
  t.teardown(() => silent.destroy());
  await waitFor(() => listener.openConnections() === 1, 'the silent client started', 20_000);
  const relayed = await connectRaw(port);
  t.teardown(() => relayed.destroy());
  const outcome = readUntilClosed(relayed);
  let received = 0;
  relayed.on('data', (chunk: Buffer) => (received += chunk.length));
  const payload = Buffer.alloc(5_000, 7);
  relayed.write(HELLO);
  relayed.write(payload);
  await waitFor(() => received === HELLO.length + payload.length, 'the hello and payload echoed', 20_000);

  let [first, second] = snapshots();
  t.ok(first!.id < second!.id, 'ids increase in the order clients were accepted');
  t.match(first, { listener: 'live', sni: null, route: null, backend: null, state: 'preamble', bytesFromClient: 0, bytesToClient: 0 });
  t.match(first!.client, /^127\.0\.0\.1:\d+$/);
  t.match(second, { listener: 'live', sni: 'app.example.com', route: 'default', backend: echo.address, state: 'relaying' });
  t.equal(second!.bytesFromClient, HELLO.length + payload.length, 'bytes from the client: what it sent');
  t.equal(second!.bytesToClient, HELLO.length + payload.length, 'bytes to the client: what it got back');
  t.ok(second!.ageMs >= 0);

  relayed.write(payload);
  await waitFor(() => received === HELLO.length + 2 * payload.length, 'the second payload echoed', 20_000);
  [, second] = snapshots();
  t.equal(second!.bytesFromClient, HELLO.length + 2 * payload.length, 'read again when asked: the count moved');
  t.equal(second!.bytesToClient, HELLO.length + 2 * payload.length);

  const live = [...listener.liveConnections()].find((connection) => connection.id === second!.id)!;
  const closedBefore = observer.closed.length;
  live.closeByAdmin('moving tenant to the new cluster');
  await guard(outcome, 30_000, 'the relayed client closed');
  await waitFor(() => observer.closed.length === closedBefore + 1, 'the record', 20_000);
  t.match(observer.closed.at(-1), {
    listener: 'live',
    outcome: 'closed_by_admin',
    reason: 'moving tenant to the new cluster',
    bytesFromClient: HELLO.length + 2 * payload.length,
  });
  t.same(
    snapshots().map((snapshot) => snapshot.id),
    [first!.id],
    'only the other connection is left, untouched',
  );
});
