// From datagrams to a routable ClientHello: decryptInitials, CryptoAssembler
// and readQuicClientHello together, as the UDP listener chains them.
import t from 'tap';
import fc from 'fast-check';
import type { QuicError } from '../../lib/errors.js';
import { readQuicClientHello } from '../../lib/quic/client-hello.js';
import { QUIC_V1, QUIC_V2 } from '../../lib/quic/packet.js';
import { MAX_HELLO_BYTES } from '../../lib/tls/client-hello.js';
import { buildClientHello, handshakeMessage, uint24, wrapInRecords } from '../helpers/client-hello-fixtures.js';
import {
  buildInitialPacket,
  buildLongHeaderPacket,
  cryptoFrame,
  firstFlight,
  PING_FRAME,
  postQuantumClientHello,
  readFirstFlight,
} from '../helpers/quic-initial.js';
import { RFC_CRYPTO_FRAME, RFC9001 } from '../helpers/quic-rfc-vectors.js';

const DCID = Buffer.from('d1d2d3d4d5d6d7d8', 'hex');
const SCID = Buffer.from('c1c2c3c4', 'hex');

function readFlight(datagrams: Buffer[]) {
  return readFirstFlight(datagrams).results;
}

t.test("the RFC 9001 example's ClientHello: example.com, ALPN 'alpn'", async (t) => {
  t.same(readFlight([RFC9001.protectedPacket]).at(-1), { kind: 'complete', hello: { serverName: 'example.com', alpn: ['alpn'], sslv2: false } });
  t.same(readQuicClientHello(RFC_CRYPTO_FRAME.subarray(4)), { kind: 'complete', hello: { serverName: 'example.com', alpn: ['alpn'], sslv2: false } });
});

t.test('a ClientHello split over three Initial packets, sent out of order, one coalesced with a 0-RTT packet, padded', async (t) => {
  for (const version of [QUIC_V1, QUIC_V2]) {
    const hello = buildClientHello({ serverName: 'Three.Example.NET', alpn: ['h3'] });
    const thirds = [0, Math.floor(hello.length / 3), Math.floor((2 * hello.length) / 3), hello.length];
    const packet = (i: number) =>
      buildInitialPacket({
        version,
        dcid: DCID,
        scid: SCID,
        packetNumber: i,
        frames: Buffer.concat([PING_FRAME, cryptoFrame(thirds[i]!, hello.subarray(thirds[i]!, thirds[i + 1]!))]),
        padTo: 400,
      });
    const zeroRtt = buildLongHeaderPacket({ version, packetType: '0rtt', dcid: DCID, scid: SCID, body: Buffer.alloc(300, 0x33) });
    const datagrams = [Buffer.concat([packet(2), zeroRtt]), packet(0), Buffer.concat([packet(1), Buffer.alloc(500)])];
    const results = readFlight(datagrams);
    t.same(
      results.map((result) => result.kind),
      ['incomplete', 'incomplete', 'complete'],
      `0x${version.toString(16)}: complete only once every piece is in`,
    );
    t.same(results[2], { kind: 'complete', hello: { serverName: 'three.example.net', alpn: ['h3'], sslv2: false } });
  }
});

t.test('a post-quantum-size ClientHello spans two 1200-byte datagrams, in either order', async (t) => {
  const hello = postQuantumClientHello('pq.example.org');
  t.ok(hello.length > 1700, `${hello.length} bytes`);
  for (const version of [QUIC_V1, QUIC_V2]) {
    const datagrams = firstFlight({ version, dcid: DCID, scid: SCID, hello });
    t.equal(datagrams.length, 2);
    t.ok(
      datagrams.every((datagram) => datagram.length === 1200),
      'each datagram at the 1200-byte minimum',
    );
    const expected = { kind: 'complete', hello: { serverName: 'pq.example.org', alpn: ['h3'], sslv2: false } };
    t.same(readFlight(datagrams).at(-1), expected, 'in order');
    t.same(readFlight([datagrams[1]!, datagrams[0]!]), [{ kind: 'incomplete' }, expected], 'second piece first');
  }
});

t.test('every prefix of the CRYPTO stream is incomplete, then complete', async (t) => {
  const hello = buildClientHello({ serverName: 'prefix.example', alpn: ['h3', 'h3-29'] });
  let incomplete = 0;
  for (let length = 0; length < hello.length; length++) {
    if (readQuicClientHello(hello.subarray(0, length)).kind === 'incomplete') incomplete++;
  }
  t.equal(incomplete, hello.length);
  t.match(readQuicClientHello(Buffer.concat([hello, Buffer.from('more handshake data')])), { kind: 'complete', hello: { serverName: 'prefix.example' } });
});

t.test('invalid: a QuicError QUIC_INVALID_HELLO with the TCP parser reason', async (t) => {
  const cases: Array<[string, Buffer, string]> = [
    ['a ServerHello', handshakeMessage(2, Buffer.alloc(40)), 'not_client_hello'],
    ['a TLS record: QUIC carries none', wrapInRecords(buildClientHello({ serverName: 'a.example' })), 'not_client_hello'],
    ['a server name with an empty label', buildClientHello({ serverName: 'a..example' }), 'bad_server_name'],
    ['a message longer than any hello the proxy reads', Buffer.concat([Buffer.from([1]), uint24(MAX_HELLO_BYTES), Buffer.alloc(10)]), 'too_large'],
    ['a body cut inside its own length', handshakeMessage(1, Buffer.alloc(10)), 'malformed'],
  ];
  for (const [name, data, reason] of cases) {
    const result = readQuicClientHello(data);
    t.equal(result.kind, 'invalid', name);
    if (result.kind !== 'invalid') continue;
    t.equal(result.reason, reason, `${name}: ${reason}`);
    t.match(result.error as QuicError, { name: 'QuicError', code: 'QUIC_INVALID_HELLO' });
  }
});

t.test('property: first flights of any hello, split anywhere, in any order, read back the same name', async (t) => {
  const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,15}[a-z0-9])?$/);
  const arb = fc.record({
    version: fc.constantFrom(QUIC_V1, QUIC_V2),
    labels: fc.array(label, { minLength: 1, maxLength: 4 }),
    pieceBytes: fc.integer({ min: 50, max: 1100 }),
    postQuantum: fc.boolean(),
    seed: fc.nat(),
  });
  fc.assert(
    fc.property(arb, ({ version, labels, pieceBytes, postQuantum, seed }) => {
      const serverName = labels.join('.');
      const hello = postQuantum ? postQuantumClientHello(serverName) : buildClientHello({ serverName, alpn: ['h3'] });
      const datagrams = firstFlight({ version, dcid: DCID, scid: SCID, hello, cryptoBytesPerPacket: pieceBytes });
      // Rotate the order: the last result is complete whatever came first.
      const order = datagrams.map((_, i) => datagrams[(i + seed) % datagrams.length]!);
      const results = readFlight(order);
      const last = results.at(-1)!;
      return last.kind === 'complete' && last.hello.serverName === serverName && results.slice(0, -1).every((result) => result.kind === 'incomplete');
    }),
    { numRuns: 60 },
  );
  t.pass('60 flights');
});

t.test('property: any bytes read as complete, incomplete or invalid, never an exception', async (t) => {
  const withHeader = fc
    .tuple(fc.integer({ min: 0, max: 0x1ffff }), fc.uint8Array({ maxLength: 400 }))
    .map(([length, body]) => Buffer.concat([Buffer.from([1]), uint24(length), body]));
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 400 }).map((bytes) => Buffer.from(bytes)),
        withHeader,
      ),
      (data) => {
        const result = readQuicClientHello(data);
        return result.kind === 'complete' || result.kind === 'incomplete' || (result.kind === 'invalid' && typeof result.reason === 'string');
      },
    ),
    { numRuns: 1000 },
  );
  t.pass('1000 inputs');
});
