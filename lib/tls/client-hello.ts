// Parses just enough of a TLS ClientHello to route on it: the server name and
// the offered ALPN protocols. Pure and restartable: the caller re-parses the
// growing buffer from the start each time it has at least `need` bytes. Once
// the message length is known, `need` is the earliest the record layer could
// end, not the next record: a hello cut into tiny records is then re-parsed a
// few dozen times instead of once per record (which would be quadratic).

export const MAX_HELLO_BYTES = 64 * 1024; // cap on bytes read before routing

export type HelloRejection = 'not_tls' | 'not_client_hello' | 'bad_record' | 'malformed' | 'too_large' | 'bad_server_name';

export interface ClientHello {
  serverName: string | null;
  alpn: string[];
  sslv2: boolean;
}

export type HelloParseResult =
  | { status: 'incomplete'; need: number }
  | { status: 'complete'; hello: ClientHello; length: number }
  | { status: 'invalid'; reason: HelloRejection };

const CONTENT_TYPE_HANDSHAKE = 22;
const HANDSHAKE_TYPE_CLIENT_HELLO = 1;
const RECORD_HEADER_BYTES = 5;
const HANDSHAKE_HEADER_BYTES = 4;
const MAX_FRAGMENT_BYTES = 16384;
const MAX_RECORD_VERSION_MINOR = 4;
const RANDOM_BYTES = 32;
const MAX_SESSION_ID_BYTES = 32;

const EXTENSION_SERVER_NAME = 0;
const EXTENSION_ALPN = 16;
const EXTENSION_TYPES = 0x10000;
const NAME_TYPE_HOST_NAME = 0;
const MAX_HOST_NAME_BYTES = 255;
const MAX_LABEL_BYTES = 63;
const DOT = 0x2e;

const SSLV2_HEADER_BYTES = 2;
// msg_type(1) version(2) cipher_spec_length(2) session_id_length(2) challenge_length(2)
const SSLV2_FIXED_BODY_BYTES = 9;
const SSLV2_MSG_CLIENT_HELLO = 1;

const NOT_FOUND = -1;

export function parseClientHello(data: Uint8Array): HelloParseResult {
  if (data.length === 0) return incomplete(1);
  if (data[0] === CONTENT_TYPE_HANDSHAKE) return parseTlsRecords(data);
  if (data[0] & 0x80) return parseSslv2Hello(data);
  return invalid('not_tls');
}

/**
 * A ClientHello handshake message without the record layer, as QUIC carries it
 * in CRYPTO frames (RFC 9001 section 4): the same checks as parseClientHello
 * past the record headers. `length` is the message's length.
 */
export function parseClientHelloMessage(data: Uint8Array): HelloParseResult {
  if (data.length === 0) return incomplete(1);
  if (data[0] !== HANDSHAKE_TYPE_CLIENT_HELLO) return invalid('not_client_hello');
  if (data.length < HANDSHAKE_HEADER_BYTES) return incomplete(HANDSHAKE_HEADER_BYTES);
  const messageLength = HANDSHAKE_HEADER_BYTES + ((data[1] << 16) | readUint16(data, 2));
  if (messageLength > MAX_HELLO_BYTES) return invalid('too_large');
  if (data.length < messageLength) return incomplete(messageLength);
  const hello = parseClientHelloBody(data, HANDSHAKE_HEADER_BYTES, messageLength);
  if (typeof hello === 'string') return invalid(hello);
  return { status: 'complete', hello, length: messageLength };
}

function incomplete(need: number): HelloParseResult {
  return { status: 'incomplete', need };
}

function invalid(reason: HelloRejection): HelloParseResult {
  return { status: 'invalid', reason };
}

function readUint16(buf: Uint8Array, pos: number): number {
  return (buf[pos] << 8) | buf[pos + 1];
}

function parseTlsRecords(data: Uint8Array): HelloParseResult {
  let recordStart = 0;
  let messageBytesBefore = 0; // handshake-message bytes carried by the records before recordStart
  let headerBytesRead = 0;
  let bodyLength = 0;
  for (;;) {
    const headerProblem = checkRecordHeader(data, recordStart);
    if (headerProblem !== null) return invalid(headerProblem);
    const fragmentStart = recordStart + RECORD_HEADER_BYTES;
    if (data.length < fragmentStart) {
      if (headerBytesRead < HANDSHAKE_HEADER_BYTES) return incomplete(fragmentStart);
      return incomplete(minimumRecordLayerEnd(recordStart, HANDSHAKE_HEADER_BYTES + bodyLength - messageBytesBefore));
    }
    const fragmentLength = readUint16(data, recordStart + 3);
    const fragmentEnd = fragmentStart + fragmentLength;

    // Read the handshake header from whatever part of the fragment has arrived,
    // so that a wrong type or an oversized length is rejected at once.
    const availableEnd = Math.min(fragmentEnd, data.length);
    for (let i = fragmentStart; i < availableEnd && headerBytesRead < HANDSHAKE_HEADER_BYTES; i++) {
      if (headerBytesRead === 0) {
        if (data[i] !== HANDSHAKE_TYPE_CLIENT_HELLO) return invalid('not_client_hello');
      } else {
        bodyLength = (bodyLength << 8) | data[i];
      }
      headerBytesRead++;
    }
    const messageLength = HANDSHAKE_HEADER_BYTES + bodyLength;
    const messageBytesAfter = messageLength - (messageBytesBefore + fragmentLength);
    if (headerBytesRead === HANDSHAKE_HEADER_BYTES && minimumRecordLayerEnd(fragmentEnd, messageBytesAfter) > MAX_HELLO_BYTES) {
      return invalid('too_large');
    }
    if (data.length < fragmentEnd) {
      if (headerBytesRead < HANDSHAKE_HEADER_BYTES) return incomplete(fragmentEnd);
      return incomplete(minimumRecordLayerEnd(fragmentEnd, messageBytesAfter));
    }

    if (headerBytesRead === HANDSHAKE_HEADER_BYTES && messageBytesAfter <= 0) {
      // Read in place when the message sits in one record (offsets, not views: nothing allocated to read it).
      const hello =
        recordStart === 0
          ? parseClientHelloBody(data, fragmentStart + HANDSHAKE_HEADER_BYTES, fragmentStart + messageLength)
          : parseClientHelloBody(reassembleMessage(data, messageLength), HANDSHAKE_HEADER_BYTES, messageLength);
      if (typeof hello === 'string') return invalid(hello);
      return { status: 'complete', hello, length: fragmentEnd };
    }
    messageBytesBefore += fragmentLength;
    recordStart = fragmentEnd;
  }
}

/** Checks the bytes of the record header at `recordStart` that have arrived. */
function checkRecordHeader(data: Uint8Array, recordStart: number): HelloRejection | null {
  const available = data.length - recordStart;
  if (available > 0 && data[recordStart] !== CONTENT_TYPE_HANDSHAKE) return 'bad_record';
  if (available > 1 && data[recordStart + 1] !== 3) return 'bad_record';
  if (available > 2 && data[recordStart + 2] > MAX_RECORD_VERSION_MINOR) return 'bad_record';
  if (available > 4) {
    const fragmentLength = readUint16(data, recordStart + 3);
    if (fragmentLength === 0 || fragmentLength > MAX_FRAGMENT_BYTES) return 'bad_record';
  }
  return null;
}

/**
 * Where the record layer would end at the earliest, given the current record
 * ends at `recordEnd` and `messageBytesAfter` message bytes must follow it in
 * further records (each at most MAX_FRAGMENT_BYTES long, with its own header).
 */
function minimumRecordLayerEnd(recordEnd: number, messageBytesAfter: number): number {
  if (messageBytesAfter <= 0) return recordEnd;
  const records = Math.ceil(messageBytesAfter / MAX_FRAGMENT_BYTES);
  return recordEnd + messageBytesAfter + records * RECORD_HEADER_BYTES;
}

/** Copies the fragments of a handshake message that spans records (headers already validated). */
function reassembleMessage(data: Uint8Array, messageLength: number): Buffer {
  const message = Buffer.allocUnsafe(messageLength); // every byte is written below
  let copied = 0;
  let recordStart = 0;
  while (copied < messageLength) {
    const fragmentStart = recordStart + RECORD_HEADER_BYTES;
    const fragmentLength = readUint16(data, recordStart + 3);
    const take = Math.min(fragmentLength, messageLength - copied);
    message.set(data.subarray(fragmentStart, fragmentStart + take), copied);
    copied += take;
    recordStart = fragmentStart + fragmentLength;
  }
  return message;
}

/**
 * Position just past a vector whose `prefixBytes`-byte length prefix is at
 * `pos`, or NOT_FOUND if the length is outside [min, max] or overruns `end`.
 */
function skipVector(buf: Uint8Array, pos: number, end: number, prefixBytes: 1 | 2, min: number, max: number): number {
  if (pos === NOT_FOUND || pos + prefixBytes > end) return NOT_FOUND;
  const length = prefixBytes === 1 ? buf[pos] : readUint16(buf, pos);
  const vectorEnd = pos + prefixBytes + length;
  if (length < min || length > max || vectorEnd > end) return NOT_FOUND;
  return vectorEnd;
}

/** The ClientHello body in buf[start, end): everything after the handshake header. */
function parseClientHelloBody(body: Uint8Array, start: number, end: number): ClientHello | HelloRejection {
  const sessionIdStart = start + 2 + RANDOM_BYTES; // after legacy_version and random
  if (sessionIdStart > end) return 'malformed';
  const cipherSuitesStart = skipVector(body, sessionIdStart, end, 1, 0, MAX_SESSION_ID_BYTES);
  const compressionStart = skipVector(body, cipherSuitesStart, end, 2, 2, 0xfffe);
  if (compressionStart === NOT_FOUND || readUint16(body, cipherSuitesStart) % 2 !== 0) return 'malformed';
  const extensionsStart = skipVector(body, compressionStart, end, 1, 1, 0xff);
  if (extensionsStart === NOT_FOUND) return 'malformed';
  // Clients predating extensions end the hello here.
  if (extensionsStart === end) return { serverName: null, alpn: [], sslv2: false };
  if (skipVector(body, extensionsStart, end, 2, 0, 0xffff) !== end) return 'malformed';
  return parseExtensions(body, extensionsStart + 2, end);
}

// Which extension types the hello being parsed has shown: type t was seen when
// extensionSeenIn[t] === extensionGeneration. Moving to the next generation
// forgets them all at once, so a parse neither allocates nor clears the table
// (only when the 16-bit generation wraps, once every 65,535 hellos). Parsing is
// synchronous, so one table serves every connection.
const extensionSeenIn = new Uint16Array(EXTENSION_TYPES);
let extensionGeneration = 0;

function nextExtensionGeneration(): number {
  extensionGeneration = (extensionGeneration + 1) & 0xffff;
  if (extensionGeneration === 0) {
    extensionSeenIn.fill(0);
    extensionGeneration = 1;
  }
  return extensionGeneration;
}

/**
 * Reads server_name and ALPN. An extension type that appears twice makes the
 * hello malformed (RFC 8446 section 4.2: "There MUST NOT be more than one
 * extension of the same type"), whatever the type: BoringSSL and Go's
 * crypto/tls refuse every such hello, OpenSSL those with a type it knows, and a
 * proxy that picked one of two server names could route a connection to a
 * backend that reads the other.
 */
function parseExtensions(buf: Uint8Array, start: number, end: number): ClientHello | HelloRejection {
  const generation = nextExtensionGeneration();
  let hostNameEntry = NOT_FOUND;
  let alpnList = NOT_FOUND;
  let pos = start;
  while (pos < end) {
    if (pos + 4 > end) return 'malformed';
    const type = readUint16(buf, pos);
    const dataStart = pos + 4;
    const dataEnd = dataStart + readUint16(buf, pos + 2);
    if (dataEnd > end) return 'malformed';
    if (extensionSeenIn[type] === generation) return 'malformed';
    extensionSeenIn[type] = generation;
    if (type === EXTENSION_SERVER_NAME) {
      hostNameEntry = findHostNameEntry(buf, dataStart, dataEnd);
      if (hostNameEntry === NOT_FOUND) return 'bad_server_name';
    } else if (type === EXTENSION_ALPN) {
      if (!isValidAlpnExtension(buf, dataStart, dataEnd)) return 'malformed';
      alpnList = dataStart;
    }
    pos = dataEnd;
  }
  if (hostNameEntry === NOT_FOUND && alpnList === NOT_FOUND) return { serverName: null, alpn: [], sslv2: false };
  const text = asBuffer(buf);
  return {
    serverName: hostNameEntry === NOT_FOUND ? null : decodeHostName(text, hostNameEntry),
    alpn: alpnList === NOT_FOUND ? [] : decodeAlpnList(text, alpnList),
    sslv2: false,
  };
}

/**
 * Position of the host_name entry in a server_name extension, or NOT_FOUND
 * unless the extension's list is exactly one valid host_name entry. RFC 6066
 * allows several names of different types, but no other type was ever
 * defined, and OpenSSL and BoringSSL (which most backends run) refuse any list
 * that is not one host_name: routing such a hello would hand the backend a
 * hello it refuses, or one whose name it reads differently.
 */
function findHostNameEntry(buf: Uint8Array, start: number, end: number): number {
  if (skipVector(buf, start, end, 2, 1, 0xffff) !== end) return NOT_FOUND;
  const entry = start + 2;
  if (buf[entry] !== NAME_TYPE_HOST_NAME) return NOT_FOUND;
  if (skipVector(buf, entry + 1, end, 2, 1, MAX_HOST_NAME_BYTES) !== end) return NOT_FOUND;
  return isValidHostName(buf, entry + 3, end) ? entry : NOT_FOUND;
}

/**
 * Printable ASCII in labels of 1 to 63 bytes (RFC 1035 section 2.3.4): no
 * empty label (".a", "a..b"), none longer than a DNS name may have, so that no
 * wildcard route matches a name DNS could never resolve. One trailing dot (the
 * root) is allowed.
 */
function isValidHostName(buf: Uint8Array, start: number, end: number): boolean {
  let labelStart = start;
  for (let i = start; i < end; i++) {
    const byte = buf[i];
    if (byte < 0x21 || byte > 0x7e) return false;
    if (byte === DOT) {
      if (i === labelStart || i - labelStart > MAX_LABEL_BYTES) return false;
      labelStart = i + 1;
    }
  }
  return end - labelStart <= MAX_LABEL_BYTES;
}

function isValidAlpnExtension(buf: Uint8Array, start: number, end: number): boolean {
  if (skipVector(buf, start, end, 2, 2, 0xffff) !== end) return false;
  for (let pos = start + 2; pos < end; ) {
    pos = skipVector(buf, pos, end, 1, 1, 0xff);
    if (pos === NOT_FOUND) return false;
  }
  return true;
}

/** `buf` as a Buffer, to decode text without a view per string (the proxy's reads already are Buffers). */
function asBuffer(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

function decodeHostName(buf: Buffer, entry: number): string {
  const start = entry + 3;
  let end = start + readUint16(buf, entry + 1);
  if (buf[end - 1] === DOT) end--;
  return buf.toString('latin1', start, end).toLowerCase();
}

function decodeAlpnList(buf: Buffer, extensionStart: number): string[] {
  const end = extensionStart + 2 + readUint16(buf, extensionStart);
  const protocols: string[] = [];
  for (let pos = extensionStart + 2; pos < end; pos += 1 + buf[pos]) {
    protocols.push(buf.toString('latin1', pos + 1, pos + 1 + buf[pos]));
  }
  return protocols;
}

/**
 * The SSLv2-compatible hello of old clients: a 2-byte header with the high bit
 * set and a 15-bit length, then msg_type, version and three lengths. It cannot
 * carry extensions, so there is nothing to route on beyond recognising it.
 */
function parseSslv2Hello(data: Uint8Array): HelloParseResult {
  if (data.length > 2 && data[2] !== SSLV2_MSG_CLIENT_HELLO) return invalid('not_tls');
  if (data.length > 3 && data[3] !== 0 && data[3] !== 3) return invalid('not_tls');
  if (data.length > 4 && data[3] === 0 && data[4] !== 2) return invalid('not_tls');
  if (data.length < SSLV2_HEADER_BYTES) return incomplete(SSLV2_HEADER_BYTES);
  const bodyLength = readUint16(data, 0) & 0x7fff;
  if (bodyLength < SSLV2_FIXED_BODY_BYTES) return invalid('malformed');
  const end = SSLV2_HEADER_BYTES + bodyLength;
  if (data.length < end) return incomplete(end);
  const variableBytes = readUint16(data, 5) + readUint16(data, 7) + readUint16(data, 9);
  if (SSLV2_FIXED_BODY_BYTES + variableBytes !== bodyLength) return invalid('malformed');
  return { status: 'complete', hello: { serverName: null, alpn: [], sslv2: true }, length: end };
}
