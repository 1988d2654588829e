// QUIC passthrough end to end (issue 14), through the compiled CLI.
//
// Hand-built first flights (test/helpers/quic-initial.ts) against plain UDP
// backends that record every datagram: a ClientHello split over three
// Initial packets sent out of order, one coalesced with a 0-RTT packet,
// forwarded byte for byte; QUIC v2; a client that moves to a new port (NAT
// rebinding) found by the connection ID the backend chose; a version the
// proxy cannot read going to the default route; garbage, Initials for an
// unknown name and more flows than allowed: dropped and counted, no backend
// contacted, flows bounded; a reload that keeps a flow on its backend.
// Real QUIC peers are in quic-ngtcp2.test.ts.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { buildClientHello } from '../helpers/client-hello-fixtures.js';
import { parsePrometheus, sumOf } from '../helpers/prometheus.js';
import { type ProxyProcess, startProxy } from '../helpers/proxy-process.js';
import { buildInitialPacket, buildLongHeaderPacket, cryptoFrame, firstFlight, postQuantumClientHello, QUIC_V1, QUIC_V2 } from '../helpers/quic-initial.js';
import { udpPeer, type UdpPeer } from '../helpers/udp-peers.js';
import { sleep } from '../helpers/wait.js';

/** Hang guards only: nothing here asserts how long anything took. */
const GUARD_MS = 30_000;

async function metrics(proxy: ProxyProcess): Promise<ReturnType<typeof parsePrometheus>> {
  const admin = String((await proxy.waitForLog((line) => line.msg === 'admin endpoint listening')).address);
  const response = await fetch(`http://${admin}/metrics`);
  return parsePrometheus(await response.text());
}

/** A client's first flight for `name`: a post-quantum-sized ClientHello in three Initial packets, one datagram each. */
function threeInitials(version: number, name: string, dcid: Buffer, scid: Buffer): Buffer[] {
  const hello = postQuantumClientHello(name);
  const datagrams = firstFlight({ version, dcid, scid, hello, cryptoBytesPerPacket: Math.ceil(hello.length / 3) });
  if (datagrams.length !== 3) throw new Error(`expected 3 Initials, got ${datagrams.length}`);
  return datagrams;
}

/** A 1-RTT packet to `dcid` (its payload is opaque to the proxy). */
function shortHeader(dcid: Buffer, payloadBytes = 60): Buffer {
  return Buffer.concat([Buffer.from([0x43]), dcid, randomBytes(payloadBytes)]);
}

t.test('hand-built flights against recording backends', async (t) => {
  const [hand, v2, fallback, kept, moved] = await Promise.all([udpPeer(), udpPeer(), udpPeer(), udpPeer(), udpPeer()]);
  t.teardown(() => Promise.all([hand, v2, fallback, kept, moved].map((peer) => peer.close())));
  const config = {
    admin: { listen: '127.0.0.1:0' },
    listeners: [
      {
        name: 'quic',
        listen: '127.0.0.1:0',
        quic: { maxFlows: 20, maxFlowsPerClient: 0 },
        // Longer than any pause between a test's datagrams on a busy machine, short enough to wait for.
        idleTimeout: '5s',
        clientHelloTimeout: '2s',
        routes: [
          { hostnames: ['hand.quic.test'], backends: [`127.0.0.1:${hand.port}`] },
          { hostnames: ['v2.quic.test'], backends: [`127.0.0.1:${v2.port}`] },
          { hostnames: ['kept.quic.test'], backends: [`127.0.0.1:${kept.port}`] },
        ],
      },
      { name: 'fallback', listen: '127.0.0.1:0', quic: true, idleTimeout: '2s', default: { backends: [`127.0.0.1:${fallback.port}`] } },
    ],
  };
  const proxy = await startProxy(config);
  t.teardown(() => proxy.stop());
  await proxy.waitForLog((line) => line.msg === 'listening' && line.transport === 'quic' && line.listener === 'fallback');
  const port = proxy.port('quic');

  t.test('three Initials out of order, one coalesced with a 0-RTT packet, reach the backend byte for byte; its answers come back', async (t) => {
    const client = await udpPeer();
    t.teardown(() => client.close());
    const dcid = randomBytes(8);
    const scid = randomBytes(8);
    const [first, second, third] = threeInitials(QUIC_V1, 'hand.quic.test', dcid, scid);
    const zeroRtt = buildLongHeaderPacket({ version: QUIC_V1, packetType: '0rtt', dcid, scid, body: randomBytes(60) });
    const sent = [third!, Buffer.concat([first!, zeroRtt]), second!];
    for (const datagram of sent) await client.send(datagram, port);
    await hand.waitForCount(3);
    t.same(
      hand.received.slice(0, 3).map((entry) => entry.datagram.toString('hex')),
      sent.map((datagram) => datagram.toString('hex')),
      'the datagrams as sent, in the order sent',
    );
    t.ok(
      hand.received.every((entry) => entry.port === hand.received[0]!.port),
      'from one socket of the proxy',
    );

    // The backend answers with its own connection ID; the proxy learns it, and a reply goes back unchanged.
    const serverCid = randomBytes(8);
    const answer = buildLongHeaderPacket({ version: QUIC_V1, packetType: 'handshake', dcid: scid, scid: serverCid, body: randomBytes(100) });
    await hand.send(answer, hand.received[0]!.port);
    await client.waitForCount(1);
    t.equal(client.received[0]!.datagram.toString('hex'), answer.toString('hex'), 'the answer, byte for byte');
    t.equal(client.received[0]!.port, port, 'from the listening port');

    t.test('the client moves to a new port (NAT rebinding): found by the connection ID the backend chose, it keeps its backend', async (t) => {
      const rebound = await udpPeer();
      t.teardown(() => rebound.close());
      const oneRtt = shortHeader(serverCid);
      await rebound.send(oneRtt, port);
      await hand.waitForCount(4);
      const arrived = hand.received[3]!;
      t.equal(arrived.datagram.toString('hex'), oneRtt.toString('hex'), 'the same backend, the datagram unchanged');
      t.not(arrived.port, hand.received[0]!.port, 'from a new socket of the proxy: the backend sees the move and validates the new path itself');
      const reply = shortHeader(scid);
      await hand.send(reply, arrived.port);
      await rebound.waitForCount(1);
      t.equal(rebound.received[0]!.datagram.toString('hex'), reply.toString('hex'), 'its reply goes to the new address');
      const oldPathReply = shortHeader(scid);
      await hand.send(oldPathReply, hand.received[0]!.port);
      await client.waitForCount(2);
      t.equal(client.received[1]!.datagram.toString('hex'), oldPathReply.toString('hex'), 'the old address still gets what the backend sends to it');
    });

    t.test('the flow ends when idle, with one log line: transport quic, packets and bytes each way', async (t) => {
      const line = await proxy.waitForLog(
        (entry) => entry.msg === 'connection closed' && entry.transport === 'quic' && entry.sni === 'hand.quic.test',
        GUARD_MS,
      );
      const fromClient = [...sent, shortHeader(serverCid)].reduce((sum, datagram) => sum + datagram.length, 0);
      t.match(line, {
        listener: 'quic',
        client: `127.0.0.1:${client.port}`,
        sni: 'hand.quic.test',
        alpn: ['h3'],
        route: 'hand.quic.test',
        backend: `127.0.0.1:${hand.port}`,
        attempts: 1,
        outcome: 'ok',
        reason: 'idle',
        packetsFromClient: 4,
        packetsToClient: 3,
        bytesFromClient: fromClient,
      });
      t.equal(line.bytesToClient, client.received.reduce((sum, entry) => sum + entry.datagram.length, 0) + 1 + 8 + 60);
    });
  });

  t.test('QUIC v2 Initials are read and routed', async (t) => {
    const client = await udpPeer();
    t.teardown(() => client.close());
    const flight = threeInitials(QUIC_V2, 'v2.quic.test', randomBytes(12), randomBytes(4));
    for (const datagram of flight) await client.send(datagram, port);
    await v2.waitForCount(3);
    t.same(
      v2.received.map((entry) => entry.datagram.toString('hex')),
      flight.map((datagram) => datagram.toString('hex')),
    );
    await v2.send(shortHeader(randomBytes(4)), v2.received[0]!.port);
    await client.waitForCount(1);
    const line = await proxy.waitForLog((entry) => entry.msg === 'connection closed' && entry.transport === 'quic' && entry.sni === 'v2.quic.test', GUARD_MS);
    t.match(line, { route: 'v2.quic.test', outcome: 'ok', packetsFromClient: 3, packetsToClient: 1 });
  });

  t.test('a version the proxy cannot read goes to the default route where there is one, unchanged', async (t) => {
    const client = await udpPeer();
    t.teardown(() => client.close());
    const unknown = Buffer.concat([Buffer.from([0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 8]), randomBytes(8), Buffer.from([0]), randomBytes(1200)]);
    await client.send(unknown, proxy.port('fallback'));
    await fallback.waitForCount(1);
    t.equal(fallback.received[0]!.datagram.toString('hex'), unknown.toString('hex'));
    await fallback.send(randomBytes(50), fallback.received[0]!.port);
    await client.waitForCount(1);
    const line = await proxy.waitForLog((entry) => entry.msg === 'connection closed' && entry.transport === 'quic' && entry.listener === 'fallback', GUARD_MS);
    t.match(line, { sni: null, route: 'default', backend: `127.0.0.1:${fallback.port}`, outcome: 'ok' });
  });

  t.test('garbage, unknown versions, Initials for an unknown name, flows past maxFlows: dropped and counted, no backend contacted', async (t) => {
    const before = await metrics(proxy);
    const received = () => [hand, v2, kept].reduce((sum, peer) => sum + peer.received.length, 0);
    const backendDatagrams = received();
    const client = await udpPeer();
    t.teardown(() => client.close());
    const garbage = 300;
    for (let index = 0; index < garbage; index++) {
      const datagram = randomBytes(index % 2 === 0 ? 1200 : 40);
      datagram[0] = datagram[0]! & 0x7f; // a short header: no flow knows it
      await client.send(datagram, port);
    }
    const initial = (frames: Buffer, padTo?: number) =>
      buildInitialPacket({ version: QUIC_V1, dcid: randomBytes(8), scid: randomBytes(8), packetNumber: 0, frames, padTo });
    for (let index = 0; index < 10; index++) await client.send(initial(cryptoFrame(0, Buffer.alloc(100, 1))), port);
    for (let index = 0; index < 20; index++) {
      const tampered = initial(cryptoFrame(0, Buffer.alloc(100, 1)), 1200);
      tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 0xff;
      await client.send(tampered, port);
    }
    const unknownVersion = Buffer.concat([Buffer.from([0xc0, 0x0a, 0x0a, 0x0a, 0x0a, 8]), randomBytes(1300)]);
    for (let index = 0; index < 50; index++) await client.send(unknownVersion, port);
    // Initials for a name no route serves, each from its own port (as a spoofing flood looks).
    const senders: UdpPeer[] = [];
    t.teardown(() => Promise.all(senders.map((sender) => sender.close())));
    for (let index = 0; index < 40; index++) {
      const sender = await udpPeer();
      senders.push(sender);
      for (const datagram of threeInitials(QUIC_V1, `nobody-${index}.unknown.test`, randomBytes(8), randomBytes(8))) await sender.send(datagram, port);
    }
    // Half a hello from each of 60 ports: flows wait for the rest, at most maxFlows (20) of them.
    for (let index = 0; index < 60; index++) {
      const sender = await udpPeer();
      senders.push(sender);
      await sender.send(threeInitials(QUIC_V1, 'hand.quic.test', randomBytes(8), randomBytes(8))[0]!, port);
    }
    const dropped = (reason: string, exposition: ReturnType<typeof parsePrometheus>) =>
      sumOf(exposition, 'sni_passthrough_quic_datagrams_dropped_total', { listener: 'quic', reason });
    let after = before;
    for (let polls = 0; polls < 300; polls++) {
      after = await metrics(proxy);
      const counted = ['not_quic', 'too_small', 'undecryptable', 'unknown_version', 'no_route', 'flow_limit'].reduce(
        (sum, reason) => sum + dropped(reason, after) - dropped(reason, before),
        0,
      );
      if (counted >= garbage + 10 + 20 + 50 + 40 + 40) break;
      await sleep(100);
    }
    t.equal(dropped('unknown_version', after) - dropped('unknown_version', before), 50, 'unknown versions (this listener has no default route)');
    t.equal(dropped('no_route', after) - dropped('no_route', before), 40, 'one per unknown name');
    t.equal(dropped('flow_limit', after) - dropped('flow_limit', before), 40, 'hellos past maxFlows');
    t.equal(dropped('not_quic', after) - dropped('not_quic', before), garbage, 'garbage');
    t.equal(dropped('too_small', after) - dropped('too_small', before), 10, 'Initials in datagrams under 1200 bytes');
    t.equal(dropped('undecryptable', after) - dropped('undecryptable', before), 20, 'Initials that do not decrypt');
    t.equal(sumOf(after, 'sni_passthrough_connections_open', { listener: 'quic' }), 20, 'flows reading a hello: maxFlows, no more');
    t.equal(received(), backendDatagrams, 'no backend got a datagram');
    // The flows waiting for the rest of their hello end after clientHelloTimeout, counted.
    for (let polls = 0; polls < 300; polls++) {
      after = await metrics(proxy);
      if (sumOf(after, 'sni_passthrough_connections_open', { listener: 'quic' }) === 0) break;
      await sleep(100);
    }
    t.equal(sumOf(after, 'sni_passthrough_connections_open', { listener: 'quic' }), 0, 'no flow left');
    t.equal(dropped('hello_timeout', after) - dropped('hello_timeout', before), 20);
    t.equal(received(), backendDatagrams, 'still no backend got a datagram');
  });

  t.test('a reload keeps a flow on its backend; its route gone, the flow ends when idle', async (t) => {
    const client = await udpPeer();
    t.teardown(() => client.close());
    const dcid = randomBytes(8);
    for (const datagram of threeInitials(QUIC_V1, 'kept.quic.test', dcid, randomBytes(8))) await client.send(datagram, port);
    await kept.waitForCount(3);
    await kept.send(
      buildLongHeaderPacket({ version: QUIC_V1, packetType: 'handshake', dcid: randomBytes(8), scid: randomBytes(8), body: randomBytes(50) }),
      kept.received[0]!.port,
    );
    await client.waitForCount(1);

    const next = structuredClone(config);
    next.listeners[0]!.routes = [
      { hostnames: ['hand.quic.test'], backends: [`127.0.0.1:${hand.port}`] },
      { hostnames: ['moved.quic.test', 'kept2.quic.test'], backends: [`127.0.0.1:${moved.port}`] },
    ];
    await writeFile(proxy.configFile, stringify(next));
    proxy.child.kill('SIGHUP');
    await proxy.waitForLog((line) => line.msg === 'config reloaded' && line.generation === 2, GUARD_MS);

    const later = shortHeader(dcid);
    await client.send(later, port);
    await kept.waitForCount(4);
    t.equal(kept.received[3]!.datagram.toString('hex'), later.toString('hex'), 'the flow keeps its backend after the reload');
    t.equal(moved.received.length, 0, 'the new config’s backend got nothing of it');
    const line = await proxy.waitForLog((entry) => entry.msg === 'connection closed' && entry.transport === 'quic' && entry.sni === 'kept.quic.test', GUARD_MS);
    t.match(line, { route: 'kept.quic.test', backend: `127.0.0.1:${kept.port}`, outcome: 'ok', reason: 'idle', packetsFromClient: 4 });

    const newcomer = await udpPeer();
    t.teardown(() => newcomer.close());
    for (const datagram of threeInitials(QUIC_V1, 'kept.quic.test', randomBytes(8), randomBytes(8))) await newcomer.send(datagram, port);
    for (const datagram of threeInitials(QUIC_V1, 'moved.quic.test', randomBytes(8), randomBytes(8))) await newcomer.send(datagram, port);
    await moved.waitForCount(3);
    t.equal(kept.received.length, 4, 'a new flow for the removed name reaches no backend');
  });
});

t.test('a single Initial with a whole ClientHello in a CRYPTO frame', async (t) => {
  // The shape of most clients' first datagram today (a classical key share fits one packet).
  const backend = await udpPeer();
  t.teardown(() => backend.close());
  const proxy = await startProxy({
    listeners: [
      {
        name: 'one',
        listen: '127.0.0.1:0',
        quic: true,
        idleTimeout: '1s',
        routes: [{ hostnames: ['one.quic.test'], backends: [`127.0.0.1:${backend.port}`] }],
      },
    ],
  });
  t.teardown(() => proxy.stop());
  await proxy.waitForLog((line) => line.msg === 'listening' && line.transport === 'quic');
  const client = await udpPeer();
  t.teardown(() => client.close());
  const datagram = buildInitialPacket({
    version: QUIC_V1,
    dcid: randomBytes(8),
    scid: randomBytes(8),
    packetNumber: 0,
    frames: cryptoFrame(0, buildClientHello({ serverName: 'one.quic.test', alpn: ['h3'] })),
    padTo: 1200,
  });
  await client.send(datagram, proxy.port('one'));
  await backend.waitForCount(1);
  t.equal(backend.received[0]!.datagram.toString('hex'), datagram.toString('hex'));
  await backend.send(shortHeader(randomBytes(8)), backend.received[0]!.port);
  const line = await proxy.waitForLog((entry) => entry.msg === 'connection closed' && entry.transport === 'quic', GUARD_MS);
  t.match(line, { sni: 'one.quic.test', alpn: ['h3'], outcome: 'ok', packetsFromClient: 1, packetsToClient: 1 });
});
