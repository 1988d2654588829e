import t from 'tap';
import fc from 'fast-check';
import { isLongHeader, longHeaderVersion, parseLongHeader, QUIC_V1, QUIC_V2, shortHeaderDcid } from '../../lib/quic/packet.js';
import { buildInitialPacket, buildLongHeaderPacket, cryptoFrame, encodeVarint } from '../helpers/quic-initial.js';
import { RFC_DCID, RFC9001, RFC9369 } from '../helpers/quic-rfc-vectors.js';

const SCID = Buffer.from('c0ffee01', 'hex');

t.test('the RFC example Initials: version, connection IDs, type, where the packet number and the packet end', async (t) => {
  for (const [version, packet] of [
    [QUIC_V1, RFC9001.protectedPacket],
    [QUIC_V2, RFC9369.protectedPacket],
  ] as const) {
    const header = parseLongHeader(packet);
    t.same(header, { version, dcid: RFC_DCID, scid: Buffer.alloc(0), packetType: 'initial', start: 0, pnOffset: 18, end: 1200 }, `0x${version.toString(16)}`);
  }
});

t.test('connection IDs are copies: they outlive a datagram buffer that is reused', async (t) => {
  const packet = Buffer.from(RFC9001.protectedPacket);
  const header = parseLongHeader(packet)!;
  packet.fill(0);
  t.same(header.dcid, RFC_DCID);
});

t.test('the type bits read per version: v2 renumbers them (RFC 9369 3.2)', async (t) => {
  for (const version of [QUIC_V1, QUIC_V2]) {
    for (const packetType of ['0rtt', 'handshake'] as const) {
      const packet = buildLongHeaderPacket({ version, packetType, dcid: RFC_DCID, scid: SCID, body: Buffer.alloc(30, 7) });
      t.match(parseLongHeader(packet), { version, packetType, scid: SCID, end: packet.length }, `0x${version.toString(16)} ${packetType}`);
    }
    const initial = buildInitialPacket({ version, dcid: RFC_DCID, scid: SCID, packetNumber: 0, frames: cryptoFrame(0, Buffer.from('x')) });
    t.match(parseLongHeader(initial), { packetType: 'initial' });
  }
  // The first byte of a v1 Initial (type bits 00) is a v2 Retry, and a v1 Retry (11) is a v2 Handshake.
  const retryV2 = Buffer.concat([Buffer.from([0xc0]), Buffer.from('6b3343cf', 'hex'), Buffer.from([0, 4]), SCID, Buffer.alloc(24, 1)]);
  t.match(parseLongHeader(retryV2), { packetType: 'retry', pnOffset: 11, end: retryV2.length }, 'a Retry runs to the end of the datagram');
});

t.test('coalesced packets: each header from its offset', async (t) => {
  const first = buildInitialPacket({ version: QUIC_V1, dcid: RFC_DCID, scid: SCID, packetNumber: 0, frames: cryptoFrame(0, Buffer.alloc(40, 1)) });
  const second = buildLongHeaderPacket({ version: QUIC_V1, packetType: '0rtt', dcid: RFC_DCID, scid: SCID, body: Buffer.alloc(50, 9) });
  const datagram = Buffer.concat([first, second]);
  t.match(parseLongHeader(datagram), { start: 0, end: first.length });
  t.match(parseLongHeader(datagram, first.length), { packetType: '0rtt', start: first.length, end: datagram.length });
});

t.test('a token is skipped to find the Length field', async (t) => {
  const token = Buffer.alloc(70, 3); // a 2-byte token length
  const packet = buildInitialPacket({ version: QUIC_V1, dcid: RFC_DCID, scid: SCID, packetNumber: 0, frames: cryptoFrame(0, Buffer.from('hi')), token });
  const header = parseLongHeader(packet)!;
  t.equal(header.pnOffset, 1 + 4 + 1 + 8 + 1 + 4 + 2 + 70 + 2);
  t.equal(header.end, packet.length);
});

t.test('null for what is not a v1/v2 long header this module can read', async (t) => {
  t.equal(parseLongHeader(Buffer.from('4000112233445566778899', 'hex')), null, 'short header');
  t.equal(parseLongHeader(Buffer.alloc(0)), null, 'empty');
  const unknown = Buffer.from(RFC9001.protectedPacket);
  unknown.writeUInt32BE(0x1a2a3a4a, 1);
  t.equal(parseLongHeader(unknown), null, 'unknown version');
  t.equal(longHeaderVersion(unknown), 0x1a2a3a4a, 'its version still reads');
  unknown.writeUInt32BE(0, 1);
  t.equal(parseLongHeader(unknown), null, 'Version Negotiation');
  t.equal(longHeaderVersion(Buffer.from([0xc0, 0, 0])), null, 'version cut short');
  t.equal(longHeaderVersion(Buffer.from([0x40, 0, 0, 0, 1])), null, 'short header has no version');

  const longCid = Buffer.concat([Buffer.from([0xc0]), Buffer.from('00000001', 'hex'), Buffer.from([21]), Buffer.alloc(21), Buffer.from([0, 0, 1, 0])]);
  t.equal(parseLongHeader(longCid), null, 'a 21-byte DCID breaks v1 (RFC 9000 17.2)');
  const longScid = Buffer.concat([Buffer.from([0xc0]), Buffer.from('00000001', 'hex'), Buffer.from([0, 21]), Buffer.alloc(21), Buffer.from([0, 1, 0])]);
  t.equal(parseLongHeader(longScid), null, 'a 21-byte SCID');
  const hugeToken = Buffer.concat([Buffer.from([0xc0]), Buffer.from('00000001', 'hex'), Buffer.from([0, 0]), encodeVarint(2 ** 40), Buffer.alloc(20)]);
  t.equal(parseLongHeader(hugeToken), null, 'a token longer than the datagram');
});

t.test('every truncation of a packet is refused: the Length field reaches past the datagram', async (t) => {
  const packet = RFC9001.protectedPacket;
  let refused = 0;
  for (let length = 0; length < packet.length; length++) {
    if (parseLongHeader(packet.subarray(0, length)) === null) refused++;
  }
  t.equal(refused, packet.length);
});

t.test('isLongHeader and shortHeaderDcid', async (t) => {
  t.equal(isLongHeader(0xc0), true);
  t.equal(isLongHeader(0x80), true);
  t.equal(isLongHeader(0x40), false);
  t.equal(isLongHeader(0x00), false);
  const shortPacket = Buffer.concat([Buffer.from([0x41]), RFC_DCID, Buffer.alloc(30, 0xee)]);
  t.same(shortHeaderDcid(shortPacket, 8), RFC_DCID);
  t.same(shortHeaderDcid(shortPacket, 0), Buffer.alloc(0), 'a zero-length connection ID');
  t.equal(shortHeaderDcid(shortPacket.subarray(0, 8), 8), null, 'too short');
  t.equal(shortHeaderDcid(shortPacket, 21), null, 'over 20 bytes');
  t.equal(shortHeaderDcid(RFC9001.protectedPacket, 8), null, 'a long header');
  t.equal(shortHeaderDcid(Buffer.alloc(0), 0), null, 'empty');
});

t.test('property: any bytes give null or a header whose offsets lie inside the datagram, never an exception', async (t) => {
  const longHeaderPrefix = fc
    .tuple(fc.integer({ min: 0x80, max: 0xff }), fc.constantFrom(QUIC_V1, QUIC_V2), fc.integer({ min: 0, max: 22 }))
    .map(([byte0, version, cidLength]) => {
      const out = Buffer.alloc(6);
      out[0] = byte0;
      out.writeUInt32BE(version, 1);
      out[5] = cidLength;
      return out;
    });
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 120 }).map((bytes) => Buffer.from(bytes)),
    fc.tuple(longHeaderPrefix, fc.uint8Array({ maxLength: 120 })).map(([head, tail]) => Buffer.concat([head, tail])),
  );
  fc.assert(
    fc.property(input, fc.nat({ max: 8 }), (datagram, offset) => {
      const header = parseLongHeader(datagram, offset);
      if (header === null) return true;
      return header.start === offset && header.start < header.pnOffset && header.pnOffset <= header.end && header.end <= datagram.length;
    }),
    { numRuns: 1000 },
  );
  t.pass('1000 inputs');
});
