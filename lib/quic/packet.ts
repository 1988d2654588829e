// QUIC packet headers as a proxy sees them before any decryption: the
// version-independent fields (RFC 8999), and for versions 1 and 2 the packet
// type and where the protected packet number and the next coalesced packet
// start. Only lengths are read here; nothing is decrypted.
import { readVarint, varintLength } from './varint.js';

export const QUIC_V1 = 0x00000001;
export const QUIC_V2 = 0x6b3343cf;

export type LongPacketType = 'initial' | '0rtt' | 'handshake' | 'retry';

// The two type bits of the first byte, per version: v2 renumbers them (RFC 9369 section 3.2).
const V1_PACKET_TYPES: readonly LongPacketType[] = ['initial', '0rtt', 'handshake', 'retry'];
const V2_PACKET_TYPES: readonly LongPacketType[] = ['retry', 'initial', '0rtt', 'handshake'];

const HEADER_FORM_LONG = 0x80;
/** Connection IDs of versions 1 and 2 have at most 20 bytes (RFC 9000 section 17.2). */
const MAX_CID_BYTES = 20;
// first byte, version, DCID length, SCID length
const MIN_LONG_HEADER_BYTES = 7;

export interface LongHeader {
  version: number;
  /** Destination Connection ID (a copy: it may outlive the datagram). */
  dcid: Buffer;
  /** Source Connection ID (a copy). */
  scid: Buffer;
  packetType: LongPacketType;
  /** Offset of the packet's first byte in the datagram. */
  start: number;
  /** Offset of the packet number field, still protected (Initial, 0-RTT, Handshake); for a Retry, of its token. */
  pnOffset: number;
  /** Offset just past the packet, where a coalesced packet would start; a Retry runs to the datagram's end. */
  end: number;
}

export function isLongHeader(byte0: number): boolean {
  return (byte0 & HEADER_FORM_LONG) !== 0;
}

/** The version field of the long header at `offset`, or null for a short header or fewer than 5 bytes (0 is Version Negotiation). */
export function longHeaderVersion(datagram: Buffer, offset = 0): number | null {
  if (offset + 5 > datagram.length || !isLongHeader(datagram[offset]!)) return null;
  return datagram.readUInt32BE(offset + 1);
}

/**
 * The long header of the packet at `offset`, or null for a short header, a
 * version other than 1 and 2 (see `longHeaderVersion`), or a header that is
 * cut short or breaks the version's rules (a connection ID over 20 bytes, a
 * Length past the datagram's end).
 */
export function parseLongHeader(datagram: Buffer, offset = 0): LongHeader | null {
  const end = datagram.length;
  if (offset + MIN_LONG_HEADER_BYTES > end) return null;
  const byte0 = datagram[offset]!;
  const version = longHeaderVersion(datagram, offset);
  const packetTypes = version === QUIC_V1 ? V1_PACKET_TYPES : version === QUIC_V2 ? V2_PACKET_TYPES : null;
  if (version === null || packetTypes === null) return null;
  let pos = offset + 5;
  const dcidLength = datagram[pos++]!;
  if (dcidLength > MAX_CID_BYTES || pos + dcidLength + 1 > end) return null;
  const dcid = Buffer.from(datagram.subarray(pos, pos + dcidLength));
  pos += dcidLength;
  const scidLength = datagram[pos++]!;
  if (scidLength > MAX_CID_BYTES || pos + scidLength > end) return null;
  const scid = Buffer.from(datagram.subarray(pos, pos + scidLength));
  pos += scidLength;
  const packetType = packetTypes[(byte0 >> 4) & 0x03]!;
  if (packetType === 'retry') return { version, dcid, scid, packetType, start: offset, pnOffset: pos, end };
  if (packetType === 'initial') {
    const tokenLength = readVarint(datagram, pos, end);
    if (tokenLength < 0) return null;
    pos += varintLength(datagram[pos]!) + tokenLength;
  }
  const length = readVarint(datagram, pos, end);
  if (length < 0) return null;
  pos += varintLength(datagram[pos]!);
  if (pos + length > end) return null;
  return { version, dcid, scid, packetType, start: offset, pnOffset: pos, end: pos + length };
}

/**
 * The Destination Connection ID of a short-header (1-RTT) packet, whose length
 * the header does not carry: the receiver knows it (here, from the backend's
 * long-header SCID). A view into the datagram, not a copy; null for a long
 * header or a datagram too short.
 */
export function shortHeaderDcid(datagram: Buffer, dcidLength: number): Buffer | null {
  if (dcidLength > MAX_CID_BYTES || datagram.length < 1 + dcidLength || isLongHeader(datagram[0]!)) return null;
  return datagram.subarray(1, 1 + dcidLength);
}
