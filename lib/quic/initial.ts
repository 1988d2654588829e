// Reads the client's Initial packets out of a datagram (RFC 9001 section 5):
// removes header protection, decrypts with the Initial keys, and returns the
// CRYPTO frames, which carry the ClientHello. The datagram itself is never
// written to: the proxy forwards it to the backend exactly as it came.
import { createDecipheriv } from 'node:crypto';
import { QuicError } from '../errors.js';
import { clientInitialKeys, HP_SAMPLE_BYTES, headerProtectionMask, isSupportedVersion, type PacketProtectionKeys, packetNonce } from './keys.js';
import { isLongHeader, type LongHeader, longHeaderVersion, parseLongHeader } from './packet.js';
import { readVarint, varintLength } from './varint.js';

export interface CryptoFrame {
  offset: number;
  data: Buffer;
}

export interface InitialPacket {
  version: number;
  dcid: Buffer;
  scid: Buffer;
  packetNumber: number;
  /** CRYPTO frames in the order the packet carries them (their data is decrypted, not a view of the datagram). */
  crypto: CryptoFrame[];
}

const AEAD_TAG_BYTES = 16;
/** The sample for header protection starts 4 bytes after the packet number field's start, whatever its length (RFC 9001 section 5.4.2). */
const SAMPLE_OFFSET = 4;
/**
 * Stream data ends before 2^62 (RFC 9000 section 19.6). Compared in floating
 * point, where values this large are rounded: the few offsets just below the
 * limit are refused too, which no client comes near.
 */
const STREAM_OFFSET_LIMIT = 2 ** 62;

// The frames an Initial packet may carry (RFC 9000 section 12.4, table 3).
const FRAME_PADDING = 0x00;
const FRAME_PING = 0x01;
const FRAME_ACK = 0x02;
const FRAME_ACK_ECN = 0x03;
const FRAME_CRYPTO = 0x06;
const FRAME_CONNECTION_CLOSE = 0x1c;

function malformed(message: string): QuicError {
  return new QuicError('QUIC_MALFORMED', message);
}

/**
 * The Initial packets of `datagram`, decrypted, in the order they appear.
 * Coalesced packets of other types (0-RTT, Handshake) are skipped; a short
 * header (a 1-RTT packet, or zero bytes after the last packet) ends the
 * datagram's long-header packets, and so does a packet with another
 * Destination Connection ID or version (RFC 9000 section 12.2 says to ignore
 * those) and a Retry. A datagram that starts with a short header has no
 * Initial packet.
 *
 * `clientDcid` is the Destination Connection ID of the flow's first Initial
 * packet: the keys derive from it even after the client switches to the
 * server's connection ID (default: this datagram's). `largestPacketNumber` is
 * the largest Initial packet number seen on the flow, to expand truncated
 * packet numbers (RFC 9000 section 17.1; default: none yet).
 *
 * Throws a QuicError: QUIC_UNSUPPORTED_VERSION when the first packet is of a
 * version other than 1 and 2, QUIC_MALFORMED for a header or frame that breaks
 * the rules or is cut short, QUIC_DECRYPT_FAILED when a packet does not verify.
 */
export function decryptInitials(datagram: Buffer, clientDcid?: Buffer, largestPacketNumber = -1): InitialPacket[] {
  if (datagram.length === 0) throw malformed('empty datagram');
  if (!isLongHeader(datagram[0]!)) return [];
  const version = longHeaderVersion(datagram);
  if (version === null) throw malformed('long header cut short');
  if (!isSupportedVersion(version)) throw new QuicError('QUIC_UNSUPPORTED_VERSION', `QUIC version 0x${version.toString(16).padStart(8, '0')} is not supported`);
  const packets: InitialPacket[] = [];
  let firstDcid: Buffer | null = null;
  let keys: PacketProtectionKeys | null = null;
  let largest = largestPacketNumber;
  for (let offset = 0; offset < datagram.length && longHeaderVersion(datagram, offset) === version; ) {
    const header = parseLongHeader(datagram, offset);
    if (header === null) throw malformed(`malformed long header at byte ${offset}`);
    if (firstDcid === null) firstDcid = header.dcid;
    else if (!header.dcid.equals(firstDcid)) break;
    if (header.packetType === 'retry') break;
    if (header.packetType === 'initial') {
      keys ??= clientInitialKeys(version, clientDcid ?? header.dcid)!;
      const packet = openInitial(datagram, header, keys, largest);
      largest = Math.max(largest, packet.packetNumber);
      packets.push(packet);
    }
    offset = header.end;
  }
  return packets;
}

/** Removes header protection and decrypts the Initial packet `header` describes, then reads its frames. */
function openInitial(datagram: Buffer, header: LongHeader, keys: PacketProtectionKeys, largest: number): InitialPacket {
  const { start, pnOffset, end } = header;
  const sampleStart = pnOffset + SAMPLE_OFFSET;
  if (sampleStart + HP_SAMPLE_BYTES > end) throw malformed('Initial packet too short to carry a header protection sample');
  const mask = headerProtectionMask(keys.hp, datagram.subarray(sampleStart, sampleStart + HP_SAMPLE_BYTES));
  const byte0 = datagram[start]! ^ (mask[0]! & 0x0f);
  const pnLength = (byte0 & 0x03) + 1;
  const headerEnd = pnOffset + pnLength;
  // The unprotected header is the AEAD's associated data; unprotected in a copy, since the datagram is forwarded as it came.
  const associatedData = Buffer.from(datagram.subarray(start, headerEnd));
  associatedData[0] = byte0;
  let truncatedNumber = 0;
  for (let i = 0; i < pnLength; i++) {
    const at = pnOffset - start + i;
    associatedData[at] = associatedData[at]! ^ mask[1 + i]!;
    truncatedNumber = truncatedNumber * 256 + associatedData[at]!;
  }
  const packetNumber = decodePacketNumber(largest, truncatedNumber, pnLength * 8);
  // The sample check above leaves at least 16 bytes after the packet number: the tag fits.
  const tagStart = end - AEAD_TAG_BYTES;
  const decipher = createDecipheriv('aes-128-gcm', keys.key, packetNonce(keys.iv, packetNumber));
  decipher.setAAD(associatedData);
  decipher.setAuthTag(datagram.subarray(tagStart, end));
  const payload = decipher.update(datagram.subarray(headerEnd, tagStart));
  try {
    decipher.final();
  } catch {
    throw new QuicError('QUIC_DECRYPT_FAILED', `Initial packet at byte ${start} does not decrypt with the keys of its connection ID`);
  }
  // Checked only now: before decryption these bits are noise to anyone without the keys (RFC 9000 section 17.2).
  if ((byte0 & 0x0c) !== 0) throw malformed('reserved header bits set');
  return { version: header.version, dcid: header.dcid, scid: header.scid, packetNumber, crypto: readFrames(payload) };
}

/** The full packet number from its truncated encoding of `bits` bits (RFC 9000 appendix A.3). */
export function decodePacketNumber(largest: number, truncated: number, bits: number): number {
  const expected = largest + 1;
  const window = 2 ** bits;
  const halfWindow = window / 2;
  // Arithmetic rather than masks: packet numbers exceed the 32 bits bitwise operators work on.
  const candidate = expected - (expected % window) + truncated;
  if (candidate <= expected - halfWindow && candidate < 2 ** 62 - window) return candidate + window;
  if (candidate > expected + halfWindow && candidate >= window) return candidate - window;
  return candidate;
}

/** Position just past the varint at `pos`; throws when it runs past `end`. */
function skipVarint(buf: Buffer, pos: number, end: number): number {
  if (readVarint(buf, pos, end) < 0) throw malformed('frame cut short');
  return pos + varintLength(buf[pos]!);
}

/** The CRYPTO frames of a decrypted Initial payload; the other frames an Initial may carry are skipped, any other type refused. */
function readFrames(payload: Buffer): CryptoFrame[] {
  const end = payload.length;
  if (end === 0) throw malformed('Initial packet without frames');
  const crypto: CryptoFrame[] = [];
  let pos = 0;
  while (pos < end) {
    // Every frame type allowed here is below 0x40, a one-byte varint; a longer encoding of it is refused too (RFC 9000 section 12.4).
    const type = payload[pos++]!;
    switch (type) {
      case FRAME_PADDING:
      case FRAME_PING:
        break;
      case FRAME_ACK:
      case FRAME_ACK_ECN:
        pos = skipAck(payload, pos, end, type === FRAME_ACK_ECN);
        break;
      case FRAME_CRYPTO: {
        const offset = readVarint(payload, pos, end);
        pos = skipVarint(payload, pos, end);
        const length = readVarint(payload, pos, end);
        pos = skipVarint(payload, pos, end);
        if (pos + length > end) throw malformed('CRYPTO frame longer than its packet');
        if (offset + length >= STREAM_OFFSET_LIMIT) throw malformed('CRYPTO frame past the largest stream offset');
        if (length > 0) crypto.push({ offset, data: payload.subarray(pos, pos + length) });
        pos += length;
        break;
      }
      case FRAME_CONNECTION_CLOSE: {
        pos = skipVarint(payload, pos, end); // error code
        pos = skipVarint(payload, pos, end); // frame type
        const reasonLength = readVarint(payload, pos, end);
        pos = skipVarint(payload, pos, end);
        if (pos + reasonLength > end) throw malformed('CONNECTION_CLOSE reason longer than its packet');
        pos += reasonLength;
        break;
      }
      default:
        throw malformed(`frame type 0x${type.toString(16)} is not allowed in an Initial packet`);
    }
  }
  return crypto;
}

/** Position just past an ACK frame whose type byte ends at `pos` (RFC 9000 section 19.3). */
function skipAck(payload: Buffer, pos: number, end: number, withEcnCounts: boolean): number {
  pos = skipVarint(payload, pos, end); // largest acknowledged
  pos = skipVarint(payload, pos, end); // ACK delay
  const rangeCount = readVarint(payload, pos, end);
  pos = skipVarint(payload, pos, end);
  pos = skipVarint(payload, pos, end); // first ACK range
  // Each range takes at least two bytes, so a count larger than the payload ends in a cut-short error, not a long loop.
  for (let i = 0; i < rangeCount; i++) {
    pos = skipVarint(payload, pos, end); // gap
    pos = skipVarint(payload, pos, end); // range length
  }
  if (withEcnCounts) {
    for (let i = 0; i < 3; i++) pos = skipVarint(payload, pos, end);
  }
  return pos;
}
