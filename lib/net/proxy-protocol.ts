// HAProxy PROXY protocol, versions 1 (text) and 2 (binary): an encoder for the
// header sent to a backend before the ClientHello, and a restartable decoder
// for the header an upstream load balancer sends before the client's bytes.
// Pure functions, no I/O. Reference: haproxy doc/proxy-protocol.txt.
//
// Addresses are strings formatted the way node formats socket addresses
// (libuv's inet_ntop): IPv4 dotted decimal, IPv6 lowercase and compressed
// (`::1`, `2001:db8::1`, `::ffff:192.0.2.1`, and BIND's `::0.1.0.2` quirk for
// IPv4-compatible addresses), so that a decoded address compares equal to the
// `socket.remoteAddress` the same client would have had.

import { isIPv6 } from 'node:net';

export interface ProxiedAddresses {
  source: { address: string; port: number }; // the client
  destination: { address: string; port: number }; // the address the client connected to
}

export type ProxyHeaderRejection = 'not_proxy_protocol' | 'malformed' | 'unsupported';
export type ProxyHeaderResult =
  | { status: 'incomplete'; need: number } // need > data.length: parse again with at least `need` bytes
  | { status: 'complete'; length: number; addresses: ProxiedAddresses | null } // null: v1 UNKNOWN, v2 LOCAL, or v2 UNSPEC/UNIX family: use the connection's real addresses
  | { status: 'invalid'; reason: ProxyHeaderRejection };

// ---------------------------------------------------------------------------
// Constants from the specification

/** v1: the whole line, CRLF included, is at most 107 bytes. */
const V1_MAX_BYTES = 107;
/** v1: the shortest header, `PROXY UNKNOWN\r\n`. */
const V1_MIN_BYTES = 15;
const V1_PREFIX = bytes('PROXY ');
/** Protocol tokens with the byte that must follow them (the line's CR only after UNKNOWN). */
const V1_PROTOCOL_TOKENS = [bytes('TCP4 '), bytes('TCP6 '), bytes('UNKNOWN '), bytes('UNKNOWN\r')];
const V1_TCP4 = 1;
const V1_TCP6 = 2;
const V1_UNKNOWN = 3;

const V2_SIGNATURE = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);
/** Signature, version/command, family/transport, 2-byte length. */
const V2_FIXED_BYTES = 16;
const V2_VERSION = 2;
const V2_COMMAND_LOCAL = 0;
const V2_COMMAND_PROXY = 1;
const V2_FAMILY_UNSPEC = 0;
const V2_FAMILY_INET = 1;
const V2_FAMILY_INET6 = 2;
const V2_FAMILY_UNIX = 3;
const V2_TRANSPORT_DGRAM = 2;
const V2_FAM_TCP4 = 0x11;
const V2_FAM_TCP6 = 0x21;
const V2_ADDRESS_BYTES_INET = 12; // src(4) dst(4) sport(2) dport(2)
const V2_ADDRESS_BYTES_INET6 = 36; // src(16) dst(16) sport(2) dport(2)
const V2_ADDRESS_BYTES_UNIX = 216; // src(108) dst(108)
const V2_MAX_BODY_BYTES = 0xffff;
const PP2_TYPE_AUTHORITY = 0x02;
const TLV_HEADER_BYTES = 3; // type(1) length(2)

const CR = 0x0d;
const LF = 0x0a;
const COLON = 0x3a;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;
const MAX_PORT = 0xffff;

function bytes(ascii: string): Uint8Array {
  return Uint8Array.from(ascii, (c) => c.charCodeAt(0));
}

// ---------------------------------------------------------------------------
// Address text <-> bytes

// Scratch space; every use is synchronous and complete before returning.
const scratchWords = new Uint16Array(8);
const scratchAddresses = new Uint8Array(32); // encoder: source at 0, destination at 16, as IPv6
const scratchV6 = new Uint8Array(16); // decoder: one v1 TCP6 address
const scratchV4 = new Uint8Array(4); // an IPv4 address being validated or embedded in IPv6

/** Dotted-quad IPv4 in s[start, end): four decimal parts 0-255 without leading zeros (as net.isIPv4). */
function parseIPv4(s: string, start: number, end: number, out: Uint8Array, offset: number): boolean {
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c >= ZERO && c <= NINE) {
      if (digits > 0 && value === 0) return false; // leading zero: octal in some parsers, refused
      value = value * 10 + (c - ZERO);
      digits++;
      if (value > 255) return false;
    } else if (c === DOT) {
      if (digits === 0 || part === 3) return false;
      out[offset + part++] = value;
      value = 0;
      digits = 0;
    } else {
      return false;
    }
  }
  if (digits === 0 || part !== 3) return false;
  out[offset + 3] = value;
  return true;
}

function hexValue(c: number): number {
  if (c >= ZERO && c <= NINE) return c - ZERO;
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/** RFC 4291 text form (hex groups, one `::`, optional dotted IPv4 tail; no zone) into 16 bytes. */
function parseIPv6(s: string, out: Uint8Array, offset: number): boolean {
  const length = s.length;
  if (length < 2) return false;
  const words = scratchWords;
  let count = 0;
  let gap = -1; // index in `words` where `::` stands
  let i = 0;
  if (s.charCodeAt(0) === COLON) {
    if (s.charCodeAt(1) !== COLON) return false;
    gap = 0;
    i = 2;
  }
  while (i < length) {
    if (count === 8) return false;
    const start = i;
    let value = 0;
    while (i < length && i - start < 5) {
      const h = hexValue(s.charCodeAt(i));
      if (h < 0) break;
      value = value * 16 + h;
      i++;
    }
    if (i < length && s.charCodeAt(i) === DOT) {
      // Embedded IPv4: the last 32 bits, running to the end of the text.
      if (count > 6) return false;
      const tail = scratchV4;
      if (!parseIPv4(s, start, length, tail, 0)) return false;
      words[count++] = (tail[0] << 8) | tail[1];
      words[count++] = (tail[2] << 8) | tail[3];
      break;
    }
    const digits = i - start;
    if (digits === 0 || digits > 4) return false;
    words[count++] = value;
    if (i === length) break;
    if (s.charCodeAt(i) !== COLON) return false;
    i++;
    if (i < length && s.charCodeAt(i) === COLON) {
      if (gap !== -1) return false;
      gap = count;
      i++;
    } else if (i === length) {
      return false; // a single trailing colon
    }
  }
  if (gap === -1 ? count !== 8 : count > 7) return false;
  const zeros = 8 - count;
  for (let w = 0; w < 8; w++) {
    let word: number;
    if (gap === -1 || w < gap) word = words[w];
    else if (w < gap + zeros) word = 0;
    else word = words[w - zeros];
    out[offset + 2 * w] = word >> 8;
    out[offset + 2 * w + 1] = word & 0xff;
  }
  return true;
}

function formatIPv4(b: Uint8Array, offset: number): string {
  return `${b[offset]}.${b[offset + 1]}.${b[offset + 2]}.${b[offset + 3]}`;
}

/** libuv's (BIND's) inet_ntop6, which is what node's socket addresses go through. */
function formatIPv6(b: Uint8Array, offset: number): string {
  let bestBase = -1;
  let bestLength = 0;
  let runBase = -1;
  let runLength = 0;
  for (let i = 0; i < 8; i++) {
    if (b[offset + 2 * i] === 0 && b[offset + 2 * i + 1] === 0) {
      if (runBase === -1) {
        runBase = i;
        runLength = 1;
      } else {
        runLength++;
      }
    } else if (runBase !== -1) {
      if (runLength > bestLength) {
        bestBase = runBase;
        bestLength = runLength;
      }
      runBase = -1;
    }
  }
  if (runBase !== -1 && runLength > bestLength) {
    bestBase = runBase;
    bestLength = runLength;
  }
  if (bestLength < 2) bestBase = -1; // a single zero group is not compressed

  let text = '';
  for (let i = 0; i < 8; i++) {
    if (bestBase !== -1 && i >= bestBase && i < bestBase + bestLength) {
      if (i === bestBase) text += ':';
      continue;
    }
    if (i !== 0) text += ':';
    // IPv4-compatible (::a.b.c.d) and IPv4-mapped (::ffff:a.b.c.d) end in dotted form.
    if (i === 6 && bestBase === 0 && (bestLength === 6 || (bestLength === 5 && b[offset + 10] === 0xff && b[offset + 11] === 0xff))) {
      return text + formatIPv4(b, offset + 12);
    }
    text += ((b[offset + 2 * i] << 8) | b[offset + 2 * i + 1]).toString(16);
  }
  if (bestBase !== -1 && bestBase + bestLength === 8) text += ':';
  return text;
}

/** True when the 16 bytes at offset are ::ffff:a.b.c.d. */
function isV4Mapped(b: Uint8Array, offset: number): boolean {
  for (let i = 0; i < 10; i++) if (b[offset + i] !== 0) return false;
  return b[offset + 10] === 0xff && b[offset + 11] === 0xff;
}

// ---------------------------------------------------------------------------
// Encoder

/** Any address node may report (IPv4, IPv6 in any text form, with a zone that is dropped) as 16 bytes, IPv4 mapped. */
function loadAddress(address: unknown, offset: number, role: string): void {
  let valid = false;
  if (typeof address === 'string') {
    if (address.indexOf(':') === -1) {
      const out = scratchAddresses;
      out.fill(0, offset, offset + 10);
      out[offset + 10] = 0xff;
      out[offset + 11] = 0xff;
      valid = parseIPv4(address, 0, address.length, out, offset + 12);
    } else {
      const zone = address.indexOf('%');
      valid = parseIPv6(zone === -1 ? address : address.slice(0, zone), scratchAddresses, offset);
    }
  }
  if (!valid) throw new TypeError(`PROXY protocol: invalid ${role} address ${JSON.stringify(address)}`);
}

function checkPort(port: unknown, role: string): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > MAX_PORT) {
    throw new RangeError(`PROXY protocol: invalid ${role} port ${String(port)}`);
  }
  return port;
}

/** Loads both addresses into scratchAddresses; true when both are IPv4 (written as such). */
function loadAddresses(addresses: ProxiedAddresses): boolean {
  loadAddress(addresses.source.address, 0, 'source');
  loadAddress(addresses.destination.address, 16, 'destination');
  return isV4Mapped(scratchAddresses, 0) && isV4Mapped(scratchAddresses, 16);
}

/** v1 text header. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are written as IPv4; if source and destination families then differ, both are written as IPv6 (IPv4 as ::ffff:a.b.c.d). */
export function encodeProxyV1(addresses: ProxiedAddresses): Buffer {
  const sourcePort = checkPort(addresses.source.port, 'source');
  const destinationPort = checkPort(addresses.destination.port, 'destination');
  const v4 = loadAddresses(addresses);
  const line = v4
    ? `PROXY TCP4 ${formatIPv4(scratchAddresses, 12)} ${formatIPv4(scratchAddresses, 28)} ${sourcePort} ${destinationPort}\r\n`
    : `PROXY TCP6 ${formatIPv6(scratchAddresses, 0)} ${formatIPv6(scratchAddresses, 16)} ${sourcePort} ${destinationPort}\r\n`;
  return Buffer.from(line, 'latin1');
}

/** v2 binary header, command PROXY, TCP over IPv4 or IPv6 (same family rule as v1), with a PP2_TYPE_AUTHORITY TLV carrying `authority` (the SNI) when it is a non-empty string. */
export function encodeProxyV2(addresses: ProxiedAddresses, authority: string | null): Buffer {
  const sourcePort = checkPort(addresses.source.port, 'source');
  const destinationPort = checkPort(addresses.destination.port, 'destination');
  const v4 = loadAddresses(addresses);
  const addressBytes = v4 ? V2_ADDRESS_BYTES_INET : V2_ADDRESS_BYTES_INET6;
  const authorityBytes = typeof authority === 'string' && authority.length > 0 ? Buffer.byteLength(authority, 'utf8') : 0;
  const bodyBytes = addressBytes + (authorityBytes > 0 ? TLV_HEADER_BYTES + authorityBytes : 0);
  if (bodyBytes > V2_MAX_BODY_BYTES) throw new RangeError('PROXY protocol: authority too long for a v2 header');

  const out = Buffer.allocUnsafe(V2_FIXED_BYTES + bodyBytes);
  out.set(V2_SIGNATURE, 0);
  out[12] = (V2_VERSION << 4) | V2_COMMAND_PROXY;
  out[13] = v4 ? V2_FAM_TCP4 : V2_FAM_TCP6;
  out.writeUInt16BE(bodyBytes, 14);
  let p = V2_FIXED_BYTES;
  if (v4) {
    for (let i = 0; i < 4; i++) out[p + i] = scratchAddresses[12 + i];
    for (let i = 0; i < 4; i++) out[p + 4 + i] = scratchAddresses[28 + i];
    p += 8;
  } else {
    out.set(scratchAddresses, p);
    p += 32;
  }
  out.writeUInt16BE(sourcePort, p);
  out.writeUInt16BE(destinationPort, p + 2);
  p += 4;
  if (authorityBytes > 0) {
    out[p] = PP2_TYPE_AUTHORITY;
    out.writeUInt16BE(authorityBytes, p + 1);
    out.write(authority as string, p + TLV_HEADER_BYTES, 'utf8');
  }
  return out;
}

// ---------------------------------------------------------------------------
// Decoder

function incomplete(need: number): ProxyHeaderResult {
  return { status: 'incomplete', need };
}

function invalid(reason: ProxyHeaderRejection): ProxyHeaderResult {
  return { status: 'invalid', reason };
}

function complete(length: number, addresses: ProxiedAddresses | null): ProxyHeaderResult {
  return { status: 'complete', length, addresses };
}

/** Reads a v1 or v2 header at the start of `data`; decides "not PROXY" from the first differing byte. */
export function parseProxyHeader(data: Uint8Array): ProxyHeaderResult {
  if (data.length === 0) return incomplete(V1_MIN_BYTES);
  if (data[0] === V1_PREFIX[0]) return parseV1(data);
  if (data[0] === V2_SIGNATURE[0]) return parseV2(data);
  return invalid('not_proxy_protocol');
}

function parseV1(data: Uint8Array): ProxyHeaderResult {
  const prefixEnd = Math.min(data.length, V1_PREFIX.length);
  for (let i = 1; i < prefixEnd; i++) if (data[i] !== V1_PREFIX[i]) return invalid('not_proxy_protocol');
  if (data.length < V1_PREFIX.length) return incomplete(V1_MIN_BYTES);

  // The header is the line up to the first CRLF, which must end within 107 bytes.
  const scanEnd = Math.min(data.length, V1_MAX_BYTES) - 1;
  let cr = -1;
  for (let i = V1_PREFIX.length; i < scanEnd; i++) {
    if (data[i] === CR && data[i + 1] === LF) {
      cr = i;
      break;
    }
  }
  const protocol = v1Protocol(data);
  if (protocol === 0) return invalid('malformed');
  if (cr === -1) {
    if (data.length >= V1_MAX_BYTES) return invalid('malformed');
    return incomplete(Math.max(V1_MIN_BYTES, data.length + 1));
  }
  const length = cr + 2;
  if (protocol === V1_UNKNOWN) return complete(length, null); // the rest of the line is ignored
  // Here protocol is V1_TCP4 or V1_TCP6: no token is a proper prefix of a line ending in CRLF.

  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const fields = view.toString('latin1', V1_PREFIX.length + 5, cr).split(' ');
  if (fields.length !== 4) return invalid('malformed');
  const sourcePort = parseV1Port(fields[2]);
  const destinationPort = parseV1Port(fields[3]);
  if (sourcePort < 0 || destinationPort < 0) return invalid('malformed');
  let source: string | null;
  let destination: string | null;
  if (protocol === V1_TCP4) {
    source = parseIPv4(fields[0], 0, fields[0].length, scratchV4, 0) ? fields[0] : null;
    destination = parseIPv4(fields[1], 0, fields[1].length, scratchV4, 0) ? fields[1] : null;
  } else {
    source = normaliseIPv6(fields[0]);
    destination = normaliseIPv6(fields[1]);
  }
  if (source === null || destination === null) return invalid('malformed');
  return complete(length, {
    source: { address: source, port: sourcePort },
    destination: { address: destination, port: destinationPort },
  });
}

/**
 * Which protocol token follows `PROXY `: V1_TCP4, V1_TCP6, V1_UNKNOWN; -1 when
 * the bytes so far are a proper prefix of one; 0 when they match none.
 */
function v1Protocol(data: Uint8Array): number {
  const start = V1_PREFIX.length;
  const available = data.length - start;
  let prefixOfOne = false;
  for (let t = 0; t < V1_PROTOCOL_TOKENS.length; t++) {
    const token = V1_PROTOCOL_TOKENS[t];
    const n = Math.min(available, token.length);
    let i = 0;
    while (i < n && data[start + i] === token[i]) i++;
    if (i < n) continue;
    if (n === token.length) return t === 0 ? V1_TCP4 : t === 1 ? V1_TCP6 : V1_UNKNOWN;
    prefixOfOne = true;
  }
  return prefixOfOne ? -1 : 0;
}

/** Decimal 0-65535, digits only (leading zeros are unambiguous and accepted); -1 if not. */
function parseV1Port(text: string): number {
  if (text.length === 0 || text.length > 5) return -1;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < ZERO || c > NINE) return -1;
    value = value * 10 + (c - ZERO);
  }
  return value <= MAX_PORT ? value : -1;
}

function normaliseIPv6(text: string): string | null {
  if (!isIPv6(text) || !parseIPv6(text, scratchV6, 0)) return null;
  return formatIPv6(scratchV6, 0);
}

function parseV2(data: Uint8Array): ProxyHeaderResult {
  const signatureEnd = Math.min(data.length, V2_SIGNATURE.length);
  for (let i = 1; i < signatureEnd; i++) if (data[i] !== V2_SIGNATURE[i]) return invalid('not_proxy_protocol');
  if (data.length <= 12) return incomplete(V2_FIXED_BYTES);

  const version = data[12] >> 4;
  const command = data[12] & 0x0f;
  if (version !== V2_VERSION) return invalid('unsupported');
  if (command !== V2_COMMAND_LOCAL && command !== V2_COMMAND_PROXY) return invalid('unsupported');
  if (data.length <= 13) return incomplete(V2_FIXED_BYTES);

  const fam = data[13];
  const family = fam >> 4;
  const transport = fam & 0x0f;
  // Values beyond those the specification defines "must be rejected as invalid by receivers".
  if (family > V2_FAMILY_UNIX || transport > V2_TRANSPORT_DGRAM) return invalid('unsupported');
  if (data.length < V2_FIXED_BYTES) return incomplete(V2_FIXED_BYTES);

  const bodyBytes = (data[14] << 8) | data[15];
  if (command === V2_COMMAND_PROXY && bodyBytes < v2AddressBytes(family)) return invalid('malformed');
  const length = V2_FIXED_BYTES + bodyBytes;
  if (data.length < length) return incomplete(length);
  // LOCAL: the proxy's own connection (health check); the whole block, TLVs included, is discarded unread (spec 2.2).
  if (command === V2_COMMAND_LOCAL) return complete(length, null);
  // UNSPEC: address information of no defined size may come first, so where TLVs start is unknown; the block is ignored.
  if (family !== V2_FAMILY_UNSPEC && !tlvsFillExactly(data, V2_FIXED_BYTES + v2AddressBytes(family), length)) return invalid('malformed');

  const a = V2_FIXED_BYTES;
  if (fam === V2_FAM_TCP4) {
    return complete(length, {
      source: { address: formatIPv4(data, a), port: (data[a + 8] << 8) | data[a + 9] },
      destination: { address: formatIPv4(data, a + 4), port: (data[a + 10] << 8) | data[a + 11] },
    });
  }
  if (fam === V2_FAM_TCP6) {
    return complete(length, {
      source: { address: formatIPv6(data, a), port: (data[a + 32] << 8) | data[a + 33] },
      destination: { address: formatIPv6(data, a + 16), port: (data[a + 34] << 8) | data[a + 35] },
    });
  }
  // UNSPEC family, UNIX sockets, or a datagram/unspecified transport: nothing a
  // TCP connection can use, so the connection's real endpoints stand (as HAProxy does).
  return complete(length, null);
}

/**
 * True when [start, end) is a sequence of whole TLVs: each 3-byte header and
 * the value its length announces fit, and the last ends exactly at `end` (as
 * HAProxy checks). Values are not interpreted: the proxy reads none of them,
 * so PP2_TYPE_SSL's sub-TLVs (and a CRC32C) are bounded by their TLV and
 * otherwise left alone, as a receiver that ignores a TLV may (spec 2.2).
 */
function tlvsFillExactly(data: Uint8Array, start: number, end: number): boolean {
  let p = start;
  while (p < end) {
    if (p + TLV_HEADER_BYTES > end) return false;
    p += TLV_HEADER_BYTES + ((data[p + 1] << 8) | data[p + 2]);
  }
  return p === end;
}

function v2AddressBytes(family: number): number {
  switch (family) {
    case V2_FAMILY_INET:
      return V2_ADDRESS_BYTES_INET;
    case V2_FAMILY_INET6:
      return V2_ADDRESS_BYTES_INET6;
    case V2_FAMILY_UNIX:
      return V2_ADDRESS_BYTES_UNIX;
    default:
      return 0;
  }
}
