// UdpListener (lib/listeners/udp-listener.ts) in process, on real UDP sockets
// on 127.0.0.1: failover before a backend has answered (a refused port, a
// silent backend), the record of a flow that reached none,
// a flow over maxFlowsPerClient, and terminateAll.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { BackendRegistry } from '../../lib/backends/health.js';
import { HostResolver } from '../../lib/backends/host-resolver.js';
import { parseConfig } from '../../lib/config/load.js';
import { UdpListener } from '../../lib/listeners/udp-listener.js';
import { NO_TLS_MATERIAL } from '../../lib/tls/certificates.js';
import { freeUdpPort } from '../helpers/ngtcp2.js';
import { RecordingObserver } from '../helpers/observer.js';
import { firstFlight, postQuantumClientHello, QUIC_V1 } from '../helpers/quic-initial.js';
import { udpPeer } from '../helpers/udp-peers.js';
import { waitFor } from '../helpers/wait.js';

const GUARD_MS = 30_000;

async function startListener(
  t: Test,
  routeBackends: string[],
  connectTimeout: string,
): Promise<{ listener: UdpListener; observer: RecordingObserver; port: number }> {
  const observer = new RecordingObserver();
  const text = [
    'listeners:',
    '  - name: udp',
    '    listen: 127.0.0.1:0',
    '    quic: { maxFlowsPerClient: 1 }',
    '    idleTimeout: 500ms',
    `    connectTimeout: ${connectTimeout}`,
    '    routes:',
    `      - { hostnames: [app.quic.test], backends: [${routeBackends.join(', ')}], maxFails: 0 }`,
    '',
  ].join('\n');
  const config = parseConfig(text, 'udp.yaml').listeners[0]!;
  const listener = new UdpListener(
    config,
    { observer, registry: new BackendRegistry(observer), resolver: new HostResolver(), descriptors: null },
    NO_TLS_MATERIAL,
    await freeUdpPort(),
  );
  const address = await listener.listen();
  t.teardown(async () => {
    listener.terminateAll('shutdown');
    listener.stopAccepting();
    await listener.whenIdle();
  });
  return { listener, observer, port: Number(address.slice(address.lastIndexOf(':') + 1)) };
}

const flight = (name = 'app.quic.test') => firstFlight({ version: QUIC_V1, dcid: randomBytes(8), scid: randomBytes(8), hello: postQuantumClientHello(name) });

t.test('a refused backend and a silent one are skipped for the next, which gets every datagram held so far', async (t) => {
  const [silent, answering] = await Promise.all([udpPeer(), udpPeer()]);
  t.teardown(() => Promise.all([silent.close(), answering.close()]));
  const refused = await freeUdpPort();
  const { listener, observer, port } = await startListener(t, [`127.0.0.1:${refused}`, `127.0.0.1:${silent.port}`, `127.0.0.1:${answering.port}`], '500ms');
  listener.open();
  const client = await udpPeer();
  t.teardown(() => client.close());
  const datagrams = flight();
  for (const datagram of datagrams) await client.send(datagram, port);
  await answering.waitForCount(datagrams.length, GUARD_MS);
  t.same(
    answering.received.map((entry) => entry.datagram.toString('hex')),
    datagrams.map((datagram) => datagram.toString('hex')),
    'the held datagrams, replayed in order',
  );
  t.equal(silent.received.length, datagrams.length, 'the silent backend had them too');
  t.same(observer.connectFailures, [`127.0.0.1:${refused} ECONNREFUSED`, `127.0.0.1:${silent.port} timeout`]);

  await answering.send(Buffer.from([0x40, 1, 2, 3]), answering.received[0]!.port);
  await client.waitForCount(1, GUARD_MS).catch((error) => {
    throw new Error(`${error.message}; records ${JSON.stringify(observer.closed)}`);
  });
  await waitFor(() => observer.closed.length === 1, 'the flow record', GUARD_MS);
  t.match(observer.closed[0], { backend: `127.0.0.1:${answering.port}`, attempts: 3, outcome: 'ok', reason: 'idle', quic: { packetsToClient: 1 } });
  t.same(observer.connected, [`127.0.0.1:${answering.port}`], '500ms');
});

t.test('no backend answers: backend_unreachable, with the last reason', async (t) => {
  const silent = await udpPeer();
  t.teardown(() => silent.close());
  const { listener, observer, port } = await startListener(t, [`127.0.0.1:${silent.port}`], '500ms');
  listener.open();
  const client = await udpPeer();
  t.teardown(() => client.close());
  for (const datagram of flight()) await client.send(datagram, port);
  await waitFor(() => observer.closed.length === 1, 'the flow record', GUARD_MS);
  t.match(observer.closed[0], { outcome: 'backend_unreachable', reason: 'timeout', attempts: 1, quic: { packetsToClient: 0 } });
  t.equal(client.received.length, 0, 'the client got nothing from the proxy');
  t.equal(listener.openConnections(), 0);
});

t.test('a second flow from one address is over maxFlowsPerClient; terminateAll ends the flows there are', async (t) => {
  const backend = await udpPeer();
  t.teardown(() => backend.close());
  const { listener, observer, port } = await startListener(t, [`127.0.0.1:${backend.port}`], '60s');
  const first = await udpPeer();
  t.teardown(() => first.close());
  listener.open();
  for (const datagram of flight()) await first.send(datagram, port);
  await backend.waitForCount(2, GUARD_MS);
  const second = await udpPeer();
  t.teardown(() => second.close());
  await second.send(flight()[0]!, port);
  await waitFor(() => observer.datagramDrops.length === 1, 'the drop', GUARD_MS).catch((error) => {
    throw new Error(`${error.message}; open ${listener.openConnections()} records ${JSON.stringify(observer.closed)} received ${backend.received.length}`);
  });
  t.same(observer.datagramDrops, [{ listener: 'udp', reason: 'client_limit' }]);
  t.ok(
    backend.received.every((entry) => entry.port === backend.received[0]!.port),
    'one flow reached the backend',
  );
  t.equal(listener.openConnections(), 1);
  listener.terminateAll('shutdown');
  t.equal(listener.openConnections(), 0);
  t.match(observer.closed, [{ outcome: 'shutdown', sni: 'app.quic.test' }]);
});
