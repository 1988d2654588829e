import t from 'tap';
import fc from 'fast-check';
import { QuicError } from '../../lib/errors.js';
import { decodePacketNumber, decryptInitials } from '../../lib/quic/initial.js';
import { QUIC_V1, QUIC_V2 } from '../../lib/quic/packet.js';
import {
  ackFrame,
  buildInitialPacket,
  buildLongHeaderPacket,
  cryptoFrame,
  encodeVarint,
  type InitialPacketOptions,
  PING_FRAME,
  paddingFrames,
} from '../helpers/quic-initial.js';
import { RFC_CRYPTO_FRAME, RFC_DCID, RFC_PACKET_NUMBER, RFC9001, RFC9369 } from '../helpers/quic-rfc-vectors.js';

const SCID = Buffer.from('5c1d5c1d', 'hex');
const NO_CID = Buffer.alloc(0);
/** The RFC's CRYPTO frame is 06 00 40f1 then 241 bytes of ClientHello. */
const RFC_HELLO = RFC_CRYPTO_FRAME.subarray(4);

function initial(options: Partial<InitialPacketOptions> & { frames: Buffer }): Buffer {
  return buildInitialPacket({ version: QUIC_V1, dcid: RFC_DCID, scid: SCID, packetNumber: 0, ...options });
}

/** The QuicError code `fn` throws, or a description of what it did instead. */
function thrownCode(fn: () => unknown): string {
  try {
    fn();
    return 'nothing thrown';
  } catch (error) {
    return error instanceof QuicError ? error.code : `not a QuicError: ${String(error)}`;
  }
}

for (const [name, version, vectors] of [
  ['RFC 9001 A.2 (v1)', QUIC_V1, RFC9001],
  ['RFC 9369 A.2 (v2)', QUIC_V2, RFC9369],
] as const) {
  t.test(`${name}: the example packet decrypts to its CRYPTO frame`, async (t) => {
    const datagram = Buffer.from(vectors.protectedPacket);
    const packets = decryptInitials(datagram);
    t.equal(packets.length, 1);
    const [packet] = packets;
    t.equal(packet!.version, version);
    t.same(packet!.dcid, RFC_DCID);
    t.same(packet!.scid, NO_CID);
    t.equal(packet!.packetNumber, RFC_PACKET_NUMBER);
    t.equal(packet!.crypto.length, 1);
    t.equal(packet!.crypto[0]!.offset, 0);
    t.equal(packet!.crypto[0]!.data.toString('hex'), RFC_HELLO.toString('hex'));
    t.ok(datagram.equals(vectors.protectedPacket), 'the datagram is left exactly as it came (it is forwarded as is)');
  });

  t.test(`${name}: the test helper protects the same packet byte for byte`, async (t) => {
    const built = buildInitialPacket({ version, dcid: RFC_DCID, scid: NO_CID, packetNumber: RFC_PACKET_NUMBER, frames: RFC_CRYPTO_FRAME, padTo: 1200 });
    t.equal(built.subarray(0, vectors.protectedHeader.length).toString('hex'), vectors.protectedHeader.toString('hex'), 'protected header');
    t.ok(built.equals(vectors.protectedPacket), 'whole packet');
  });
}

t.test('packet number decoding (RFC 9000 A.3)', async (t) => {
  t.equal(decodePacketNumber(0xa82f30ea, 0x9b32, 16), 0xa82f9b32, "the RFC's example");
  t.equal(decodePacketNumber(-1, 2, 32), 2, 'no packet seen yet: the truncated number as it is');
  t.equal(decodePacketNumber(-1, 0, 8), 0);
  t.equal(decodePacketNumber(255, 0, 8), 256, 'wraps forward');
  t.equal(decodePacketNumber(300, 250, 8), 250, 'a little behind the largest');
  t.equal(decodePacketNumber(2 ** 40, 5, 8), 2 ** 40 + 5, 'beyond 32 bits');
});

t.test('a truncated packet number expands against the largest seen', async (t) => {
  const datagram = initial({ packetNumber: 300, packetNumberLength: 1, frames: PING_FRAME });
  t.equal(decryptInitials(datagram, undefined, 290)[0]!.packetNumber, 300);
  t.equal(
    thrownCode(() => decryptInitials(datagram)),
    'QUIC_DECRYPT_FAILED',
    'read as 44 without the largest, the nonce is wrong',
  );
});

t.test('later Initials carry the server chosen DCID; keys still derive from the original one', async (t) => {
  const serverCid = Buffer.from('0badc0de0badc0de', 'hex');
  const datagram = initial({ dcid: serverCid, keyDcid: RFC_DCID, packetNumber: 1, frames: cryptoFrame(10, Buffer.from('later')) });
  const [packet] = decryptInitials(datagram, RFC_DCID);
  t.same(packet!.dcid, serverCid);
  t.same(packet!.crypto, [{ offset: 10, data: Buffer.from('later') }]);
  t.equal(
    thrownCode(() => decryptInitials(datagram)),
    'QUIC_DECRYPT_FAILED',
    "with this datagram's DCID the keys are wrong",
  );
});

t.test('coalesced packets: Initials read in order, 0-RTT and Handshake skipped, trailing padding ignored', async (t) => {
  for (const version of [QUIC_V1, QUIC_V2]) {
    const handshake = buildLongHeaderPacket({ version, packetType: 'handshake', dcid: RFC_DCID, scid: SCID, body: Buffer.alloc(40, 0x11) });
    const first = buildInitialPacket({ version, dcid: RFC_DCID, scid: SCID, packetNumber: 4, frames: cryptoFrame(0, Buffer.from('first')) });
    const second = buildInitialPacket({ version, dcid: RFC_DCID, scid: SCID, packetNumber: 5, frames: cryptoFrame(5, Buffer.from('second')) });
    const zeroRtt = buildLongHeaderPacket({ version, packetType: '0rtt', dcid: RFC_DCID, scid: SCID, body: Buffer.alloc(200, 0x22) });
    const datagram = Buffer.concat([handshake, first, zeroRtt, second, Buffer.alloc(300)]);
    const packets = decryptInitials(datagram);
    t.same(
      packets.map(({ packetNumber, crypto }) => ({ packetNumber, crypto })),
      [
        { packetNumber: 4, crypto: [{ offset: 0, data: Buffer.from('first') }] },
        { packetNumber: 5, crypto: [{ offset: 5, data: Buffer.from('second') }] },
      ],
      `0x${version.toString(16)}`,
    );
  }
});

t.test('a coalesced packet with another DCID or version ends the datagram (RFC 9000 12.2), and so does a short header', async (t) => {
  const first = initial({ frames: cryptoFrame(0, Buffer.from('mine')) });
  const otherDcid = initial({ dcid: Buffer.from('0000000000000001', 'hex'), frames: cryptoFrame(4, Buffer.from('theirs')) });
  t.equal(decryptInitials(Buffer.concat([first, otherDcid])).length, 1, 'another DCID');
  const otherVersion = buildInitialPacket({ version: QUIC_V2, dcid: RFC_DCID, scid: SCID, packetNumber: 1, frames: cryptoFrame(4, Buffer.from('v2')) });
  t.equal(decryptInitials(Buffer.concat([first, otherVersion])).length, 1, 'another version');
  const shortHeader = Buffer.concat([Buffer.from([0x40]), RFC_DCID, Buffer.alloc(40, 0xff)]);
  t.equal(decryptInitials(Buffer.concat([first, shortHeader, first])).length, 1, 'a short header runs to the end');
  const retry = Buffer.concat([Buffer.from([0xf0]), Buffer.from('00000001', 'hex'), Buffer.from([8]), RFC_DCID, Buffer.from([0]), Buffer.alloc(30, 1)]);
  t.equal(decryptInitials(Buffer.concat([first, retry, first])).length, 1, 'a Retry runs to the end');
});

t.test('datagrams without an Initial packet give none', async (t) => {
  t.same(decryptInitials(Buffer.concat([Buffer.from([0x43]), RFC_DCID, Buffer.alloc(60, 0xab)])), [], 'a 1-RTT packet');
  t.same(
    decryptInitials(buildLongHeaderPacket({ version: QUIC_V1, packetType: 'handshake', dcid: RFC_DCID, scid: SCID, body: Buffer.alloc(40) })),
    [],
    'Handshake',
  );
});

t.test('frames an Initial may carry are skipped; CRYPTO frames are kept in packet order', async (t) => {
  const ackWithRanges = Buffer.concat([
    Buffer.from([0x02]),
    encodeVarint(100),
    encodeVarint(3),
    encodeVarint(2),
    encodeVarint(5),
    encodeVarint(1),
    encodeVarint(2),
    encodeVarint(0),
    encodeVarint(60),
  ]);
  const ackEcn = Buffer.concat([
    Buffer.from([0x03]),
    encodeVarint(7),
    encodeVarint(0),
    encodeVarint(0),
    encodeVarint(7),
    encodeVarint(1),
    encodeVarint(2),
    encodeVarint(300),
  ]);
  const close = Buffer.concat([Buffer.from([0x1c]), encodeVarint(0x0a), encodeVarint(0x06), encodeVarint(5), Buffer.from('oops!')]);
  const frames = Buffer.concat([
    paddingFrames(3),
    cryptoFrame(1000, Buffer.from('b')),
    PING_FRAME,
    ackFrame(3),
    ackWithRanges,
    ackEcn,
    cryptoFrame(0, Buffer.from('a')),
    close,
    cryptoFrame(7, Buffer.alloc(0)),
  ]);
  const [packet] = decryptInitials(initial({ frames, padTo: 1200 }));
  t.same(packet!.crypto, [
    { offset: 1000, data: Buffer.from('b') },
    { offset: 0, data: Buffer.from('a') },
  ]);
});

t.test('QUIC_MALFORMED: frames not allowed in an Initial, and frames cut short', async (t) => {
  const cases: Array<[string, Buffer]> = [
    ['STREAM (0x08)', Buffer.from([0x08, 0x00, 0x01, 0x41])],
    ['application CONNECTION_CLOSE (0x1d) is not allowed in Initial packets', Buffer.from([0x1d, 0x00, 0x00])],
    ['NEW_CONNECTION_ID (0x18)', Buffer.from([0x18, 0x00])],
    ['HANDSHAKE_DONE (0x1e)', Buffer.from([0x1e])],
    ['CRYPTO in a two-byte type encoding', Buffer.concat([Buffer.from([0x40, 0x06]), encodeVarint(0), encodeVarint(1), Buffer.from('x')])],
    ['CRYPTO longer than the packet', Buffer.concat([Buffer.from([0x06]), encodeVarint(0), encodeVarint(5000), Buffer.from('x')])],
    ['CRYPTO past the largest stream offset', Buffer.concat([Buffer.from([0x06]), Buffer.from('ffffffffffffffff', 'hex'), encodeVarint(1), Buffer.from('x')])],
    ['CRYPTO offset cut short', Buffer.from([0x06, 0xc0, 0x00])],
    ['ACK with more ranges than bytes', Buffer.concat([Buffer.from([0x02]), encodeVarint(1), encodeVarint(0), encodeVarint(2 ** 40), encodeVarint(0)])],
    ['CONNECTION_CLOSE reason longer than the packet', Buffer.concat([Buffer.from([0x1c, 0x01, 0x00]), encodeVarint(3000), Buffer.from('x')])],
  ];
  for (const [name, frames] of cases) {
    // Frames are the whole payload, so nothing (PADDING) follows to absorb a cut-short frame.
    t.equal(
      thrownCode(() => decryptInitials(initial({ frames, packetNumberLength: 1 }))),
      'QUIC_MALFORMED',
      name,
    );
  }
  t.equal(
    thrownCode(() => decryptInitials(initial({ frames: Buffer.alloc(0) }))),
    'QUIC_MALFORMED',
    'a packet without frames (RFC 9000 12.4)',
  );
  t.equal(
    thrownCode(() => decryptInitials(initial({ frames: PING_FRAME, reservedBits: 2 }))),
    'QUIC_MALFORMED',
    'reserved bits set once unprotected',
  );
});

t.test('errors on garbage carry a code', async (t) => {
  const valid = initial({ frames: cryptoFrame(0, RFC_HELLO), padTo: 1200 });
  t.equal(
    thrownCode(() => decryptInitials(Buffer.alloc(0))),
    'QUIC_MALFORMED',
    'empty datagram',
  );
  t.equal(
    thrownCode(() => decryptInitials(Buffer.from([0xc0, 0, 0]))),
    'QUIC_MALFORMED',
    'version cut short',
  );
  const unknown = Buffer.from(valid);
  unknown.writeUInt32BE(0xff00001d, 1);
  t.equal(
    thrownCode(() => decryptInitials(unknown)),
    'QUIC_UNSUPPORTED_VERSION',
    'draft-29',
  );
  unknown.writeUInt32BE(0, 1);
  t.equal(
    thrownCode(() => decryptInitials(unknown)),
    'QUIC_UNSUPPORTED_VERSION',
    'Version Negotiation',
  );
  t.equal(
    thrownCode(() => decryptInitials(valid.subarray(0, 1199))),
    'QUIC_MALFORMED',
    'cut short: Length past the end',
  );
  const tinyPayload = Buffer.from(valid.subarray(0, 30));
  tinyPayload.writeUInt16BE(0x4000 | 10, 1 + 4 + 1 + 8 + 1 + 4 + 1); // Length 10: no room for the 16-byte sample
  t.equal(
    thrownCode(() => decryptInitials(tinyPayload)),
    'QUIC_MALFORMED',
    'too short for a header protection sample',
  );
  for (const at of [0, 3, 10, 18, 30, 600, 1199]) {
    const flipped = Buffer.from(valid);
    flipped[at] = flipped[at]! ^ 0x01;
    const code = thrownCode(() => decryptInitials(flipped));
    t.ok(code === 'QUIC_DECRYPT_FAILED' || code === 'QUIC_MALFORMED' || code === 'QUIC_UNSUPPORTED_VERSION', `bit flipped at byte ${at}: ${code}`);
  }
  const tag = Buffer.from(valid);
  tag[1199] = tag[1199]! ^ 0x80;
  t.throws(() => decryptInitials(tag), { name: 'QuicError', code: 'QUIC_DECRYPT_FAILED' }, 'the tag does not verify');
});

t.test('property: garbage, mutated and cut-short datagrams give Initials or a QuicError, nothing else', async (t) => {
  const versions = fc.constantFrom(QUIC_V1, QUIC_V2);
  const cid = fc.uint8Array({ maxLength: 20 }).map((bytes) => Buffer.from(bytes));
  // Random payloads encrypted properly: the frame parser sees arbitrary plaintext.
  const randomPlaintext = fc
    .tuple(versions, cid, fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.integer({ min: 1, max: 4 }))
    .map(([version, dcid, frames, pnLength]) =>
      buildInitialPacket({ version, dcid, scid: SCID, packetNumber: 0, frames: Buffer.from(frames), packetNumberLength: pnLength as 1 | 2 | 3 | 4 }),
    );
  const validFlight = fc
    .tuple(versions, cid, fc.uint8Array({ maxLength: 600 }))
    .map(([version, dcid, data]) => buildInitialPacket({ version, dcid, scid: SCID, packetNumber: 1, frames: cryptoFrame(0, Buffer.from(data)), padTo: 1200 }));
  const mutated = fc
    .tuple(fc.oneof(validFlight, randomPlaintext), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat())
    .map(([datagram, mutations, cut]) => {
      const out = Buffer.from(datagram);
      for (const [position, value] of mutations) out[position % out.length] = value;
      return cut % 3 === 0 ? out.subarray(0, cut % out.length) : out;
    });
  const longHeaderGarbage = fc.tuple(fc.integer({ min: 0x80, max: 0xff }), versions, fc.uint8Array({ maxLength: 1300 })).map(([byte0, version, rest]) => {
    const head = Buffer.alloc(5);
    head[0] = byte0;
    head.writeUInt32BE(version, 1);
    return Buffer.concat([head, rest]);
  });
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 1300 }).map((bytes) => Buffer.from(bytes)),
    longHeaderGarbage,
    mutated,
    randomPlaintext,
  );
  let threw = 0;
  fc.assert(
    fc.property(input, (datagram) => {
      const copy = Buffer.from(datagram);
      try {
        const packets = decryptInitials(datagram);
        if (!Array.isArray(packets)) return false;
      } catch (error) {
        if (!(error instanceof QuicError)) throw error;
        threw++;
      }
      return datagram.equals(copy);
    }),
    { numRuns: 600 },
  );
  t.ok(threw > 0, `${threw} of 600 were refused with a QuicError; none threw anything else or altered the datagram`);
});
