// Builds protected QUIC Initial packets as a client sends them (RFC 9001
// section 5, QUIC v2: RFC 9369), for the Initial reader's tests and for end to
// end tests that need a first flight shaped just so: a ClientHello split over
// several packets, sent out of order, coalesced, padded. The encrypting side
// lives here only; the key schedule is the one under test in lib/quic/keys.ts,
// which the RFC's own vectors check.
import { createCipheriv } from 'node:crypto';
import { type QuicHelloResult, readQuicClientHello } from '../../lib/quic/client-hello.js';
import { CryptoAssembler } from '../../lib/quic/crypto-assembler.js';
import { decryptInitials } from '../../lib/quic/initial.js';
import { clientInitialKeys, headerProtectionMask, packetNonce } from '../../lib/quic/keys.js';
import { type LongPacketType, QUIC_V1, QUIC_V2 } from '../../lib/quic/packet.js';
import { buildClientHello, extension } from './client-hello-fixtures.js';

export { QUIC_V1, QUIC_V2 };

// The long header's two type bits, per version (RFC 9000 section 17.2, RFC 9369 section 3.2);
// written independently of lib/quic/packet.ts's table, so that each checks the other. Other versions get v1's.
const TYPE_BITS: Record<number, Record<LongPacketType, number>> = {
  [QUIC_V1]: { initial: 0, '0rtt': 1, handshake: 2, retry: 3 },
  [QUIC_V2]: { initial: 1, '0rtt': 2, handshake: 3, retry: 0 },
};

const AEAD_TAG_BYTES = 16;
const SAMPLE_BYTES = 16;

/** A QUIC variable-length integer in its shortest encoding, or in `length` bytes. */
export function encodeVarint(value: number, length?: 1 | 2 | 4 | 8): Buffer {
  const size = length ?? (value < 2 ** 6 ? 1 : value < 2 ** 14 ? 2 : value < 2 ** 30 ? 4 : 8);
  if (!Number.isSafeInteger(value) || value < 0 || value >= 2 ** (size * 8 - 2)) throw new Error(`${value} does not fit a ${size}-byte varint`);
  const out = Buffer.alloc(size);
  for (let i = size - 1, rest = value; i >= 0; i--, rest = Math.floor(rest / 256)) out[i] = rest % 256;
  out[0] = out[0]! | (Math.log2(size) << 6);
  return out;
}

/** A CRYPTO frame (type 0x06) carrying `data` at stream offset `offset`. */
export function cryptoFrame(offset: number, data: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([0x06]), encodeVarint(offset), encodeVarint(data.length), data]);
}

/** An ACK frame (type 0x02) acknowledging packets 0 to `largest`. */
export function ackFrame(largest: number): Buffer {
  return Buffer.concat([Buffer.from([0x02]), encodeVarint(largest), encodeVarint(0), encodeVarint(0), encodeVarint(largest)]);
}

export const PING_FRAME = Buffer.from([0x01]);

/** `count` PADDING frames (zero bytes). */
export function paddingFrames(count: number): Buffer {
  return Buffer.alloc(count);
}

export interface InitialPacketOptions {
  version: number;
  dcid: Buffer;
  scid: Buffer;
  packetNumber: number;
  /** Frames, encoded (see cryptoFrame, ackFrame, PING_FRAME). */
  frames: Buffer;
  /** Pad the packet with PADDING frames to this many bytes in all (a client's datagram with an Initial carries at least 1200). */
  padTo?: number;
  /** The Destination Connection ID the keys derive from: the flow's first one (default `dcid`). */
  keyDcid?: Buffer;
  /** Bytes of the encoded packet number, 1 to 4 (default 4, as in RFC 9001's example). */
  packetNumberLength?: 1 | 2 | 3 | 4;
  token?: Buffer;
  /** The two reserved bits of the first byte (must be 0; set only to test that a reader refuses them). */
  reservedBits?: number;
}

function longHeaderStart(version: number, packetType: LongPacketType, lowBits: number, dcid: Buffer, scid: Buffer): Buffer {
  const typeBits = TYPE_BITS[version]?.[packetType] ?? TYPE_BITS[QUIC_V1]![packetType];
  const versionBytes = Buffer.alloc(4);
  versionBytes.writeUInt32BE(version >>> 0);
  return Buffer.concat([Buffer.from([0xc0 | (typeBits << 4) | lowBits]), versionBytes, Buffer.from([dcid.length]), dcid, Buffer.from([scid.length]), scid]);
}

/**
 * A protected client Initial packet: payload encrypted with AES-128-GCM under
 * the Initial keys of `keyDcid ?? dcid`, then header protection applied. The
 * Length field always takes 2 bytes, as in RFC 9001's example packet.
 */
export function buildInitialPacket(options: InitialPacketOptions): Buffer {
  const { version, dcid, scid, packetNumber, frames } = options;
  const pnLength = options.packetNumberLength ?? 4;
  const keys = clientInitialKeys(version, options.keyDcid ?? dcid);
  if (keys === null) throw new Error(`no Initial keys for version 0x${version.toString(16)}`);
  const token = options.token ?? Buffer.alloc(0);
  const lowBits = ((options.reservedBits ?? 0) << 2) | (pnLength - 1);
  const start = Buffer.concat([longHeaderStart(version, 'initial', lowBits, dcid, scid), encodeVarint(token.length), token]);
  const overhead = start.length + 2 + pnLength + AEAD_TAG_BYTES;
  // The header protection sample starts 4 bytes into the packet number field: short payloads are padded to reach it (RFC 9001 section 5.4.2).
  const minimumPayload = Math.max(frames.length, 4 - pnLength + SAMPLE_BYTES - AEAD_TAG_BYTES);
  const payloadLength = Math.max(minimumPayload, (options.padTo ?? 0) - overhead);
  const payload = Buffer.concat([frames, paddingFrames(payloadLength - frames.length)]);
  const packetNumberField = Buffer.alloc(pnLength);
  for (let i = 0, rest = packetNumber; i < pnLength; i++, rest = Math.floor(rest / 256)) packetNumberField[pnLength - 1 - i] = rest % 256;
  const header = Buffer.concat([start, encodeVarint(pnLength + payload.length + AEAD_TAG_BYTES, 2), packetNumberField]);

  const cipher = createCipheriv('aes-128-gcm', keys.key, packetNonce(keys.iv, packetNumber));
  cipher.setAAD(header);
  const sealed = Buffer.concat([cipher.update(payload), cipher.final(), cipher.getAuthTag()]);

  const packet = Buffer.concat([header, sealed]);
  const pnOffset = header.length - pnLength;
  const mask = headerProtectionMask(keys.hp, packet.subarray(pnOffset + 4, pnOffset + 4 + SAMPLE_BYTES));
  packet[0] = packet[0]! ^ (mask[0]! & 0x0f);
  for (let i = 0; i < pnLength; i++) packet[pnOffset + i] = packet[pnOffset + i]! ^ mask[1 + i]!;
  return packet;
}

export interface LongHeaderPacketOptions {
  version: number;
  packetType: Exclude<LongPacketType, 'initial' | 'retry'>;
  dcid: Buffer;
  scid: Buffer;
  /** The bytes after the Length field (protected packet number and payload), taken as they are: nothing is encrypted. */
  body: Buffer;
}

/** A 0-RTT or Handshake packet with a correct header and Length around `body`, to coalesce with Initials. */
export function buildLongHeaderPacket(options: LongHeaderPacketOptions): Buffer {
  const { version, packetType, dcid, scid, body } = options;
  return Buffer.concat([longHeaderStart(version, packetType, 0, dcid, scid), encodeVarint(body.length, 2), body]);
}

export interface FirstFlightOptions {
  version: number;
  dcid: Buffer;
  scid: Buffer;
  /** The ClientHello handshake message (see buildClientHello, postQuantumClientHello). */
  hello: Buffer;
  /** CRYPTO bytes per packet (default 1100, which leaves room in a 1200-byte datagram). */
  cryptoBytesPerPacket?: number;
  /** Packet number of the first datagram (default 0). */
  firstPacketNumber?: number;
}

/** A client's first flight: one 1200-byte datagram per Initial packet, each carrying the next piece of `hello` in one CRYPTO frame. */
export function firstFlight(options: FirstFlightOptions): Buffer[] {
  const { version, dcid, scid, hello } = options;
  const pieceBytes = options.cryptoBytesPerPacket ?? 1100;
  const datagrams: Buffer[] = [];
  for (let offset = 0, packetNumber = options.firstPacketNumber ?? 0; offset < hello.length; offset += pieceBytes, packetNumber++) {
    const frames = cryptoFrame(offset, hello.subarray(offset, offset + pieceBytes));
    datagrams.push(buildInitialPacket({ version, dcid, scid, packetNumber, frames, padTo: 1200 }));
  }
  return datagrams;
}

const EXTENSION_SUPPORTED_GROUPS = 10;
const EXTENSION_KEY_SHARE = 51;
const EXTENSION_QUIC_TRANSPORT_PARAMETERS = 57;
const GROUP_X25519_MLKEM768 = 0x11ec;
const GROUP_X25519 = 0x001d;
const X25519_MLKEM768_SHARE_BYTES = 1216; // ML-KEM-768 encapsulation key (1184) + X25519 (32)
const EXTENSION_ENCRYPTED_CLIENT_HELLO = 0xfe0d;
const ECH_GREASE_BYTES = 300; // Chromium sends a GREASE ECH extension of this order when it has no ECH config

/**
 * A ClientHello shaped like a post-quantum browser's over QUIC: an
 * X25519MLKEM768 key share (1,216 bytes) beside an X25519 one, a GREASE
 * encrypted_client_hello, QUIC transport parameters, SNI and ALPN. About 1,700
 * bytes, more than one Initial packet holds: the reader must reassemble it
 * from two.
 */
export function postQuantumClientHello(serverName: string, alpn: string[] = ['h3']): Buffer {
  const share = (group: number, bytes: number) => {
    const entry = Buffer.alloc(4 + bytes, 0x5a);
    entry.writeUInt16BE(group, 0);
    entry.writeUInt16BE(bytes, 2);
    return entry;
  };
  const shares = Buffer.concat([share(GROUP_X25519_MLKEM768, X25519_MLKEM768_SHARE_BYTES), share(GROUP_X25519, 32)]);
  const keyShareList = Buffer.alloc(2 + shares.length);
  keyShareList.writeUInt16BE(shares.length);
  shares.copy(keyShareList, 2);
  const groups = Buffer.from([0x00, 0x04, 0x11, 0xec, 0x00, 0x1d]);
  const transportParameters = Buffer.from('0104800075300304800fffff04048000ffff', 'hex');
  return buildClientHello({
    serverName,
    alpn,
    extraExtensionBytes: Buffer.concat([
      extension(EXTENSION_SUPPORTED_GROUPS, groups),
      extension(EXTENSION_KEY_SHARE, keyShareList),
      extension(EXTENSION_QUIC_TRANSPORT_PARAMETERS, transportParameters),
      extension(EXTENSION_ENCRYPTED_CLIENT_HELLO, Buffer.alloc(ECH_GREASE_BYTES, 0xa5)),
    ]),
  });
}

export interface FlightReading {
  /** The reader's verdict after each datagram, in the order fed. */
  results: QuicHelloResult[];
  /** The contiguous CRYPTO bytes after the last datagram. */
  assembled: Buffer;
}

/**
 * Reads a client's first flight the way the UDP listener chains the lib:
 * decryptInitials with the flow's original DCID and largest packet number,
 * CryptoAssembler, readQuicClientHello after each datagram.
 */
export function readFirstFlight(datagrams: Buffer[], maxBytes = 64 * 1024): FlightReading {
  const assembler = new CryptoAssembler(maxBytes);
  let originalDcid: Buffer | undefined;
  let largest = -1;
  const results = datagrams.map((datagram) => {
    for (const packet of decryptInitials(datagram, originalDcid, largest)) {
      originalDcid ??= packet.dcid;
      largest = Math.max(largest, packet.packetNumber);
      for (const { offset, data } of packet.crypto) assembler.add(offset, data);
    }
    return readQuicClientHello(assembler.contiguous());
  });
  return { results, assembled: assembler.contiguous() };
}
